"""The query article's own story first: a related list that reads the archive's stories.

The ranking scores pairs; the stories (:mod:`recommender.stories`) are a transitive,
archive-calibrated decision about which articles report one story, which no pairwise
score makes. Among an indexed article's top :data:`STORY_DEPTH` by score, those of its own
story come first, then the rest, each part in score order; the list is cut to ``k`` after
that. Scores are left as they were, so a list is no longer in score order where a story's
article was moved up. Measured on six corpora, no corpus loses (docs/relevance.md).

Only articles already in the top :data:`STORY_DEPTH` move: a story's weakest articles do
not displace better-scored ones from further down, and a stored list depends on the stories
only through its owner's own story (:mod:`recommender.stored_lists.keeper`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Protocol

import numpy as np

from recommender.ranking.scoring import Candidates, PoolBounds, RankingConfig, pool_bounds

__all__ = ["STORY_DEPTH", "OwnStory"]

#: How deep in a list an article of the query's own story is moved up from. The depth it
#: was measured at (docs/relevance.md, "The article's own story first").
STORY_DEPTH = 30

Hits = list[tuple[int, float]]


class StoryLookup(Protocol):
    """What this reads of the catalog."""

    def story_of(self, int_ids: Iterable[int]) -> dict[int, str]: ...
    def story_members(self, stories: Iterable[str]) -> dict[str, list[int]]: ...


class OwnStory:
    """One batch's queries' stories, and their lists reordered by them."""

    def __init__(self, catalog: StoryLookup, queries: Sequence[int | None], k: int) -> None:
        self._catalog = catalog
        self._queries = [None if q is None else int(q) for q in queries]
        self._k = k
        self._stories = catalog.story_of(q for q in self._queries if q is not None)
        #: Per query, which of its top :attr:`depth` are of its story (None: it has none).
        self._own: list[np.ndarray | None] = []
        self._order: list[np.ndarray] = []
        self._sizes: dict[str, int] | None = None

    @property
    def depth(self) -> int:
        """How deep to rank: :data:`STORY_DEPTH` when any query has a story, else ``k``."""
        return max(self._k, STORY_DEPTH) if self._stories else self._k

    def first(self, ranked: list[Hits]) -> list[Hits]:
        """Each query's hits (its top :attr:`depth`) with its own story's first, cut to ``k``."""
        placed = self._catalog.story_of({i for hits in ranked for i, _ in hits})
        out = []
        self._own, self._order = [], []
        for query, hits in zip(self._queries, ranked, strict=True):
            story = self._stories.get(query) if query is not None else None
            own = np.array([placed.get(i) == story for i, _ in hits], dtype=bool)
            order = np.concatenate([np.flatnonzero(own), np.flatnonzero(~own)])[: self._k]
            out.append([hits[j] for j in order.tolist()])
            self._own.append(own if story is not None else None)
            self._order.append(order)
        return out

    def bounds(
        self, q: int, pool: Candidates, window: Hits, shown: Hits, config: RankingConfig
    ) -> PoolBounds:
        """What a write must reach to change query ``q``'s list ``shown``, ranked from its
        top :attr:`depth` ``window`` (after :meth:`first`).

        An article of another story changes the list by passing its last shown article of
        another story (the floor), or by pushing a shown one of the owner's story out of
        the window, which takes more articles scoring above it than there are places below
        it (each enters one side of the pool at least: the rooms are halved). An article of
        the owner's story left out of the window can enter it when one in it leaves the
        pool: then the rooms are the window's. An article joining or leaving the owner's
        story changes the story, and the stored-list keeper recomputes the lists of its
        articles. A floor of -inf (scores that move with the pool, a short list) stays.
        """
        own = self._own[q]
        base = pool_bounds(pool, shown, self._k, config, depth=self.depth)
        if own is None or not np.isfinite(base.hits_floor):
            return base
        if int(own.sum()) < self._size(self._queries[q]) - 1:
            # Some of the story's articles are under the window.
            base = replace(base, **_rooms(pool_bounds(pool, window, self.depth, config)))
        mine = own[self._order[q]]
        others = [score for (_, score), o in zip(shown, mine.tolist(), strict=True) if not o]
        rooms = base.dense_room, base.lexical_room
        if mine.any():
            below = len(window) - 1 - int(self._order[q][mine].max())
            rooms = min(rooms[0], below // 2), min(rooms[1], below // 2)
        return replace(
            base,
            hits_floor=others[-1] if others else np.inf,
            dense_room=rooms[0],
            lexical_room=rooms[1],
        )

    def _size(self, query: int | None) -> int:
        """How many articles the story of ``query`` has (read for the whole batch once)."""
        if self._sizes is None:
            members = self._catalog.story_members(set(self._stories.values()))
            self._sizes = {story: len(ids) for story, ids in members.items()}
        return self._sizes.get(self._stories.get(query, ""), 0) if query is not None else 0


def _rooms(bounds: PoolBounds) -> dict[str, float]:
    return {"dense_room": bounds.dense_room, "lexical_room": bounds.lexical_room}
