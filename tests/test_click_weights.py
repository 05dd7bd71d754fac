"""The ranking's weights learned from clicks, position bias corrected (issue 21): a report."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from recommender import Recommender
from recommender.cli import main
from recommender.embedding.encoders import HashingEncoder
from recommender.ranking.click_weights import MIN_CLICKS, Clicks, fit_click_model, pair_signals
from recommender.ranking.scoring import RankingConfig
from tests.conftest import dated_stories

#: The clicks' truth in the simulations: readers weigh the lexical side twice the dense
#: side and the date a quarter of it (the index's own mix is 1 : 1 : 1).
TRUTH = np.array([1.5, 3.0, 0.4])
BIAS = -2.0


def _examined(positions: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / positions.astype(np.float64) ** 0.7
    return out


def _positions_served(scores: np.ndarray, lists: int, k: int) -> np.ndarray:
    """Each item's position when each list of ``k`` is shown by ``scores``."""
    ranks = np.argsort(np.argsort(-scores.reshape(lists, k), axis=1), axis=1) + 1
    return ranks.ravel()


def _ratio_error(weights: np.ndarray) -> float:
    return float(np.abs(weights[1:] / weights[0] - TRUTH[1:] / TRUTH[0]).max())


def test_the_learner_recovers_the_weights_and_the_position_bias() -> None:
    rng = np.random.default_rng(1)
    lists, k, views = 300, 10, 30
    signals = np.column_stack([rng.normal(size=(lists * k, 2)), rng.uniform(size=lists * k)])
    # Shown by the current mix, so that position and the signals go together, as on a site.
    positions = _positions_served(signals.sum(axis=1), lists, k)
    relevant = 1.0 / (1.0 + np.exp(-(signals @ TRUTH + BIAS)))
    impressions = np.full(lists * k, float(views))
    clicks = rng.binomial(views, relevant * _examined(positions)).astype(np.float64)

    data = Clicks(signals, positions, np.arange(lists * k) // k, impressions, clicks)
    model = fit_click_model(data)
    naive = fit_click_model(data, position_bias=False)

    assert _ratio_error(model.weights) < 0.15
    relative = model.examination[:k] / model.examination[0]
    assert np.abs(relative[:6] - _examined(np.arange(1, 7))).max() < 0.06
    # Without the correction the position's effect is read as the shown mix's: biased.
    assert _ratio_error(naive.weights) > 3 * _ratio_error(model.weights)


ARTICLES = dated_stories("s", 40, seed=3, span_days=400, spread_days=6)
IDS = [a.id for a in ARTICLES]


@pytest.fixture
def rec(tmp_path: Path) -> Iterator[Recommender]:
    with Recommender.build(ARTICLES, tmp_path / "idx", encoder=HashingEncoder(256)) as built:
        yield built


def _shown(rec: Recommender, k: int = 10) -> tuple[list[tuple[str, str, int]], np.ndarray]:
    """Every article's served list as (article, item, position), and each pair's signals."""
    cells = [
        (a, m.id, n)
        for a in IDS
        for n, m in enumerate(rec.related(a, k=k), start=1)
    ]  # fmt: skip
    with rec._index.reading() as state:
        ids = state.catalog.int_ids({a for a, _, _ in cells} | {r for _, r, _ in cells})
        signals = pair_signals(
            state,
            rec.ranking,
            np.array([ids[a] for a, _, _ in cells]),
            np.array([ids[r] for _, r, _ in cells]),
        )
    return cells, signals


def _record(
    rec: Recommender, cells: list[tuple[str, str, int]], clicks: np.ndarray, views: int
) -> None:
    events = [
        {"type": "impression", "article_id": a, "related_id": r, "position": p}
        for a, r, p in cells
        for _ in range(views)
    ] + [
        {"type": "click", "article_id": a, "related_id": r, "position": p}
        for (a, r, p), c in zip(cells, clicks.tolist(), strict=True)
        for _ in range(int(c))
    ]
    for start in range(0, len(events), 1_000):
        rec.events.record(events[start : start + 1_000])


def test_clicks_recorded_as_events_learn_the_readers_weights(rec: Recommender) -> None:
    cells, signals = _shown(rec)
    positions = np.array([p for _, _, p in cells])
    relevant = 1.0 / (1.0 + np.exp(-(signals @ TRUTH + BIAS)))
    views = 20
    clicks = np.random.default_rng(5).binomial(views, relevant * _examined(positions))
    _record(rec, cells, clicks, views)

    before = rec.ranking
    found = rec.click_weights()

    assert found.learned is not None, found.reason
    assert found.impressions == len(cells) * views and found.clicks == clicks.sum()
    assert found.unknown == 0 and found.cells == len(cells)
    # The log's path (events -> cells -> the pairs' signals) fits what the simulation made.
    lists = np.unique([a for a, _, _ in cells], return_inverse=True)[1].ravel()
    by_hand = fit_click_model(
        Clicks(signals, positions, lists, np.full(len(cells), float(views)), clicks.astype(float))
    )
    assert found.learned == pytest.approx(
        {"lexical_weight": by_hand.weights[1] / by_hand.weights[0],
         "time_weight": by_hand.weights[2] / by_hand.weights[0]}, rel=1e-4
    )  # fmt: skip
    # Dense and lexical go together on this corpus (one hashing encoder), so the ratio is
    # loose; its direction is not: readers weigh the lexical side more than the index does.
    assert found.learned["lexical_weight"] > 1.5
    assert len(found.folds) == 5
    assert found.examination[0] == 1.0 and found.examination[1] < 0.9
    # Clicks it was not fitted to follow the readers' mix better than the index's own.
    assert found.better
    assert rec.click_weights() == found  # the same events, the same report
    assert rec.ranking == before  # a report: nothing changed


def test_clicks_that_follow_no_signal_do_not_beat_the_current_weights(rec: Recommender) -> None:
    cells, _ = _shown(rec)
    positions = np.array([p for _, _, p in cells])
    views = 20
    clicks = np.random.default_rng(9).binomial(views, 0.3 * _examined(positions))
    _record(rec, cells, clicks, views)

    found = rec.click_weights()

    assert found.learned is None or not found.better
    text = CliRunner().invoke(main, ["report", "--index", str(rec._layout.root), "--weights"])
    assert "keep them" in text.output or "no weights" in text.output, text.output
    assert "buckets set" not in text.output


def test_too_few_clicks_and_articles_no_longer_in_the_index(rec: Recommender) -> None:
    cells, _ = _shown(rec)
    gone = cells[0][0]
    _record(rec, cells[:30], np.ones(30), 1)
    found = rec.click_weights()
    assert found.learned is None and found.clicks == 30
    assert f"at least {MIN_CLICKS} clicks" in (found.reason or "")

    rec.remove([gone])
    found = rec.click_weights()
    assert found.unknown == sum(1 for a, r, _ in cells[:30] if gone in (a, r))
    assert found.clicks == 30 - found.unknown


def test_report_prints_the_learned_weights_and_the_bucket_to_test(rec: Recommender) -> None:
    cells, signals = _shown(rec)
    positions = np.array([p for _, _, p in cells])
    relevant = 1.0 / (1.0 + np.exp(-(signals @ TRUTH + BIAS)))
    clicks = np.random.default_rng(5).binomial(20, relevant * _examined(positions))
    _record(rec, cells, clicks, 20)
    root = str(rec._layout.root)
    runner = CliRunner()

    text = runner.invoke(main, ["report", "--index", root, "--weights"])
    assert text.exit_code == 0, text.output
    assert "lexical_weight" in text.output and "learned weights predict them better" in text.output
    assert "recommender buckets set clicks lexical_weight=" in text.output

    data = json.loads(
        runner.invoke(main, ["report", "--index", root, "--weights", "--json"]).output
    )
    assert data["weights"]["better"] is True and data["positions"][0]["position"] == 1
    plain = json.loads(runner.invoke(main, ["report", "--index", root, "--json"]).output)
    assert isinstance(plain, list)  # without --weights the JSON is the table, as before


def test_pair_signals_are_the_terms_of_the_ranking_score(rec: Recommender) -> None:
    rec.store_lists()  # stored lists standardise a query's side by its own statistics
    config = RankingConfig(story_first=False)
    cells = [(a, m.id, m.score) for a in IDS[:20] for m in rec.related(a, ranking=config)]
    with rec._index.reading() as state:
        ids = state.catalog.int_ids({a for a, _, _ in cells} | {r for _, r, _ in cells})
        signals = pair_signals(
            state,
            config,
            np.array([ids[a] for a, _, _ in cells]),
            np.array([ids[r] for _, r, _ in cells]),
        )
    mix = np.array([1.0, config.lexical_weight, config.time_weight])
    assert signals[:, 2].any()  # dated pairs: the prior takes part
    np.testing.assert_allclose(signals @ mix, [s for _, _, s in cells], rtol=1e-5, atol=1e-5)


def test_weights_are_learned_for_the_hybrid_ranking_only(rec: Recommender) -> None:
    from recommender.ranking.click_weights import click_weights

    cells, signals = _shown(rec)
    positions = np.array([p for _, _, p in cells])
    relevant = 1.0 / (1.0 + np.exp(-(signals @ TRUTH + BIAS)))
    _record(rec, cells, np.random.default_rng(5).binomial(20, relevant * _examined(positions)), 20)
    shown = rec.events.shown()
    with rec._index.reading() as state:
        assert click_weights(state, rec.ranking, shown).learned is not None
        found = click_weights(state, RankingConfig(method="dense"), shown)
    assert found.learned is None and "method 'dense'" in (found.reason or "")
