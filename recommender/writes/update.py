"""The update path: upserts and removals of a live index, each one transaction.

A write holds the index's writer lock (other processes) and, while it changes the
in-memory state, the readers-writer lock (this process's readers): each write
appears at once and whole. The stored lists are brought up to date in the same
step (:class:`~recommender.stored_lists.keeper.ListKeeper`), new articles are placed in
stories (:class:`~recommender.stories.keeper.StoryKeeper`), and a vector
snapshot is written once enough changes have piled up in the catalog.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from recommender.embedding.encoders import ARTICLE_BATCH
from recommender.embedding.precomputed import PrecomputedEmbeddings
from recommender.index.live import LiveIndex
from recommender.ranking.batches import progress_bar
from recommender.ranking.buckets import default_ranking
from recommender.ranking.calibration import recalibrated
from recommender.ranking.pool_stats import compute_pool_stats
from recommender.ranking.ranker import Ranker
from recommender.stored_lists.keeper import ListKeeper
from recommender.stories.keeper import StoryKeeper
from recommender.types import Article, Rejection, UpdateReport
from recommender.writes.build import now
from recommender.writes.inputs import (
    ArticleInput,
    batched,
    raise_if_rejected,
    validated,
    write_rejects,
)

__all__ = ["Updater"]

#: Replayable changes kept in the catalog before a new vector snapshot is written.
_CHECKPOINT_CHANGES = 2_000
#: Every article's pool statistics are computed again when the archive reaches this many
#: times the articles it held when they last were (:meth:`Updater._outgrown`).
_POOL_GROWTH = 1.25
#: A new article's nearest articles whose pool statistics are computed again: the pools it
#: changes most, its own story's earlier articles among them. Without it, an archive fed one
#: article at a time ranks its stories by pools that lack their own follow-ups (ecbplus fed
#: one by one: MAP@10 0.934 against 0.942 built at once; with it, 0.942). Skipped while
#: stored lists are usable: they are exact under the statistics they were ranked with.
_NEAREST_STATS = 10


class Updater:
    """Writes to one live index: upsert, remove, checkpoint."""

    def __init__(
        self, index: LiveIndex, lists: ListKeeper, stories: StoryKeeper, ranker: Ranker
    ) -> None:
        self._index = index
        self._lists = lists
        self._stories = stories
        self._ranker = ranker

    def upsert(
        self,
        articles: Iterable[ArticleInput],
        *,
        strict: bool,
        progress: bool,
        precomputed: PrecomputedEmbeddings | None,
    ) -> UpdateReport:
        """Add new articles, re-embed changed ones, skip unchanged ones (``Recommender.upsert``)."""
        index = self._index
        items = list(validated(articles))
        rejected = [r for r in items if isinstance(r, Rejection)]
        if strict:
            raise_if_rejected(index.layout, rejected)
        good = [a for a in items if isinstance(a, Article)]
        with index.layout.writer_lock():
            index.refresh()
            stored = index.state.catalog.hashes([a.id for a in good])
            to_embed = [
                a for a in good if a.id not in stored or stored[a.id].content_hash != a.content_hash
            ]
            meta_only = [
                a
                for a in good
                if a.id in stored
                and stored[a.id].content_hash == a.content_hash
                and stored[a.id].record_hash != a.record_hash
            ]
            vectors = self._embedded(to_embed, precomputed, progress=progress)
            upserts: list[tuple[Article, np.ndarray | None]] = list(
                zip(to_embed, vectors, strict=True)
            )
            upserts += [(a, None) for a in meta_only]
            if upserts:
                ids = [a.id for a, _ in upserts]
                before = self._lists.before_write(ids)
                stories = self._stories.before_write(index.state.catalog.int_ids(ids).values())
                self._apply(upserts, [])
                # A metadata change moves a story too (its date, its section's rules).
                touched = index.state.catalog.int_ids(ids)
                moved = self._stories.after_write(stories)
                self._lists.after_write(before, sorted(touched.values()), [], stories=moved)
                index.state.catalog.finish_lists_write()
                self._published(moved)
            write_rejects(index.layout, rejected)
            added = sum(1 for a in to_embed if a.id not in stored)
            return UpdateReport(
                added=added,
                reembedded=len(to_embed) - added,
                metadata_updated=len(meta_only),
                unchanged=len(good) - len(to_embed) - len(meta_only),
                rejected=tuple(rejected),
                rejects_path=str(index.layout.rejects_path) if rejected else None,
                total=index.state.catalog.count(),
            )

    def remove(self, article_ids: list[str]) -> UpdateReport:
        """Delete articles by (checked, distinct) id; those not in the index are ``missing``."""
        index = self._index
        with index.layout.writer_lock():
            index.refresh()
            present = index.state.catalog.int_ids(article_ids)
            if present:
                before = self._lists.before_write(list(present))
                stories = self._stories.before_write(present.values())
                self._apply([], list(present))
                moved = self._stories.after_write(stories)
                self._lists.after_write(before, [], sorted(present.values()), stories=moved)
                index.state.catalog.finish_lists_write()
                self._published(moved)
            return UpdateReport(
                removed=len(present),
                missing=tuple(a for a in article_ids if a not in present),
                total=index.state.catalog.count(),
            )

    def _published(self, moved: set[int]) -> None:
        """Stories changed after the write's own commit (related lists read them): a new
        manifest stamp tells every reader, caches included, that answers may have changed."""
        if moved:
            self._index.republish()

    def checkpoint(self) -> None:
        """Write a vector snapshot of the current state and forget replayed history."""
        index = self._index
        with index.layout.writer_lock():
            index.refresh()
            with index.lock.write():
                index.state.checkpoint()
            self._lists.after_checkpoint()
            # Republish the manifest unchanged: its new stamp tells other
            # processes to move to the new snapshot on their next query.
            index.republish()

    def _embedded(
        self, articles: list[Article], pre: PrecomputedEmbeddings | None, *, progress: bool
    ) -> np.ndarray:
        """The articles' vectors: from ``pre`` where the text hash matches, else the model's."""
        if not articles:
            return np.zeros((0, self._index.manifest["model"]["dimension"]), dtype=np.float32)
        parts = []

        def embed_batch(batch: Sequence[Article]) -> np.ndarray:
            return self._index.embed([(a.title, a.body) for a in batch])

        with progress_bar(progress, len(articles), "embedding") as bar:
            for batch in batched(articles, ARTICLE_BATCH):
                parts.append(
                    pre.vectors_for(batch, embed_batch) if pre is not None else embed_batch(batch)
                )
                bar.update(len(batch))
        return np.concatenate(parts)

    def _apply(self, upserts: list[tuple[Article, np.ndarray | None]], removals: list[str]) -> None:
        # Caller holds the file lock; the write lock makes the catalog commit
        # and the in-memory change one step for readers in this process.
        index = self._index
        with index.lock.write():
            state = index.state
            state.apply(upserts, removals)
            # New and re-embedded articles (the catalog cleared theirs in the commit), and
            # any a writer killed before computing them left (see missing_pool_stats).
            grown = self._outgrown()  # every article's, when the archive has outgrown them
            missing = set(state.catalog.missing_pool_stats()) | grown
            config = default_ranking(index.manifest)
            if missing:
                ids = np.array(sorted(missing), dtype=np.int64)
                near = compute_pool_stats(
                    state.store, state.lexical, state.catalog, ids, config=config,
                    nearest=0 if grown or self._lists.usable() else _NEAREST_STATS,
                )  # fmt: skip
                if near:
                    nearest = np.array(sorted(near), dtype=np.int64)
                    compute_pool_stats(
                        state.store, state.lexical, state.catalog, nearest, config=config
                    )
                    ids = np.concatenate([ids, nearest])
                # This connection's own commits leave its data version as it was.
                state.forget(ids.tolist())
            pending = index.state.pending_changes()
            if pending is None or pending >= _CHECKPOINT_CHANGES:
                index.state.checkpoint()
                self._lists.after_checkpoint()
            self._touch_manifest(grown=bool(grown))

    def _outgrown(self) -> set[int]:
        """Every article, once the archive has grown by a quarter since their pool statistics
        were computed: an article's statistics describe its pool in the archive of the day,
        and an archive grown from a few articles would rank by the pools of its first days.
        Geometric growth keeps the cost, one pass over the archive, a constant per article
        amortised. Stored lists, which pin the statistics they were ranked with, turn stale."""
        catalog = self._index.state.catalog
        basis, count = catalog.pool_stats_basis(), catalog.count()
        if basis is not None and count < _POOL_GROWTH * max(basis, 1):
            return set()
        catalog.set_pool_stats_basis(count)
        if basis is None:  # an index from before the basis was kept: counted from now
            return set()
        catalog.mark_lists_stale(
            "the archive grew by a quarter and every article's pool statistics were computed"
            " again; recompute the lists with 'related --all --store-lists'"
        )
        return {i for i, _ in catalog.all_ids()}

    def _touch_manifest(self, *, grown: bool = False) -> None:
        """The manifest's counts and time; once the archive has outgrown its pool statistics
        (``grown``: the stored lists are stale then anyway), what the index estimates from the
        archive (its lexical weight, its time prior's curve) is estimated again too."""
        index = self._index
        manifest = dict(index.manifest)
        manifest["updated_at"] = now()
        manifest["counts"] = {"articles": index.state.catalog.count()}
        if grown:
            manifest = recalibrated(index.state, self._ranker, manifest)[0]
        index.set_manifest(manifest)
