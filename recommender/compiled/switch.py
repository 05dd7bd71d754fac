"""Whether the inner loops run compiled (recommender/compiled/kernels.py, numba) or through numpy.

Both give the same results, bit for bit (tests/test_kernels.py). Compiling pays
from the second query of a process on: the first one loads numba and the cached
machine code (after an install, it compiles it first). A command that answers
one query and exits is faster through numpy.
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
    """The compiled loops, imported on first use (importing numba is slow)."""
    global _KERNELS
    if _KERNELS is None:  # held: an import statement per call is not free, several a request
        _KERNELS = importlib.import_module("recommender.compiled.kernels")
    return _KERNELS
