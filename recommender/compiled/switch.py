"""Whether the inner loops run compiled (recommender/compiled/kernels.py, numba) or through numpy.

Both give the same results, bit for bit (tests/test_kernels.py). Loading the compiled loops
(importing numba and its cached machine code, or compiling it after an install) costs
about half a second once per process, and they then answer each query several times faster.
So by default the choice is automatic and lives here, not with the callers: a process runs
its first single query through numpy, and loads the compiled loops at its second query, at
its first batch of several queries, or when :func:`load` is called (``Recommender.warm_up``
does, so a server's requests never pay for it). A command that answers one query and exits
never loads numba; a server or ``related --all`` runs compiled. :func:`use_compiled` forces
one side (tests, benchmarks).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from types import ModuleType

__all__ = [
    "compiled_loops",
    "enabled",
    "kernels",
    "load",
    "numpy_loops",
    "queries",
    "use_compiled",
]

#: True or False when forced by use_compiled; None: automatic (see the module's docstring).
_FORCED: bool | None = None
_KERNELS: ModuleType | None = None
#: Queries ranked by this process so far (counted up to the one that loads the kernels).
_QUERIES = 0


def use_compiled(compiled: bool | None) -> bool | None:
    """Force the inner loops compiled (True) or through numpy (False), process-wide, or
    leave the choice automatic (None, the default). Returns the previous setting."""
    global _FORCED
    previous, _FORCED = _FORCED, compiled
    return previous


@contextmanager
def _forced(compiled: bool) -> Iterator[None]:
    previous = use_compiled(compiled)
    try:
        yield
    finally:
        use_compiled(previous)


def numpy_loops() -> AbstractContextManager[None]:
    """The inner loops through numpy inside the block, as before it after."""
    return _forced(False)


def compiled_loops() -> AbstractContextManager[None]:
    """The inner loops compiled inside the block, as before it after."""
    return _forced(True)


def enabled() -> bool:
    """Whether the inner loops run compiled now."""
    return _KERNELS is not None if _FORCED is None else _FORCED


def queries(count: int) -> None:
    """Note ``count`` queries about to be ranked together; loads the kernels from the
    second query of the process on (a batch of several counts as the second)."""
    global _QUERIES
    if _KERNELS is None and _FORCED is None:
        _QUERIES += count
        if _QUERIES >= 2:
            load()


def load() -> None:
    """Load the compiled loops now (a server calls this before taking requests)."""
    kernels()


def kernels() -> ModuleType:
    """The compiled loops, imported on first use (importing numba is slow)."""
    global _KERNELS
    if _KERNELS is None:  # held: an import statement per call is not free, several a request
        _KERNELS = importlib.import_module("recommender.compiled.kernels")
    return _KERNELS
