"""Stories stored in the index and kept current as articles arrive and leave.

``build`` groups the whole archive (:meth:`StoryKeeper.regroup`): every article's content
neighbours are ranked once, the archive's model of its pairs is fitted, and the stories are
stored with the neighbours (:mod:`recommender.index.catalog_stories`). After that each write
places its new and re-embedded articles one by one, in date order (:meth:`after_write`): an
article's neighbours are ranked (one query), and the stories they are in are grouped again
with it by the batch rule, the stored model and the stored neighbours
(:mod:`recommender.stories.placing`). A removed article leaves its story (the write's own
transaction deletes its row). When a write has computed every article's pool statistics again
(the archive has grown by a quarter since they were: :mod:`recommender.writes.update`), the
scores have moved, and the archive is grouped again as a build groups it; so it is when the
stored model no longer fits the stored pairs (:meth:`StoryKeeper._checked`, once per 2% of
growth). An add costs one query plus a few small reads, and the checks and regroupings
amortised.

Story ids are stable: a story keeps the id it was given (its founding article's id); a
regrouping gives each new story the id of the old story most of its articles came from.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import numpy as np

from recommender.index.catalog_stories import StoryRow
from recommender.index.live import LiveIndex
from recommender.ranking.batches import chunked, progress_bar, ranked_batches
from recommender.ranking.buckets import default_ranking
from recommender.ranking.calibration import StoryModel, story_model
from recommender.ranking.pool_stats import PARALLEL_STATS_MIN
from recommender.ranking.ranker import Ranker
from recommender.ranking.scoring import RankingConfig
from recommender.stories.grouping import (
    NEIGHBOURS,
    Grouping,
    arrival,
    group,
    name_stories,
    pair_arrays,
    pair_scores,
)
from recommender.stories.placing import Placer

__all__ = ["StoryKeeper", "content_config"]

#: Articles ranked per batch when the whole archive is grouped.
_BATCH = 256
#: A write checks the stored model against the stored pairs once the archive has grown by
#: this share since the last check (reading every stored row: amortised over the adds) ...
_CHECK_GROWTH = 0.02
#: ... and groups the archive again when a model fitted to them now decides more than this
#: share of those pairs the other way (:meth:`StoryKeeper._checked`).
_DRIFT = 0.01

Rows = dict[int, tuple[np.ndarray, np.ndarray]]


def content_config(manifest: Mapping[str, Any]) -> RankingConfig:
    """The ranking that scores pairs: by content alone (the model reads the date gap), not
    by the stories it groups, and with both sides at equal weight: the lexical weight
    estimated for lists (:mod:`recommender.ranking.fusion_weight`) orders one query's top,
    while grouping pools pairs from the whole archive, where the lexical side's tail is the
    evidence of one story (measured: docs/relevance.md)."""
    return replace(
        default_ranking(manifest), time_weight=0.0, diversity=0.0, feedback_docs=0,
        story_first=False, lexical_weight=1.0,
    )  # fmt: skip


class StoryKeeper:
    """Groups a live index into stories and keeps them current (callers hold the writer lock)."""

    def __init__(self, index: LiveIndex, ranker: Ranker) -> None:
        self._index = index
        self._ranker = ranker

    def stored(self) -> bool:
        return self._index.state.catalog.stories_meta() is not None

    def regroup(self, *, progress: bool = False, workers: int | None = None) -> None:
        """Group the whole archive into stories and store them (``build`` does); ``workers``
        processes rank it (default: one per core from :data:`PARALLEL_STATS_MIN` articles)."""
        with self._index.layout.writer_lock():
            self._index.refresh()
            self._regroup(self._everything(progress, workers), {})
            self._index.republish()  # related lists read the stories: answers may change

    def _everything(self, progress: bool, workers: int | None) -> Rows:
        """Every article's neighbours. The ranking is Python-bound and most of a regrouping,
        so from :data:`PARALLEL_STATS_MIN` articles one process per core ranks it (as
        ``related --all`` does): 1.9x faster on 100k articles with two (docs/benchmarks.md)."""
        ids = [i for i, _ in self._index.state.catalog.all_ids()]
        if workers is None:
            workers = (os.cpu_count() or 1) if len(ids) >= PARALLEL_STATS_MIN else 1
        return self.ranked(ids, progress=progress, workers=workers)

    def before_write(self, int_ids: Iterable[int]) -> dict[int, str]:
        """The stories of the articles a write is about to change or remove, as stored."""
        return self._index.state.catalog.story_of(int_ids)

    def after_write(self, before: Mapping[int, str]) -> set[int]:
        """Place the articles a write added or re-embedded; return the articles of every story
        that gained or lost one (``before``: :meth:`before_write`): their related lists rank
        their own story first, so those may change (:mod:`recommender.ranking.own_story`)."""
        catalog = self._index.state.catalog
        meta = catalog.stories_meta()
        if meta is None:
            return set()
        changed = set(before.values())
        pending = catalog.unplaced()
        basis = catalog.pool_stats_basis()
        if meta.get("pool_basis") is None:  # grouped before the index kept a basis
            meta = {**meta, "pool_basis": basis}
        elif pending and basis != meta["pool_basis"]:
            # Every stored list turned stale with the statistics: nothing to return.
            self._regroup(self._everything(False, None), catalog.story_assignments())
            return set()
        model = StoryModel.from_dict(meta["model"]) if meta.get("model") else None
        if pending:
            meta, drifted = self._checked(meta, model)
            if drifted:
                moved = self._regroup(
                    self._everything(False, None), catalog.story_assignments(), stale_lists=False
                )
                members = catalog.story_members(changed)  # stories that lost an article
                return moved | {i for group_ in members.values() for i in group_}
        placer = Placer(catalog, self.days, model)
        # The stories that lost an article (or will place it again) may fall apart.
        waiting = set(pending)
        for _, story in sorted(catalog.story_members(changed).items()):
            if split := placer.regroup(m for m in story if m not in waiting):
                changed |= {row.story for row in split.values()}
                catalog.put_stories(split, meta)
        if pending:
            rows = self.ranked(pending)
            for int_id in sorted(rows, key=arrival(self.days(rows))):
                placed = placer.place(int_id, *rows[int_id])
                changed |= set(catalog.story_of(placed).values())
                changed |= {row.story for row in placed.values()}
                catalog.put_stories(placed, meta)
        members = catalog.story_members(changed)
        return {i for group_ in members.values() for i in group_}

    def ranked(self, int_ids: Iterable[int], *, progress: bool = False, workers: int = 1) -> Rows:
        """Each article's content neighbours (int ids, scores), rules off; removed ones drop.
        ``workers`` processes rank the batches (the whole archive's, at scale)."""
        index = self._index
        wanted = sorted(set(int_ids))
        chunks = chunked([(i, "") for i in wanted], _BATCH)
        config = content_config(index.manifest)
        batches = ranked_batches(
            index, self._ranker, chunks, NEIGHBOURS, config, workers=workers, rules=False, rows=True
        )
        out: Rows = {}
        with progress_bar(progress, len(wanted), "stories") as bar:
            for chunk, rows in zip(chunks, batches, strict=True):
                for owner, hits, _ in rows:
                    out[owner] = (
                        np.array([h for h, _ in hits], dtype=np.int64),
                        np.array([s for _, s in hits], dtype=np.float32),
                    )
                bar.update(len(chunk))
        return out

    def days(self, int_ids: Iterable[int]) -> dict[int, float]:
        """Each article's date in days (NaN: unknown; lead dates as the ranking reads them)."""
        ids = np.array(sorted(set(int_ids)), dtype=np.int64)
        lead = content_config(self._index.manifest).lead_dates
        found = self._index.state.published(ids, lead_dates=lead) / 86_400.0
        return dict(zip(ids.tolist(), found.tolist(), strict=True))

    def grouped(self, rows: Rows) -> Grouping:
        """The batch grouping of ``rows`` (each article's neighbours), its model fitted to them."""
        pairs = pair_scores((i, n, s) for i, (n, s) in rows.items())
        return group(rows, pairs, self.days(rows))

    def _checked(
        self, meta: dict[str, Any], model: StoryModel | None
    ) -> tuple[dict[str, Any], bool]:
        """Whether the stored model has drifted from the archive (checked once it has grown by
        :data:`_CHECK_GROWTH` since the last check), and the meta with the check recorded.

        Drifted: a model fitted again to the stored pairs decides more than :data:`_DRIFT` of
        them the other way. An archive whose kind of coverage changes as it grows (ecbplus
        fed in topic order) moves the fitted model, and a batch grouping of it would then
        differ from the stories placed under the old one; a steady archive is seldom
        grouped again."""
        catalog = self._index.state.catalog
        count = catalog.count()
        if count < (1.0 + _CHECK_GROWTH) * max(meta.get("checked", meta["articles"]), 1):
            return meta, False
        meta = {**meta, "checked": count}
        rows = catalog.story_rows()
        pairs = pair_scores((i, r.neighbours, r.scores) for i, r in rows.items())
        _, scores, gaps = pair_arrays(pairs, self.days(rows), among=rows)
        fitted = story_model(scores, gaps)
        if model is None or fitted is None:
            return meta, (model is None) != (fitted is None)
        return meta, model.disagreement(fitted, scores, gaps) > _DRIFT

    def _regroup(self, rows: Rows, old: Mapping[int, str], *, stale_lists: bool = True) -> set[int]:
        """Store the batch grouping of ``rows``; the articles of every story that changed
        (``stale_lists``: mark story-first stored lists stale instead, and return none)."""
        catalog = self._index.state.catalog
        found = self.grouped(rows)
        names = name_stories(found.members, old, catalog.external_ids(found.members))
        stored = {
            i: StoryRow(names[found.story_of[i]], neighbours, scores)
            for i, (neighbours, scores) in rows.items()
        }
        meta = {
            "model": found.model.to_dict() if found.model else None,
            "articles": len(rows),
            # Scores change when the pool statistics are computed again: then regroup.
            "pool_basis": catalog.pool_stats_basis(),
            "neighbours": NEIGHBOURS,
            "grouped_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        catalog.put_stories(stored, meta, replace_all=True)
        if not stale_lists:
            moved = {i for i, row in stored.items() if old.get(i) != row.story}
            stories = {old[i] for i in moved if i in old} | {stored[i].story for i in moved}
            return {i for i, row in stored.items() if row.story in stories} | moved
        lists = catalog.lists_info()
        if lists is not None and lists.ranking.get("story_first"):
            catalog.mark_lists_stale(
                "the archive was grouped into stories again, and the lists rank each article's"
                " own story first; recompute them with 'related --all --store-lists'"
            )
        return set()
