"""Writing an index: the build pipeline and the update path.

    inputs        incoming articles checked one by one, rejects.jsonl, precomputed vectors
    build         Build: read -> validate -> embed -> write -> publish a new generation
    update        Updater: upsert and remove, each one transaction; checkpoints

The names below are imported from their modules on first use, so importing the package
loads nothing heavy and no module of it imports another through it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recommender.writes.build import Build
    from recommender.writes.inputs import ArticleInput
    from recommender.writes.update import Updater

__all__ = ["ArticleInput", "Build", "Updater"]

_HOME = {
    "ArticleInput": "recommender.writes.inputs",
    "Build": "recommender.writes.build",
    "Updater": "recommender.writes.update",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
