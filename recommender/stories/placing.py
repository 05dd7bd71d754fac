"""New articles placed into the stored stories, by the batch grouping's own rule.

A new article's neighbourhood is the stories its placed neighbours are in. That
neighbourhood and the article are grouped again by :func:`~recommender.stories.grouping.group`
with the stored model and the stored neighbour lists (no ranking): the article joins a story,
starts one, or joins two stories it bridges, as the batch grouping of the whole archive would
decide with the same pairs. Stories keep their ids (:func:`~recommender.stories.grouping.
name_stories`).
"""

from __future__ import annotations

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
        """The rows to store: the article's (always), and those of others whose story changed."""
        tables = self._tables
        mine = StoryRow("", neighbours, scores)
        # Its own row too, when it is placed again (a metadata change): its story is part
        # of the neighbourhood, and keeps its id.
        known = tables.story_rows([*neighbours.tolist(), article])
        if self._model is None or not known:
            current = known.get(article)
            if current is not None:
                return {article: StoryRow(current.story, neighbours, scores)}
            name = name_stories({article: [article]}, {}, tables.external_ids([article]),
                                tables.story_in_use)[article]  # fmt: skip
            return {article: StoryRow(name, neighbours, scores)}
        members = tables.story_members({row.story for row in known.values()})
        rows = tables.story_rows(m for group_ in members.values() for m in group_)
        old = {i: row.story for i, row in rows.items()}
        rows[article] = mine
        return self._grouped(rows, old, article)

    def regroup(self, members: Iterable[int]) -> dict[int, StoryRow]:
        """The rows to store when a story lost an article (removed, re-embedded, or moved
        in time): its other ``members`` grouped again by the batch rule, which can split it.
        Only the story's own articles are read; the rows whose story changed are returned."""
        rows = self._tables.story_rows(members)
        if self._model is None or len(rows) < 2:
            return {}
        return self._grouped(rows, {i: row.story for i, row in rows.items()}, None)

    def _grouped(
        self, rows: dict[int, StoryRow], old: dict[int, str], article: int | None
    ) -> dict[int, StoryRow]:
        """``rows`` grouped by the batch rule with the stored model, named stably; the rows
        whose story changed. ``article``'s pairs come from its own row alone: another's row
        holds a re-embedded article's score as it was before its text changed."""
        assert self._model is not None
        days = self._days(rows)
        pairs = pair_scores(
            (i, row.neighbours, row.scores) if i == article else (i, *_without(row, article))
            for i, row in rows.items()
        )
        found = group(rows, pairs, days, self._model)
        names = name_stories(
            found.members, old, self._tables.external_ids(found.members), self._in_use(old)
        )
        return {
            i: StoryRow(names[found.story_of[i]], row.neighbours, row.scores)
            for i, row in rows.items()
            if old.get(i) != names[found.story_of[i]] or i == article
        }

    def _in_use(self, local: dict[int, str]) -> Callable[[str], bool]:
        """Whether a story id is taken outside the neighbourhood being grouped."""
        mine = set(local.values())
        return lambda name: name not in mine and self._tables.story_in_use(name)


def _without(row: StoryRow, article: int | None) -> tuple[np.ndarray, np.ndarray]:
    if article is None:
        return row.neighbours, row.scores
    keep = row.neighbours != article
    return row.neighbours[keep], row.scores[keep]
