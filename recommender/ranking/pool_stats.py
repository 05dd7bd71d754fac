"""Pool statistics: each article's score statistics over its own candidate pool.

The hybrid score standardises each side (dense, lexical) by the candidate pool's mean and
spread. For an indexed article the statistics of its own pool, computed here once per write
(or in worker processes at build time), standardise its side of every pair, so an item's
score does not depend on the rest of a query's pool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from recommender.index import layout as storage
from recommender.index.catalog import Catalog
from recommender.lexical.index import LexicalIndex
from recommender.ranking.retrieval import QueryBatch, Retriever
from recommender.ranking.scoring import RankingConfig, pool_stats, standardise_by
from recommender.stores import VectorStore, store_class

__all__ = ["PARALLEL_STATS_MIN", "compute_pool_stats", "compute_pool_stats_in_workers"]


def compute_pool_stats(
    store: VectorStore,
    lexical: LexicalIndex,
    catalog: Catalog,
    ids: np.ndarray,
    *,
    config: RankingConfig,
    batch_size: int = 256,
    progress: Any = None,
    nearest: int = 0,
) -> set[int]:
    """Run each article as a query and store its pool statistics (doc-side normalisation);
    return the ``nearest`` best of each pool (by both sides standardised), other than ``ids``."""
    near: set[int] = set()
    for start in range(0, len(ids), batch_size):
        chunk = np.asarray(ids[start : start + batch_size], dtype=np.int64)
        stats, best = _stats_of(store, lexical, chunk, config, nearest)
        catalog.set_pool_stats([int(i) for i in chunk], stats)
        near.update(best)
        if progress is not None:
            progress.update(len(chunk))
    return near - {int(i) for i in ids}


#: Below this many articles, spawning worker processes costs more than it saves.
PARALLEL_STATS_MIN = 20_000
_SNAPSHOT: tuple[VectorStore, LexicalIndex] | None = None


def compute_pool_stats_in_workers(
    gen: Path,
    seq: int,
    store: VectorStore,
    catalog: Catalog,
    ids: np.ndarray,
    *,
    config: RankingConfig,
    workers: int,
    batch_size: int = 256,
    progress: Any = None,
) -> None:
    """:func:`compute_pool_stats` in ``workers`` processes that map the snapshot at ``seq``.

    The ranking of each pool is Python-bound, so threads would not run in
    parallel; the processes share the snapshot's pages and send back only
    the statistics, which this process writes to the catalog.
    """
    import multiprocessing

    chunks = [
        np.asarray(ids[s : s + batch_size], dtype=np.int64) for s in range(0, len(ids), batch_size)
    ]
    setup = (str(gen), seq, type(store).name, store.dimension, store.options())
    # spawn, not fork: a forked child of a process that has run OpenMP (FAISS) can hang.
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_open_snapshot, initargs=setup) as pool:
        jobs = ((chunk, config) for chunk in chunks)
        for chunk, stats in zip(chunks, pool.imap(_snapshot_stats, jobs), strict=True):
            catalog.set_pool_stats([int(i) for i in chunk], stats)
            if progress is not None:
                progress.update(len(chunk))


def _open_snapshot(gen: str, seq: int, store: str, dimension: int, options: dict[str, Any]) -> None:
    global _SNAPSHOT
    from recommender.stores.faiss import use_threads

    use_threads(1)  # the pool is the parallelism
    path = Path(gen)
    cls = store_class(store)
    vectors = cls.load(
        storage.snapshot_path(path, seq, cls.snapshot_suffix), dimension, mmap=True, **options
    )
    _SNAPSHOT = (vectors, LexicalIndex.load(storage.lexical_path(path, seq), mmap=True))


def _snapshot_stats(job: tuple[np.ndarray, RankingConfig]) -> np.ndarray:
    assert _SNAPSHOT is not None
    store, lexical = _SNAPSHOT
    chunk, config = job
    return _stats_of(store, lexical, chunk, config)[0]


def _stats_of(
    store: VectorStore,
    lexical: LexicalIndex,
    chunk: np.ndarray,
    config: RankingConfig,
    nearest: int = 0,
) -> tuple[np.ndarray, list[int]]:
    """Each article of ``chunk`` as a query: the statistics of its unfiltered candidate pool,
    and the ``nearest`` best candidates of each pool."""
    batch = QueryBatch.of_articles(store, lexical, chunk)
    pools = Retriever(store, lexical).pools(
        batch,
        candidates=config.candidates,
        include=None,
        exclude=None,
        max_query_terms=config.max_query_terms,
        candidate_terms=config.candidate_terms,
        with_vectors=False,
    )
    stats = np.stack([pool_stats(p) for p in pools])
    best: list[int] = []
    for pool, row in zip(pools, stats, strict=True):
        if nearest and len(pool.ids):
            fused = standardise_by(pool.dense, row[:2]) + standardise_by(pool.lexical, row[2:])
            best.extend(int(i) for i in pool.ids[np.argsort(-fused, kind="stable")[:nearest]])
    return stats, best
