"""Candidate retrieval for a batch of queries: dense top-N plus lexical top-N, with both scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .lexical import LexicalIndex
from .ranking import Candidates
from .stores import VectorStore

__all__ = ["QueryBatch", "Retriever"]

#: Lexical scores are computed as a dense (queries x articles) block; this
#: bounds its size (float32 cells) by splitting large batches.
_MAX_CELLS = 16_000_000


@dataclass
class QueryBatch:
    """Aligned query data: dense vectors, hashed term counts, and ids to leave out per query."""

    vectors: np.ndarray
    counts: sp.csr_matrix
    skip: Sequence[int | None]


class Retriever:
    """Builds each query's candidate pool from a vector store and a lexical index."""

    def __init__(self, store: VectorStore, lexical: LexicalIndex) -> None:
        self.store = store
        self.lexical = lexical

    def pools(
        self,
        batch: QueryBatch,
        *,
        candidates: int,
        include: np.ndarray | None,
        exclude: np.ndarray | None,
        max_query_terms: int | None,
        use_lexical: bool = True,
    ) -> list[Candidates]:
        step = max(1, _MAX_CELLS // max(self.lexical.width, 1))
        out: list[Candidates] = []
        for start in range(0, len(batch.vectors), step):
            part = QueryBatch(
                batch.vectors[start : start + step],
                batch.counts[start : start + step],
                batch.skip[start : start + step],
            )
            out.extend(
                self._pools(part, candidates, include, exclude, max_query_terms, use_lexical)
            )
        return out

    def _pools(
        self,
        batch: QueryBatch,
        candidates: int,
        include: np.ndarray | None,
        exclude: np.ndarray | None,
        max_query_terms: int | None,
        use_lexical: bool,
    ) -> list[Candidates]:
        # One extra so that dropping the query article itself still leaves N.
        dense = self.store.search(batch.vectors, candidates + 1, include=include, exclude=exclude)
        lexical = (
            self.lexical.scores(batch.counts, max_terms=max_query_terms)
            if use_lexical
            else np.zeros((len(batch.vectors), self.lexical.width), dtype=np.float32)
        )
        if use_lexical:
            _mask(lexical, self.lexical, include, exclude)
        pools = []
        for q in range(len(batch.vectors)):
            pools.append(self._pool(batch, q, dense.ids[q], lexical[q], candidates, use_lexical))
        return pools

    def _pool(
        self,
        batch: QueryBatch,
        q: int,
        dense_ids: np.ndarray,
        lexical_row: np.ndarray,
        candidates: int,
        use_lexical: bool,
    ) -> Candidates:
        ids = [int(i) for i in dense_ids if i >= 0]
        if use_lexical and len(lexical_row):
            n = min(candidates + 1, len(lexical_row))
            top_rows = np.argpartition(-lexical_row, n - 1)[:n]
            top_rows = top_rows[lexical_row[top_rows] > 0]
            ids.extend(int(i) for i in self.lexical.ids[top_rows])
        skip = batch.skip[q]
        unique = np.array([i for i in dict.fromkeys(ids) if i != skip], dtype=np.int64)
        vectors = self.store.get(unique)
        rows = self.lexical.rows(unique)
        lexical = np.where(rows >= 0, lexical_row[np.maximum(rows, 0)], 0.0) if len(rows) else rows
        return Candidates(
            ids=unique,
            dense=vectors @ batch.vectors[q],
            lexical=np.asarray(lexical, dtype=np.float32),
            vectors=vectors,
            published=np.full(len(unique), np.nan),
        )


def _mask(
    scores: np.ndarray,
    lexical: LexicalIndex,
    include: np.ndarray | None,
    exclude: np.ndarray | None,
) -> None:
    """Give filtered-out articles a score that never makes the lexical top-N."""
    if include is not None:
        allowed = np.zeros(lexical.width, dtype=bool)
        rows = lexical.rows(include)
        allowed[rows[rows >= 0]] = True
        scores[:, ~allowed] = -1.0
    if exclude is not None and len(exclude):
        rows = lexical.rows(exclude)
        scores[:, rows[rows >= 0]] = -1.0
