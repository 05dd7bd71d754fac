"""Ranking: configuration, candidate retrieval, fusion and scoring, rules, explanations.

    scoring       RankingConfig, Candidates, rank: the hybrid news-aware score
    retrieval     QueryBatch, Retriever: candidate pools from both sides
    pool_stats    each article's statistics over its own pool (doc-side normalisation)
    ranker        Ranker: a batch of queries -> ranked matches, rules applied
    batches       related lists of many articles, in this process or in workers
    buckets       the default ranking and named ones for A/B tests
    queries       argument checks and the query text of similar()
    rules         editorial rules (pins, blocks, windows, backfill)
    explain       why an item is in a list

The names below are imported from their modules on first use, so importing the package
loads nothing heavy and no module of it imports another through it (recommender.lazy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recommender.lazy import lazy_exports

if TYPE_CHECKING:
    from recommender.ranking.explain import explain
    from recommender.ranking.ranker import Ranker
    from recommender.ranking.retrieval import QueryBatch, Retriever
    from recommender.ranking.rules import Editorial, Rules
    from recommender.ranking.scoring import RankingConfig, rank

__all__ = [
    "Editorial",
    "QueryBatch",
    "Ranker",
    "RankingConfig",
    "Retriever",
    "Rules",
    "explain",
    "rank",
]

_HOME = {
    "Editorial": "recommender.ranking.rules",
    "QueryBatch": "recommender.ranking.retrieval",
    "Ranker": "recommender.ranking.ranker",
    "RankingConfig": "recommender.ranking.scoring",
    "Retriever": "recommender.ranking.retrieval",
    "Rules": "recommender.ranking.rules",
    "explain": "recommender.ranking.explain",
    "rank": "recommender.ranking.scoring",
}

__getattr__ = lazy_exports(__name__, _HOME)
