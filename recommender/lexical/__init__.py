"""The lexical side of the hybrid ranking: hashed term counts and their search.

    index         LexicalIndex (term counts, IDF, candidate search), PinnedStats, TermRow

The names below are imported from their modules on first use, so importing the package
loads nothing heavy and no module of it imports another through it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recommender.lexical.index import LexicalIndex, PinnedStats, TermRow, use_compiled

__all__ = ["LexicalIndex", "PinnedStats", "TermRow", "use_compiled"]

_HOME = {
    "LexicalIndex": "recommender.lexical.index",
    "PinnedStats": "recommender.lexical.index",
    "TermRow": "recommender.lexical.index",
    "use_compiled": "recommender.lexical.index",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
