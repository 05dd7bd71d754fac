"""The lexical side of hybrid ranking: TF-IDF "more like this" over hashed terms.

Terms are counted with scikit-learn's stateless ``HashingVectorizer`` (2^20
buckets), so adding or removing an article never refits a vocabulary; document
frequencies are kept as counts and IDF is derived from them on demand. Scores
are cosines of sublinear-tf x smoothed-idf vectors, as in Lucene's classic
similarity and scikit-learn's ``TfidfVectorizer(sublinear_tf=True)``.

What separates two stories on the same beat is mostly names, places and
numbers, which embeddings blur and exact term matching keeps. So, measured in
docs/relevance.md:

- word bigrams ("tara reid", "death toll") and whole numbers ("6.1", "1,200");
- terms seen in only one indexed article get no weight (they can match
  nothing else and only dilute the vector's norm);
- "entity-ish" terms weigh 1.5x: a word with a digit, or one that is
  capitalised everywhere it occurs in the article (names and places, not
  sentence-initial common words).

This module holds :class:`LexicalIndex`: its rows, how writes change them, the
pinned statistics and the scoring. Tokenising is in ``terms``, the weighting
arithmetic in ``weights``, the search loops in ``search`` and the file in
``snapshot``; the names other modules import from here are re-exported.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recommender.compiled.positions import position_table, positions
from recommender.compiled.switch import use_compiled
from recommender.lexical.search import _NO_MASK, _cut, _found, _heaviest, _row_dots
from recommender.lexical.snapshot import read_snapshot, write_snapshot
from recommender.lexical.terms import ENTITY_BOOST, N_FEATURES, TermCounter, TermRow, entity_words
from recommender.lexical.weights import (
    _NO_TABLE,
    MIN_DF,
    PinnedStats,
    _csr,
    _document_counts,
    _empty_counts,
    _idf,
    _inverse_norms,
    _normalised,
    _one_query_terms,
    _split,
    _times_idf,
    _top_terms,
)

__all__ = [
    "ENTITY_BOOST",
    "MIN_DF",
    "N_FEATURES",
    "LexicalIndex",
    "PinnedStats",
    "TermRow",
    "entity_words",
    "use_compiled",
]


class LexicalIndex:
    """Term weights of every article, keyed by the catalog's int64 ids.

    Rows live in two segments: ``base``, the counts read from a snapshot (a
    read-only memory map shared by every process serving the index), and
    ``delta``, rows added since (private, small). Removing a base row only marks
    it dead; a checkpoint writes both segments out as the next base. Scores are
    computed from the counts directly (query x idf against raw counts, divided
    by each row's tf-idf norm), so no weighted copy of the matrix is ever held.

    The keyword options exist to measure each choice (scripts/ablation.py); an
    index on disk is always built and read with the defaults.
    """

    def __init__(
        self, *, bigrams: bool = True, entity_boost: float = ENTITY_BOOST, min_df: int = MIN_DF
    ) -> None:
        self.entity_boost = entity_boost
        self.min_df = min_df
        self._counter = TermCounter(bigrams=bigrams)
        self._base = _empty_counts()
        self._delta = _empty_counts()
        #: The id at each row position, base rows first; -1 marks a dead base row.
        self._ids = np.zeros(0, dtype=np.int64)
        self._live = 0
        self._df = np.zeros(N_FEATURES, dtype=np.int32)
        self._idf: np.ndarray | None = None  # built lazily, dropped on every change
        self._inv_norms: np.ndarray | None = None  # per position, built lazily
        self._row_of: np.ndarray | None = None
        #: The base transposed (terms x rows, CSR): the inverted lists that find
        #: candidates without scoring every article. Mapped from the snapshot.
        self._postings: sp.csr_matrix | None = None
        #: The distinct weights, when the base's arrays hold uint16 codes into them.
        self._table = _NO_TABLE
        self._delta_inverted: sp.csr_matrix | None = None
        self._pin: PinnedStats | None = None
        #: The pin token the snapshot's row norms were computed with ("" for live counts).
        self._norms_pin = ""

    def __len__(self) -> int:
        """Articles indexed."""
        return self._live

    @property
    def width(self) -> int:
        """Row positions, dead base rows included: the width of :meth:`scores`."""
        return len(self._ids)

    @property
    def ids(self) -> np.ndarray:
        """The id at each row position (-1 where a removed article was)."""
        return self._ids

    # -- building ----------------------------------------------------------------------

    def counts(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Per-article term weights before IDF: (1 + ln tf), x1.5 for entity-ish terms."""
        return self._counter.counts(texts, entity_boost=self.entity_boost)

    def add(self, ids: np.ndarray, texts: Sequence[str]) -> None:
        if len(ids):
            self.add_counts(np.asarray(ids, dtype=np.int64), self.counts(texts))

    def add_counts(self, ids: np.ndarray, counts: sp.csr_matrix) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        self._delta = sp.vstack([self._delta, counts], format="csr", dtype=np.float32)
        self._ids = np.concatenate([self._ids, ids])
        self._live += len(ids)
        self._df += _document_counts(counts)
        self._invalidate()

    def remove(self, ids: np.ndarray) -> int:
        rows = self.rows(np.unique(np.asarray(ids, dtype=np.int64)))
        rows = rows[rows >= 0]
        if not len(rows):
            return 0
        n_base = self._base.shape[0]
        dead, gone = rows[rows < n_base], rows[rows >= n_base] - n_base
        self._df -= _document_counts(self._base[dead]) + _document_counts(self._delta[gone])
        ids = self._ids.copy()
        ids[dead] = -1
        keep = np.ones(self._delta.shape[0], dtype=bool)
        keep[gone] = False
        self._delta = sp.csr_matrix(self._delta[keep])
        self._ids = np.concatenate([ids[:n_base], ids[n_base:][keep]])
        self._live -= len(rows)
        self._invalidate()
        return len(rows)

    def _invalidate(self) -> None:
        self._delta_inverted = None
        if self._pin is None:
            self._idf = None
        self._inv_norms = None
        self._row_of = None

    # -- pinned statistics -------------------------------------------------------------

    @property
    def pinned(self) -> PinnedStats | None:
        return self._pin

    def document_stats(self) -> tuple[np.ndarray, int]:
        """The live document frequencies (a copy) and article count: what :meth:`pin` freezes."""
        return self._df.copy(), self._live

    def pin(self, stats: PinnedStats | None) -> None:
        """Score with ``stats`` instead of the live counts (None: live counts again)."""
        same = (self._pin.token if self._pin else None) == (stats.token if stats else None)
        if same:
            return
        self._pin = stats
        self._idf = None
        if self._norms_pin != (stats.token if stats else ""):
            self._inv_norms = None

    # -- scoring -----------------------------------------------------------------------

    def idf(self) -> np.ndarray:
        """Smoothed IDF; zero for terms found in fewer than two indexed articles."""
        if self._idf is None:
            df, live = (self._pin.df, self._pin.live) if self._pin else (self._df, self._live)
            self._idf = _idf(df, live, self.min_df)
        return self._idf

    def analyze(self, text: str) -> list[str]:
        """The terms the index counts in ``text`` (lower-cased words and bigrams, no stop words)."""
        return self._counter.analyze(text)

    def term_idf(self, terms: Sequence[str]) -> np.ndarray:
        """Smoothed IDF of each term, hashed as the index hashes it.

        Unlike :meth:`idf`, terms seen in one article keep their weight: a story
        that is not indexed (``similar``) may share a term with that one article.
        """
        if not len(terms):
            return np.zeros(0, dtype=np.float32)
        columns = self._counter.columns(terms)
        counts, live = (self._pin.df, self._pin.live) if self._pin else (self._df, self._live)
        df = counts[columns].astype(np.float64)
        out: np.ndarray = (np.log((1.0 + live) / (1.0 + df)) + 1.0).astype(np.float32)
        return out

    def weigh(self, counts: sp.csr_matrix, *, max_terms: int | None = None) -> sp.csr_matrix:
        """Term weights x idf, L2-normalised rows; optionally only each row's top terms."""
        return _normalised(_times_idf(counts, self.idf()), max_terms)

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Row positions of int ids (-1 for ids not indexed)."""
        if self._row_of is None:
            self._row_of = position_table(self._ids)  # dead rows hold id -1: skipped
        return positions(self._row_of, ids)

    def stored_row(self, int_id: int) -> TermRow:
        """The stored counts of one article, as arrays (none when it is not indexed).

        A query by id slices its row: no fancy indexing, no sparse matrix.
        """
        row = int(self.rows(np.array([int_id]))[0])
        if row < 0:
            return TermRow(np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32))
        n_base = self._base.shape[0]
        segment, row, table = (
            (self._base, row, self._table)
            if row < n_base
            else (self._delta, row - n_base, _NO_TABLE)
        )
        span = slice(segment.indptr[row], segment.indptr[row + 1])
        stored = segment.data[span]
        return TermRow(
            np.array(segment.indices[span]), table[stored] if len(table) else np.array(stored)
        )

    def stored_counts(self, ids: np.ndarray) -> sp.csr_matrix:
        """The stored counts of ``ids``, one row each (empty for ids not indexed)."""
        rows = self.rows(ids)
        if len(rows) == 1 and rows[0] >= 0:
            terms, values = self.stored_row(int(np.asarray(ids)[0]))
            return sp.csr_matrix((values, terms, [0, len(terms)]), shape=(1, N_FEATURES))
        if not (rows >= 0).any():
            return sp.csr_matrix((len(rows), N_FEATURES), dtype=np.float32)
        n_base = self._base.shape[0]
        in_base = (rows >= 0) & (rows < n_base)
        in_delta = rows >= n_base
        out = sp.vstack(
            [self._weighed(self._base[rows[in_base]]), self._delta[rows[in_delta] - n_base]],
            format="csr",
            dtype=np.float32,
        )
        # Put the rows back in the order asked, with empty rows for unknown ids.
        source = np.full(len(rows), -1, dtype=np.int64)
        source[np.flatnonzero(in_base)] = np.arange(in_base.sum())
        source[np.flatnonzero(in_delta)] = in_base.sum() + np.arange(in_delta.sum())
        picked = sp.csr_matrix(out[np.maximum(source, 0)])
        if (source < 0).any():
            picked = sp.csr_matrix(sp.diags((source >= 0).astype(np.float32)) @ picked)
        return picked

    def scores(self, queries: sp.csr_matrix, *, max_terms: int | None = None) -> np.ndarray:
        """Cosine of each query row against every row position: (queries, width) dense.

        Dead positions score 0.
        """
        idf = self.idf()
        # q . (d x idf) / |d x idf|  ==  ((q x idf) . d) / |d x idf|
        weighted = _times_idf(self.weigh(queries, max_terms=max_terms), idf)
        out = np.empty((weighted.shape[0], self.width), dtype=np.float32)
        n_base = self._base.shape[0]
        # (docs @ queries.T) keeps the big matrix in CSR: only the queries are converted.
        columns = sp.csr_matrix(weighted.T)
        out[:, :n_base] = (self._weighed(self._base) @ columns).T.toarray()
        out[:, n_base:] = (self._delta @ columns).T.toarray()
        out *= self._norms(idf)[np.newaxis, :]
        return out

    def search(
        self, weights: sp.csr_matrix, n: int, *, terms: int | None, allowed: np.ndarray | None
    ) -> list[np.ndarray]:
        """Row positions of each query's ``n`` best lexical matches, best first.

        ``weights`` are the queries' :meth:`query_weights`. Matches are found
        through the inverted lists of each query's ``terms`` heaviest terms
        (Lucene MoreLikeThis: the rare, telling words), so the cost follows the
        length of those lists, not the size of the archive. The scores that
        rank these candidates are computed by :meth:`cosines` with every term.
        ``allowed`` (bool per row position) drops filtered rows.
        """
        found = self.search_scored(weights, n, terms=terms, allowed=allowed)
        return [rows for rows, _ in found]

    def search_scored(
        self,
        weights: sp.csr_matrix,
        n: int,
        *,
        terms: int | None,
        allowed: np.ndarray | None,
        exact: bool = True,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`search` with each match's search score (the partial score it is ranked by).

        The cut at ``n`` must not depend on how the query was run: a batch
        sums in float32 through a sparse product, one query in float64, and the
        row order changes at checkpoints. So the rows near the cut are scored
        again one way (float64, rounded to float32) and ties go to the lower id.
        ``exact=False`` keeps the sums as they came (no rescoring): faster, for
        queries that need not match a stored list.
        """
        return self.search_terms(_split(weights), n, terms=terms, allowed=allowed, exact=exact)

    def search_terms(
        self,
        queries: Sequence[TermRow],
        n: int,
        *,
        terms: int | None,
        allowed: np.ndarray | None,
        exact: bool = True,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`search_scored` of queries given as :meth:`query_terms`."""
        inv = self._norms(self.idf())
        mask = _NO_MASK if allowed is None else allowed
        out = []
        segments = self._segments()
        for query in queries:
            searched = _heaviest(query, terms, self.idf())
            if exact:
                rows, scores = _found(segments, *searched, inv, mask)
                rescore = partial(self._search_scores, searched)
                out.append(_cut(rows, scores, n, self._ids, rescore))
            else:
                out.append(_found(segments, *searched, inv, mask, top=n))
        return out

    def search_weights(self, weights: sp.csr_matrix, terms: int | None) -> sp.csr_matrix:
        """What finds candidates in :meth:`query_weights`: each row's ``terms`` heaviest."""
        weighted = _csr(weights)
        if terms is None:
            return weighted
        # Heaviest by query x idf (the weights carry idf twice; zero-idf
        # terms were dropped from them).
        return _top_terms(weighted, terms, key=weighted.data / self.idf()[weighted.indices])

    def _search_scores(self, query: TermRow, rows: np.ndarray) -> np.ndarray:
        """Search scores of one query's ``rows``, computed the same way on every path."""
        dots = self._dots(rows, *query)
        scaled: np.ndarray = (dots * self._norms(self.idf())[rows]).astype(np.float32)
        return scaled

    def _dots(self, rows: np.ndarray, terms: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Float64 dot product of each row position in ``rows`` with one query."""
        return _row_dots(self._base, self._table, self._delta, rows, terms, weights)

    def inverse_norms(self, counts: sp.csr_matrix) -> np.ndarray:
        """1 / |row x idf| of each row of ``counts`` (as :meth:`search` divides by)."""
        return _inverse_norms(sp.csr_matrix(counts, dtype=np.float32), self.idf())

    def _segments(self) -> list[tuple[sp.csr_matrix, np.ndarray, int]]:
        """The inverted lists to search: (lists, weight table, position of the first row)."""
        segments = [(self.postings(), self._table, 0)]
        if self._delta.shape[0]:
            segments.append((self._delta_postings(), _NO_TABLE, self._base.shape[0]))
        return segments

    def query_weights(self, queries: sp.csr_matrix, *, max_terms: int | None) -> sp.csr_matrix:
        """What :meth:`cosines` dots with raw counts: normalised (query x idf), times idf again."""
        if queries.shape[0] == 1:
            terms, weights = self.query_terms(queries, max_terms=max_terms)[0]
            return sp.csr_matrix((weights, terms, [0, len(terms)]), shape=(1, N_FEATURES))
        return _times_idf(self.weigh(queries, max_terms=max_terms), self.idf())

    def query_terms(
        self, queries: sp.csr_matrix | Sequence[TermRow], *, max_terms: int | None
    ) -> list[TermRow]:
        """Each row of :meth:`query_weights`, as arrays (no sparse matrix per query).

        ``queries`` are counts: a matrix, or rows as arrays (:meth:`stored_row`).
        """
        if not isinstance(queries, sp.spmatrix | sp.sparray):
            idf = self.idf()
            return [_one_query_terms(row.terms, row.values, idf, max_terms) for row in queries]
        queries = _csr(queries)
        if queries.shape[0] == 1:
            return [_one_query_terms(queries.indices, queries.data, self.idf(), max_terms)]
        return _split(self.query_weights(queries, max_terms=max_terms))

    def cosines(self, query: TermRow | sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        """Cosine of one query (a row of :meth:`query_weights`) with each row position.

        Rows given as -1 (articles without lexical rows) score 0.
        """
        if isinstance(query, sp.csr_matrix):
            query = TermRow(query.indices, query.data)
        out = np.zeros(len(rows), dtype=np.float32)
        usable = rows >= 0
        if not usable.any():
            return out
        picked = rows[usable]
        scores = self._dots(picked, *query).astype(np.float32)
        out[usable] = scores * self._norms(self.idf())[picked]
        return out

    def _delta_postings(self) -> sp.csr_matrix:
        """Inverted lists of the rows added since the snapshot; rebuilt after each write."""
        if self._delta_inverted is None:
            self._delta_inverted = sp.csr_matrix(self._delta.T, dtype=np.float32)
        return self._delta_inverted

    def postings(self) -> sp.csr_matrix:
        """The inverted lists of the base rows: a (terms x base rows) CSR matrix."""
        if self._postings is None:
            self._postings = sp.csr_matrix(self._base.T, dtype=self._base.dtype)
        return self._postings

    def _norms(self, idf: np.ndarray) -> np.ndarray:
        """1 / |row x idf| per position; 0 for dead or empty rows."""
        if self._inv_norms is None:
            inv = np.concatenate(
                [_inverse_norms(self._weighed(self._base), idf), _inverse_norms(self._delta, idf)]
            )
            inv[self._ids < 0] = 0.0
            self._inv_norms = inv
            self._norms_pin = self._pin.token if self._pin else ""
        return self._inv_norms

    def _weighed(self, base_rows: sp.csr_matrix) -> sp.csr_matrix:
        """Rows of the base with float32 weights (decoded when they hold codes)."""
        if not len(self._table):
            return base_rows
        return sp.csr_matrix(
            (self._table[base_rows.data], base_rows.indices, base_rows.indptr),
            shape=base_rows.shape,
        )

    # -- persistence -------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write a snapshot: the live rows of both segments, as the next base."""
        n_base = self._base.shape[0]
        live = self._ids[:n_base] >= 0
        counts = sp.vstack(
            [self._weighed(self._base[live]), self._delta], format="csr", dtype=np.float32
        )
        pinned = (self._pin.token, self.idf()) if self._pin else None
        write_snapshot(path, counts, self._ids[self._ids >= 0], pinned=pinned)

    @classmethod
    def load(cls, path: Path, *, mmap: bool = False) -> LexicalIndex:
        """Read a snapshot; with ``mmap`` its arrays are mapped read-only, not copied."""
        snapshot = read_snapshot(path, mmap=mmap)
        index = cls()
        index._table = snapshot.table
        index._base = snapshot.base
        index._postings = snapshot.postings
        index._ids = snapshot.ids
        index._live = len(snapshot.ids)
        index._df = snapshot.df
        if snapshot.inv_norms is not None:  # valid until the first write (_invalidate drops it)
            index._inv_norms = snapshot.inv_norms
            index._norms_pin = snapshot.norms_pin
        return index
