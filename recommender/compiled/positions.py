"""Dense tables from catalog int ids to positions in an array.

Catalog int ids only grow (never reused), so a table with one slot per id up to
the largest stays small, and looking ids up is one vectorised gather instead of
a binary search (~17 reads per id at 100k articles, most of them cache misses)
or a hash lookup per id.
"""

from __future__ import annotations

import numpy as np

__all__ = ["position_table", "positions"]


def position_table(ids: np.ndarray) -> np.ndarray:
    """Each id's position in ``ids`` (int64), -1 for ids not there; negative ids are skipped."""
    ids = np.asarray(ids, dtype=np.int64)
    live = ids >= 0
    table = np.full(int(ids[live].max()) + 1 if live.any() else 0, -1, dtype=np.int64)
    table[ids[live]] = np.flatnonzero(live)
    return table


def positions(table: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The positions of ``ids`` through a :func:`position_table`; -1 for ids not in it."""
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) and ids.min() >= 0 and ids.max() < len(table):  # all inside: one gather
        found: np.ndarray = table[ids]
        return found
    inside = (ids >= 0) & (ids < len(table))
    if not inside.any():
        return np.full(len(ids), -1, dtype=np.int64)
    return np.where(inside, table[np.where(inside, ids, 0)], -1)
