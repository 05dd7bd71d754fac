"""Names a package exports but imports only on first use (PEP 562 module ``__getattr__``).

Importing a package then loads nothing heavy (numba, FAISS, torch), so ``recommender
--help`` stays instant, and no module of a package imports a sibling through it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, home: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``name`` is imported from ``home[name]``.

    The value is kept in the package's namespace, so the import happens once.
    """

    def module_getattr(name: str) -> Any:
        if name not in home:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    return module_getattr
