"""The keeper of stored related lists: equal to a fresh recompute, write after write.

:meth:`ListKeeper.store` ranks every article once and stores its list with its
pool's bounds, pinning the lexical statistics so that a write changes only the
lists it reaches. Around each write the update path calls :meth:`ListKeeper.before_write`
(the touched articles as they were) and :meth:`ListKeeper.after_write` (recompute
exactly the lists the write changed; :mod:`recommender.stored_lists.lists` says which).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence

import numpy as np

from recommender.embedding.encoders import ARTICLE_BATCH
from recommender.index.catalog import ListRow, StoredLists
from recommender.index.live import LiveIndex
from recommender.lexical.index import PinnedStats
from recommender.ranking.batches import chunked, counted, progress_bar, ranked_batches
from recommender.ranking.ranker import Ranker, to_matches
from recommender.ranking.scoring import Candidates, RankingConfig, pair_scores
from recommender.stored_lists.lists import ListOwners, Reach, Written
from recommender.stores import VectorStore
from recommender.types import Match, StoredList, StoredListsStatus, StoredStanding

__all__ = ["ListKeeper"]

#: Articles ranked per batch while lists are stored or refreshed.
_BATCH = ARTICLE_BATCH
#: How far under a list's k-th score a newcomer is still tested as entering it: stored
#: scores are rounded to 6 decimals, and the test's cosines are summed another way.
_SCORE_EPSILON = 1e-4
_RECOMPUTE = "recommender related --all --store-lists"


class ListKeeper:
    """Stored related lists of one index, held equal to a recompute under writes."""

    def __init__(self, index: LiveIndex, ranker: Ranker) -> None:
        self._index = index
        self._ranker = ranker
        #: The stored lists' owners, for the reverse tests of writes (built on first write).
        self._owners: ListOwners | None = None
        #: How many stored lists the last write recomputed (what keeping them exact cost).
        self.refreshed = 0

    # -- storing and reading -----------------------------------------------------------

    def store(self, k: int, config: RankingConfig, *, progress: bool, workers: int) -> int:
        """Rank every article and store its list (see ``Recommender.store_lists``)."""
        index = self._index
        with index.layout.writer_lock():
            index.refresh()
            token = self._pin_lexical()
            rules = self._ranker.rules
            info = StoredLists(k, config.to_dict(), rules.digest if rules else None, pin=token)
            everything = index.state.catalog.all_ids()
            chunks = chunked(everything, _BATCH)
            lists = ranked_batches(
                index, self._ranker, chunks, k, config, workers=workers, rows=True
            )
            with progress_bar(progress, len(everything), "related lists") as bar:
                rows = (row for chunk in counted(lists, bar) for row in chunk)
                count = index.state.catalog.replace_lists(info, rows)
            self._owners = None
            return count

    def _pin_lexical(self) -> str:
        """Pin the live lexical statistics, in the catalog and here; return the pin's token.

        Republishes the manifest so that other processes (workers too) pin them on
        their next query.
        """
        index = self._index
        state = index.state
        df, live = state.lexical.document_stats()
        token = secrets.token_hex(8)
        state.catalog.set_lexical_pin(token, live, df)
        with index.lock.write():
            state.lexical.pin(PinnedStats(token, live, df))
        index.republish()
        return token

    def exists(self) -> bool:
        """Whether lists are stored in the index (usable or not)."""
        return self._index.state.catalog.lists_info() is not None

    def status(self) -> StoredListsStatus | None:
        """How the stored lists stand, None when none are stored (``stored_lists_status``)."""
        info = self._index.state.catalog.lists_info()
        if info is None:
            return None
        stale, same_rules = self._standing(info)
        usable = stale is None and same_rules
        return StoredListsStatus(info.k, usable, stale, not same_rules, _RECOMPUTE)

    def _standing(self, info: StoredLists) -> tuple[str | None, bool]:
        """Why stored lists may differ from a recompute (None: they do not), and whether
        the index's rules are still the ones they were computed with."""
        rules = self._ranker.rules
        current = self._index.state.lexical.pinned
        stale = info.stale
        if stale is None and info.pin != (current.token if current else None):
            stale = "the lexical statistics were pinned again after these lists were computed"
        if stale is None and "story_first" not in info.ranking:
            stale = "these lists were computed before related lists ranked the own story first"
        return stale, info.rules == (rules.digest if rules else None)

    def usable(self) -> StoredLists | None:
        """The stored lists' settings if they equal a recompute under the current rules."""
        info = self._index.state.catalog.lists_info()
        if info is None:
            return None
        stale, same_rules = self._standing(info)
        return info if stale is None and same_rules else None

    def lookup(
        self, int_id: int, k: int | None, ranking: RankingConfig | None
    ) -> StoredList | None:
        """The stored list that answers this query, if one does.

        None when no usable list is stored, or it is shorter than ``k``, or was
        ranked otherwise than ``ranking``. The caller holds the read lock.
        """
        info = self.usable()
        if (
            info is None
            or (k is not None and k > info.k)
            or (ranking is not None and ranking.to_dict() != info.ranking)
        ):
            return None
        state = self._index.state
        found = state.catalog.stored_list(int_id)
        if found is None:
            return None
        computed_at, hits = found
        return StoredList(computed_at, to_matches(state, [hits[:k] if k is not None else hits])[0])

    def stored_list(self, article_id: str) -> StoredList | None:
        """An indexed article's stored list, if one is stored and usable (``stored_list``)."""
        self._index.refresh()
        with self._index.lock.read():
            return self.lookup(self._index.int_id(article_id), None, None)

    def standing(self, article_id: str, matches: Sequence[Match], k: int) -> StoredStanding:
        """How the answer ``matches`` of a ``fresh=False`` query stands (``stored_standing``)."""
        stored = self.stored_list(article_id)
        computed_at = None
        if stored is not None and [m.id for m in stored.matches[:k]] == [m.id for m in matches]:
            computed_at = stored.computed_at
        status = self.status()
        if status is None or not status.stale:
            return StoredStanding(computed_at)
        return StoredStanding(computed_at, status.stale, status.recompute)

    # -- keeping them exact under writes ----------------------------------------------------

    def before_write(self, article_ids: Sequence[str]) -> Written | None:
        """The touched articles as the index holds them before a write (None: no usable lists)."""
        info = self.usable()
        if info is None:
            return None
        index = self._index
        state = index.state
        # The reverse tests read every list's owner: build them while all are indexed.
        config = RankingConfig.from_dict(info.ranking)
        self._owners_index(config)
        ids = np.array(sorted(state.catalog.int_ids(article_ids).values()), dtype=np.int64)
        with index.lock.read():
            before = Written.read(state.store, state.lexical, ids)
            before.sections = set(state.sections(ids).tolist())
            before.times = state.published(before.ids, lead_dates=config.lead_dates)
        return before

    def after_write(
        self,
        before: Written | None,
        touched: list[int],
        removed: list[int],
        *,
        stories: Iterable[int] = (),
    ) -> None:
        """Recompute exactly the stored lists a write changed. Caller holds the writer lock.

        Affected: the touched articles' own lists, those of the articles of ``stories``
        (every story the write changed: a list ranks its owner's story first), the lists
        holding one, the
        lists whose candidate pool one of them left, the lists a newcomer enters
        high enough or crowds a listed item out of (see :mod:`recommender.stored_lists.lists`),
        and those editorial rules tie to them (pins, backfill). Every other list
        keeps its items and scores: under pinned statistics an item's score
        depends on the two articles alone.
        """
        self.refreshed = 0
        info = self.usable() if before is not None else None
        if before is None or info is None or not (touched or removed):
            return
        config = RankingConfig.from_dict(info.ranking)
        index = self._index
        catalog = index.state.catalog
        with index.lock.read():
            state = index.state
            after = Written.read(state.store, state.lexical, np.array(touched))
            after.sections = set(state.sections(after.ids).tolist())
            after.times = state.published(after.ids, lead_dates=config.lead_dates)
            owners, roomier = self._affected(before, after, config)
            owners = (owners | set(stories)) - set(removed)
            ordered = np.array(sorted(owners), dtype=np.int64)
            lists = [
                row
                for start in range(0, len(ordered), _BATCH)
                for row in self._ranker.list_rows(
                    state, ordered[start : start + _BATCH], info.k, config
                )
            ]
        bounds = [(o, b) for o, b in roomier.items() if o not in owners and o not in removed]
        catalog.update_lists(lists, removed, bounds)
        self._patch_owners(lists, removed, bounds, config)
        self.refreshed = len(lists)

    def after_checkpoint(self) -> None:
        """Mark stored lists stale if the new snapshot searches differently (an IVF rebuild).

        An exact (flat) store finds the same neighbours before and after; an IVF
        index is retrained at each snapshot (new lists, new nprobe), which moves
        approximate candidate pools in ways no per-write test can follow.
        """
        store = self._index.state.store
        if not store.exact:
            self._index.state.catalog.mark_lists_stale(
                f"the vector snapshot was rebuilt as {_store_kind(store)!r} "
                "(approximate search) at a checkpoint"
            )

    def _affected(
        self, before: Written, after: Written, config: RankingConfig
    ) -> tuple[set[int], dict[int, np.ndarray]]:
        """Owners of the stored lists a write may change, and the new bounds of lists that
        newcomers enter without changing them; the caller holds the read lock."""
        state = self._index.state
        catalog = state.catalog
        touched = {int(i) for i in before.ids} | {int(i) for i in after.ids}
        owners = touched | catalog.owners_of(sorted(touched))
        if config.feedback_docs:
            # Neighbour feedback re-queries from the top hits: no pool bound holds.
            return owners | {int(i) for i in catalog.stored_lists()}, {}
        reverse = self._owners_index(config)
        use_lexical = config.method != "dense"
        kept = before.unmoved(after)
        # Leaving a pool lets an unknown next candidate in: those lists are all recomputed.
        # Ranking the own story first, so does a date moved by a metadata change: it can
        # lower an unlisted article's score and let the owner's story in from below the
        # depth ranked (ranking/own_story.py).
        left = ~np.isin(before.ids, kept)
        if config.story_first:
            left |= np.isin(before.ids, before.redated(after, kept))
        gone = before.subset(left)
        owners.update(reverse.reach(gone, state.lexical, use_lexical=use_lexical).owners.tolist())
        reach = reverse.reach(after, state.lexical, use_lexical=use_lexical)
        entered, roomier = self._entered(reach, after, kept, config)
        ruled = self._ruled_owners(touched, before.sections | after.sections, reverse.owners)
        owners |= entered | ruled
        return owners, roomier

    def _entered(
        self, reach: Reach, after: Written, kept: np.ndarray, config: RankingConfig
    ) -> tuple[set[int], dict[int, np.ndarray]]:
        """Owners whose lists the ``after`` articles change from inside their pools, and
        the new bounds of the others that newcomers entered.

        A newcomer (not ``kept``) changes a list when more newcomers enter a side of
        its pool than that side has room below its listed items (one would push a
        listed item out), or when it scores at least the k-th item; an article that
        stays in a pool (a metadata change), when its score reaches the k-th item.
        Entry scores are left as they were: they only rise, so testing against
        them stays a superset.
        """
        new = ~np.isin(after.ids, kept)
        inside = reach.dense | reach.lexical
        b = reach.bounds
        dense_new = (reach.dense & new).sum(axis=1)
        lexical_new = (reach.lexical & new).sum(axis=1)
        affected = (dense_new > b[:, 2]) | (lexical_new > b[:, 3]) | np.isneginf(b[:, 4])
        for j in range(len(after.ids)):
            check = inside[:, j] & ~affected
            if check.any():
                scores = self._scores_in(reach.owners[check], after, j, config)
                affected[check] |= scores >= b[check, 4] - _SCORE_EPSILON
        roomier = b.copy()
        roomier[:, 2] -= dense_new
        roomier[:, 3] -= lexical_new
        moved = ~affected & ((dense_new > 0) | (lexical_new > 0))
        updates = {int(o): row for o, row in zip(reach.owners[moved], roomier[moved], strict=True)}
        return {int(o) for o in reach.owners[affected]}, updates

    def _scores_in(
        self, owners: np.ndarray, after: Written, j: int, config: RankingConfig
    ) -> np.ndarray:
        """The score article ``j`` of ``after`` gets in each owner's list (rules aside).

        Owners without statistics of their own get +inf: their lists are recomputed.
        """
        state = self._index.state
        lexical = state.lexical
        article = np.repeat(after.ids[j], len(owners))
        own = state.pool_stats(owners)
        # The cosine from each owner's side, summed in another order than the ranking
        # sums it (float32 rounding: _SCORE_EPSILON covers it).
        weights = lexical.query_weights(
            lexical.stored_counts(owners), max_terms=config.max_query_terms
        )
        counts = after.counts[j]
        inv = lexical.inverse_norms(counts)[0]
        # Sparse x sparse: densifying the article's counts would allocate all 2**20 terms.
        cosines = (weights @ counts.T).toarray().ravel() * inv
        dense = state.store.get(owners).astype(np.float64) @ after.vectors[j].astype(np.float64)
        pairs = Candidates(
            ids=article,
            dense=dense.astype(np.float32),
            lexical=cosines.astype(np.float32),
            vectors=None,
            published=state.published(article, lead_dates=config.lead_dates),
            years=state.years(article, lead_dates=config.lead_dates),
            stats=state.pool_stats(article),
            query_stats=own,
        )
        times = state.published(owners, lead_dates=config.lead_dates)
        years = state.years(owners, lead_dates=config.lead_dates)
        scores = pair_scores(pairs, config, query_times=times, query_years=years)
        out: np.ndarray = np.where(np.isfinite(own).all(axis=1), scores, np.inf)
        return out

    def _ruled_owners(self, touched: set[int], sections: set[str], owners: np.ndarray) -> set[int]:
        """Owners (of ``owners``, every stored list's) whose lists editorial rules tie to
        the touched articles: pins, backfill."""
        state = self._index.state
        editorial = self._ranker.editorial(state)
        if editorial is None:
            return set()
        out = {owner for owner, pins in editorial.pinned.items() if touched & set(pins)}
        minimum = editorial.rules.min_score
        if minimum is None or minimum.fallback != "backfill":
            return out
        # A list filled with the latest articles of its section changes with any
        # write in that section (a list without a section takes any section's).
        # Only those owners' lists are read, not every stored list per write.
        owner_sections = state.sections(owners)
        near = owners[np.isin(owner_sections, [*sections, ""])]
        for owner, items in state.catalog.stored_lists(near.tolist()).items():
            pins = set(editorial.pinned.get(owner, []))
            above = sum(1 for i, s in items if i not in pins and round(s, 6) >= minimum.score)
            if above < minimum.min_items:
                out.add(owner)
        return out

    def _owners_index(self, config: RankingConfig) -> ListOwners:
        """The reverse-test index of every stored list, current with the catalog."""
        state = self._index.state
        version = state.catalog.lists_version()
        if self._owners is None or self._owners.version != version:
            self._owners = ListOwners.load(state.catalog, state.store, state.lexical, config)
        return self._owners

    def _patch_owners(
        self,
        lists: list[ListRow],
        removed: list[int],
        bounds: list[tuple[int, np.ndarray]],
        config: RankingConfig,
    ) -> None:
        """Bring the reverse-test index up to the lists and bounds just stored."""
        reverse = self._owners
        if reverse is None:
            return
        index = self._index
        state = index.state
        reverse.drop(removed)
        reverse.set_bounds(bounds)
        if lists:
            owners = np.array([o for o, _, _ in lists], dtype=np.int64)
            fresh = np.array([b for _, _, b in lists], dtype=np.float64)
            with index.lock.read():
                reverse.put(owners, fresh, state.store, state.lexical, config)
        reverse.version = state.catalog.lists_version()


def _store_kind(store: VectorStore) -> str:
    inner = getattr(store, "inner", store)
    return str(getattr(inner, "kind", inner.name))
