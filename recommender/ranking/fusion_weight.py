"""The lexical side's weight estimated from the archive: equal say where a list is decided.

The hybrid fusion adds the two sides' z-scores, each standardised over a whole candidate pool
(a hundred or more articles, most of them far from the query). A list, though, is decided
among the pool's top few dozen, and there the two sides do not spread alike: the lexical
cosine is heavy-tailed (a handful of articles share a query's rare names and numbers), so at
the top its z-scores spread about twice as wide as the dense side's on every corpus measured
(docs/relevance.md). Equal weights in pool units then give the lexical side about twice the
say in the order of a list. The neutral choice, made where it matters, is equal spread over
the top :data:`~recommender.ranking.own_story.STORY_DEPTH` of each list (the window a related
list is taken from):

    lexical_weight = sqrt(mean within-list variance of dense z / that of lexical z)

over a seeded sample of the archive's articles, each list's top taken under the weight itself
(a fixed point, reached in a few steps from 1.0). Nothing is learned from labels or from which
articles are one story; the weight moves with how an archive's texts spread (teasers, wire
copy, long articles). A write estimates it again each time the archive has grown by a
quarter (:mod:`recommender.writes.update`, when the pool statistics are computed again), and
`recommender calibrate` on demand.

The stories keep the equal-weight score (:func:`recommender.stories.keeper.content_config`):
grouping pools pairs from the whole archive, where the lexical side's tail is the evidence
that two articles are one story, and its own model reads what a score means.

Deterministic: the same archive gives the same weight.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from recommender.index.state import IndexState
from recommender.ranking.own_story import STORY_DEPTH
from recommender.ranking.retrieval import QueryBatch, Retriever
from recommender.ranking.scoring import RankingConfig, signal_parts

__all__ = [
    "FusionWeight",
    "equal_spread_weight",
    "estimate_fusion_weight",
    "fusion_weighted",
]

Sides = list[tuple[np.ndarray, np.ndarray]]

#: Query articles sampled (all below this), and fewer than this keep the weight as it is.
_QUERIES = 1_000
_MIN_QUERIES = 50
_SEED = 21
#: Fixed-point steps, and the change under which the weight has settled.
_STEPS = 10
_SETTLED = 1e-3
_BATCH = 256


@dataclass(frozen=True)
class FusionWeight:
    """What the estimate found; ``lexical_weight`` is None when it kept the weight (``reason``)."""

    lexical_weight: float | None
    #: Sampled query articles, and the depth of each list whose spread was read.
    queries: int
    depth: int = STORY_DEPTH
    #: Root mean within-list variance of each side's z over those tops, at the weight found.
    dense_spread: float | None = None
    lexical_spread: float | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fusion_weighted(config: RankingConfig, found: FusionWeight) -> RankingConfig:
    """``config`` with the estimated lexical weight (unchanged when none was found)."""
    weight = found.lexical_weight
    return config if weight is None else replace(config, lexical_weight=weight)


def estimate_fusion_weight(state: IndexState, config: RankingConfig) -> FusionWeight:
    """The lexical weight that gives both sides equal spread at the top of the index's lists."""
    ids = np.sort(np.asarray(state.lexical.ids, dtype=np.int64))
    if len(ids) > _QUERIES:
        ids = np.sort(np.random.default_rng(_SEED).choice(ids, _QUERIES, replace=False))
    if len(ids) < _MIN_QUERIES:
        reason = f"{len(ids)} articles; {_MIN_QUERIES} are needed"
        return FusionWeight(None, len(ids), reason=reason)
    found = equal_spread_weight(_sides(state, config, ids))
    if found is None:
        return FusionWeight(None, len(ids), reason="a side's scores do not spread")
    weight, (dense, lexical) = found
    return FusionWeight(
        round(weight, 3), len(ids), dense_spread=round(dense, 4), lexical_spread=round(lexical, 4)
    )


def equal_spread_weight(sides: Sides) -> tuple[float, tuple[float, float]] | None:
    """The lexical weight under which both sides spread alike over each list's top, and
    those spreads; None when a side does not spread there. ``sides``: per list, the dense
    and the lexical z of its candidates."""
    weight, spreads = 1.0, (0.0, 0.0)
    for _ in range(_STEPS):
        spreads = _top_spreads(sides, weight)
        if not min(spreads) > 1e-9:
            return None
        weight, previous = spreads[0] / spreads[1], weight
        if abs(weight - previous) < _SETTLED:
            break
    return weight, spreads


def _sides(state: IndexState, config: RankingConfig, ids: np.ndarray) -> Sides:
    """Each sampled article's pool: its candidates' dense and lexical symmetric z."""
    retriever = Retriever(state.store, state.lexical)
    out = []
    for start in range(0, len(ids), _BATCH):
        chunk = ids[start : start + _BATCH]
        pools = retriever.pools(
            QueryBatch.of_articles(state.store, state.lexical, chunk),
            candidates=max(config.candidates, STORY_DEPTH),
            include=None,
            exclude=None,
            max_query_terms=config.max_query_terms,
            candidate_terms=config.candidate_terms,
            with_vectors=False,
        )
        for pool in pools:
            pool.stats = state.pool_stats(pool.ids) if config.fusion == "symmetric-z" else None
            parts = signal_parts(pool, config, query_times=np.full(len(pool.ids), np.nan))
            out.append((parts[:, 0], parts[:, 1]))
    return out


def _top_spreads(sides: Sides, weight: float) -> tuple[float, float]:
    """Root mean variance of each side over each list's top under ``weight``."""
    dense, lexical = [], []
    for d, lex in sides:
        if len(d) < 2:
            continue
        top = np.argsort(-(d + weight * lex), kind="stable")[:STORY_DEPTH]
        dense.append(float(d[top].var()))
        lexical.append(float(lex[top].var()))
    if not dense:
        return 0.0, 0.0
    return float(np.sqrt(np.mean(dense))), float(np.sqrt(np.mean(lexical)))
