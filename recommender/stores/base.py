"""The vector-store contract.

A store maps stable int64 ids (assigned by the catalog, never positions) to
unit vectors and answers inner-product top-k searches, optionally restricted to
an allow-list and/or a deny-list of ids. Stores are not thread-safe on their
own: the :class:`~recommender.recommender.Recommender` serialises writers
against readers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SearchResult", "VectorStore"]


@dataclass(frozen=True)
class SearchResult:
    """Row ``i`` holds the neighbours of query ``i``; missing slots have id -1."""

    scores: np.ndarray
    ids: np.ndarray


class VectorStore(ABC):
    """Base class every vector store implements."""

    #: Short name recorded in the manifest.
    name: str = "base"

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension

    @abstractmethod
    def __len__(self) -> int:
        """Number of vectors stored."""

    @abstractmethod
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under ``ids``; the ids must not be present already."""

    @abstractmethod
    def remove(self, ids: np.ndarray) -> int:
        """Remove the ids that are present; return how many were removed."""

    @abstractmethod
    def get(self, ids: np.ndarray) -> np.ndarray:
        """Return the stored vectors of ``ids`` (``KeyError`` for an absent one)."""

    @abstractmethod
    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        include: np.ndarray | None = None,
        exclude: np.ndarray | None = None,
    ) -> SearchResult:
        """Top-``k`` ids by inner product, among ``include`` (if given) minus ``exclude``."""

    @abstractmethod
    def save(self, path: Path) -> None:
        """Write the store to ``path`` (a file the caller renames into place)."""

    @classmethod
    @abstractmethod
    def load(cls, path: Path, dimension: int, *, mmap: bool = False, **options: Any) -> VectorStore:
        """Read a store written by :meth:`save`.

        With ``mmap`` the file is mapped read-only, so processes serving one
        index share its pages; a store that cannot map reads the file whole.
        ``options`` are the store's settings from the manifest (e.g. ``index_type``).
        """

    def _check(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise ValueError(
                f"expected vectors of shape (n, {self.dimension}), got {vectors.shape}"
            )
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
