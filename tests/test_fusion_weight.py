"""The lexical side's weight estimated from the archive: equal spread at the top of its lists."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from recommender import Article, Recommender
from recommender.cli import main
from recommender.embedding.encoders import HashingEncoder
from recommender.ranking.fusion_weight import equal_spread_weight
from recommender.stories.keeper import content_config

from .conftest import built_index, dated_stories

FAST = ["--model", "hashing:256", "--quiet"]


def _archive() -> list[Article]:
    """30 stories of 4 articles (120): more than the 50 the estimate needs."""
    return dated_stories("f", 30, seed=5, span_days=300, spread_days=3)


@pytest.fixture(scope="module")
def weighted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_index(tmp_path_factory, "fusion", _archive())


def test_the_weight_gives_both_sides_the_same_spread_at_the_top() -> None:
    rng = np.random.default_rng(0)
    dense = [rng.normal(size=120) for _ in range(40)]
    # The lexical side twice as spread everywhere: its weight is a half.
    found = equal_spread_weight([(d, 2.0 * d) for d in dense])
    assert found is not None and found[0] == pytest.approx(0.5, abs=1e-3)
    # A heavy tail (a few shared rare names) spreads the top wider than the pool's z says.
    tailed = [(d, rng.standard_t(2, size=120)) for d in dense]
    found = equal_spread_weight([(d, (t - t.mean()) / t.std()) for d, t in tailed])
    assert found is not None
    weight, (dense_spread, lexical_spread) = found
    assert weight < 1.0 and weight * lexical_spread == pytest.approx(dense_spread, rel=0.01)


def test_a_side_without_spread_gives_no_weight() -> None:
    flat = np.zeros(50)
    assert equal_spread_weight([(np.linspace(0, 1, 50), flat)] * 3) is None


def test_a_build_estimates_the_weight_and_info_shows_it(weighted: Path) -> None:
    with Recommender.open(weighted, encoder=HashingEncoder(256)) as rec:
        weight = rec.ranking.lexical_weight
        found = rec.info().to_dict()["calibration"]["fusion"]
    assert found["lexical_weight"] == weight and weight != 1.0 and found["reason"] is None
    assert found["queries"] == 120 and found["depth"] == 30
    assert found["dense_spread"] == pytest.approx(weight * found["lexical_spread"], rel=0.01)
    result = CliRunner().invoke(main, ["info", "--index", str(weighted)])
    assert f"fusion:     dense + {weight:g} x lexical (symmetric-z), estimated" in result.output


def test_the_same_archive_gives_the_same_weight(weighted: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    Recommender.build(_archive(), again, encoder=HashingEncoder(256)).close()
    first, second = (json.loads((p / "manifest.json").read_text()) for p in (weighted, again))
    assert first["ranking"] == second["ranking"]
    assert first["calibration"] == second["calibration"]


def test_the_stories_do_not_depend_on_the_weight(weighted: Path, tmp_path: Path) -> None:
    equal = tmp_path / "equal"
    result = CliRunner().invoke(
        main,
        ["build", "-", "--index", str(equal), "--no-estimate-weight", *FAST],
        input="\n".join(json.dumps(a.to_dict()) for a in _archive()) + "\n",
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((equal / "manifest.json").read_text())
    assert manifest["ranking"]["lexical_weight"] == 1.0 and "calibration" not in manifest
    assert content_config({"ranking": {"lexical_weight": 0.4}}).lexical_weight == 1.0
    stories = []
    for path in (weighted, equal):
        with Recommender.open(path, encoder=HashingEncoder(256)) as rec:
            stories.append(sorted(sorted(a.id for a in s.articles) for s in rec.stories()))
    assert stories[0] == stories[1] and len(stories[0]) < 120


def test_too_few_articles_keep_the_weight_and_say_why(
    corpus: list[Article], tmp_path: Path
) -> None:
    path = tmp_path / "small"
    Recommender.build(corpus, path, encoder=HashingEncoder(256)).close()
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["ranking"]["lexical_weight"] == 1.0
    assert manifest["calibration"]["fusion"]["reason"] == f"{len(corpus)} articles; 50 are needed"
    result = CliRunner().invoke(main, ["info", "--index", str(path)])
    assert "dense + 1 x lexical (symmetric-z) (not estimated:" in result.output


def test_calibrate_without_time_estimates_the_weight_only(weighted: Path, tmp_path: Path) -> None:
    path = tmp_path / "copy"
    shutil.copytree(weighted, path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["ranking"]["lexical_weight"] = 1.0  # as an index built before the estimate
    (path / "manifest.json").write_text(json.dumps(manifest))
    with Recommender.open(path, encoder=HashingEncoder(256)) as rec:
        rec.store_lists(k=5)
    result = CliRunner().invoke(main, ["calibrate", "--index", str(path), "--no-time", "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert set(found) == {"fusion"}
    with Recommender.open(path, encoder=HashingEncoder(256)) as rec:
        assert rec.ranking.lexical_weight == found["fusion"]["lexical_weight"] != 1.0
        assert rec.ranking.time_curve is None
        status = rec.stored_lists_status()
        assert status is not None and status.stale == "the ranking was calibrated again"
    text = CliRunner().invoke(main, ["calibrate", "--index", str(path), "--no-time"]).output
    assert text.startswith("fusion:     dense + ") and "time prior" not in text


def test_an_archive_grown_by_a_quarter_estimates_the_weight_again(tmp_path: Path) -> None:
    articles = _archive()
    path = tmp_path / "grown"
    Recommender.build(articles[:40], path, encoder=HashingEncoder(256)).close()
    before = json.loads((path / "manifest.json").read_text())
    assert before["calibration"]["fusion"]["reason"] == "40 articles; 50 are needed"
    with Recommender.open(path, encoder=HashingEncoder(256)) as rec:
        rec.upsert(articles[40:48])  # 48 < 50: grown by a fifth, nothing estimated yet
        assert rec.ranking.lexical_weight == 1.0
        rec.upsert(articles[48:60])  # 60 >= 1.25 x 40: every statistic and the weight again
        found = rec.info().to_dict()["calibration"]["fusion"]
        assert found["queries"] == 60 and found["reason"] is None
        assert rec.ranking.lexical_weight == found["lexical_weight"] != 1.0
    fixed = tmp_path / "fixed"
    Recommender.build(
        articles[:40], fixed, encoder=HashingEncoder(256), estimate_weight=False
    ).close()
    with Recommender.open(fixed, encoder=HashingEncoder(256)) as rec:
        rec.upsert(articles[40:60])
        assert rec.ranking.lexical_weight == 1.0
        assert "fusion" not in rec.info().to_dict().get("calibration", {})
