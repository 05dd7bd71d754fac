"""Story threads: the archive grouped into stories (one story per article).

    grouping   group(): average-link clustering of the related lists' scores, cut where the
               archive's own two-class model says "one story" stops being the likelier
    keeper     StoryKeeper: groups the archive, stores the stories, places added articles
    placing    Placer: one new article placed by regrouping its neighbourhood
    threads    Stories: the threads read from the index (or grouped in memory)

The names below are imported from their modules on first use (recommender.lazy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recommender.lazy import lazy_exports

if TYPE_CHECKING:
    from recommender.stories.grouping import Grouping, bcubed, group

__all__ = ["Grouping", "bcubed", "group"]

_HOME = {
    "Grouping": "recommender.stories.grouping",
    "bcubed": "recommender.stories.grouping",
    "group": "recommender.stories.grouping",
}

__getattr__ = lazy_exports(__name__, _HOME)
