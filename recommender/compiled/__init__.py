"""The compiled inner loops (numba) and the id tables they read, behind one switch.

    switch        use_compiled / numpy_loops: whether the loops run compiled or in numpy
    kernels       the numba kernels (inverted-list sums, top-k heap, row dots, widening)
    positions     the dense id -> position table

The names below are imported from their modules on first use, so importing the package
loads nothing heavy and no module of it imports another through it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
