"""Writing an index: the build pipeline and the update path.

    inputs        incoming articles checked one by one, rejects.jsonl, precomputed vectors
    build         Build: read -> validate -> embed -> write -> publish a new generation
    update        Updater: upsert and remove, each one transaction; checkpoints

The names below are imported from their modules on first use, so importing the package
loads nothing heavy and no module of it imports another through it (recommender.lazy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recommender.lazy import lazy_exports

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

__getattr__ = lazy_exports(__name__, _HOME)
