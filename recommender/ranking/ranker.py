"""The ranking pipeline: a batch of queries into ranked lists, editorial rules applied.

:class:`Ranker` is the one place where queries become lists: candidate pools from
both sides (:mod:`~recommender.ranking.retrieval`), the hybrid score
(:mod:`~recommender.ranking.scoring`), neighbour feedback, the index's editorial
rules (:mod:`~recommender.ranking.rules`) and explanations. related, related_all,
similar, the stored lists, the CLI and the service all rank through it, so they agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from recommender.filters import Filters
from recommender.index.catalog import CatalogRow, ListRow, lexical_text
from recommender.index.layout import write_json_atomic
from recommender.index.live import file_stamp
from recommender.index.state import IndexState
from recommender.ranking.own_story import OwnStory
from recommender.ranking.queries import TextQuery
from recommender.ranking.retrieval import QueryBatch, Retriever
from recommender.ranking.rules import Editorial, QueryStory, Rules
from recommender.ranking.scoring import PoolBounds, RankingConfig, pool_bounds, rank
from recommender.stores import VectorStore
from recommender.types import Match

__all__ = ["Hits", "Ranker", "to_matches"]

#: Ranked (int id, score) pairs of one query, best first.
Hits = list[tuple[int, float]]


class Ranker:
    """Ranks batches of queries against an index state, with the index's editorial rules.

    Every method takes the state to rank against; the caller holds its read lock.
    """

    def __init__(self, rules_path: Path) -> None:
        self.rules_path = rules_path
        self._rules_stamp: tuple[int, int] | None = None
        self._rules: Rules | None = None
        self._editorial: tuple[int, IndexState, Editorial] | None = None

    @property
    def rules(self) -> Rules | None:
        """The editorial rules in ``rules_path`` (read again when the file changes), or None."""
        stamp = file_stamp(self.rules_path)
        if stamp != self._rules_stamp:
            self._rules = Rules.load(self.rules_path) if stamp is not None else None
            self._rules_stamp = stamp
            self._editorial = None
        return self._rules

    def set_rules(self, rules: Rules | None) -> None:
        """Replace the rules file atomically (remove it for None); the caller holds the
        index's writer lock."""
        if rules is None:
            self.rules_path.unlink(missing_ok=True)
        else:
            write_json_atomic(self.rules_path, rules.to_dict())

    def editorial(self, state: IndexState) -> Editorial | None:
        """The rules resolved against ``state`` (int ids, sections, dates), or None."""
        rules = self.rules
        if rules is None:
            return None
        cached = self._editorial
        if cached is not None and cached[0] == state.seq and cached[1] is state:
            return cached[2]
        named = set(rules.pinned) | {p for pins in rules.pinned.values() for p in pins}
        named |= {a for pair in rules.blocked_pairs for a in pair}
        editorial = Editorial(
            rules,
            state.catalog.int_ids(sorted(named)),
            sections_of=state.sections,
            times_of=state.published,
            latest=state.catalog.latest,
        )
        self._editorial = (state.seq, state, editorial)
        return editorial

    def matches(
        self,
        state: IndexState,
        batch: QueryBatch,
        k: int,
        filters: Filters,
        config: RankingConfig,
        *,
        times: np.ndarray | None = None,
        years: np.ndarray | None = None,
        story_times: np.ndarray | None = None,
        sections: Sequence[str | None] | None = None,
        rules: bool = True,
    ) -> list[list[Match]]:
        """Rank a batch of queries into matches (see :meth:`hits`)."""
        ranked = self.hits(
            state,
            batch,
            k,
            filters,
            config,
            times=times,
            years=years,
            story_times=story_times,
            sections=sections,
            rules=rules,
        )
        return to_matches(state, ranked)

    def related(
        self, state: IndexState, int_id: int, k: int, filters: Filters, config: RankingConfig
    ) -> list[Match]:
        """The related list of the indexed article ``int_id``."""
        batch = QueryBatch.of_articles(state.store, state.lexical, np.array([int_id]))
        return self.matches(state, batch, k, filters, config)[0]

    def similar(
        self,
        state: IndexState,
        query: TextQuery,
        vectors: np.ndarray,
        k: int,
        filters: Filters,
        config: RankingConfig,
    ) -> list[Match]:
        """The related list of a story given as text, with its embedding ``vectors``."""
        counts = state.lexical.counts([lexical_text(query.title, query.body)])
        batch = QueryBatch(vectors, counts, [None])
        return self.matches(
            state,
            batch,
            k,
            filters,
            config,
            times=np.array([query.when]),
            years=np.array([query.year]),
            story_times=np.array([query.stated]),
            sections=[query.section],
        )[0]

    def hits(
        self,
        state: IndexState,
        batch: QueryBatch,
        k: int,
        filters: Filters,
        config: RankingConfig,
        *,
        times: np.ndarray | None = None,
        years: np.ndarray | None = None,
        story_times: np.ndarray | None = None,
        sections: Sequence[str | None] | None = None,
        rules: bool = True,
        entries: list[PoolBounds] | None = None,
    ) -> list[Hits]:
        """Rank a batch of queries into (int id, score) lists.

        ``times`` are the queries' publication times, ``years`` their years (the time
        prior's year scale) and ``sections`` their sections; by default those of the
        indexed query articles, looked up only when the time prior or the index's
        editorial rules need them.
        This is the one place where editorial rules are applied (``rules``) and an
        indexed query's own story is moved first (:mod:`~recommender.ranking.own_story`,
        before the rules). ``entries`` collects each pool's bounds (what stored lists
        keep), at the depth ranked.
        """
        editorial = self.editorial(state) if rules else None
        skip = np.array([-1 if s is None else s for s in batch.skip], dtype=np.int64)
        if times is None:
            times = np.full(len(batch.skip), np.nan)
            if config.time_weight or editorial is not None:
                times = state.published(skip, lead_dates=config.lead_dates)
        if years is None:
            years = np.full(len(batch.skip), np.nan)
            if config.time_weight and config.year_weight:
                years = state.years(skip, lead_dates=config.lead_dates)
        stories: list[QueryStory] = []
        if editorial is not None:
            # Rules read the stated date only: a dateline guess is for the time prior.
            if story_times is None:
                story_times = state.published(skip, lead_dates=False)
            if sections is None:
                found = state.sections(skip).tolist()
            else:
                found = [(s or "").casefold() for s in sections]
            stories = [
                QueryStory(None if i < 0 else int(i), sec, None if np.isnan(t) else float(t))
                for i, sec, t in zip(skip, found, story_times, strict=True)
            ]
        include = (
            state.catalog.filter_ids(
                sections=filters.sections,
                languages=filters.languages,
                since=filters.since,
                until=filters.until,
            )
            if filters.restricts
            else None
        )
        excluded = list(state.catalog.int_ids(filters.exclude).values())
        exclude = np.array(excluded, dtype=np.int64) if excluded else None
        masks = (
            (lambda q, ids: editorial.allowed(stories[q], ids)) if editorial is not None else None
        )
        own = (
            OwnStory(state.catalog, batch.skip, k)
            if config.story_first and not config.diversity
            else None
        )
        pools = _Pools(state, k, config, (times, years), include, exclude, filters, masks, own)
        ranked = pools.rank(batch, entries)
        if config.feedback_docs:
            ranked = pools.rank(_with_feedback(batch, ranked, state.store, config))
        if editorial is not None:
            passes = _passes(include, excluded)
            ranked = [
                editorial.finish(story, hits, k, passes=passes)
                for story, hits in zip(stories, ranked, strict=True)
            ]
        return ranked

    def list_rows(
        self,
        state: IndexState,
        ids: np.ndarray,
        k: int,
        config: RankingConfig,
        *,
        rules: bool = True,
    ) -> list[ListRow]:
        """Stored-list rows (owner, hits with scores as shown, entry bounds) of indexed ``ids``;
        ``rules=False``: by content alone (the pairs stories are grouped by)."""
        ids = np.asarray(ids, dtype=np.int64)
        present = ids[state.lexical.rows(ids) >= 0]
        if not len(present):
            return []
        batch = QueryBatch.of_articles(state.store, state.lexical, present)
        entries: list[PoolBounds] = []
        ranked = self.hits(state, batch, k, Filters(), config, rules=rules, entries=entries)
        return [
            (int(i), [(h, round(s, 6)) for h, s in hits], entry.as_tuple())
            for i, hits, entry in zip(present, ranked, entries, strict=True)
        ]

    def explained(
        self, state: IndexState, title: str, body: str, matches: list[Match]
    ) -> list[Match]:
        """``matches`` with explanations against the query story (title, body)."""
        from recommender.ranking.explain import Story, explain, prepare

        lexical = state.lexical
        int_ids = state.catalog.int_ids([m.id for m in matches])
        stories = state.catalog.stories(list(int_ids.values()))
        query = prepare(Story(title, body), lexical.analyze)
        sides = {
            m.id: prepare(Story(*stories[int_ids[m.id]]), lexical.analyze)
            for m in matches
            if int_ids.get(m.id) in stories  # not removed since it was ranked
        }
        # Every term of every story, hashed and weighed in one pass.
        vocabulary = sorted(set(query.terms).union(*(s.terms for s in sides.values())))
        weights = dict(zip(vocabulary, lexical.term_idf(vocabulary).tolist(), strict=True))

        def idf(terms: Sequence[str]) -> list[float]:
            return [weights.get(t, 0.0) for t in terms]

        return [
            replace(m, explanation=explain(query, sides[m.id], idf=idf, analyze=lexical.analyze))
            if m.id in sides
            else m
            for m in matches
        ]


def to_matches(state: IndexState, ranked: list[Hits]) -> list[list[Match]]:
    """Ranked (int id, score) lists as matches; ids removed since they were ranked drop out."""
    # One catalog read for the whole batch's results.
    rows = state.catalog.rows(list({i for hits in ranked for i, _ in hits}))
    return [[_match(rows[i], score) for i, score in hits if i in rows] for hits in ranked]


class _Pools:
    """One batch's candidate pools, ranked with its filters and rules' masks."""

    def __init__(
        self,
        state: IndexState,
        k: int,
        config: RankingConfig,
        when: tuple[np.ndarray, np.ndarray],
        include: np.ndarray | None,
        exclude: np.ndarray | None,
        filters: Filters,
        masks: Callable[[int, np.ndarray], np.ndarray | None] | None,
        own: OwnStory | None = None,
    ) -> None:
        self.state = state
        self.k = k
        self.own = own
        self.config = config
        #: The queries' times and years (NaN: unknown).
        self.times, self.years = when
        self.include = include
        self.exclude = exclude
        self.filters = filters
        self.masks = masks

    def rank(self, batch: QueryBatch, entries: list[PoolBounds] | None = None) -> list[Hits]:
        """Rank each query's pool, its own story first (``own``); ``entries`` collects each
        pool's bounds."""
        state, config, k, filters = self.state, self.config, self.k, self.filters
        depth = self.own.depth if self.own is not None else k
        # While lists are stored, an indexed query's own statistics standardise its side.
        # A raw score's time prior is scaled by the query's spread: its own statistics keep
        # that independent of the pool too (scoring._time_unit).
        own = (
            state.pool_stats(np.array([-1 if s is None else s for s in batch.skip]))
            if (state.lexical.pinned is not None and _pool_free(config))
            or (config.raw and config.time_weight)
            else None
        )
        pools = Retriever(state.store, state.lexical).pools(
            batch,
            candidates=max(config.candidates, depth),
            include=self.include,
            exclude=self.exclude,
            max_query_terms=config.max_query_terms,
            candidate_terms=config.candidate_terms,
            use_lexical=config.method != "dense",
            where=filters if state.store.keeps_metadata and filters.restricts else None,
            with_vectors=config.dedupe_threshold is not None or config.diversity > 0,
            # Settling every cut one fixed way is what stored lists (pinned while they
            # exist) need to equal a recompute; other queries skip its cost.
            exact=state.lexical.pinned is not None,
        )
        out: list[Hits] = []
        for q, (pool, when, year) in enumerate(zip(pools, self.times, self.years, strict=True)):
            if config.time_weight:
                pool.published = state.published(pool.ids, lead_dates=config.lead_dates)
                if config.year_weight:
                    pool.years = state.years(pool.ids, lead_dates=config.lead_dates)
            if config.method == "hybrid":
                pool.stats = state.pool_stats(pool.ids)
            if own is not None and np.isfinite(own[q]).all():
                pool.query_stats = own[q]
            query_time = None if np.isnan(when) else float(when)
            query_year = None if np.isnan(year) else float(year)
            allowed = self.masks(q, pool.ids) if self.masks is not None else None
            out.append(
                rank(
                    pool,
                    depth,
                    config,
                    query_time=query_time,
                    query_year=query_year,
                    allowed=allowed,
                )
            )
        if self.own is None:
            shown = out
            if entries is not None:
                pairs = zip(pools, out, strict=True)
                entries.extend(pool_bounds(pool, hits, k, config) for pool, hits in pairs)
        else:
            shown = self.own.first(out)
            if entries is not None:
                entries.extend(
                    self.own.bounds(q, pool, window, hits, config)
                    for q, (pool, window, hits) in enumerate(zip(pools, out, shown, strict=True))
                )
        return shown


def _pool_free(config: RankingConfig) -> bool:
    """Whether a candidate's score can be made independent of the rest of its pool."""
    return config.method == "hybrid" and config.fusion == "symmetric-z"


def _with_feedback(
    batch: QueryBatch, ranked: list[Hits], store: VectorStore, config: RankingConfig
) -> QueryBatch:
    """Rocchio on the dense side: move each query towards its top neighbours."""
    vectors = batch.vectors.copy()
    for row, hits in enumerate(ranked):
        top = np.array([i for i, _ in hits[: config.feedback_docs]], dtype=np.int64)
        if len(top):
            vectors[row] += config.feedback_weight * store.get(top).mean(axis=0)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return QueryBatch(vectors, batch.counts, batch.skip)


def _passes(
    include: np.ndarray | None, excluded: list[int]
) -> Callable[[Sequence[int]], np.ndarray]:
    """The query filters as a mask function, for items the rules add (pins, backfill)."""
    inside = set(include.tolist()) if include is not None else None
    outside = set(excluded)

    def passes(ids: Sequence[int]) -> np.ndarray:
        return np.array(
            [(inside is None or int(i) in inside) and int(i) not in outside for i in ids],
            dtype=bool,
        )

    return passes


def _match(row: CatalogRow, score: float) -> Match:
    return Match(
        id=row.id,
        score=round(score, 6),
        title=row.title,
        url=row.url,
        published_at=row.published_at,
        section=row.section,
    )
