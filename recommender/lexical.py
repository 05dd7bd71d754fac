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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["LexicalIndex"]

N_FEATURES = 2**20
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


class LexicalIndex:
    """Term weights of every article, keyed by the catalog's int64 ids.

    The keyword options exist to measure each choice (scripts/ablation.py); an
    index on disk is always built and read with the defaults.
    """

    def __init__(
        self, *, bigrams: bool = True, entity_boost: float = ENTITY_BOOST, min_df: int = 2
    ) -> None:
        self.entity_boost = entity_boost
        self.min_df = min_df
        self._bigrams = bigrams
        # scikit-learn is imported on first use: a query by id reads stored
        # weights and never tokenises, so it should not pay for the import.
        self._vectorizers: tuple[Any, Any, Any] | None = None
        self._ids = np.zeros(0, dtype=np.int64)
        self._counts = sp.csr_matrix((0, N_FEATURES), dtype=np.float32)
        self._df = np.zeros(N_FEATURES, dtype=np.int32)
        self._docs: sp.csr_matrix | None = None  # normalised tf-idf rows, built lazily
        self._row_of: dict[int, int] | None = None

    def __len__(self) -> int:
        return len(self._ids)

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
        self._ids = np.concatenate([self._ids, ids])
        self._counts = sp.vstack([self._counts, counts], format="csr")
        self._df += np.diff(counts.tocsc().indptr).astype(np.int32)
        self._invalidate()

    def remove(self, ids: np.ndarray) -> int:
        gone = np.isin(self._ids, np.asarray(ids, dtype=np.int64))
        if not gone.any():
            return 0
        removed = self._counts[gone]
        self._df -= np.diff(removed.tocsc().indptr).astype(np.int32)
        keep = ~gone
        self._ids, self._counts = self._ids[keep], self._counts[keep]
        self._invalidate()
        return int(gone.sum())

    def _invalidate(self) -> None:
        self._docs = None
        self._row_of = None

    # -- scoring -----------------------------------------------------------------------

    def idf(self) -> np.ndarray:
        """Smoothed IDF; zero for terms found in fewer than two indexed articles."""
        n = len(self._ids)
        out: np.ndarray = (np.log((1.0 + n) / (1.0 + self._df)) + 1.0).astype(np.float32)
        out[self._df < self.min_df] = 0.0
        return out

    def weigh(self, counts: sp.csr_matrix, *, max_terms: int | None = None) -> sp.csr_matrix:
        """Term weights x idf, L2-normalised rows; optionally only each row's top terms."""
        idf = self.idf()
        weighted = sp.csr_matrix(counts.multiply(idf[np.newaxis, :]), dtype=np.float32)
        weighted.eliminate_zeros()
        if max_terms is not None:
            weighted = _top_terms(weighted, max_terms)
        norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1))).ravel()
        norms[norms == 0] = 1.0
        return sp.csr_matrix(sp.diags(1.0 / norms) @ weighted, dtype=np.float32)

    @property
    def docs(self) -> sp.csr_matrix:
        if self._docs is None:
            self._docs = self.weigh(self._counts)
        return self._docs

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Row positions of int ids (-1 for ids not indexed)."""
        if self._row_of is None:
            self._row_of = {int(i): row for row, i in enumerate(self._ids)}
        return np.array([self._row_of.get(int(i), -1) for i in ids], dtype=np.int64)

    def stored_counts(self, ids: np.ndarray) -> sp.csr_matrix:
        rows = self.rows(ids)
        out = self._counts[np.maximum(rows, 0)]
        if (rows < 0).any():
            out = sp.csr_matrix(sp.diags((rows >= 0).astype(np.float32)) @ out)
        return out

    def scores(self, queries: sp.csr_matrix, *, max_terms: int | None = None) -> np.ndarray:
        """Cosine of each query row against every indexed article: (queries, len) dense."""
        weighted = self.weigh(queries, max_terms=max_terms)
        return np.asarray((weighted @ self.docs.T).todense(), dtype=np.float32)

    @property
    def ids(self) -> np.ndarray:
        return self._ids

    # -- persistence -------------------------------------------------------------------

    def save(self, path: Path) -> None:
        counts = self._counts
        with open(path, "wb") as handle:
            np.savez(
                handle,
                ids=self._ids,
                data=counts.data,
                indices=counts.indices,
                indptr=counts.indptr,
            )
            handle.flush()
            os.fsync(handle.fileno())

    @classmethod
    def load(cls, path: Path) -> LexicalIndex:
        with np.load(path) as data:
            index = cls()
            counts = sp.csr_matrix(
                (data["data"], data["indices"], data["indptr"]),
                shape=(len(data["ids"]), N_FEATURES),
            )
            index.add_counts(data["ids"], counts)
        return index


def _identity(terms: list[str]) -> list[str]:
    return terms


def _top_terms(weighted: sp.csr_matrix, max_terms: int) -> sp.csr_matrix:
    """Keep the ``max_terms`` heaviest terms of each row (Lucene MoreLikeThis style)."""
    out = weighted.tolil(copy=True)
    for row in range(out.shape[0]):
        values = np.array(out.data[row])
        if len(values) > max_terms:
            keep = np.argsort(-values)[:max_terms]
            out.rows[row] = [out.rows[row][i] for i in sorted(keep)]
            out.data[row] = [out.data[row][i] for i in sorted(keep)]
    return sp.csr_matrix(out)
