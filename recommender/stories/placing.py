"""New articles placed into the stored stories, by the batch grouping's own rule.

A new article's neighbourhood is the stories its placed neighbours are in. That
neighbourhood and the article are grouped again by :func:`~recommender.stories.grouping.group`
with the stored model and the stored neighbour lists (no ranking): the article joins a story,
starts one, or joins two stories it bridges, as the batch grouping of the whole archive would
decide with the same pairs. Stories keep their ids (:func:`~recommender.stories.grouping.
name_stories`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Protocol

import numpy as np

from recommender.index.catalog_stories import StoryRow
from recommender.ranking.calibration import StoryModel
from recommender.stories.grouping import group, name_stories, pair_scores

__all__ = ["Placer"]


class StoryTables(Protocol):
    """What placing reads of the catalog."""

    def story_rows(self, int_ids: Iterable[int]) -> dict[int, StoryRow]: ...
    def story_members(self, stories: Iterable[str]) -> dict[str, list[int]]: ...
    def story_in_use(self, story: str) -> bool: ...
    def external_ids(self, int_ids: Iterable[int]) -> dict[int, str]: ...


class Placer:
    """Places articles one at a time against the stored stories and model."""

    def __init__(
        self,
        tables: StoryTables,
        days: Callable[[Iterable[int]], dict[int, float]],
        model: StoryModel | None,
    ) -> None:
        self._tables = tables
        self._days = days
        self._model = model

    def place(
        self, article: int, neighbours: np.ndarray, scores: np.ndarray
    ) -> dict[int, StoryRow]:
        """The rows to store: the article's, and those of neighbours whose story changed."""
        tables = self._tables
        mine = StoryRow("", neighbours, scores)
        known = tables.story_rows(neighbours.tolist())
        if self._model is None or not known:
            return {article: StoryRow(self._unique(tables.external_ids([article])[article]),
                                      neighbours, scores)}  # fmt: skip
        members = tables.story_members({row.story for row in known.values()})
        rows = tables.story_rows(m for group_ in members.values() for m in group_)
        old = {i: row.story for i, row in rows.items()}
        rows[article] = mine
        days = self._days(rows)
        pairs = pair_scores((i, row.neighbours, row.scores) for i, row in rows.items())
        found = group(rows, pairs, days, lambda i: (_day(days[i]), i), self._model)
        names = name_stories(
            found.members, old, tables.external_ids(found.members), self._in_use(old)
        )
        return {
            i: StoryRow(names[found.story_of[i]], row.neighbours, row.scores)
            for i, row in rows.items()
            if old.get(i) != names[found.story_of[i]]
        }

    def _in_use(self, local: dict[int, str]) -> Callable[[str], bool]:
        """Whether a story id is taken outside the neighbourhood being grouped."""
        mine = set(local.values())
        return lambda name: name not in mine and self._tables.story_in_use(name)

    def _unique(self, name: str) -> str:
        while self._tables.story_in_use(name):
            name += "~"
        return name


def _day(day: float) -> float:
    return math.inf if math.isnan(day) else day
