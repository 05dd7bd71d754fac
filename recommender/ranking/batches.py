"""Related lists of batches of indexed articles, in this process or in worker processes.

``related_all`` and ``store_lists`` rank every article of an index. The
per-candidate ranking is Python-bound, so threads would not help: with workers,
each batch is ranked by a process that opens the same index (mapping the same
snapshot), and results still come back in batch order.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from recommender.errors import ArticleNotFoundError, InvalidArgumentError
from recommender.filters import Filters
from recommender.index.catalog import ListRow
from recommender.index.live import LiveIndex
from recommender.ranking.ranker import Ranker
from recommender.ranking.retrieval import QueryBatch
from recommender.ranking.rules import RULES_FILE
from recommender.ranking.scoring import RankingConfig
from recommender.text import checked_id
from recommender.types import Match

__all__ = [
    "Chunk",
    "chunked",
    "counted",
    "in_workers",
    "lists_of",
    "progress_bar",
    "ranked_batches",
    "related_lists",
    "rows_of",
    "selected",
]

#: A batch of indexed articles as (int id, article id) pairs.
Chunk = list[tuple[int, str]]


def selected(everything: Chunk, ids: Iterable[str] | None) -> Chunk:
    """The pairs of ``everything`` whose article id is in ``ids`` (all for None).

    An id that is not indexed raises :class:`ArticleNotFoundError`.
    """
    if ids is None:
        return everything
    wanted = set(map(checked_id, ids))
    missing = wanted - {aid for _, aid in everything}
    if missing:
        raise ArticleNotFoundError(sorted(missing)[0])
    return [(i, aid) for i, aid in everything if aid in wanted]


def related_lists(
    index: LiveIndex,
    ranker: Ranker,
    ids: Iterable[str] | None,
    k: int,
    config: RankingConfig,
    *,
    batch_size: int,
    progress: bool,
    workers: int,
    rules: bool,
) -> Iterator[tuple[str, list[Match]]]:
    """(article id, matches) of every article or of ``ids``, in order (``related_all``).

    Arguments are checked at the call; the lists are ranked as they are read.
    """
    if workers < 1:
        raise InvalidArgumentError(f"workers must be >= 1, got {workers}")
    index.refresh()
    everything = selected(index.state.catalog.all_ids(), ids)
    chunks = chunked(everything, batch_size)
    lists = ranked_batches(index, ranker, chunks, k, config, workers=workers, rules=rules)
    return _yielded(everything, chunks, lists, progress)


def _yielded(
    everything: Chunk, chunks: list[Chunk], lists: Iterator[Any], progress: bool
) -> Iterator[tuple[str, list[Match]]]:
    with progress_bar(progress, len(everything), "related lists") as bar:
        for chunk, results in zip(chunks, lists, strict=True):
            yield from results
            bar.update(len(chunk))


def chunked(pairs: Chunk, size: int) -> list[Chunk]:
    """``pairs`` in batches of ``size``."""
    return [pairs[s : s + size] for s in range(0, len(pairs), size)]


def ranked_batches(
    index: LiveIndex,
    ranker: Ranker,
    chunks: list[Chunk],
    k: int,
    config: RankingConfig,
    *,
    workers: int,
    rules: bool = True,
    rows: bool = False,
) -> Iterator[Any]:
    """:func:`lists_of` (or, with ``rows``, :func:`rows_of`) of each batch, in batch order.

    Worker processes rank when there are more batches than workers and the
    store can be opened by several processes at once.
    """
    if workers > 1 and len(chunks) > workers and not index.state.store.single_process:
        return in_workers(index.layout.root, chunks, k, config, workers, rules, rows=rows)
    if rows:
        return (rows_of(index, ranker, chunk, k, config, rules) for chunk in chunks)
    return (lists_of(index, ranker, chunk, k, config, rules) for chunk in chunks)


def lists_of(
    index: LiveIndex, ranker: Ranker, chunk: Chunk, k: int, config: RankingConfig, rules: bool
) -> list[tuple[str, list[Match]]]:
    """Related lists of one batch, as (article id, matches); articles since removed drop out."""
    index.refresh()
    with index.lock.read():
        state = index.state
        ids = np.array([i for i, _ in chunk], dtype=np.int64)
        present = ids[state.lexical.rows(ids) >= 0]
        batch = QueryBatch.of_articles(state.store, state.lexical, present)
        lists = ranker.matches(state, batch, k, Filters(), config, rules=rules)
    names = dict(chunk)
    return [(names[int(i)], m) for i, m in zip(present, lists, strict=True)]


def rows_of(
    index: LiveIndex,
    ranker: Ranker,
    chunk: Chunk,
    k: int,
    config: RankingConfig,
    rules: bool = True,
) -> list[ListRow]:
    """Stored-list rows (owner, hits, entry bounds) of one batch."""
    index.refresh()
    with index.lock.read():
        ids = np.array([i for i, _ in chunk], dtype=np.int64)
        return ranker.list_rows(index.state, ids, k, config, rules=rules)


def in_workers(
    root: Path,
    chunks: list[Chunk],
    k: int,
    config: RankingConfig,
    workers: int,
    rules: bool = True,
    *,
    rows: bool = False,
) -> Iterator[Any]:
    """Rank batches in ``workers`` processes, yielding :func:`lists_of` (or, with ``rows``,
    :func:`rows_of`) results in batch order."""
    import multiprocessing

    # spawn, not fork: a forked child of a process that has run OpenMP (FAISS) can hang.
    context = multiprocessing.get_context("spawn")
    jobs = ((chunk, k, config, rules, rows) for chunk in chunks)
    with context.Pool(workers, initializer=_open_worker, initargs=(str(root),)) as pool:
        yield from pool.imap(_worker_lists, jobs)


_WORKER: tuple[LiveIndex, Ranker] | None = None


def _open_worker(root: str) -> None:
    global _WORKER
    from recommender.stores.faiss import use_threads

    use_threads(1)  # the pool is the parallelism
    index = LiveIndex.open(root)
    _WORKER = (index, Ranker(index.layout.root / RULES_FILE))


def _worker_lists(
    job: tuple[Chunk, int, RankingConfig, bool, bool],
) -> list[tuple[str, list[Match]]] | list[ListRow]:
    assert _WORKER is not None
    index, ranker = _WORKER
    chunk, k, config, rules, rows = job
    if rows:
        return rows_of(index, ranker, chunk, k, config, rules)
    return lists_of(index, ranker, chunk, k, config, rules)


def counted(chunks: Iterable[list[Any]], bar: Any) -> Iterator[list[Any]]:
    """``chunks`` unchanged, advancing ``bar`` by each one's length once it is used."""
    for chunk in chunks:
        yield chunk
        bar.update(len(chunk))


class _NullBar:
    def update(self, n: int) -> None:
        pass

    def __enter__(self) -> _NullBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def progress_bar(enabled: bool, total: int | None, desc: str) -> Any:
    """A progress bar over articles on stderr, or one that shows nothing."""
    if not enabled:
        return _NullBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="article", file=sys.stderr, dynamic_ncols=True)
