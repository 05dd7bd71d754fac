"""Which stored related lists a write changes: exactly, by reverse tests on every list's pool.

A stored list is a function of its owner's candidate pool (dense top-N and
lexical top-N) and of the pool members' scores, times and statistics. With the
lexical statistics pinned (:class:`~recommender.lexical.index.PinnedStats`), a write
touching article Z moves nothing in owner X's list unless Z was in X's pool
before the write or is in it after. Z is in X's pool when it scores at least
the pool's entry score on either side (the lowest score that made the pool),
so each list stores its pool's bounds (:class:`~recommender.ranking.scoring.PoolBounds`)
and every write tests the touched articles against every list: a matrix
product on the dense side, one gather over each owner's search terms on the
lexical side.

With the owner's own statistics standardising the query side (as while lists
are stored), an item's score no longer depends on the rest of the pool, so a
newcomer entering X's pool changes X's list only if it scores at least the
list's k-th item, or pushes a listed item out of the pool (a listed item at
the pool's entry score), or enters with another newcomer. An article leaving a
pool lets an unknown next candidate in, so that list is always recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommender.index.catalog import Catalog
from recommender.lexical.index import N_FEATURES, LexicalIndex
from recommender.ranking.scoring import RankingConfig
from recommender.stores import VectorStore

__all__ = ["ENTRY_EPSILON", "ListOwners", "Reach", "Written"]

#: How far under a pool's entry score an article is still tested as entering it:
#: the reverse tests sum in another order than the search (float32 rounding).
ENTRY_EPSILON = 1e-5
_CHUNK = 4_096


@dataclass
class Written:
    """What a write touches, as the index held it on one side of the write."""

    ids: np.ndarray  # int64 ids of the touched articles present on this side
    vectors: np.ndarray
    counts: sp.csr_matrix  # stored lexical counts, one row per id
    sections: set[str]  # case-folded sections ("" for none)
    #: Each id's date as the time prior reads it (epoch seconds, NaN: none), when read.
    times: np.ndarray | None = None

    @classmethod
    def read(cls, store: VectorStore, lexical: LexicalIndex, ids: np.ndarray) -> Written:
        """The touched ``ids`` as the index holds them now (absent ones left out)."""
        ids = np.asarray(ids, dtype=np.int64)
        ids = ids[lexical.rows(ids) >= 0]
        return cls(ids, store.get(ids), lexical.stored_counts(ids), set())

    def subset(self, keep: np.ndarray) -> Written:
        times = self.times[keep] if self.times is not None else None
        return Written(self.ids[keep], self.vectors[keep], self.counts[keep], self.sections, times)

    def redated(self, after: Written, ids: np.ndarray) -> np.ndarray:
        """Those of ``ids`` whose date differs between the two sides (all without dates read)."""
        if self.times is None or after.times is None:
            return ids
        before = dict(zip(self.ids.tolist(), self.times.tolist(), strict=True))
        now = dict(zip(after.ids.tolist(), after.times.tolist(), strict=True))
        same = [i for i in ids.tolist() if np.array_equal(before[i], now[i], equal_nan=True)]
        return ids[~np.isin(ids, same)]

    def unmoved(self, after: Written) -> np.ndarray:
        """Ids with the same vector and term counts on both sides (a metadata-only change)."""
        same = []
        for j, i in enumerate(after.ids):
            at = np.flatnonzero(self.ids == i)
            if len(at) and np.array_equal(self.vectors[at[0]], after.vectors[j]):
                difference = self.counts[at[0]] - after.counts[j]
                if not difference.count_nonzero():
                    same.append(int(i))
        return np.array(same, dtype=np.int64)


@dataclass
class Reach:
    """The stored lists whose pools written articles are in: per owner and article, by side."""

    owners: np.ndarray  # (r,) int ids
    dense: np.ndarray  # (r, m) bool: in the owner's dense top
    lexical: np.ndarray  # (r, m) bool: in its lexical top
    bounds: np.ndarray  # (r, 5): PoolBounds.as_tuple() of each owner


class ListOwners:
    """Every stored list's owner vector, search terms and pool entry scores, for reverse tests.

    Built from the catalog on first use in the writing process and patched as
    lists are refreshed; rebuilt whenever another process changed the lists.
    Memory: owners x (dimension + 2 x candidate terms) x 4 bytes (about 1.8 GB
    for 1M owners at 384 dimensions and 32 terms).
    """

    def __init__(self, version: int, dimension: int, width: int) -> None:
        self.version = version
        self._row: dict[int, int] = {}
        self._owners = np.zeros(0, dtype=np.int64)
        self._vectors = np.zeros((0, dimension), dtype=np.float32)
        self._terms = np.zeros((0, width), dtype=np.int32)
        self._weights = np.zeros((0, width), dtype=np.float32)
        self._bounds = np.zeros((0, 5), dtype=np.float64)
        self._size = 0

    @property
    def owners(self) -> np.ndarray:
        """The int ids of the stored lists held (dropped ones left out)."""
        owners = self._owners[: self._size]
        return owners[owners >= 0]

    @classmethod
    def load(
        cls, catalog: Catalog, store: VectorStore, lexical: LexicalIndex, config: RankingConfig
    ) -> ListOwners:
        owners, bounds = catalog.list_bounds()
        indexed = lexical.rows(owners) >= 0  # another process may have removed some since
        owners, bounds = owners[indexed], bounds[indexed]
        out = cls(catalog.lists_version(), store.dimension, config.candidate_terms or 1)
        for start in range(0, len(owners), _CHUNK):
            span = slice(start, start + _CHUNK)
            out.put(owners[span], bounds[span], store, lexical, config)
        return out

    def put(
        self,
        owners: np.ndarray,
        bounds: np.ndarray,
        store: VectorStore,
        lexical: LexicalIndex,
        config: RankingConfig,
    ) -> None:
        """Add or replace the rows of ``owners`` with their pools' bounds."""
        owners = np.asarray(owners, dtype=np.int64)
        weights = lexical.search_weights(
            lexical.query_weights(lexical.stored_counts(owners), max_terms=config.max_query_terms),
            config.candidate_terms,
        )
        terms, values = _padded(sp.csr_matrix(weights), self._terms.shape[1])
        if terms.shape[1] > self._terms.shape[1]:  # candidate_terms None: rows vary in width
            self._widen(terms.shape[1])
            terms, values = _padded(sp.csr_matrix(weights), self._terms.shape[1])
        rows = np.array([self._slot(int(o)) for o in owners], dtype=np.int64)
        self._vectors[rows] = store.get(owners)
        self._terms[rows], self._weights[rows] = terms, values
        self._bounds[rows] = bounds

    def set_bounds(self, bounds: list[tuple[int, np.ndarray]]) -> None:
        """New bounds of lists whose items stay (newcomers took room in their pools)."""
        for owner, row in bounds:
            self._bounds[self._row[int(owner)]] = row

    def drop(self, owners: list[int]) -> None:
        """Forget lists that are gone (their rows are never reached again)."""
        for owner in owners:
            row = self._row.pop(int(owner), None)
            if row is not None:
                self._bounds[row] = np.inf
                self._owners[row] = -1

    def reach(self, written: Written, lexical: LexicalIndex, *, use_lexical: bool) -> Reach:
        """The owners whose pool the ``written`` articles are in (a superset: within epsilon)."""
        n, m = self._size, len(written.ids)
        dense = np.zeros((n, m), dtype=bool)
        for start in range(0, n if m else 0, _CHUNK * 16):
            span = slice(start, min(n, start + _CHUNK * 16))
            scores = self._vectors[span] @ written.vectors.T
            dense[span] = scores >= self._bounds[span, 0, None] - ENTRY_EPSILON
        lexical_side = np.zeros((n, m), dtype=bool)
        if use_lexical and m:
            inv = lexical.inverse_norms(written.counts)
            for j in range(m):
                lexical_side[:, j] = self._lexical_hits(written.counts[j], float(inv[j]))
        hit = (dense | lexical_side).any(axis=1) & (self._owners[:n] >= 0)
        return Reach(self._owners[:n][hit], dense[hit], lexical_side[hit], self._bounds[:n][hit])

    def _lexical_hits(self, counts: sp.csr_matrix, inv_norm: float) -> np.ndarray:
        """Owners whose search score for an article with ``counts`` reaches their entry."""
        scratch = np.zeros(N_FEATURES + 1, dtype=np.float32)  # the last slot: padding terms
        scratch[counts.indices] = counts.data
        n = self._size
        score = (self._weights[:n] * scratch[self._terms[:n]]).sum(axis=1) * inv_norm
        reached: np.ndarray = (score > 0) & (score >= self._bounds[:n, 1] - ENTRY_EPSILON)
        return reached

    def _slot(self, owner: int) -> int:
        row = self._row.get(owner)
        if row is None:
            if self._size == len(self._owners):
                self._grow(max(16, 2 * self._size))
            row = self._size
            self._size += 1
            self._row[owner] = row
            self._owners[row] = owner
        return row

    def _grow(self, capacity: int) -> None:
        extra = capacity - len(self._owners)
        self._owners = np.concatenate([self._owners, np.full(extra, -1, dtype=np.int64)])
        self._vectors = np.vstack(
            [self._vectors, np.zeros((extra, self._vectors.shape[1]), np.float32)]
        )
        self._terms = np.vstack(
            [self._terms, np.full((extra, self._terms.shape[1]), N_FEATURES, np.int32)]
        )
        self._weights = np.vstack(
            [self._weights, np.zeros((extra, self._weights.shape[1]), np.float32)]
        )
        self._bounds = np.vstack([self._bounds, np.full((extra, 5), np.inf)])

    def _widen(self, width: int) -> None:
        extra = width - self._terms.shape[1]
        rows = len(self._owners)
        self._terms = np.hstack([self._terms, np.full((rows, extra), N_FEATURES, np.int32)])
        self._weights = np.hstack([self._weights, np.zeros((rows, extra), np.float32)])


def _padded(weights: sp.csr_matrix, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's terms and weights in a fixed width, padded with a term that never matches."""
    per_row = np.diff(weights.indptr)
    width = max(width, int(per_row.max()) if len(per_row) else 0)
    terms = np.full((weights.shape[0], width), N_FEATURES, dtype=np.int32)
    values = np.zeros((weights.shape[0], width), dtype=np.float32)
    row_of = np.repeat(np.arange(weights.shape[0]), per_row)
    column = np.arange(len(weights.indices)) - np.repeat(weights.indptr[:-1], per_row)
    terms[row_of, column] = weights.indices
    values[row_of, column] = weights.data
    return terms, values
