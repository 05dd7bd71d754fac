"""Two numpy reductions of every query without numpy's generality, to the same bits.

A related-by-id request standardises four candidate pools and unites two: through
``ndarray.mean()``/``std()`` and ``np.union1d`` the Python-level argument handling of those
calls, not the arithmetic, was the cost. Measured in issue 20's review (docs/benchmarks.md,
paired with numpy's own calls): related-by-id at 100k articles 1.10x faster.
"""

from __future__ import annotations

import numpy as np

__all__ = ["mean_std", "union_sorted"]


def mean_std(values: np.ndarray) -> tuple[float, float]:
    """``values.mean()`` and ``values.std()`` of a float64 vector, to the bit.

    The same reductions numpy's own run: pairwise sums, then one division.
    """
    n = len(values)
    mean = np.add.reduce(values) / n
    deviations = values - mean
    np.multiply(deviations, deviations, out=deviations)
    return float(mean), float(np.sqrt(np.add.reduce(deviations) / n))


def union_sorted(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The distinct values of both, ascending: ``np.union1d(first, second)``."""
    both = np.concatenate([first, second])
    both.sort()
    if len(both) < 2:
        return both
    keep = np.empty(len(both), dtype=bool)
    keep[0] = True
    np.not_equal(both[1:], both[:-1], out=keep[1:])
    return both[keep]
