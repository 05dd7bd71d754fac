"""Hybrid, news-aware ranking of candidate articles for one query.

Pipeline for each query: candidates from the dense top-N and the lexical
top-N, both scores for every candidate, per-query normalisation and fusion, a
time-proximity prior, near-duplicate collapse, optional MMR diversity, cut to k.
Every knob lives in :class:`RankingConfig`, which is stored in the index
manifest so the CLI, the library and the service rank identically.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from recommender.compiled.arrays import mean_std
from recommender.errors import InvalidArgumentError

__all__ = [
    "FUSIONS",
    "METHODS",
    "Candidates",
    "PoolBounds",
    "RankingConfig",
    "pool_bounds",
    "pool_stats",
    "rank",
    "signal_parts",
    "standardise_by",
]

METHODS = ("hybrid", "dense", "lexical")
#: How the hybrid method combines the two sides (docs/relevance.md compares them).
FUSIONS = ("symmetric-z", "query-z", "rrf", "sum")
_DAY = 86_400.0
_YEAR_DAYS = 365.0


@dataclass(frozen=True)
class RankingConfig:
    """How related lists are ranked; see docs/relevance.md for how each default was chosen."""

    #: ``hybrid`` fuses dense and lexical; ``dense`` and ``lexical`` use one side only.
    method: str = "hybrid"
    #: Candidates taken from each side before fusion.
    candidates: int = 100
    #: ``symmetric-z`` standardises each side over the query's and the candidate's own
    #: pools; ``query-z`` over the query's only; ``rrf`` is reciprocal rank fusion (k=60);
    #: ``sum`` adds raw cosines (the naive baseline).
    fusion: str = "symmetric-z"
    #: Weight of the lexical side's normalised score against the dense side's; a build
    #: estimates it from the archive (ranking/fusion_weight.py), 1.0 when it does not.
    lexical_weight: float = 1.0
    #: Lexical query keeps only its heaviest terms (Lucene MoreLikeThis); None keeps all.
    max_query_terms: int | None = None
    #: Lexical candidates are found through the inverted lists of the query's
    #: heaviest terms only (their scores still use every term); None uses all.
    candidate_terms: int | None = 32
    #: Time prior: weight * exp(-|days apart| / scale), added in standard deviations of the
    #: score over the query's pool (the z fusions' own unit; raw scores are scaled); 0 is off.
    time_weight: float = 1.0
    time_scale_days: float = 7.0
    #: The time prior estimated from the archive (ranking/calibration.py): (days apart,
    #: value) knots, interpolated in log(1 + days) and times ``time_weight``; None keeps
    #: the fixed curve above. A build estimates it; ``recommender calibrate`` refreshes it.
    time_curve: tuple[tuple[float, float], ...] | None = None
    #: An article without a publication date is placed in time by the full date
    #: written in its lead (dateline), if any; False leaves it undated.
    lead_dates: bool = True
    #: The time prior's second scale, the year, as a share of ``time_weight``: a pair a
    #: year or more apart loses it, one within a year gains it; where a date is missing,
    #: its year is the latest its text writes (same year or not). 0 is off. With an
    #: estimated ``time_curve`` it reaches only pairs without both dates (the curve spans
    #: years). Why half: docs/relevance.md ("Two scales of time").
    year_weight: float = 0.5
    #: A candidate whose dense cosine to a better-ranked one reaches this is a copy; None is off.
    dedupe_threshold: float | None = None
    #: MMR trade-off: 0 is off; 0.3 gives 30% weight to being unlike the items above.
    diversity: float = 0.0
    #: Neighbour feedback (Rocchio): re-query with the dense query moved towards the
    #: mean of its top ``feedback_docs`` results, by ``feedback_weight``; 0 is off.
    feedback_docs: int = 0
    feedback_weight: float = 0.5
    #: The indexed query article's own story (the archive's stories, grouped without
    #: labels) first among its top :data:`~recommender.ranking.own_story.STORY_DEPTH`,
    #: each part in score order; False ranks by score alone. No effect on text queries,
    #: with diversity, or in an index without stories.
    story_first: bool = True

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InvalidArgumentError(
                f"unknown ranking method {self.method!r}; expected one of {list(METHODS)}"
            )
        if self.fusion not in FUSIONS:
            raise InvalidArgumentError(
                f"unknown fusion {self.fusion!r}; expected one of {list(FUSIONS)}"
            )
        if self.candidates < 1:
            raise InvalidArgumentError(f"candidates must be >= 1, got {self.candidates}")
        if self.candidate_terms is not None and self.candidate_terms < 1:
            raise InvalidArgumentError(
                f"candidate_terms must be >= 1 or None, got {self.candidate_terms}"
            )
        if not 0.0 <= self.diversity < 1.0:
            raise InvalidArgumentError(f"diversity must be in [0, 1), got {self.diversity}")
        if self.feedback_docs < 0 or self.feedback_weight < 0:
            raise InvalidArgumentError(
                f"feedback_docs and feedback_weight must be >= 0, got "
                f"{self.feedback_docs} and {self.feedback_weight}"
            )
        if not isinstance(self.story_first, bool):
            raise InvalidArgumentError(
                f"story_first must be true or false, got {self.story_first!r}"
            )
        if self.time_scale_days <= 0:
            raise InvalidArgumentError(f"time_scale_days must be > 0, got {self.time_scale_days}")
        if not 0.0 <= self.year_weight <= 1.0:
            raise InvalidArgumentError(
                f"year_weight must be in [0, 1], got {self.year_weight}", field="year_weight"
            )
        if self.time_curve is not None:
            object.__setattr__(self, "time_curve", _checked_curve(self.time_curve))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        # As JSON gives it back, so that a stored configuration compares equal.
        curve = self.time_curve
        data["time_curve"] = None if curve is None else [[d, v] for d, v in curve]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RankingConfig:
        """The configuration stored as ``data`` (None: the default). A stored one written
        before the year scale existed keeps the ranking it was written with: no year scale
        (its stored lists, and the answers its users see, stay as they were)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in (data or {}).items() if k in known}
        if data is not None and "year_weight" not in data:
            values["year_weight"] = 0.0
        return cls(**values)

    def with_options(self, **options: Any) -> RankingConfig:
        """A copy with the given options changed; ``None`` values leave a field as it is."""
        return replace(self, **{k: v for k, v in options.items() if v is not None})

    @property
    def standardised(self) -> bool:
        """Whether the score adds the two sides' z-scores: it is in standard deviations."""
        return self.method == "hybrid" and self.fusion in ("symmetric-z", "query-z")

    @property
    def raw(self) -> bool:
        """Whether the score is raw cosines (one side, or the sides' sum): a candidate's score
        does not move with the rest of its pool."""
        return self.method != "hybrid" or self.fusion == "sum"


@dataclass
class Candidates:
    """One query's candidate pool, aligned arrays."""

    ids: np.ndarray  # int64 catalog ids
    dense: np.ndarray  # cosine of the query's vector with each candidate's
    lexical: np.ndarray  # tf-idf cosine
    vectors: np.ndarray | None  # candidate vectors (for duplicates and diversity), if read
    published: np.ndarray  # epoch seconds, NaN when unknown
    #: Each candidate's year (NaN: unknown): its date's, else the latest its text writes.
    years: np.ndarray | None = None
    #: Per candidate: mean and std of its dense scores, then of its lexical
    #: scores, over its own pool when it was the query (NaN when unknown).
    stats: np.ndarray | None = None
    #: The lowest dense score and lexical search score that made the pool (-inf
    #: and 0 when the pool was open: fewer hits than asked); an article scoring
    #: at least that against the query would enter it (stored lists use this).
    dense_entry: float = -np.inf
    lexical_entry: float = 0.0
    #: Per candidate: whether the dense search found it, and its lexical search score
    #: (NaN when the lexical search did not find it).
    dense_side: np.ndarray | None = None
    search: np.ndarray | None = None
    #: The scores of each side's top (the query article included), best first.
    dense_top: np.ndarray | None = None
    lexical_top: np.ndarray | None = None
    #: The query's own stored statistics (as ``stats``): when set, symmetric-z
    #: standardises the query side with them instead of this pool's, so that a
    #: candidate's score does not depend on which others are in the pool.
    query_stats: np.ndarray | None = None


@dataclass(frozen=True)
class PoolBounds:
    """Where one ranked list's pool and list were cut: what a write must reach to change it.

    Stored with each stored list (see :mod:`recommender.stored_lists.lists`).
    """

    #: The lowest dense score in the pool's dense top (-inf: open, every article gets in).
    dense_entry: float
    #: The lowest search score in its lexical top (0: open; inf: no lexical search).
    lexical_entry: float
    #: How many newcomers the dense top takes before one pushes a listed item out of
    #: the pool (inf: no listed item came from the dense side). Counted conservatively.
    dense_room: float
    #: The same for the lexical top.
    lexical_room: float
    #: The k-th item's score: a newcomer scoring under it stays out of the list. -inf
    #: when the list is short, or when scores depend on the whole pool (no query stats).
    hits_floor: float

    def as_tuple(self) -> tuple[float, float, float, float, float]:
        return (
            self.dense_entry,
            self.lexical_entry,
            self.dense_room,
            self.lexical_room,
            self.hits_floor,
        )


def pool_bounds(
    pool: Candidates,
    hits: list[tuple[int, float]],
    k: int,
    config: RankingConfig,
    *,
    depth: int | None = None,
) -> PoolBounds:
    """The bounds of ``hits`` (the top ``k`` of ``pool`` from :func:`rank`; ``depth``: how
    deep the pool was ranked when deeper than ``k``)."""
    at = np.searchsorted(pool.ids, np.array([i for i, _ in hits], dtype=np.int64))
    dense_side = pool.dense_side[at] if pool.dense_side is not None else np.ones(len(at), bool)
    search = pool.search[at] if pool.search is not None else np.full(len(at), np.nan)
    n = max(config.candidates, depth or k) + 1
    # Only scores that do not move with the rest of the pool give a floor: those read with
    # the query's own statistics (z-scores, and the time prior's unit for raw cosines), and
    # raw cosines without a time prior (the prior's unit otherwise comes from the pool).
    # MMR re-weighs each score by the others.
    independent = (
        pool.query_stats is not None or (config.raw and not config.time_weight)
    ) and not config.diversity
    return PoolBounds(
        dense_entry=pool.dense_entry,
        lexical_entry=pool.lexical_entry,
        dense_room=_room(pool.dense_top, pool.dense[at][dense_side], n),
        lexical_room=_room(pool.lexical_top, search[np.isfinite(search)], n),
        hits_floor=float(hits[-1][1]) if independent and len(hits) >= k else -np.inf,
    )


def pair_scores(
    pairs: Candidates,
    config: RankingConfig,
    *,
    query_times: np.ndarray,
    query_years: np.ndarray | None = None,
) -> np.ndarray:
    """The score each row's candidate gets in its own query's list, one query per row.

    ``pairs.query_stats`` holds one row of statistics per candidate (its query's): with
    them a candidate's score depends on nothing else in its pool, so this is the
    score :func:`rank` gives it there (before editorial rules).
    """
    scores = _fused(pairs, config)
    if config.time_weight:
        prior = _time_prior(pairs, query_times, query_years, config)
        scores = scores + prior * _time_unit(pairs, scores, config)
    return scores


def signal_parts(
    pairs: Candidates,
    config: RankingConfig,
    *,
    query_times: np.ndarray,
    query_years: np.ndarray | None = None,
) -> np.ndarray:
    """The three terms of each row's default score, unweighted: its dense and its lexical
    symmetric z (rows as in :func:`pair_scores`) and its time prior at weight 1. The score
    is ``dense + lexical_weight * lexical + time_weight * prior`` (what clicks can weigh:
    :mod:`recommender.ranking.click_weights`)."""
    dense, lexical = _symmetric_sides(pairs)
    prior = _time_prior(pairs, query_times, query_years, replace(config, time_weight=1.0))
    return np.column_stack([dense, lexical, prior])


def _room(top: np.ndarray | None, listed: np.ndarray, n: int) -> float:
    """Places in a side's top of ``n`` below its lowest listed item (near ties count above)."""
    if not len(listed) or top is None:
        return float(np.inf)
    lowest = float(listed.min())
    above = int(np.count_nonzero(top >= lowest - 1e-4 * abs(lowest) - 1e-7))
    return float(n - above)


def rank(
    pool: Candidates,
    k: int,
    config: RankingConfig,
    *,
    query_time: float | None,
    query_year: float | None = None,
    allowed: np.ndarray | None = None,
) -> list[tuple[int, float]]:
    """The top ``k`` (int id, score) pairs of one query's pool, best first.

    ``allowed`` (bool per candidate) removes candidates after scoring, so a
    removed one changes no other candidate's score (editorial rules).
    """
    if not len(pool.ids):
        return []
    scores = _fused(pool, config)
    if config.time_weight and (query_time is not None or query_year is not None):
        when = np.nan if query_time is None else query_time
        prior = _time_prior(pool, when, query_year, config)
        scores = scores + prior * _time_unit(pool, scores, config)
    order = np.argsort(-scores, kind="stable")
    if allowed is not None:
        order = order[allowed[order]]
    if pool.vectors is None and (config.dedupe_threshold is not None or config.diversity):
        raise ValueError("duplicate collapse and diversity need the candidates' vectors")
    if config.dedupe_threshold is not None:
        order = _collapse_copies(order, pool.vectors, config.dedupe_threshold)  # type: ignore[arg-type]
    if config.diversity:
        order = _mmr(order, scores, pool.vectors, k, config.diversity)  # type: ignore[arg-type]
    top = order[:k]
    return list(zip(pool.ids[top].tolist(), scores[top].tolist(), strict=True))


def _fused(pool: Candidates, config: RankingConfig) -> np.ndarray:
    if config.method == "dense":
        return pool.dense.astype(np.float64)
    if config.method == "lexical":
        return pool.lexical.astype(np.float64)
    # Raw cosines of the two sides live on different scales that move from
    # query to query; standardising each over the query's own pool makes a
    # point on one side worth the same as a point on the other. Standardising
    # also from the candidate's side (against its own pool) discounts "hub"
    # articles that are close to everything on a beat.
    weight = config.lexical_weight
    if config.fusion == "sum":
        return pool.dense.astype(np.float64) + weight * pool.lexical.astype(np.float64)
    if config.fusion == "rrf":
        return _rrf(pool.dense) + weight * _rrf(pool.lexical)
    if config.fusion == "query-z":
        return _standardise(pool.dense) + weight * _standardise(pool.lexical)
    dense, lexical = _symmetric_sides(pool)
    return dense + weight * lexical


def _symmetric_sides(pool: Candidates) -> tuple[np.ndarray, np.ndarray]:
    """Each side's symmetric z: over the query's pool (or its own stored statistics) and
    over the candidate's own."""
    stats = pool.stats if pool.stats is not None else np.full((len(pool.ids), 4), np.nan)
    own = pool.query_stats
    dense = _symmetric_z(
        pool.dense, stats[:, 0], stats[:, 1], None if own is None else own[..., :2]
    )
    lexical = _symmetric_z(
        pool.lexical, stats[:, 2], stats[:, 3], None if own is None else own[..., 2:]
    )
    return dense, lexical


def _rrf(scores: np.ndarray, k: int = 60) -> np.ndarray:
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
    out: np.ndarray = 1.0 / (k + ranks)
    return out


def _symmetric_z(
    scores: np.ndarray, mean: np.ndarray, std: np.ndarray, query: np.ndarray | None = None
) -> np.ndarray:
    values = scores.astype(np.float64)
    query_side = _standardise(values) if query is None else standardise_by(values, query)
    known = np.isfinite(mean) & np.isfinite(std) & (std > 1e-9)
    if known.all():  # every candidate has its statistics (the usual case): no masking
        doc_side = (values - mean) / std
    else:
        doc_side = np.where(
            known, (values - np.nan_to_num(mean)) / np.where(known, std, 1.0), query_side
        )
    out: np.ndarray = 0.5 * (query_side + doc_side)
    return out


def pool_stats(pool: Candidates) -> np.ndarray:
    """Mean and std of a query's dense and lexical scores over its pool (doc-side stats)."""
    if not len(pool.ids):
        return np.full(4, np.nan)
    return np.array(
        [pool.dense.mean(), pool.dense.std(), pool.lexical.mean(), pool.lexical.std()],
        dtype=np.float64,
    )


def standardise_by(values: np.ndarray, stats: np.ndarray) -> np.ndarray:
    """``values`` standardised with a given (mean, std), or one per value (rows of ``stats``).

    As :func:`_standardise` does with its own: zero where the spread is under 1e-9 (or NaN).
    """
    values = values.astype(np.float64)
    mean, std = stats[..., 0], stats[..., 1]
    usable = std >= 1e-9
    out: np.ndarray = np.where(usable, (values - mean) / np.where(usable, std, 1.0), 0.0)
    return out


def _standardise(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    mean, spread = mean_std(values)
    if spread < 1e-9:
        return np.zeros_like(values)
    out: np.ndarray = (values - mean) / spread
    return out


def _time_unit(pool: Candidates, fused: np.ndarray, config: RankingConfig) -> float | np.ndarray:
    """What one unit of the time prior is worth in this list's score: one standard deviation
    of it over the query's pool.

    The z fusions are in standard deviations already (1). Raw cosines (one side, or the two
    sides' sum, taken as independent) are not: a prior of 1 would outweigh any difference of
    content and order a dated archive's list by date (reuters-dated, reciprocal rank fusion:
    MAP@10 0.61 against 0.78). They are scaled by their spread over the query's pool, from its
    stored statistics where the pool has them (``query_stats``: a candidate's score then
    depends on nothing else in the pool), else from the pool; reciprocal ranks, which move
    with the pool anyway, by the spread of ``fused`` over it.
    """
    if config.standardised:
        return 1.0
    if not config.raw:  # reciprocal ranks
        return float(fused.std())
    stats = pool.query_stats if pool.query_stats is not None else pool_stats(pool)
    dense, lexical = stats[..., 1], stats[..., 3]
    if config.method == "dense":
        spread = dense
    elif config.method == "lexical":
        spread = lexical
    else:
        spread = np.hypot(dense, config.lexical_weight * lexical)
    out: float | np.ndarray = np.nan_to_num(spread, nan=0.0)
    return out


def _time_prior(
    pool: Candidates,
    query_time: float | np.ndarray,
    query_year: float | np.ndarray | None,
    config: RankingConfig,
) -> np.ndarray:
    # Coverage of one story clusters in time; an undated candidate gets nothing either way.
    days = np.abs(pool.published - query_time) / _DAY
    curve = config.time_curve
    if curve is None:
        prior = config.time_weight * np.exp(-days / config.time_scale_days)
    else:
        knots = np.log1p(np.array([d for d, _ in curve]))
        values = np.array([v for _, v in curve])
        prior = config.time_weight * np.interp(np.log1p(days), knots, values)
        prior[np.isnan(days)] = np.nan
    prior = np.nan_to_num(prior, nan=0.0)
    if config.year_weight and pool.years is not None and query_year is not None:
        same = _same_year(days, pool.years, query_year, dated=curve is None)
        prior = prior + config.time_weight * config.year_weight * same
    return prior


def _same_year(
    days: np.ndarray, years: np.ndarray, query_year: float | np.ndarray, *, dated: bool
) -> np.ndarray:
    """+1 where a pair is within a year, -1 where a year or more apart, 0 where unknown.

    The day-scale prior is spent within weeks, but the same kind of event recurs: a topic's
    earthquake, election or coach hired years later shares the words and the names, and
    only the year tells it apart. A dated pair is measured by its gap (``dated``: not
    under an estimated curve, which already covers years); a pair with a date missing on
    either side, by its two years, a date's or the latest one its text writes.
    """
    known = np.isfinite(years) & np.isfinite(query_year)
    out = np.where(known, np.where(years == query_year, 1.0, -1.0), 0.0)
    gap = np.isfinite(days)
    out[gap] = np.where(days[gap] < _YEAR_DAYS, 1.0, -1.0) if dated else 0.0
    return out


def _checked_curve(curve: Any) -> tuple[tuple[float, float], ...]:
    """A time curve as (days, value) pairs of floats, days ascending and >= 0."""
    try:
        knots = tuple((float(d), float(v)) for d, v in curve)
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"time_curve must be a list of [days, value] pairs, got {curve!r}", field="time_curve"
        ) from None
    days = [d for d, _ in knots]
    if not knots or days != sorted(days) or days[0] < 0 or not np.isfinite(knots).all():
        raise InvalidArgumentError(
            f"time_curve needs finite [days, value] pairs, days >= 0 and ascending, got {curve!r}",
            field="time_curve",
        )
    return knots


def _collapse_copies(order: np.ndarray, vectors: np.ndarray, threshold: float) -> np.ndarray:
    kept: list[int] = []
    for i in order:
        if kept and float(np.max(vectors[kept] @ vectors[i])) >= threshold:
            continue
        kept.append(int(i))
    return np.array(kept, dtype=np.int64)


def _mmr(
    order: np.ndarray, scores: np.ndarray, vectors: np.ndarray, k: int, diversity: float
) -> np.ndarray:
    """Maximal marginal relevance over the fused scores (standardised so the trade-off is fair)."""
    relevance = _standardise(scores[order])
    remaining = list(range(len(order)))
    chosen: list[int] = []
    while remaining and len(chosen) < k:
        if chosen:
            sims = vectors[order[remaining]] @ vectors[order[chosen]].T
            redundancy = sims.max(axis=1)
        else:
            redundancy = np.zeros(len(remaining))
        # Relevance is in standard deviations (about -3..3) and redundancy a
        # cosine (about 0..1): scale the latter to the same span.
        gains = (1 - diversity) * relevance[remaining] - diversity * 3.0 * redundancy
        best = remaining[int(np.argmax(gains))]
        chosen.append(best)
        remaining.remove(best)
    return order[chosen]
