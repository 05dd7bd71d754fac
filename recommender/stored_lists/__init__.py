"""Stored related lists kept equal to a fresh recompute under writes.

    keeper        ListKeeper: store, look up, report on and refresh the stored lists
    lists         ListOwners, Reach, Written: which stored lists a write can change

The names below are imported from their modules on first use, so importing the package
loads nothing heavy and no module of it imports another through it (recommender.lazy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recommender.lazy import lazy_exports

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

__getattr__ = lazy_exports(__name__, _HOME)
