"""The time prior estimated from the archive: the two-view model, builds, `calibrate`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from recommender import Article, Recommender
from recommender.cli import main
from recommender.embedding.encoders import HashingEncoder
from recommender.errors import InvalidArgumentError
from recommender.ranking.calibration import _bins, _fit, _non_increasing
from recommender.ranking.scoring import RankingConfig

from .conftest import article, built_index, dated_stories


def _synthetic_pairs(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate pairs whose truth is known: 30% one story (score ~ N(5, 1), a few days
    apart), the rest other stories (score ~ N(1, 1), any gap up to three years)."""
    rng = np.random.default_rng(seed)
    same = rng.random(6_000) < 0.3
    scores = np.where(same, rng.normal(5.0, 1.0, same.size), rng.normal(1.0, 1.0, same.size))
    gaps = np.where(same, rng.exponential(3.0, same.size), rng.uniform(0, 1_100, same.size))
    return scores, gaps, same


def test_the_two_view_model_finds_the_share_the_separation_and_the_gap_curve() -> None:
    scores, gaps, same = _synthetic_pairs(1)
    model = _fit(scores, _bins(gaps), 10)
    share, separation, ratio, weights = model.share, model.separation, model.ratio, model.weights
    assert share == pytest.approx(same.mean(), abs=0.02)
    assert separation == pytest.approx(4.0, rel=0.1)  # (5 - 1) / 1
    # Each bin's log-likelihood ratio against the truth's, where the truth has pairs of both.
    bins = _bins(gaps)
    for b in range(len(ratio)):
        here = bins == b
        if (same & here).sum() >= 50 and (~same & here).sum() >= 50:
            truth = np.log((same & here).sum() / same.sum()) - np.log(
                (~same & here).sum() / (~same).sum()
            )
            assert ratio[b] == pytest.approx(truth, abs=0.35)
    curve = _non_increasing(ratio / separation, weights)
    assert list(curve) == sorted(curve, reverse=True)
    assert curve[0] > 0 > curve[-1]


def test_a_longer_gap_never_scores_higher() -> None:
    values = np.array([2.0, 1.0, 1.4, 0.2, 0.5, -1.0])
    fitted = _non_increasing(values, np.ones(6))
    assert list(fitted) == sorted(fitted, reverse=True)
    assert fitted[0] == 2.0 and fitted[-1] == -1.0


def test_the_curve_is_the_prior_and_undated_candidates_get_none() -> None:
    from recommender.ranking.scoring import Candidates, _time_prior

    config = RankingConfig(time_curve=((0.25, 2.0), (10.0, 0.5), (730.0, -1.0)))
    day = 86_400.0
    published = np.array([0.0, 10 * day, 5_000 * day, np.nan])
    empty = np.zeros(4, dtype=np.float32)
    pairs = Candidates(np.arange(4), empty, empty, None, published)
    prior = _time_prior(pairs, 0.0, None, config)
    assert prior[0] == pytest.approx(2.0) and prior[1] == pytest.approx(0.5)
    assert prior[2] == pytest.approx(-1.0) and prior[3] == 0.0
    half = replace(config, time_weight=0.5)
    assert _time_prior(pairs, 0.0, None, half)[0] == pytest.approx(1.0)
    # Stored as JSON gives it back, so a stored configuration compares equal.
    again = RankingConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.to_dict() == config.to_dict()


@pytest.mark.parametrize("curve", [[], [[5, 1], [1, 0]], [[-1, 1]], "soon", [[1, "x"]]])
def test_a_bad_curve_is_refused_naming_the_field(curve: object) -> None:
    with pytest.raises(InvalidArgumentError) as refused:
        RankingConfig.from_dict({"time_curve": curve})
    assert refused.value.field == "time_curve"


def _dated_archive() -> list[Article]:
    """60 stories, a story's articles within three days, the stories over two years."""
    return dated_stories("s", 60, seed=3, span_days=700, spread_days=3)


@pytest.fixture(scope="module")
def dated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_index(tmp_path_factory, "calibration", _dated_archive(), calibrate=True)


def test_a_build_estimates_the_prior_and_info_shows_it(dated: Path) -> None:
    with Recommender.open(dated, encoder=HashingEncoder(256)) as rec:
        curve = rec.ranking.time_curve
        found = rec.info().to_dict()["calibration"]["time"]
    assert curve is not None and found["curve"] == [list(knot) for knot in curve]
    assert found["dated_pairs"] >= 300 and found["reason"] is None
    values = [v for _, v in curve]
    assert values == sorted(values, reverse=True) and values[0] > 0
    result = CliRunner().invoke(main, ["info", "--index", str(dated)])
    assert "time prior: estimated from" in result.output


def test_the_same_archive_gives_the_same_prior(dated: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    Recommender.build(_dated_archive(), again, encoder=HashingEncoder(256), calibrate=True).close()
    first = json.loads((dated / "manifest.json").read_text())
    second = json.loads((again / "manifest.json").read_text())
    assert first["ranking"] == second["ranking"]
    assert first["calibration"] == second["calibration"]


def test_too_few_dated_pairs_keep_the_fixed_prior_and_say_why(
    corpus: list[Article], tmp_path: Path
) -> None:
    path = tmp_path / "small"
    Recommender.build(corpus, path, encoder=HashingEncoder(256), calibrate=True).close()
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["ranking"]["time_curve"] is None
    assert "are needed" in manifest["calibration"]["time"]["reason"]
    result = CliRunner().invoke(main, ["info", "--index", str(path)])
    assert "exp(-days/7.0) (fixed:" in result.output


def test_a_build_keeps_the_fixed_prior_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "fixed"
    Recommender.build(_dated_archive(), path, encoder=HashingEncoder(256)).close()
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["ranking"]["time_curve"] is None
    assert "time" not in manifest.get("calibration", {})
    result = CliRunner().invoke(main, ["info", "--index", str(path)])
    assert "time prior: 1.0 x exp(-days/7.0)" in result.output


def test_calibrate_refreshes_the_prior_and_marks_stored_lists_stale(
    dated: Path, tmp_path: Path
) -> None:
    import shutil

    path = tmp_path / "copy"
    shutil.copytree(dated, path)
    with Recommender.open(path, encoder=HashingEncoder(256)) as rec:
        before = rec.ranking.time_curve
        rec.store_lists(k=5)
        rec.upsert(
            [
                article(f"late-{n}", f"w{n} w{n + 1} w{n + 2}", published="2026-06-01")
                for n in range(5)
            ]
        )
    result = CliRunner().invoke(main, ["calibrate", "--index", str(path), "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    with Recommender.open(path, encoder=HashingEncoder(256)) as rec:
        assert rec.ranking.time_curve == tuple(tuple(k) for k in found["time"]["curve"])
        assert found["time"]["dated_pairs"] > 0 and before is not None
        assert rec.ranking.lexical_weight == found["fusion"]["lexical_weight"]
        status = rec.stored_lists_status()
        assert status is not None and status.stale == "the ranking was calibrated again"


def test_calibrate_keeps_the_fixed_prior_unless_asked(tmp_path: Path) -> None:
    """The estimated prior is opt-in: refreshing an index's estimates never switches it on."""
    path = tmp_path / "fixed"
    Recommender.build(_dated_archive(), path, encoder=HashingEncoder(256)).close()
    result = CliRunner().invoke(main, ["calibrate", "--index", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.output)) == {"fusion"}
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["ranking"]["time_curve"] is None and "time" not in manifest["calibration"]
    text = CliRunner().invoke(main, ["calibrate", "--index", str(path)]).output
    assert text.startswith("fusion:     dense + ") and "time prior" not in text
    # --time asks for it: from then on it is the index's prior, refreshed like the weight.
    result = CliRunner().invoke(main, ["calibrate", "--index", str(path), "--time"])
    assert result.exit_code == 0 and "time prior: estimated from" in result.output
    with Recommender.open(path, encoder=HashingEncoder(256)) as rec:
        curve = rec.ranking.time_curve
        assert curve is not None
        assert rec.calibrate().time is not None and rec.ranking.time_curve == curve
    # An index ranked with no time prior has none to estimate, and says so.
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["ranking"].update(time_weight=0.0, time_curve=None)
    (path / "manifest.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(main, ["calibrate", "--index", str(path), "--time"])
    assert result.exit_code == 0 and "time prior: off" in result.output


def test_an_asked_for_prior_is_tried_again_once_the_archive_has_dated_pairs(
    corpus: list[Article], tmp_path: Path
) -> None:
    path = tmp_path / "undated"
    Recommender.build(corpus, path, encoder=HashingEncoder(256), calibrate=True).close()
    with Recommender.open(path, encoder=HashingEncoder(256)) as rec:
        assert rec.ranking.time_curve is None  # too few dated pairs: the fixed prior, for now
        rec.upsert(_dated_archive())  # the archive grows by more than a quarter
        curve = rec.ranking.time_curve
        assert curve is not None
        found = rec.calibrate()
        assert found.time is not None and found.time.curve == curve == rec.ranking.time_curve


def _weak_tailed_pairs(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scored pairs whose one-story class is not one normal (a large story's weak pairs form
    a second bump), a quarter of them dated: scores, gaps (NaN: undated), truth, dated."""
    rng = np.random.default_rng(seed)
    same = np.r_[rng.normal(6.0, 1.2, 2000), rng.normal(3.8, 0.8, 800)]
    other = rng.normal(1.5, 1.0, 4000)
    truth = np.r_[np.ones(len(same), bool), np.zeros(len(other), bool)]
    gaps = np.r_[rng.exponential(1.0, len(same)), rng.uniform(30, 700, len(other))]
    dated = rng.random(len(truth)) < 0.25
    return np.r_[same, other], np.where(dated, gaps, np.nan), truth, dated


def test_the_story_model_takes_the_score_shape_from_the_dated_pairs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from recommender.ranking import calibration

    scores, gaps, truth, dated = _weak_tailed_pairs(0)
    model = calibration.story_model(scores, gaps)
    monkeypatch.setattr(calibration, "_MIN_DATED", 10**9)  # the shape from all pairs
    pooled = calibration.story_model(scores, gaps)
    assert model is not None and pooled is not None
    # The two means come from the dated pairs alone.
    bins = calibration._bins(gaps[dated])
    shape = calibration._fit(scores[dated], bins, len(calibration._KNOTS) + 1)
    assert model.middle == pytest.approx((shape.mean_same + shape.mean_other) / 2)
    assert pooled.middle != pytest.approx(model.middle)

    def accuracy(found: calibration.StoryModel) -> float:
        decided = found.log_odds(scores[~dated], gaps[~dated]) >= 0
        return float((decided == truth[~dated]).mean())

    # Where the date is unknown, the pairs are decided better with the dated pairs' shape.
    assert accuracy(model) > accuracy(pooled) + 0.005


def test_all_dated_or_too_few_dated_pairs_fit_the_shape_to_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from recommender.ranking import calibration

    scores, gaps, _, _ = _weak_tailed_pairs(1)
    every = np.where(np.isnan(gaps), 5.0, gaps)  # all dated
    few = np.where(np.arange(len(gaps)) < 50, every, np.nan)  # 50 dated
    for partial in (every, few):
        model = calibration.story_model(scores, partial)
        monkeypatch.setattr(calibration, "_MIN_DATED", 10**9)
        assert calibration.story_model(scores, partial) == model
        monkeypatch.setattr(calibration, "_MIN_DATED", 100)


def test_an_archive_grown_by_a_quarter_estimates_its_prior_again(tmp_path: Path) -> None:
    articles = _dated_archive()  # 240 articles
    path = tmp_path / "grown"
    with Recommender.build(
        articles[:180], path, encoder=HashingEncoder(256), calibrate=True
    ) as rec:
        before = rec.info().to_dict()["calibration"]
        rec.upsert(articles[180:])  # 240 >= 1.25 x 180: estimated again, as a build would
        after = rec.info().to_dict()["calibration"]
        assert after["time"]["pairs"] > before["time"]["pairs"]
        assert after["fusion"]["queries"] == 240 > before["fusion"]["queries"]
        assert rec.ranking.time_curve == tuple(tuple(k) for k in after["time"]["curve"])
        assert rec.ranking.lexical_weight == after["fusion"]["lexical_weight"]
