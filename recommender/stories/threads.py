"""An index's stories, grouped on demand and kept until the index changes.

:class:`Stories` ranks every article's related list once (as ``related_all`` does, rules
off), groups the archive (:func:`~recommender.stories.grouping.group`) and keeps the result
for the index's version; a write by any process regroups on the next call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import replace

import numpy as np

from recommender.index.live import LiveIndex
from recommender.ranking.batches import related_lists
from recommender.ranking.buckets import default_ranking
from recommender.ranking.ranker import Ranker
from recommender.stories.grouping import NEIGHBOURS, Grouping, group
from recommender.types import ArticleSummary, StoryThread

__all__ = ["Stories"]


class Stories:
    """The stories of one live index."""

    def __init__(
        self, index: LiveIndex, ranker: Ranker, version: Callable[[], tuple[object, ...]]
    ) -> None:
        self._index = index
        self._ranker = ranker
        self._version = version
        self._kept: tuple[tuple[object, ...], Grouping] | None = None

    def grouping(self) -> Grouping:
        """Every article's story, regrouped when the index has changed."""
        self._index.refresh()
        version = self._version()
        if self._kept is None or self._kept[0] != version:
            self._kept = (version, self._group())
        return self._kept[1]

    def thread(self, article_id: str) -> StoryThread:
        """The story of an indexed article, its articles in time order."""
        self._index.int_id(article_id)  # an unknown id is ArticleNotFoundError
        grouping = self.grouping()
        story = grouping.story_of[article_id]
        return self._thread(story, grouping.members[story])

    def with_thread(self, article_id: str, exclude: str | Iterable[str]) -> list[str]:
        """``exclude`` and the ids of ``article_id``'s story (a related list of background)."""
        ids = [exclude] if isinstance(exclude, str) else list(exclude)
        return ids + [a.id for a in self.thread(article_id).articles]

    def all(self, *, min_size: int = 1) -> list[StoryThread]:
        """Every story with at least ``min_size`` articles, largest first, then by id."""
        threads = [
            self._thread(story, members)
            for story, members in self.grouping().members.items()
            if len(members) >= min_size
        ]
        return sorted(threads, key=lambda t: (-len(t.articles), t.id))

    def _group(self) -> Grouping:
        index = self._index
        config = default_ranking(index.manifest)
        # By content alone: the model reads the date gap as a view of its own.
        content = replace(config, time_weight=0.0, diversity=0.0, feedback_docs=0)
        lists = related_lists(
            index, self._ranker, None, NEIGHBOURS, content,
            batch_size=256, progress=False, workers=1, rules=False,
        )  # fmt: skip
        pairs: dict[tuple[str, str], float] = {}
        ids: list[str] = []
        for article_id, matches in lists:
            ids.append(article_id)
            for match in matches:
                key = (article_id, match.id) if article_id < match.id else (match.id, article_id)
                pairs[key] = max(pairs.get(key, -math.inf), match.score)
        times = self._times(ids, config.lead_dates)
        gaps = {key: abs(times[key[0]] - times[key[1]]) / 86_400.0 for key in pairs}
        order = {a: (times[a] if not math.isnan(times[a]) else math.inf, a) for a in ids}
        return group(ids, pairs, gaps, order)

    def _times(self, ids: list[str], lead_dates: bool) -> dict[str, float]:
        state = self._index.state
        numbers = state.catalog.int_ids(ids)
        found = state.published(np.array([numbers[a] for a in ids]), lead_dates=lead_dates)
        return dict(zip(ids, found.tolist(), strict=True))

    def _thread(self, story: str, members: list[str]) -> StoryThread:
        rows = self._index.state.catalog.rows(
            list(self._index.state.catalog.int_ids(members).values())
        )
        summaries = [
            ArticleSummary(r.id, r.title, r.url, r.published_at, r.section) for r in rows.values()
        ]
        summaries.sort(key=lambda a: (a.published_at is None, a.published_at or "", a.id))
        return StoryThread(story, tuple(summaries))
