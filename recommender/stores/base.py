"""The vector-store contract.

A store maps stable int64 ids (assigned by the catalog, never positions) to
unit vectors and answers inner-product top-k searches, optionally restricted to
an allow-list and/or a deny-list of ids, or (stores that keep metadata) to
articles whose section, language and date pass a :class:`Filters`. Stores are
not thread-safe on their own: the :class:`~recommender.recommender.Recommender`
serialises writers against readers.

What lives where, whatever the store: the catalog (SQLite: article records,
int ids, content hashes, a copy of every vector), the lexical side and the
ranking stay in the index directory and in this process. The store holds the
vectors and answers the dense half of each candidate search.

Two kinds of store:

- **local** (``shared = False``, FAISS): the vectors are files in the index
  directory. Each process maps a snapshot and replays the catalog's later
  changes into a private overlay.
- **shared** (``shared = True``, Milvus): the vectors live in an engine outside
  the index directory that every process talks to. A write reaches every reader
  at once, so readers never replay vector changes; a snapshot file only records
  where the vectors are (see :meth:`VectorStore.save`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from recommender.filters import Filters
    from recommender.types import Article

__all__ = ["SearchResult", "VectorMeta", "VectorStore", "in_order"]


@dataclass(frozen=True)
class SearchResult:
    """Row ``i`` holds the neighbours of query ``i``; missing slots have id -1."""

    scores: np.ndarray
    ids: np.ndarray


@dataclass(frozen=True)
class VectorMeta:
    """The article fields a store that filters in the engine keeps beside each vector.

    Section and language are lower-cased (filters match case-insensitively);
    ``published`` is epoch seconds, ``None`` when the article has no date.
    """

    section: str = ""
    language: str = ""
    published: float | None = None

    @classmethod
    def of(cls, article: Article) -> VectorMeta:
        when = article.published_at
        return cls(
            section=(article.section or "").lower(),
            language=(article.language or "").lower(),
            published=when.timestamp() if when is not None else None,
        )


class VectorStore(ABC):
    """Base class every vector store implements."""

    #: Short name recorded in the manifest.
    name: str = "base"
    #: The vectors live outside the index directory, in an engine every process shares.
    shared: bool = False
    #: ``search`` evaluates ``where`` (section, language, dates) in the engine.
    keeps_metadata: bool = False
    #: Only one process may open the store at a time (Milvus Lite's file).
    single_process: bool = False
    #: Suffix of the snapshot file (``vectors.<seq>.<suffix>``).
    snapshot_suffix: str = "faiss"

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension

    @property
    def exact(self) -> bool:
        """Whether a search finds exactly the nearest neighbours (not an approximation).

        Stored related lists stay equal to a recompute across a snapshot only then.
        """
        return False

    @abstractmethod
    def __len__(self) -> int:
        """Number of vectors stored."""

    @abstractmethod
    def add(
        self, ids: np.ndarray, vectors: np.ndarray, meta: Sequence[VectorMeta] | None = None
    ) -> None:
        """Add vectors under ``ids``; the ids must not be present already.

        ``meta`` (one per id) is kept by stores with ``keeps_metadata`` and
        ignored by the others; without it such a store keeps empty fields.
        """

    def upsert(
        self, ids: np.ndarray, vectors: np.ndarray, meta: Sequence[VectorMeta] | None = None
    ) -> None:
        """Add vectors, replacing any stored under the same ids.

        An engine shared with readers replaces each in one step, so no reader
        sees an article missing while it is re-embedded.
        """
        self.remove(ids)
        self.add(ids, vectors, meta)

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
        where: Filters | None = None,
        stored: np.ndarray | None = None,
    ) -> SearchResult:
        """Top-``k`` ids by inner product, among ``include`` (if given) minus ``exclude``.

        ``where`` restricts by the metadata given with the vectors (section,
        language, date range; its ``exclude`` ids are not used: pass int ids
        in ``exclude``). Only stores with ``keeps_metadata`` accept it; for
        the others the caller resolves filters to ``include`` ids first.

        ``stored`` says, per query, the id whose stored vector the query is (-1:
        none), for a store that keeps work done on its own vectors (FAISS: the
        lists an IVF search of each probes). The results are the same.
        """

    @abstractmethod
    def save(self, path: Path) -> None:
        """Write the store's snapshot to ``path`` (a file the caller renames into place).

        A shared store writes only where its vectors are: the engine holds them.
        """

    @property
    def writes_rows(self) -> bool:
        """Whether its snapshot comes with a row file (:meth:`save_rows`)."""
        return False

    def save_rows(self, path: Path) -> None:
        """Write the snapshot's vectors as rows in id order, for :meth:`get` to read back.

        Called before :meth:`save` for the same snapshot, only when :attr:`writes_rows`.
        """
        raise NotImplementedError(f"{type(self).__name__} writes no row file")

    @property
    def writes_probes(self) -> bool:
        """Whether its snapshot comes with a probe file (:meth:`save_probes`)."""
        return False

    def save_probes(self, path: Path) -> None:
        """Write, in id order, what a search of each stored vector as a query starts from.

        Called before :meth:`save` for the same snapshot, only when :attr:`writes_probes`.
        """
        raise NotImplementedError(f"{type(self).__name__} writes no probe file")

    @classmethod
    @abstractmethod
    def load(cls, path: Path, dimension: int, *, mmap: bool = False, **options: Any) -> VectorStore:
        """Read a store written by :meth:`save`.

        With ``mmap`` the file is mapped read-only, so processes serving one
        index share its pages; a store that cannot map reads the file whole.
        ``options`` are the store's settings from the manifest (e.g. ``index_type``).
        """

    def options(self) -> dict[str, Any]:
        """The settings :meth:`load` needs, recorded in the manifest (never credentials)."""
        return {}

    def describe(self) -> dict[str, Any]:
        """What ``info`` shows of the search structure in use."""
        return {}

    def optimise(self) -> None:  # noqa: B027 - a hook: most stores have nothing to do
        """Called once a build has added every vector, before the first search."""

    def saw_change(self) -> None:  # noqa: B027 - a hook: local stores replay changes instead
        """Another process changed a shared store (the catalog says so): read the change."""

    def close(self) -> None:  # noqa: B027 - a hook: local stores hold no connection
        """Release connections; the store is not used afterwards."""

    def _check(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise ValueError(
                f"expected vectors of shape (n, {self.dimension}), got {vectors.shape}"
            )
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")


def in_order(ids: np.ndarray, found: dict[int, Any], dimension: int) -> np.ndarray:
    """The vectors of ``ids`` in that order, from an id -> vector lookup (KeyError if absent)."""
    out = np.empty((len(ids), dimension), dtype=np.float32)
    for row, int_id in enumerate(ids):
        if int(int_id) not in found:
            raise KeyError(int(int_id))
        out[row] = found[int(int_id)]
    return out
