"""Fusion, time prior, copies and diversity on hand-made candidate pools."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender import InvalidArgumentError
from recommender.ranking.scoring import Candidates, RankingConfig, pool_stats, rank

DAY = 86_400.0


def pool(dense: list[float], lexical: list[float], **extra: object) -> Candidates:
    n = len(dense)
    vectors = np.eye(max(n, 2), dtype=np.float32)[:n]
    base = Candidates(
        ids=np.arange(100, 100 + n, dtype=np.int64),
        dense=np.array(dense, dtype=np.float32),
        lexical=np.array(lexical, dtype=np.float32),
        vectors=vectors,
        published=np.full(n, np.nan),
    )
    for key, value in extra.items():
        setattr(base, key, value)
    return base


PLAIN = RankingConfig(time_weight=0.0)


def ids(ranked: list[tuple[int, float]]) -> list[int]:
    return [i for i, _ in ranked]


def test_methods_use_one_side_or_both() -> None:
    candidates = pool([0.9, 0.5, 0.1], [0.0, 0.2, 0.9])
    assert ids(
        rank(candidates, 3, RankingConfig(method="dense", time_weight=0), query_time=None)
    ) == [100, 101, 102]
    assert ids(
        rank(candidates, 3, RankingConfig(method="lexical", time_weight=0), query_time=None)
    ) == [102, 101, 100]
    # Hybrid: the middle candidate is decent on both sides and wins.
    balanced = pool([0.9, 0.8, 0.1, 0.1], [0.0, 0.8, 0.9, 0.0])
    assert ids(rank(balanced, 1, PLAIN, query_time=None)) == [101]


def test_fusion_is_scale_free_per_side() -> None:
    """Multiplying one side's raw scores by a constant changes nothing (per-query z-scores)."""
    candidates = pool([0.9, 0.7, 0.4, 0.2], [0.1, 0.5, 0.3, 0.2])
    scaled = pool([0.9, 0.7, 0.4, 0.2], [1.0, 5.0, 3.0, 2.0])
    assert ids(rank(candidates, 4, PLAIN, query_time=None)) == ids(
        rank(scaled, 4, PLAIN, query_time=None)
    )


def test_doc_side_statistics_discount_hubs() -> None:
    # Candidate 0 scores high for every query (a hub): its own pool statistics say so.
    scores = pool([0.80, 0.78, 0.2, 0.1], [0.50, 0.48, 0.1, 0.0])
    without = ids(rank(scores, 2, PLAIN, query_time=None))
    hub_stats = np.array(
        [[0.79, 0.01, 0.49, 0.01], [0.3, 0.2, 0.2, 0.15], [np.nan] * 4, [np.nan] * 4]
    )
    scores.stats = hub_stats
    with_stats = ids(rank(scores, 2, PLAIN, query_time=None))
    assert without == [100, 101]
    assert with_stats == [101, 100]


def test_unknown_doc_statistics_fall_back_to_query_side() -> None:
    candidates = pool([0.9, 0.5, 0.1], [0.3, 0.6, 0.1])
    plain = rank(candidates, 3, PLAIN, query_time=None)
    candidates.stats = np.full((3, 4), np.nan)
    assert rank(candidates, 3, PLAIN, query_time=None) == plain


def test_time_prior_breaks_ties_by_closeness_and_ignores_undated() -> None:
    now = 1_700_000_000.0
    candidates = pool(
        [0.5, 0.5, 0.5],
        [0.5, 0.5, 0.5],
        published=np.array([now - 30 * DAY, now - 1 * DAY, np.nan]),
    )
    config = RankingConfig(time_weight=1.0, time_scale_days=7.0)
    ranked = rank(candidates, 3, config, query_time=now)
    assert ids(ranked) == [101, 100, 102]
    assert ranked[0][1] == pytest.approx(np.exp(-1 / 7), abs=1e-6)
    assert ranked[2][1] == pytest.approx(0.0, abs=1e-9)  # undated: no bonus, no penalty
    # Without a query date the prior is off.
    assert [s for _, s in rank(candidates, 3, config, query_time=None)] == [0.0, 0.0, 0.0]


SCORE_KINDS = [
    {"method": "dense"},
    {"method": "lexical"},
    {"fusion": "sum"},
    {"fusion": "rrf"},
    {"fusion": "query-z"},
    {"fusion": "symmetric-z"},
]


def _dated_pool(scale: float, **extra: object) -> Candidates:
    """Eight candidates falling off alike on both sides; 102 (just behind 101) and 107 (far
    behind everyone) were published the query's day, the rest a year before."""
    now = 1_700_000_000.0
    falling = [0.90, 0.60, 0.58, 0.30, 0.25, 0.20, 0.15, 0.10]
    published = np.full(8, now - 365 * DAY)
    published[[2, 7]] = now
    scaled = [scale * v for v in falling]
    return pool(scaled, scaled, published=published, **extra)


@pytest.mark.parametrize("options", SCORE_KINDS)
def test_the_time_prior_is_worth_a_standard_deviation_of_every_score(
    options: dict[str, str],
) -> None:
    """Whatever the fusion, a prior of 1 is one standard deviation of the list's score over
    the pool: it lifts a same-day candidate over one just ahead on content, not one far ahead.
    Raw cosines (one side, their sum) added a prior of 1 as it was, which outweighed any
    difference of content: the same-day candidate far behind came second."""
    config = RankingConfig(time_weight=1.0, **options)  # type: ignore[arg-type]
    now = 1_700_000_000.0
    for scale in (1.0, 0.1):  # the order does not depend on the raw scores' scale
        ranked = ids(rank(_dated_pool(scale), 8, config, query_time=now))
        assert ranked.index(102) < ranked.index(101), (options, scale, ranked)
        assert ranked.index(107) > ranked.index(101), (options, scale, ranked)


def _cosines(low: float) -> st.SearchStrategy[float]:
    """Float32 cosines a power of two down to 2**-6 scales exactly: none near the subnormal
    range (1.4e-45 halved is 0, and ties that were not)."""
    return st.floats(low, 1.0, width=32).filter(lambda x: x == 0.0 or abs(x) >= 1e-30)


@settings(max_examples=200, deadline=None)
@given(
    cosines=st.lists(
        st.tuples(_cosines(-1.0), _cosines(0.0)),
        min_size=2,
        max_size=30,
    ),
    ages=st.lists(st.one_of(st.none(), st.floats(0.0, 400.0)), min_size=30, max_size=30),
    power=st.integers(-6, 6),
    kind=st.sampled_from(SCORE_KINDS),
)
def test_no_fusion_orders_by_the_raw_scores_scale(
    cosines: list[tuple[float, float]],
    ages: list[float | None],
    power: int,
    kind: dict[str, str],
) -> None:
    """Any pool, any dates: raw scores scaled by a power of two (exact in floating point) rank
    the same with the time prior on, so the prior weighs the same against content however
    the raw scores spread."""
    now = 1_700_000_000.0
    published = np.array(
        [np.nan if age is None else now - age * DAY for age in ages[: len(cosines)]]
    )
    dense = [d for d, _ in cosines]
    lexical = [lex for _, lex in cosines]
    config = RankingConfig(time_weight=1.0, **kind)  # type: ignore[arg-type]
    plain = rank(pool(dense, lexical, published=published), 30, config, query_time=now)
    c = 2.0**power
    scaled = pool([c * d for d in dense], [c * x for x in lexical], published=published)
    assert ids(rank(scaled, 30, config, query_time=now)) == ids(plain)


@pytest.mark.parametrize("options", SCORE_KINDS[:3])
def test_a_raw_score_prior_uses_the_querys_own_spread_when_known(
    options: dict[str, str],
) -> None:
    """With the query's stored statistics the unit is its spread, not this pool's: a
    candidate's score then depends on nothing else in the pool (stored lists need that)."""
    config = RankingConfig(time_weight=1.0, **options)  # type: ignore[arg-type]
    now = 1_700_000_000.0
    narrow = np.array([0.5, 0.01, 0.5, 0.01])  # the query's spread: 0.01 on both sides
    ranked = rank(_dated_pool(1.0, query_stats=narrow), 8, config, query_time=now)
    assert ids(ranked)[:3] == [100, 101, 102]  # a hundredth is too little to pass 101
    alone = _dated_pool(1.0, query_stats=narrow)
    for field in ("ids", "dense", "lexical", "published"):
        setattr(alone, field, getattr(alone, field)[[2]])
    assert rank(alone, 1, config, query_time=now)[0][1] == pytest.approx(dict(ranked)[102])


def test_copies_collapse_above_the_threshold() -> None:
    candidates = pool([0.9, 0.89, 0.5], [0.9, 0.89, 0.5])
    candidates.vectors = np.array([[1, 0], [0.999, 0.0447], [0, 1]], dtype=np.float32)
    assert ids(rank(candidates, 3, PLAIN, query_time=None)) == [100, 101, 102]
    collapsed = RankingConfig(time_weight=0, dedupe_threshold=0.97)
    assert ids(rank(candidates, 3, collapsed, query_time=None)) == [100, 102]


def test_diversity_promotes_a_different_item() -> None:
    candidates = pool([0.9, 0.88, 0.7], [0.9, 0.88, 0.7])
    candidates.vectors = np.array([[1, 0], [0.95, 0.31], [0, 1]], dtype=np.float32)
    assert ids(rank(candidates, 2, PLAIN, query_time=None)) == [100, 101]
    diverse = RankingConfig(time_weight=0, diversity=0.5)
    assert ids(rank(candidates, 2, diverse, query_time=None)) == [100, 102]


def test_pool_stats() -> None:
    stats = pool_stats(pool([0.2, 0.4], [0.0, 1.0]))
    assert stats == pytest.approx([0.3, 0.1, 0.5, 0.5])


@pytest.mark.parametrize(
    ("options", "word"),
    [
        ({"method": "bm42"}, "bm42"),
        ({"candidates": 0}, "candidates"),
        ({"diversity": 1.0}, "diversity"),
        ({"time_scale_days": 0}, "time_scale_days"),
    ],
)
def test_bad_config_names_the_value(options: dict[str, object], word: str) -> None:
    with pytest.raises(InvalidArgumentError, match=word):
        RankingConfig(**options)  # type: ignore[arg-type]


def test_config_round_trips_and_ignores_unknown_keys() -> None:
    config = RankingConfig(diversity=0.2)
    assert RankingConfig.from_dict({**config.to_dict(), "future_knob": 3}) == config
    assert config.with_options(diversity=None, dedupe_threshold=0.9).dedupe_threshold == 0.9


@pytest.mark.parametrize("fusion", ["symmetric-z", "query-z", "rrf", "sum"])
def test_every_fusion_prefers_the_candidate_strong_on_both_sides(fusion: str) -> None:
    candidates = pool([0.9, 0.85, 0.1, 0.2], [0.0, 0.8, 0.9, 0.1])
    config = RankingConfig(time_weight=0.0, fusion=fusion)
    assert ids(rank(candidates, 1, config, query_time=None)) == [101]


def test_rrf_uses_ranks_not_scores() -> None:
    a = pool([0.9, 0.5, 0.1], [0.3, 0.2, 0.1])
    b = pool([0.99, 0.98, 0.01], [0.9, 0.5, 0.4])
    config = RankingConfig(time_weight=0.0, fusion="rrf")
    assert [s for _, s in rank(a, 3, config, query_time=None)] == [
        s for _, s in rank(b, 3, config, query_time=None)
    ]


def test_mean_and_std_are_numpys_to_the_bit() -> None:
    from recommender.compiled.arrays import mean_std as _mean_std

    rng = np.random.default_rng(5)
    # Lengths on both sides of numpy's pairwise-summation blocks (8, 128).
    for n in [1, 2, 7, 8, 9, 127, 128, 129, 200, 257, 1000]:
        for scale in (1e-3, 1.0, 1e3):
            values = (rng.normal(size=n) * scale + rng.normal()).astype(np.float32)
            values = values.astype(np.float64)
            mean, std = _mean_std(values.copy())
            assert (mean, std) == (float(values.mean()), float(values.std()))


def test_a_pool_is_the_sorted_union_of_both_sides() -> None:
    from recommender.compiled.arrays import union_sorted as _union

    rng = np.random.default_rng(6)
    for n, m in [(0, 0), (1, 0), (0, 3), (5, 5), (101, 101)]:
        first, second = rng.integers(0, 150, n), rng.integers(0, 150, m)
        assert _union(first, second).tolist() == np.unique(np.concatenate([first, second])).tolist()
