"""Tokenising and hashing: from an article's text to its hashed term counts.

Terms are counted with scikit-learn's stateless ``HashingVectorizer`` (2^20
buckets), so adding or removing an article never refits a vocabulary: the text
alone decides its row. Kept apart from the index because it is the only part
that reads text (a query by id never tokenises, so it never imports
scikit-learn), and because what makes a term (bigrams, whole numbers, the
entity boost) is a relevance choice measured on its own in docs/relevance.md.
:class:`TermRow` is the arrays form of one row that every other module passes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

__all__ = ["ENTITY_BOOST", "N_FEATURES", "TermCounter", "TermRow", "entity_words"]

N_FEATURES = 2**20
#: Weight multiplier of entity-ish terms.
ENTITY_BOOST = 1.5
#: Keeps 6.1, 1,200 and 10:30 whole; otherwise words of two or more characters.
_TOKEN_PATTERN = r"(?u)\b\d+(?:[.,:]\d+)+\b|\b\w\w+\b"
_TOKEN = re.compile(_TOKEN_PATTERN)


class TermRow(NamedTuple):
    """One row of term counts or weights as arrays, e.g. of ``LexicalIndex.query_weights``.

    Building a one-row sparse matrix costs more than summing a related-by-id
    request's inverted lists, and a request used to build four.
    """

    terms: np.ndarray  # hashed term ids, ascending
    values: np.ndarray  # float32


class TermCounter:
    """Hashed term counts of texts: (1 + ln tf), boosted for entity-ish terms.

    scikit-learn is imported on first use: a query by id reads stored weights
    and never tokenises, so it should not pay for the import.
    """

    def __init__(self, *, bigrams: bool = True) -> None:
        self._bigrams = bigrams
        self._vectorizers: tuple[Any, Any, Any] | None = None

    def counts(self, texts: Sequence[str], *, entity_boost: float) -> sp.csr_matrix:
        """Per-article term weights before IDF: (1 + ln tf), x ``entity_boost`` for entity-ish."""
        texts = list(texts)
        vectorizer, _, marker = self._tools()
        counts = sp.csr_matrix(vectorizer.transform(texts), dtype=np.float32)
        counts.data = 1.0 + np.log(counts.data)
        entity_terms = [self._entity_terms(text, entity_boost) for text in texts]
        marks = sp.csr_matrix(marker.transform(entity_terms), dtype=np.float32)
        marks.data[:] = entity_boost - 1.0
        boosted = counts.multiply(marks)
        return sp.csr_matrix(counts + boosted, dtype=np.float32)

    def analyze(self, text: str) -> list[str]:
        """The terms counted in ``text`` (lower-cased words and bigrams, no stop words)."""
        terms: list[str] = self._tools()[1](text)
        return terms

    def columns(self, terms: Sequence[str]) -> np.ndarray:
        """The hash bucket of each term, as counting hashes it."""
        marker = self._tools()[2]
        # One term per row: each row's only column is that term's hash bucket.
        columns: np.ndarray = sp.csr_matrix(marker.transform([[t] for t in terms])).indices
        return columns

    def _entity_terms(self, text: str, entity_boost: float) -> list[str]:
        entities = entity_words(text) if entity_boost != 1.0 else set()
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


def _identity(terms: list[str]) -> list[str]:
    return terms
