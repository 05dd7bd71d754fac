"""The embedded default store: an exact FAISS inner-product index with stable ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faiss
import numpy as np

from .base import SearchResult, VectorStore

__all__ = ["FaissStore"]


class FaissStore(VectorStore):
    """Exact search over unit vectors (inner product = cosine).

    ``IndexIDMap2`` keeps our int64 ids inside the index and supports
    reconstruct-by-id, so a query by article id never needs the model.
    """

    name = "faiss-flat"

    def __init__(self, dimension: int, index: Any = None) -> None:
        super().__init__(dimension)
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._check(ids, vectors)
        if len(ids):
            self.index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> int:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids):
            return 0
        return int(self.index.remove_ids(faiss.IDSelectorBatch(ids)))

    def get(self, ids: np.ndarray) -> np.ndarray:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids):
            return np.zeros((0, self.dimension), dtype=np.float32)
        try:
            return np.asarray(self.index.reconstruct_batch(ids), dtype=np.float32)
        except RuntimeError:
            missing = [int(i) for i in ids if not self._has(int(i))]
            raise KeyError(missing[0] if missing else int(ids[0])) from None

    def _has(self, int_id: int) -> bool:
        try:
            self.index.reconstruct(int_id)
        except RuntimeError:
            return False
        return True

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        include: np.ndarray | None = None,
        exclude: np.ndarray | None = None,
    ) -> SearchResult:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = max(0, min(k, len(self)))
        if k == 0:
            empty = np.empty((len(queries), 0))
            return SearchResult(empty.astype(np.float32), empty.astype(np.int64))
        # The selector objects must stay referenced until search returns.
        keep: list[Any] = []
        selector = _selector(include, exclude, keep)
        params = _search_params(selector) if selector is not None else None
        scores, ids = self.index.search(queries, k, params=params)
        return SearchResult(scores, ids)

    def save(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path, dimension: int) -> FaissStore:
        index = faiss.read_index(str(path))
        if index.d != dimension:
            raise ValueError(f"{path} holds {index.d}-d vectors, expected {dimension}")
        return cls(dimension, index)


def _search_params(selector: Any) -> Any:
    params = faiss.SearchParameters()
    params.sel = selector
    return params


def _selector(include: np.ndarray | None, exclude: np.ndarray | None, keep: list[Any]) -> Any:
    parts: list[Any] = []
    if include is not None:
        arr = np.ascontiguousarray(include, dtype=np.int64)
        keep.append(arr)
        parts.append(faiss.IDSelectorBatch(arr))
    if exclude is not None and len(exclude):
        arr = np.ascontiguousarray(exclude, dtype=np.int64)
        keep.append(arr)
        inner = faiss.IDSelectorBatch(arr)
        keep.append(inner)
        parts.append(faiss.IDSelectorNot(inner))
    keep.extend(parts)
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return faiss.IDSelectorAnd(parts[0], parts[1])
