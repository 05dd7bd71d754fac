"""Whether the inner loops run compiled (recommender/compiled/kernels.py, numba) or through numpy.

Both give the same results, bit for bit (tests/test_kernels.py). Compiling pays
from the second query of a process on: the first one loads numba and the cached
machine code (~0.55 s measured; seconds after an install, when it compiles). A
command that answers one query and exits is faster through numpy.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

__all__ = ["enabled", "kernels", "numpy_loops", "use_compiled"]

_COMPILED = True


def use_compiled(compiled: bool) -> bool:
    """Run the inner loops compiled (the default) or through numpy, process-wide.

    Returns the previous setting.
    """
    global _COMPILED
    previous, _COMPILED = _COMPILED, compiled
    return previous


@contextmanager
def numpy_loops() -> Iterator[None]:
    """The inner loops through numpy inside the block, as before it after (one-query commands)."""
    previous = use_compiled(False)
    try:
        yield
    finally:
        use_compiled(previous)


def enabled() -> bool:
    """Whether the inner loops run compiled now."""
    return _COMPILED


_KERNELS: ModuleType | None = None


def kernels() -> ModuleType:
    """The compiled loops, imported on first use (importing numba takes ~0.2 s)."""
    global _KERNELS
    if _KERNELS is None:  # an import statement per call cost ~5 us, four calls a request
        _KERNELS = importlib.import_module("recommender.compiled.kernels")
    return _KERNELS
