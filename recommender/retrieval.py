"""Candidate retrieval for a batch of queries: dense top-N plus lexical top-N, with both scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .filters import Filters
from .lexical import LexicalIndex
from .ranking import Candidates
from .stores import VectorStore

__all__ = ["QueryBatch", "Retriever"]


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
        candidate_terms: int | None = None,
        use_lexical: bool = True,
        with_vectors: bool = True,
        where: Filters | None = None,
    ) -> list[Candidates]:
        """Each query's pool: its dense top ``candidates`` and lexical top ``candidates``.

        Both searches run once for the whole batch (FAISS and the inverted lists
        are batched); every pool member then gets both scores. Candidates' vectors
        are read back only when ``with_vectors`` (duplicates, diversity) or when
        only the lexical side found them (for their dense score).

        ``include`` (the ids passing the filters, from the catalog) restricts
        both sides; a store that keeps metadata gets the filters themselves
        (``where``) instead, evaluated in the engine.
        """
        # One extra so that dropping the query article itself still leaves N.
        dense = self.store.search(
            batch.vectors,
            candidates + 1,
            include=None if where is not None else include,
            exclude=exclude,
            where=where,
        )
        lexical: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(batch.vectors)
        weights = self.lexical.query_weights(batch.counts, max_terms=max_query_terms)
        if use_lexical and len(batch.vectors):
            allowed = _allowed(self.lexical, include, exclude)
            lexical = self.lexical.search(
                weights, candidates + 1, terms=candidate_terms, allowed=allowed
            )
        return [
            self._pool(
                batch,
                q,
                (dense.ids[q], dense.scores[q]),
                lexical[q],
                (weights if len(batch.vectors) == 1 else weights[q]) if use_lexical else None,
                with_vectors,
            )
            for q in range(len(batch.vectors))
        ]

    def _pool(
        self,
        batch: QueryBatch,
        q: int,
        dense_hits: tuple[np.ndarray, np.ndarray],
        lexical_rows: np.ndarray,
        weights: sp.csr_matrix | None,
        with_vectors: bool,
    ) -> Candidates:
        found = dense_hits[0] >= 0
        dense_ids, dense_scores = dense_hits[0][found], dense_hits[1][found]
        ids = np.concatenate([dense_ids, self.lexical.ids[lexical_rows]])
        _, first = np.unique(ids, return_index=True)
        first = np.sort(first)  # dense hits first, then lexical, each once
        if batch.skip[q] is not None:
            first = first[ids[first] != batch.skip[q]]
        unique = ids[first]
        # The search already scored the dense hits; only lexical-only ones need a vector.
        dense = np.empty(len(unique), dtype=np.float32)
        from_dense = first < len(dense_ids)
        dense[from_dense] = dense_scores[first[from_dense]]
        vectors = self.store.get(unique) if with_vectors else None
        if (~from_dense).any():
            others = (
                vectors[~from_dense] if vectors is not None else self.store.get(unique[~from_dense])
            )
            dense[~from_dense] = others @ batch.vectors[q]
        lexical = (
            self.lexical.cosines(weights, self.lexical.rows(unique))
            if weights is not None
            else np.zeros(len(unique), dtype=np.float32)
        )
        return Candidates(
            ids=unique,
            dense=dense,
            lexical=lexical,
            vectors=vectors,
            published=np.full(len(unique), np.nan),
        )


def _allowed(
    lexical: LexicalIndex, include: np.ndarray | None, exclude: np.ndarray | None
) -> np.ndarray | None:
    """Which row positions filters let through (None: all)."""
    if include is None and (exclude is None or not len(exclude)):
        return None
    allowed = np.ones(lexical.width, dtype=bool)
    if include is not None:
        allowed[:] = False
        rows = lexical.rows(include)
        allowed[rows[rows >= 0]] = True
    if exclude is not None and len(exclude):
        rows = lexical.rows(exclude)
        allowed[rows[rows >= 0]] = False
    return allowed
