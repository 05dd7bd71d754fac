"""Compiled inner loops (numba): the lexical side's, and float16 vector rows read back.

A related-by-id request adds up a few dozen inverted lists and dots a few
hundred stored rows with the query. Written with numpy those are a dozen calls
each over arrays of a few thousand entries, and the calls' own overhead was most
of the request's lexical time; here each is one pass over the entries.

Stored term weights come in two layouts, chosen per array by its dtype: the
weights themselves (float32), or uint16 codes into a table of the distinct
weights (see ``recommender.lexical.snapshot``), half the bytes of a snapshot.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import overload

__all__ = ["accumulate", "collect", "collect_top", "dots", "widen"]


def _weight(data: np.ndarray, table: np.ndarray, j: int) -> float:
    """The stored weight of entry ``j``: decoded through ``table`` when ``data`` holds codes."""
    return float(table[data[j]] if data.dtype.kind == "u" else data[j])


@overload(_weight)
def _weight_compiled(data, table, j):  # type: ignore[no-untyped-def]
    if isinstance(data.dtype, types.Integer):
        return lambda data, table, j: table[data[j]]
    return lambda data, table, j: data[j]


@njit(cache=True, nogil=True)
def accumulate(  # the arrays of one segment, then the query
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    table: np.ndarray,
    terms: np.ndarray,
    weights: np.ndarray,
    first: int,
    sums: np.ndarray,
    rows: np.ndarray,
    found: int,
) -> int:
    """Add the inverted lists of ``terms`` (x ``weights``) into ``sums``, by row position.

    ``sums`` is a zeroed float32 scratch over all positions; a row seen for the
    first time is appended to ``rows`` (from index ``found``). Returns the new
    count. Every entry and weight is positive, so a zero sum means a row not yet
    seen. The append is branch-free and the sums float32: at 1M articles that
    measured well ahead of a branch and float64 sums (half the scratch to miss in).
    """
    for t in range(len(terms)):
        term = terms[t]
        weight = np.float32(weights[t])
        for j in range(indptr[term], indptr[term + 1]):
            row = indices[j] + first
            rows[found] = row
            found += sums[row] == 0
            sums[row] += np.float32(_weight(data, table, j)) * weight
    return found


@njit(cache=True, nogil=True)
def collect(
    sums: np.ndarray,
    rows: np.ndarray,
    found: int,
    inverse_norms: np.ndarray,
    allowed: np.ndarray,
    scores: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The rows :func:`accumulate` found and their scores (sum / norm), zeroing ``sums``.

    Rows scoring 0 and rows outside ``allowed`` (when it is not empty) are
    dropped. ``scores`` is a float32 scratch with room for ``found`` values.
    """
    _score(sums, rows, found, inverse_norms, allowed, scores)
    out_rows = np.empty(found, dtype=np.int64)
    out_values = np.empty(found, dtype=np.float32)
    kept = 0
    for i in range(found):
        if scores[i] > 0:
            out_rows[kept] = rows[i]
            out_values[kept] = scores[i]
            kept += 1
    return out_rows[:kept], out_values[:kept]


@njit(cache=True, nogil=True)
def collect_top(
    sums: np.ndarray,
    rows: np.ndarray,
    found: int,
    inverse_norms: np.ndarray,
    allowed: np.ndarray,
    scores: np.ndarray,
    n: int,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`collect`'s ``n`` best rows, best first; of equal scores, the lower row first.

    A min-heap of the best so far: a query on common words can reach most of
    the archive, and materialising every hit to partition it cost more than
    the sums. Ties go by row so that the cut does not depend on the order the
    rows were met in (the numpy path in lexical/search.py cuts the same way).
    """
    _score(sums, rows, found, inverse_norms, allowed, scores)
    heap_values = np.empty(n, dtype=np.float32)
    heap_rows = np.empty(n, dtype=np.int64)
    size = 0
    for i in range(found):
        value = scores[i]
        if not value > 0:
            continue
        row = rows[i]
        if size < n:
            _sift_up(heap_values, heap_rows, size, value, row)
            size += 1
        elif _below(heap_values[0], heap_rows[0], value, row):
            _sift_down(heap_values, heap_rows, size, value, row)
    by_row = np.argsort(heap_rows[:size])
    rows_kept, values_kept = heap_rows[:size][by_row], heap_values[:size][by_row]
    order = np.argsort(-values_kept, kind="mergesort")  # stable: equal scores stay by row
    return rows_kept[order], values_kept[order]


@njit(cache=True, nogil=True)
def _below(value: float, row: int, other_value: float, other_row: int) -> bool:
    """Whether (value, row) ranks below the other: a lower score, or equal and a higher row."""
    return value < other_value or (value == other_value and row > other_row)


@njit(cache=True, nogil=True)
def _score(
    sums: np.ndarray,
    rows: np.ndarray,
    found: int,
    inverse_norms: np.ndarray,
    allowed: np.ndarray,
    scores: np.ndarray,
) -> None:
    """Each found row's score into ``scores`` (sum / norm; 0 outside a non-empty ``allowed``).

    Zeroes the rows' sums. A pass of its own, without a branch: the rows lie
    all over the sums and norms, and the heap's branches, mispredicted, threw
    away the loads in flight.
    """
    for i in range(found):
        row = rows[i]
        scores[i] = sums[row] * inverse_norms[row]  # float32 x float32
        sums[row] = 0.0
    if len(allowed):
        for i in range(found):
            if not allowed[rows[i]]:
                scores[i] = 0.0


@njit(cache=True, nogil=True)
def _sift_up(values: np.ndarray, rows: np.ndarray, at: int, value: float, row: int) -> None:
    """Insert (value, row) at the end of a min-heap of ``at`` items."""
    while at > 0:
        parent = (at - 1) // 2
        if not _below(value, row, values[parent], rows[parent]):
            break
        values[at], rows[at] = values[parent], rows[parent]
        at = parent
    values[at], rows[at] = value, row


@njit(cache=True, nogil=True)
def _sift_down(values: np.ndarray, rows: np.ndarray, size: int, value: float, row: int) -> None:
    """Replace the smallest item of a full min-heap with (value, row)."""
    at = 0
    while True:
        child = 2 * at + 1
        if child >= size:
            break
        if child + 1 < size and _below(
            values[child + 1], rows[child + 1], values[child], rows[child]
        ):
            child += 1
        if not _below(values[child], rows[child], value, row):
            break
        values[at], rows[at] = values[child], rows[child]
        at = child
    values[at], rows[at] = value, row


@njit(cache=True, nogil=True)
def dots(  # the arrays of one segment, then the query
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    table: np.ndarray,
    rows: np.ndarray,
    terms: np.ndarray,
    weights: np.ndarray,
) -> np.ndarray:
    """Each of ``rows``' dot product with one query (``terms``, ``weights``), in float64.

    The query's terms go into a small open-addressing hash table that stays in
    the first-level cache; a dense scratch over all 2**20 terms was slower,
    every stored entry being a cache miss in it. The table is kept at most 1/16
    full: most stored terms are not the query's, and an empty first slot
    answers them without a second probe (a branch the CPU mispredicts);
    measured faster than 1/4 full on real pools.
    """
    size = 16
    while size < 16 * len(terms):
        size *= 2
    keys = np.full(size, -1, dtype=np.int64)
    values = np.zeros(size, dtype=np.float64)
    for t in range(len(terms)):
        slot = _slot(terms[t], size)
        while keys[slot] != -1 and keys[slot] != terms[t]:
            slot = (slot + 1) & (size - 1)
        keys[slot] = terms[t]
        values[slot] = weights[t]
    out = np.zeros(len(rows), dtype=np.float64)
    if _touch(indptr, indices, data, rows) == -1:  # never: keeps the loads
        out[:] = np.nan
    for i in range(len(rows)):
        row = rows[i]
        total = 0.0
        for j in range(indptr[row], indptr[row + 1]):
            term = indices[j]
            slot = _slot(term, size)
            while keys[slot] != -1:
                if keys[slot] == term:
                    total += _weight(data, table, j) * values[slot]
                    break
                slot = (slot + 1) & (size - 1)
        out[i] = total
    return out


@njit(cache=True, nogil=True)
def _touch(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, rows: np.ndarray) -> int:
    """Read one value per cache line of the ``rows``, so their misses overlap.

    Rows of a pool lie all over the snapshot: one independent load per line lets
    the CPU fetch many lines at once, where the scoring loop waits on each
    (measured: a shorter :func:`dots` at 100k articles).
    """
    total = 0
    for i in range(len(rows)):
        start, stop = indptr[rows[i]], indptr[rows[i] + 1]
        for j in range(start, stop, 16):  # 64-byte lines of int32 indices
            total += indices[j]
        for j in range(start, stop, 64 // data.itemsize):
            total += int(data[j])
    return total


@njit(cache=True, nogil=True)
def _slot(term: int, size: int) -> int:
    """Multiplicative (Fibonacci) hashing of a term's bucket into a power-of-two table."""
    return ((term * 2654435761) >> 7) & (size - 1)


@njit(cache=True, nogil=True)
def widen(halves: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` of a float16 matrix (given as its uint16 bits) as float32, exactly.

    numpy's float16 cast was the largest cost of scoring a pool's lexical-side
    candidates against the query; a 256 KB table of the 65,536 values missed
    the cache in a real request. Here the bits move into place and one
    multiplication by 2**112 rebiases the exponent, which also turns float16
    subnormals into the right float32 values (exact for every bit pattern:
    tests/test_kernels.py; it assumes the CPU does not flush subnormal inputs
    to zero, which nothing here asks it to).
    """
    width = halves.shape[1]
    bits = np.empty((len(rows), width), dtype=np.uint32)
    out = bits.view(np.float32)
    # As in dots: one load per cache line of every row first, so that the rows'
    # misses overlap (the decoding loop waits on each row's in turn).
    touched = 0
    for i in range(len(rows)):
        for j in range(0, width, 32):  # 64-byte lines of uint16
            touched += halves[rows[i], j]
    for i in range(len(rows)):
        row = rows[i]
        for j in range(width):
            half = np.uint32(halves[row, j])
            magnitude = half & np.uint32(0x7FFF)
            value = (magnitude << np.uint32(13)) | ((half & np.uint32(0x8000)) << np.uint32(16))
            if magnitude >= np.uint32(0x7C00):  # infinity or NaN: the top exponent
                value |= np.uint32(0x7F800000)
            bits[i, j] = value
        for j in range(width):
            out[i, j] *= np.float32(2.0**112)
    if touched == -1:  # never: keeps the loads
        out[:] = np.nan
    return out
