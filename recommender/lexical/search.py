"""Candidate retrieval: inverted-list sums, the tie-safe cut, and row dot products.

These are the lexical side's inner loops, and the only lexical code that calls
the compiled kernels (recommender.compiled: ``switch`` says whether they run
compiled, ``kernels`` holds them). Each loop has a numpy twin here doing the
same float32 or float64 arithmetic in the same order, so that both give the
same results bit for bit (tests/test_kernels.py) and a one-query command can
skip loading numba. They work on plain arrays (the segments' inverted lists,
row norms, a query's :class:`~recommender.lexical.terms.TermRow`), so the
index decides what to search and this module only how.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from recommender.compiled import switch as compiled
from recommender.lexical.terms import N_FEATURES, TermRow
from recommender.lexical.weights import _NO_TABLE

# Nothing public: the index (and tests/test_kernels.py) call these by their private names.
__all__: list[str] = []

#: ``allowed`` when every row is.
_NO_MASK = np.zeros(0, dtype=bool)

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
    compiled pass into a per-thread scratch over the positions: numpy needs a
    dozen calls (gather, bincount, masks, partition) and their overhead.
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


def _cut(
    rows: np.ndarray,
    values: np.ndarray,
    n: int,
    ids: np.ndarray,
    rescore: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """The top ``n`` of one query's hits, best first; rows near the cut scored exactly.

    ``ids`` is the id at each row position (equal scores go to the lower id);
    ``rescore`` gives the exact search scores of the rows it is passed.
    """
    if len(rows) <= n:  # no cut to make
        order = np.lexsort((ids[rows], -values))
        return rows[order], values[order]
    kth = np.partition(values, len(values) - n)[len(values) - n]
    # Float32 sums of a few hundred terms are good to about 1e-6 relative: rows
    # clearly above the cut are in however they were summed; the others are rescored.
    sure = values > kth * (1.0 + 1e-4)
    near = ~sure & (values >= kth * (1.0 - 1e-4))
    band = rows[near]
    exact = rescore(band)
    top = np.lexsort((ids[band], -exact))[: n - int(sure.sum())]
    above = np.lexsort((ids[rows[sure]], -values[sure]))
    return (
        np.concatenate([rows[sure][above], band[top]]),
        np.concatenate([values[sure][above], exact[top]]),
    )


def _heaviest(query: TermRow, terms: int | None, idf: np.ndarray) -> TermRow:
    """``LexicalIndex.search_weights`` of one query: its ``terms`` heaviest by query x idf.

    The weights carry idf twice, so dividing by it once gives query x idf.
    """
    if terms is None or len(query.terms) <= terms:
        return query
    key = query.values / idf[query.terms]
    kept = np.sort(np.argsort(-key, kind="stable")[:terms])
    return TermRow(query.terms[kept], query.values[kept])


def _row_dots(
    base: sp.csr_matrix,
    table: np.ndarray,
    delta: sp.csr_matrix,
    rows: np.ndarray,
    terms: np.ndarray,
    weights: np.ndarray,
) -> np.ndarray:
    """Float64 dot product of each row position in ``rows`` with one query.

    Positions below the base's row count are the base's (weights decoded through
    ``table`` when it is not empty), the others the delta's.
    """
    n_base = base.shape[0]
    out = np.zeros(len(rows), dtype=np.float64)
    in_base = rows < n_base
    for matrix, weight_table, picked, first in (
        (base, table, in_base, 0),
        (delta, _NO_TABLE, ~in_base, n_base),
    ):
        if not (picked.any() and len(terms)):
            continue
        if compiled.enabled():
            out[picked] = compiled.kernels().dots(
                matrix.indptr,
                matrix.indices,
                matrix.data,
                weight_table,
                rows[picked] - first,
                terms,
                weights,
            )
        else:
            out[picked] = _numpy_dots(matrix[rows[picked] - first], weight_table, terms, weights)
    return out


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
