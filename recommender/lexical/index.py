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
"""

from __future__ import annotations

import os
import re
import struct
import threading
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from recommender.compiled import switch as compiled
from recommender.compiled.positions import position_table, positions
from recommender.compiled.switch import use_compiled

__all__ = ["LexicalIndex", "PinnedStats", "TermRow", "use_compiled"]

N_FEATURES = 2**20
#: ``allowed`` when every row is, and the weight table of arrays that hold weights.
_NO_MASK = np.zeros(0, dtype=bool)
_NO_TABLE = np.zeros(0, dtype=np.float32)
#: Snapshot weights are stored as uint16 codes into a table of their distinct values
#: when there are at most this many (always, for counts() output): half the bytes.
_MAX_CODES = 2**16
#: Terms in fewer indexed articles than this get no weight.
MIN_DF = 2
#: Weight multiplier of entity-ish terms.
ENTITY_BOOST = 1.5
#: Keeps 6.1, 1,200 and 10:30 whole; otherwise words of two or more characters.
_TOKEN_PATTERN = r"(?u)\b\d+(?:[.,:]\d+)+\b|\b\w\w+\b"
_TOKEN = re.compile(_TOKEN_PATTERN)


def _vectorizer(analyzer: Any = None, *, bigrams: bool = True) -> Any:
    from sklearn.feature_extraction.text import HashingVectorizer

    if analyzer is not None:
        return HashingVectorizer(
            n_features=N_FEATURES, alternate_sign=False, norm=None, analyzer=analyzer
        )
    return HashingVectorizer(
        n_features=N_FEATURES,
        alternate_sign=False,
        norm=None,
        stop_words="english",
        ngram_range=(1, 2) if bigrams else (1, 1),
        token_pattern=_TOKEN_PATTERN if bigrams else r"(?u)\b\w\w+\b",
        dtype=np.float32,
    )


def entity_words(text: str) -> set[str]:
    """Lower-cased words of ``text`` that look like names, places or numbers."""
    capitalised: set[str] = set()
    lower: set[str] = set()
    for word in _TOKEN.findall(text):
        folded = word.lower()
        if any(ch.isdigit() for ch in word):
            capitalised.add(folded)
        else:
            (capitalised if word[0].isupper() else lower).add(folded)
    return capitalised - lower


@dataclass(frozen=True, eq=False)
class PinnedStats:
    """Document frequencies and article count frozen by ``store_lists``.

    While stored lists exist every score uses these instead of the live counts,
    so a write moves no score of any other pair (the IDF and each row's norm
    stay put) and a stored list stays equal to a list computed now. Terms first
    seen after the pin have a pinned frequency of 0, so no weight (below ``min_df``).
    """

    token: str
    live: int
    df: np.ndarray  # int32 per hashed term


class TermRow(NamedTuple):
    """One row of term counts or weights as arrays, e.g. of :meth:`LexicalIndex.query_weights`.

    A one-row sparse matrix costs ~20 us to build; a related-by-id request used
    to build four, more than summing its inverted lists.
    """

    terms: np.ndarray  # hashed term ids, ascending
    values: np.ndarray  # float32


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
        self._bigrams = bigrams
        # scikit-learn is imported on first use: a query by id reads stored
        # weights and never tokenises, so it should not pay for the import.
        self._vectorizers: tuple[Any, Any, Any] | None = None
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
        texts = list(texts)
        vectorizer, _, marker = self._tools()
        counts = sp.csr_matrix(vectorizer.transform(texts), dtype=np.float32)
        counts.data = 1.0 + np.log(counts.data)
        entity_terms = [self._entity_terms(text) for text in texts]
        marks = sp.csr_matrix(marker.transform(entity_terms), dtype=np.float32)
        marks.data[:] = self.entity_boost - 1.0
        boosted = counts.multiply(marks)
        return sp.csr_matrix(counts + boosted, dtype=np.float32)

    def _entity_terms(self, text: str) -> list[str]:
        entities = entity_words(text) if self.entity_boost != 1.0 else set()
        if not entities:
            return []
        analyzer = self._tools()[1]
        return [t for t in analyzer(text) if any(w in entities for w in t.split())]

    def _tools(self) -> tuple[Any, Any, Any]:
        if self._vectorizers is None:
            vectorizer = _vectorizer(bigrams=self._bigrams)
            marker = _vectorizer(analyzer=_identity)
            self._vectorizers = (vectorizer, vectorizer.build_analyzer(), marker)
        return self._vectorizers

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
        terms: list[str] = self._tools()[1](text)
        return terms

    def term_idf(self, terms: Sequence[str]) -> np.ndarray:
        """Smoothed IDF of each term, hashed as the index hashes it.

        Unlike :meth:`idf`, terms seen in one article keep their weight: a story
        that is not indexed (``similar``) may share a term with that one article.
        """
        if not len(terms):
            return np.zeros(0, dtype=np.float32)
        marker = self._tools()[2]
        # One term per row: each row's only column is that term's hash bucket.
        columns = sp.csr_matrix(marker.transform([[t] for t in terms])).indices
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
            searched = self._heaviest(query, terms)
            if exact:
                rows, scores = _found(segments, *searched, inv, mask)
                out.append(self._cut(searched, rows, scores, n))
            else:
                out.append(_found(segments, *searched, inv, mask, top=n))
        return out

    def _cut(
        self, query: TermRow, rows: np.ndarray, values: np.ndarray, n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The top ``n`` of one query's hits, best first; rows near the cut scored exactly."""
        if len(rows) <= n:  # no cut to make
            order = np.lexsort((self._ids[rows], -values))
            return rows[order], values[order]
        kth = np.partition(values, len(values) - n)[len(values) - n]
        # Float32 sums of a few hundred terms are good to about 1e-6 relative: rows
        # clearly above the cut are in however they were summed; the others are rescored.
        sure = values > kth * (1.0 + 1e-4)
        near = ~sure & (values >= kth * (1.0 - 1e-4))
        band = rows[near]
        exact = self._search_scores(query, band)
        top = np.lexsort((self._ids[band], -exact))[: n - int(sure.sum())]
        above = np.lexsort((self._ids[rows[sure]], -values[sure]))
        return (
            np.concatenate([rows[sure][above], band[top]]),
            np.concatenate([values[sure][above], exact[top]]),
        )

    def search_weights(self, weights: sp.csr_matrix, terms: int | None) -> sp.csr_matrix:
        """What finds candidates in :meth:`query_weights`: each row's ``terms`` heaviest."""
        weighted = _csr(weights)
        if terms is None:
            return weighted
        # Heaviest by query x idf (the weights carry idf twice; zero-idf
        # terms were dropped from them).
        return _top_terms(weighted, terms, key=weighted.data / self.idf()[weighted.indices])

    def _heaviest(self, query: TermRow, terms: int | None) -> TermRow:
        """:meth:`search_weights` of one query."""
        if terms is None or len(query.terms) <= terms:
            return query
        key = query.values / self.idf()[query.terms]
        kept = np.sort(np.argsort(-key, kind="stable")[:terms])
        return TermRow(query.terms[kept], query.values[kept])

    def _search_scores(self, query: TermRow, rows: np.ndarray) -> np.ndarray:
        """Search scores of one query's ``rows``, computed the same way on every path."""
        dots = self._dots(rows, *query)
        scaled: np.ndarray = (dots * self._norms(self.idf())[rows]).astype(np.float32)
        return scaled

    def _dots(self, rows: np.ndarray, terms: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Float64 dot product of each row position in ``rows`` with one query."""
        n_base = self._base.shape[0]
        out = np.zeros(len(rows), dtype=np.float64)
        in_base = rows < n_base
        for matrix, table, picked, first in (
            (self._base, self._table, in_base, 0),
            (self._delta, _NO_TABLE, ~in_base, n_base),
        ):
            if not (picked.any() and len(terms)):
                continue
            if compiled.enabled():
                out[picked] = compiled.kernels().dots(
                    matrix.indptr,
                    matrix.indices,
                    matrix.data,
                    table,
                    rows[picked] - first,
                    terms,
                    weights,
                )
            else:
                out[picked] = _numpy_dots(matrix[rows[picked] - first], table, terms, weights)
        return out

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
        n_base = self._base.shape[0]
        live = self._ids[:n_base] >= 0
        counts = sp.vstack(
            [self._weighed(self._base[live]), self._delta], format="csr", dtype=np.float32
        )
        # Stored so that opening the snapshot reads neither all counts (for the
        # document frequencies) nor all entries (for the norms): at 1M articles
        # that is about 1 GB of the file a query by id never otherwise touches.
        # load() reads with the default min_df, so the norms are computed with it.
        # A pinned index stores the norms under its pin, which load() cannot know.
        df = _document_counts(counts)
        idf = self.idf() if self._pin else _idf(df, counts.shape[0], MIN_DF)
        inv_norms = _inverse_norms(counts, idf)
        table, codes = _encoded(counts.data)
        weights: dict[str, np.ndarray] = {}
        if codes is not None:  # the lists share the codes: transposed as they are
            counts = sp.csr_matrix((codes, counts.indices, counts.indptr), shape=counts.shape)
            weights["value_table"] = table
        postings = sp.csr_matrix(counts.T)
        data_name = "data" if codes is None else "codes"
        weights[data_name] = counts.data
        weights[f"postings_{data_name}"] = postings.data
        arrays = {
            "ids": self._ids[self._ids >= 0],
            "indices": counts.indices,
            "indptr": counts.indptr,
            "postings_indices": postings.indices,
            "postings_indptr": postings.indptr,
            "inv_norms": inv_norms,
            "norms_pin": np.frombuffer((self._pin.token if self._pin else "").encode(), np.uint8),
            **weights,
        }
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())

    @classmethod
    def load(cls, path: Path, *, mmap: bool = False) -> LexicalIndex:
        """Read a snapshot; with ``mmap`` its arrays are mapped read-only, not copied."""
        arrays = _map_npz(path) if mmap else None
        if arrays is None:
            with np.load(path) as data:
                arrays = {name: data[name] for name in data.files}
        index = cls()
        n = len(arrays["ids"])
        # Snapshots written before weights were coded store them as float32 ("data").
        coded = "value_table" in arrays
        data_name = "codes" if coded else "data"
        if coded:
            index._table = np.array(arrays["value_table"], dtype=np.float32)
        index._base = sp.csr_matrix(
            (arrays[data_name], arrays["indices"], arrays["indptr"]), shape=(n, N_FEATURES)
        )
        if "postings_indptr" in arrays:  # snapshots before 0.2 derive them on first use
            index._postings = sp.csr_matrix(
                (
                    arrays[f"postings_{data_name}"],
                    arrays["postings_indices"],
                    arrays["postings_indptr"],
                ),
                shape=(N_FEATURES, n),
            )
        index._ids = np.array(arrays["ids"], dtype=np.int64)
        index._live = n
        if index._postings is not None:
            # The length of each term's inverted list is its document frequency.
            index._df = np.diff(index._postings.indptr).astype(np.int32)
        else:
            index._df = _document_counts(index._base)
        if "inv_norms" in arrays:  # valid until the first write (_invalidate drops it)
            # Copied (4 bytes an article): every query reads it at thousands of random
            # rows, which through the mapping cost ~1 ms a query at 1M articles.
            index._inv_norms = np.array(arrays["inv_norms"])
            if "norms_pin" in arrays:
                index._norms_pin = bytes(np.asarray(arrays["norms_pin"])).decode()
        return index


_SCRATCH = threading.local()


def _found(
    segments: list[tuple[sp.csr_matrix, np.ndarray, int]],
    terms: np.ndarray,
    weights: np.ndarray,
    inverse_norms: np.ndarray,
    allowed: np.ndarray,
    *,
    top: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions in the inverted lists of ``terms``, each with its search score.

    A row's score is its weighted sum over those lists times its inverse norm;
    rows scoring 0 or outside ``allowed`` (unless empty) are left out; with
    ``top``, only the best ``top`` rows, best first. The lists are summed in one
    compiled pass into a per-thread scratch over the positions: numpy needed a
    dozen calls (gather, bincount, masks, partition) and ~2-3x the time.
    """
    if not compiled.enabled():
        return _numpy_found(segments, terms, weights, inverse_norms, allowed, top)
    kernels = compiled.kernels()
    sums, rows, scores = _scratch(len(inverse_norms))
    found = 0
    try:
        for postings, table, first in segments:
            found = kernels.accumulate(
                postings.indptr,
                postings.indices,
                postings.data,
                table,
                terms,
                weights,
                first,
                sums,
                rows,
                found,
            )
        best: tuple[np.ndarray, np.ndarray] = (
            kernels.collect(sums, rows, found, inverse_norms, allowed, scores)
            if top is None
            else kernels.collect_top(sums, rows, found, inverse_norms, allowed, scores, top)
        )
        return best
    except BaseException:
        # Interrupted between the kernels (e.g. Ctrl-C): the next query needs zeroed sums.
        sums[:] = 0.0
        raise


def _numpy_found(
    segments: list[tuple[sp.csr_matrix, np.ndarray, int]],
    terms: np.ndarray,
    weights: np.ndarray,
    inverse_norms: np.ndarray,
    allowed: np.ndarray,
    top: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_found` through numpy: the kernels' float32 arithmetic in the same order."""
    parts = [_gather(postings, table, terms, weights, first) for postings, table, first in segments]
    rows = np.concatenate([r for r, _ in parts])
    if not len(rows):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    sums, _, _ = _scratch(len(inverse_norms))
    try:
        # One float32 add per entry in entry order, as kernels.accumulate does.
        np.add.at(sums, rows, np.concatenate([v for _, v in parts]))
        found = np.unique(rows)
        scores = sums[found] * inverse_norms[found]
    finally:
        sums[rows] = 0.0
    keep = scores > 0
    if len(allowed):
        keep &= allowed[found]
    found, scores = found[keep], scores[keep]
    if top is None:
        return found, scores
    if len(found) > top:  # every row scoring at least the top-th score, ties included
        near = scores >= np.partition(scores, len(scores) - top)[len(scores) - top]
        found, scores = found[near], scores[near]
    order = np.lexsort((found, -scores))[:top]  # equal scores: the lower row, as the heap
    return found[order], scores[order]


def _gather(
    postings: sp.csr_matrix, table: np.ndarray, terms: np.ndarray, weights: np.ndarray, first: int
) -> tuple[np.ndarray, np.ndarray]:
    """The entries of the inverted lists of ``terms`` (row + ``first``), each times its weight."""
    indptr, indices, data = postings.indptr, postings.indices, postings.data
    row_runs: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    value_runs: list[np.ndarray] = [np.zeros(0, dtype=np.float32)]
    for term, weight in zip(terms.tolist(), weights.astype(np.float32).tolist(), strict=True):
        run = slice(int(indptr[term]), int(indptr[term + 1]))
        stored = table[data[run]] if len(table) else data[run]
        row_runs.append(indices[run].astype(np.int64) + first)
        value_runs.append(stored.astype(np.float32) * np.float32(weight))
    return np.concatenate(row_runs), np.concatenate(value_runs)


def _numpy_dots(
    rows: sp.csr_matrix, table: np.ndarray, terms: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """kernels.dots through scipy: float64 products summed in entry order, as it does."""
    stored = table[rows.data] if len(table) else rows.data
    weighed = sp.csr_matrix(
        (stored.astype(np.float64), rows.indices, rows.indptr), shape=rows.shape
    )
    query = np.zeros(N_FEATURES, dtype=np.float64)
    query[terms] = weights
    out: np.ndarray = weighed @ query
    return out


def _scratch(width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This thread's sums (kept zeroed between uses), found rows and their scores.

    One slot per position each.
    """
    sums: np.ndarray | None = getattr(_SCRATCH, "sums", None)
    if sums is None or len(sums) < width:
        # np.zeros maps untouched pages lazily: only positions queries hit cost memory.
        # The branch-free append writes one slot past the rows found: one spare.
        _SCRATCH.sums = np.zeros(width, dtype=np.float32)
        _SCRATCH.rows = np.zeros(width + 1, dtype=np.int64)
        _SCRATCH.scores = np.zeros(width, dtype=np.float32)
    return _SCRATCH.sums, _SCRATCH.rows, _SCRATCH.scores


def _encoded(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The distinct ``weights`` (sorted) and each weight's uint16 code, or no codes.

    counts() writes (1 + ln tf), x the entity boost or not: a few hundred distinct
    values in any archive, so the codes are exact. Over 2**16 distinct values
    (weights made some other way) the snapshot keeps float32.
    """
    table = np.unique(weights)
    if not len(table) or len(table) > _MAX_CODES:
        return _NO_TABLE, None
    codes = np.empty(len(weights), dtype=np.uint16)
    step = 1 << 24  # searchsorted returns int64: bound its scratch at 1M articles
    for start in range(0, len(weights), step):
        chunk = weights[start : start + step]
        codes[start : start + step] = np.searchsorted(table, chunk)
    return table.astype(np.float32), codes


def _csr(matrix: Any) -> sp.csr_matrix:
    """``matrix`` as CSR; a CSR matrix as it is (wrapping one again costs ~15 us a query)."""
    return matrix if isinstance(matrix, sp.csr_matrix) else sp.csr_matrix(matrix)


def _empty_counts() -> sp.csr_matrix:
    return sp.csr_matrix((0, N_FEATURES), dtype=np.float32)


def _document_counts(counts: sp.csr_matrix) -> np.ndarray:
    """How many rows hold each term (rows are canonical: one entry per term)."""
    return np.bincount(counts.indices, minlength=N_FEATURES).astype(np.int32)


def _times_idf(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    counts = sp.csr_matrix(counts)
    weighted = sp.csr_matrix(
        (counts.data * idf[counts.indices], counts.indices.copy(), counts.indptr.copy()),
        shape=counts.shape,
        dtype=np.float32,
    )
    weighted.eliminate_zeros()
    return weighted


def _normalised(weighted: sp.csr_matrix, max_terms: int | None) -> sp.csr_matrix:
    if max_terms is not None:
        weighted = _top_terms(weighted, max_terms)
    per_row = np.diff(weighted.indptr)
    row_of_entry = np.repeat(np.arange(weighted.shape[0]), per_row)
    squared = weighted.data.astype(np.float64) ** 2
    norms = np.sqrt(np.bincount(row_of_entry, weights=squared, minlength=weighted.shape[0]))
    norms[norms == 0] = 1.0
    scale = np.repeat(1.0 / norms, per_row)
    return sp.csr_matrix(
        ((weighted.data * scale).astype(np.float32), weighted.indices, weighted.indptr),
        shape=weighted.shape,
    )


def _idf(df: np.ndarray, n: int, min_df: int) -> np.ndarray:
    out = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
    out[df < min_df] = 0.0
    out.flags.writeable = False  # shared by every query until the next write
    return out


def _inverse_norms(counts: sp.csr_matrix, idf: np.ndarray) -> np.ndarray:
    """1 / |row x idf| per row of ``counts``; 0 for rows with no weighted term."""
    norms = _squared_row_sums(counts, idf.astype(np.float64) ** 2)
    inv = np.zeros(len(norms), dtype=np.float32)
    usable = norms > 0
    inv[usable] = 1.0 / np.sqrt(norms[usable])
    return inv


def _squared_row_sums(counts: sp.csr_matrix, weights: np.ndarray) -> np.ndarray:
    """sum over each row's terms of (count x weight)^2, with ``weights`` already squared."""
    squared = sp.csr_matrix(
        (counts.data.astype(np.float64) ** 2, counts.indices, counts.indptr), shape=counts.shape
    )
    sums: np.ndarray = squared @ weights
    return sums


def _map_npz(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of an uncompressed ``.npz`` as read-only memory maps, or None.

    ``np.savez`` stores members uncompressed, so each ``.npy`` member is a plain
    run of bytes inside the zip file that can be mapped in place.
    """
    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as handle:
        for info in archive.infolist():
            if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(".npy"):
                return None
            handle.seek(info.header_offset)
            header = handle.read(30)  # the zip local file header
            name_len, extra_len = struct.unpack("<HH", header[26:30])
            handle.seek(info.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(handle)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(handle)
            name = info.filename[: -len(".npy")]
            if fortran or dtype.hasobject:
                return None
            if int(np.prod(shape)) == 0:
                out[name] = np.zeros(shape, dtype=dtype)
                continue
            mapped = np.memmap(path, dtype=dtype, mode="r", offset=handle.tell(), shape=shape)
            # A plain view of the mapping: np.memmap's own __getitem__ costs ~2 us a
            # slice, and a query slices dozens of inverted lists.
            out[name] = mapped.view(np.ndarray)
    return out


def _identity(terms: list[str]) -> list[str]:
    return terms


def _split(weights: sp.csr_matrix) -> list[TermRow]:
    """Each row of ``weights`` as arrays (views, no copies)."""
    weights = _csr(weights)
    indptr, indices, data = weights.indptr, weights.indices, weights.data
    return [
        TermRow(indices[indptr[q] : indptr[q + 1]], data[indptr[q] : indptr[q + 1]])
        for q in range(weights.shape[0])
    ]


def _one_query_terms(
    terms: np.ndarray, counts: np.ndarray, idf: np.ndarray, max_terms: int | None
) -> TermRow:
    """:meth:`LexicalIndex.query_weights` of one row, computed on its arrays directly.

    The same arithmetic as the general path; building its four intermediate
    sparse matrices cost more than the arithmetic for a related-by-id request.
    """
    values = counts * idf[terms]
    keep = values != 0
    terms, values = terms[keep], values[keep]
    if max_terms is not None and len(values) > max_terms:
        top = np.sort(np.argsort(-values, kind="stable")[:max_terms])
        terms, values = terms[top], values[top]
    # Summed and scaled in float64 in entry order, as _normalised does for a batch,
    # so that one query and the same query in a batch weigh to the same bits.
    squared = values.astype(np.float64) ** 2
    norm = float(
        np.sqrt(np.bincount(np.zeros(len(squared), dtype=np.int64), squared, minlength=1)[0])
    )
    scale = 1.0 / (norm or 1.0)
    values = (values.astype(np.float64) * scale).astype(np.float32) * idf[terms]
    return TermRow(terms, values)


def _top_terms(
    weighted: sp.csr_matrix, max_terms: int, *, key: np.ndarray | None = None
) -> sp.csr_matrix:
    """Keep the ``max_terms`` heaviest terms of each row (by ``key``, default the weights)."""
    weighted = _csr(weighted)
    per_row = np.diff(weighted.indptr)
    if not len(per_row) or per_row.max() <= max_terms:
        return weighted
    if weighted.shape[0] == 1:  # one query: no sort by row, no COO round trip
        order = np.argsort(-(weighted.data if key is None else key), kind="stable")
        kept = np.sort(order[:max_terms])
        return sp.csr_matrix(
            (weighted.data[kept], weighted.indices[kept], [0, len(kept)]), shape=weighted.shape
        )
    row_of_entry = np.repeat(np.arange(weighted.shape[0]), per_row)
    # Sort entries by row, heaviest first; keep each row's first max_terms.
    order = np.lexsort((-(weighted.data if key is None else key), row_of_entry))
    rank = np.arange(len(order)) - np.repeat(weighted.indptr[:-1], per_row)
    kept = np.sort(order[rank < max_terms])
    return sp.csr_matrix(
        (weighted.data[kept], (row_of_entry[kept], weighted.indices[kept])), shape=weighted.shape
    )
