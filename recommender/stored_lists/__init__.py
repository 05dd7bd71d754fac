"""Stored related lists kept equal to a fresh recompute under writes.

    keeper        ListKeeper: store, look up, report on and refresh the stored lists
    lists         ListOwners, Reach, Written: which stored lists a write can change

The names below are imported from their modules on first use, so importing the package
loads nothing heavy and no module of it imports another through it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recommender.stored_lists.keeper import ListKeeper
    from recommender.stored_lists.lists import ENTRY_EPSILON, ListOwners, Reach, Written

__all__ = ["ENTRY_EPSILON", "ListKeeper", "ListOwners", "Reach", "Written"]

_HOME = {
    "ENTRY_EPSILON": "recommender.stored_lists.lists",
    "ListKeeper": "recommender.stored_lists.keeper",
    "ListOwners": "recommender.stored_lists.lists",
    "Reach": "recommender.stored_lists.lists",
    "Written": "recommender.stored_lists.lists",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
