"""The speed tricks that earn their place, behind one switch.

    switch        whether the loops run compiled or through numpy (automatic by default)
    kernels       the numba kernels (inverted-list sums, top-k heap, row dots, widening)
    arrays        numpy's mean/std and union without their argument handling
    positions     the dense id -> position table

Each trick stays only while a paired same-run benchmark shows a user-visible win (>= 5% of
related-by-id at 100k articles or of ``related --all`` at 100k; issue 20's review,
docs/benchmarks.md), figures as this/without (below 1: the trick is faster):

    the numba kernels (against their numpy twins)       0.27 per query, 0.23 related --all
    prefetch passes in dots/widen (_touch)               0.80, 0.85
    the query's terms in an open-addressing hash (dots)  0.77 (binary search), 0.72
    widen: float16 rows by bit moves (numpy's cast)      0.96, 0.92 and 0.95
    arrays.mean_std / union_sorted (numpy's own)         0.91, 0.97
    stores.faiss: the float16 row file (ROWS_MAX_VECTORS) 0.80, 0.80
    stores.faiss: the IVF probe files (_probes_of)        0.94 (four runs, 0.92-0.97), 0.965
    lexical.snapshot: the .npz mapped, not read          0.95 peak RSS, open 0.77 s vs 0.99 s

The names below are imported from their modules on first use, so importing the package
loads nothing heavy and no module of it imports another through it (recommender.lazy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recommender.lazy import lazy_exports

if TYPE_CHECKING:
    from recommender.compiled.positions import position_table
    from recommender.compiled.switch import enabled, numpy_loops, use_compiled

__all__ = ["enabled", "numpy_loops", "position_table", "use_compiled"]

_HOME = {
    "enabled": "recommender.compiled.switch",
    "numpy_loops": "recommender.compiled.switch",
    "position_table": "recommender.compiled.positions",
    "use_compiled": "recommender.compiled.switch",
}

__getattr__ = lazy_exports(__name__, _HOME)
