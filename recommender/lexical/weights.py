"""Term weighting: IDF from document frequencies, row norms, and query weights.

Scores are cosines of sublinear-tf x smoothed-idf vectors, computed from the
stored counts directly (query x idf against raw counts, divided by each row's
tf-idf norm), so the arithmetic here is all the index needs to turn counts
into scores; it lives apart from the index because a batch of queries and one
query must weigh to the same bits, and keeping both paths side by side is
what keeps them equal. :class:`PinnedStats` holds the document frequencies
that stored lists freeze, which replace the live ones in every IDF while they
exist. ``_NO_TABLE`` marks stored weights held as themselves, not as codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.lexical.terms import N_FEATURES, TermRow

__all__ = ["MIN_DF", "PinnedStats"]

#: Terms in fewer indexed articles than this get no weight.
MIN_DF = 2
#: The weight table of arrays that hold the weights themselves (not uint16 codes).
_NO_TABLE = np.zeros(0, dtype=np.float32)


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


def _csr(matrix: Any) -> sp.csr_matrix:
    """``matrix`` as CSR; a CSR matrix as it is (wrapping it again is not free on every query)."""
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
    """``LexicalIndex.query_weights`` of one row, computed on its arrays directly.

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
