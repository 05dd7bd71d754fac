"""An index's stories as threads: read from the index, or grouped on demand for an index
built before stories were stored.

Stored stories (:mod:`recommender.stories.keeper`) are read per call, so a write by any
process shows at once. An article a write has not placed yet (in progress, or a writer
killed before it) is a story of its own until the next write places it. An index without
stored stories is grouped in memory, kept until the index changes; ``recommender stories
--regroup`` stores them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from recommender.index.catalog import CatalogRow
from recommender.index.live import LiveIndex
from recommender.stories.keeper import StoryKeeper
from recommender.types import ArticleSummary, StoryThread

__all__ = ["Stories"]


class Stories:
    """The stories of one live index."""

    def __init__(
        self, index: LiveIndex, keeper: StoryKeeper, version: Callable[[], tuple[object, ...]]
    ) -> None:
        self._index = index
        self.keeper = keeper
        self._version = version
        self._kept: tuple[tuple[object, ...], dict[int, str]] | None = None

    def thread(self, article_id: str) -> StoryThread:
        """The story of an indexed article, its articles in time order."""
        int_id = self._index.int_id(article_id)  # an unknown id is ArticleNotFoundError
        catalog = self._index.state.catalog
        if not self.keeper.stored():
            assigned = self._in_memory()
            story = assigned[int_id]
            return self._thread(story, [i for i, s in assigned.items() if s == story])
        placed = catalog.story_of([int_id]).get(int_id)
        if placed is None:
            return self._thread(article_id, [int_id])
        return self._thread(placed, catalog.story_members([placed])[placed])

    def with_thread(self, article_id: str, exclude: str | Iterable[str]) -> list[str]:
        """``exclude`` and the ids of ``article_id``'s story (a related list of background)."""
        ids = [exclude] if isinstance(exclude, str) else list(exclude)
        return ids + [a.id for a in self.thread(article_id).articles]

    def all(self, *, min_size: int = 1) -> list[StoryThread]:
        """Every story with at least ``min_size`` articles, largest first, then by id."""
        self._index.refresh()
        catalog = self._index.state.catalog
        if self.keeper.stored():
            assigned = catalog.story_assignments()
            assigned.update(catalog.external_ids(catalog.unplaced()))  # each its own story
        else:
            assigned = self._in_memory()
        members: dict[str, list[int]] = {}
        for int_id, story in assigned.items():
            members.setdefault(story, []).append(int_id)
        listed = {s: m for s, m in members.items() if len(m) >= min_size}
        # One read of every listed article, not one per story.
        rows = catalog.rows([i for m in listed.values() for i in m])
        threads = [self._thread(s, m, rows) for s, m in listed.items()]
        return sorted(threads, key=lambda t: (-len(t.articles), t.id))

    def _in_memory(self) -> dict[int, str]:
        """Stories of an index that stores none, grouped now and kept for its version."""
        self._index.refresh()
        version = self._version()
        if self._kept is None or self._kept[0] != version:
            found = self.keeper.grouped(
                self.keeper.ranked(i for i, _ in self._index.state.catalog.all_ids())
            )
            names = self._index.state.catalog.external_ids(found.members)
            self._kept = (version, {a: names[s] for a, s in found.story_of.items()})
        return self._kept[1]

    def _thread(
        self, story: str, members: list[int], rows: Mapping[int, CatalogRow] | None = None
    ) -> StoryThread:
        rows = self._index.state.catalog.rows(members) if rows is None else rows
        summaries = [
            ArticleSummary(r.id, r.title, r.url, r.published_at, r.section)
            for r in (rows[i] for i in members if i in rows)
        ]
        summaries.sort(key=lambda a: (a.published_at is None, a.published_at or "", a.id))
        return StoryThread(story, tuple(summaries))
