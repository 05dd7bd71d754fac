"""The embedded default store: an exact FAISS inner-product index with stable ids.

A store read from a snapshot maps the file read-only (``IO_FLAG_MMAP_IFC``)
instead of copying it, so every process serving one index shares one copy of
the vectors in the page cache. Such a base can never change in place (FAISS
aborts the process on a write to a mapped index), so writes made after the
snapshot go to a small private overlay: a ``delta`` index for added vectors and
a set of ``dead`` base ids for removed ones, merged at query time and folded
into the next snapshot by a checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faiss
import numpy as np

from .base import SearchResult, VectorStore

__all__ = ["FaissStore"]


def _flat(dimension: int) -> Any:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))


class FaissStore(VectorStore):
    """Exact search over unit vectors (inner product = cosine).

    ``IndexIDMap2`` keeps our int64 ids inside the index and supports
    reconstruct-by-id, so a query by article id never needs the model.
    """

    name = "faiss-flat"

    def __init__(self, dimension: int, index: Any = None, *, mapped: bool = False) -> None:
        super().__init__(dimension)
        self.index = index if index is not None else _flat(dimension)
        #: True when ``index`` is a read-only memory map: only the overlay changes.
        self.mapped = mapped
        self._delta = _flat(dimension)
        self._base_ids = np.sort(faiss.vector_to_array(self.index.id_map)) if mapped else None
        self._dead = np.zeros(0, dtype=np.int64)  # sorted base ids removed since the snapshot

    def __len__(self) -> int:
        return int(self.index.ntotal) - len(self._dead) + int(self._delta.ntotal)

    @property
    def overlay_size(self) -> int:
        """Vectors added or removed since the mapped snapshot (held privately)."""
        return int(self._delta.ntotal) + len(self._dead)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._check(ids, vectors)
        if len(ids):
            (self._delta if self.mapped else self.index).add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> int:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids):
            return 0
        if not self.mapped:
            return int(self.index.remove_ids(faiss.IDSelectorBatch(ids)))
        removed = int(self._delta.remove_ids(faiss.IDSelectorBatch(ids)))
        in_base = ids[self._in_base(ids)]
        self._dead = np.union1d(self._dead, in_base)
        return removed + len(np.unique(in_base))

    def _in_base(self, ids: np.ndarray) -> np.ndarray:
        """Which ids are live in the mapped base."""
        assert self._base_ids is not None
        live: np.ndarray = _member(ids, self._base_ids) & ~_member(ids, self._dead)
        return live

    def get(self, ids: np.ndarray) -> np.ndarray:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids):
            return np.zeros((0, self.dimension), dtype=np.float32)
        if not self.mapped:
            return _reconstruct(self.index, ids)
        out = np.empty((len(ids), self.dimension), dtype=np.float32)
        in_base = self._in_base(ids)
        if in_base.any():
            out[in_base] = _reconstruct(self.index, ids[in_base])
        if (~in_base).any():
            out[~in_base] = _reconstruct(self._delta, ids[~in_base])
        return out

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
        if not self.mapped or not self.overlay_size:
            return _search(self.index, queries, k, include, exclude)
        hidden = self._dead if exclude is None else np.union1d(self._dead, exclude)
        base = _search(self.index, queries, k, include, hidden)
        delta = _search(self._delta, queries, k, include, exclude)
        scores = np.hstack([base.scores, delta.scores])
        ids = np.hstack([base.ids, delta.ids])
        # Empty slots (id -1) carry FAISS's lowest score, so they sort last.
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return SearchResult(
            np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)
        )

    def save(self, path: Path) -> None:
        if not self.mapped:
            faiss.write_index(self.index, str(path))
            return
        # Fold the overlay in: a new file, written whole, for the next mapping.
        merged = _flat(self.dimension)
        assert self._base_ids is not None
        live = self._base_ids[~_member(self._base_ids, self._dead)]
        for start in range(0, len(live), 65_536):
            chunk = live[start : start + 65_536]
            merged.add_with_ids(_reconstruct(self.index, chunk), chunk)
        delta_ids = faiss.vector_to_array(self._delta.id_map)
        if len(delta_ids):
            merged.add_with_ids(_reconstruct(self._delta, delta_ids), delta_ids)
        faiss.write_index(merged, str(path))

    @classmethod
    def load(cls, path: Path, dimension: int, *, mmap: bool = False) -> FaissStore:
        flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mmap else 0
        index = faiss.read_index(str(path), flags)
        if index.d != dimension:
            raise ValueError(f"{path} holds {index.d}-d vectors, expected {dimension}")
        return cls(dimension, index, mapped=mmap)


def _member(ids: np.ndarray, sorted_ids: np.ndarray) -> np.ndarray:
    """Membership of ``ids`` in a sorted array, without hashing either."""
    if not len(sorted_ids):
        return np.zeros(len(ids), dtype=bool)
    where = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    found: np.ndarray = sorted_ids[where] == ids
    return found


def _reconstruct(index: Any, ids: np.ndarray) -> np.ndarray:
    try:
        return np.asarray(index.reconstruct_batch(ids), dtype=np.float32)
    except RuntimeError:
        missing = [int(i) for i in ids if not _has(index, int(i))]
        raise KeyError(missing[0] if missing else int(ids[0])) from None


def _has(index: Any, int_id: int) -> bool:
    try:
        index.reconstruct(int_id)
    except RuntimeError:
        return False
    return True


def _search(
    index: Any,
    queries: np.ndarray,
    k: int,
    include: np.ndarray | None,
    exclude: np.ndarray | None,
) -> SearchResult:
    k = min(k, int(index.ntotal))
    if k == 0:
        return SearchResult(
            np.full((len(queries), 0), -np.inf, dtype=np.float32),
            np.full((len(queries), 0), -1, dtype=np.int64),
        )
    # The selector objects must stay referenced until search returns.
    keep: list[Any] = []
    selector = _selector(include, exclude, keep)
    params = _search_params(selector) if selector is not None else None
    scores, ids = index.search(queries, k, params=params)
    return SearchResult(scores, ids)


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
