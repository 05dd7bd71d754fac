"""The Recommender facade: checks arguments and delegates (docs/architecture.md).

``index.live.LiveIndex`` holds the live generation, ``ranking.ranker.Ranker`` ranks,
``stored_lists.keeper.ListKeeper`` keeps stored lists exact, ``stories`` the archive's
stories, ``writes`` builds and updates.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from recommender.compiled import switch as compiled
from recommender.embedding.encoders import Encoder, make_encoder
from recommender.embedding.precomputed import PrecomputedEmbeddings
from recommender.filters import DateLike, Filters
from recommender.index import layout as storage
from recommender.index.events import EventLog
from recommender.index.live import LiveIndex, check_model, file_stamp
from recommender.index.state import IndexState
from recommender.ranking import buckets
from recommender.ranking.batches import related_lists
from recommender.ranking.calibration import Calibration, recalibrate
from recommender.ranking.click_weights import ClickWeights, click_weights
from recommender.ranking.queries import check_fresh, check_k, check_page, text_query
from recommender.ranking.ranker import Ranker
from recommender.ranking.rules import RULES_FILE, Rules
from recommender.ranking.scoring import RankingConfig
from recommender.stored_lists.keeper import ListKeeper
from recommender.stories.keeper import StoryKeeper
from recommender.stories.threads import Stories
from recommender.text import checked_id, is_valid_text
from recommender.types import (
    Article,
    ArticleListing,
    IndexInfo,
    Match,
    StoredList,
    StoredListsStatus,
    StoredStanding,
    StoryThread,
    UpdateReport,
)
from recommender.writes.build import Build
from recommender.writes.inputs import ArticleInput, open_precomputed
from recommender.writes.update import Updater

__all__ = ["Recommender"]


class Recommender:
    """An index on disk to query and update (:meth:`open`, :meth:`build`). Queries by id never
    load the model; threads query while one writes (each write appears whole); other
    processes' writes are picked up on the next query."""

    def __init__(
        self, layout: storage.IndexLayout, state: IndexState, *, encoder: Encoder | None = None
    ) -> None:
        self._layout = layout
        self._index = LiveIndex(layout, state, encoder=encoder)
        self._ranker = Ranker(layout.root / RULES_FILE)  # checked on every query
        self._lists = ListKeeper(self._index, self._ranker)
        self._stories = Stories(self._index, StoryKeeper(self._index, self._ranker), self.version)
        self._writer = Updater(self._index, self._lists, self._stories.keeper, self._ranker)
        #: What the last build/upsert/remove did.
        self.report: UpdateReport | None = None
        #: The precomputed embeddings the last build/upsert read, with what it used of them.
        self.precomputed: PrecomputedEmbeddings | None = None

    @property
    def manifest(self) -> dict[str, Any]:
        """The live generation's manifest (replaced whole on every change)."""
        return self._index.manifest

    @property
    def refreshed_lists(self) -> int:
        """How many stored lists the last write recomputed (what keeping them exact cost)."""
        return self._lists.refreshed

    @property
    def ranking(self) -> RankingConfig:
        """The index's default ranking (from its manifest)."""
        return buckets.default_ranking(self.manifest)

    @property
    def buckets(self) -> dict[str, RankingConfig]:
        """Named ranking configurations (for A/B tests), from the manifest."""
        return buckets.bucket_rankings(self.manifest)

    def ranking_for(self, bucket: str | None) -> RankingConfig:
        """The ranking of a named bucket; the index's default for None."""
        self.refresh()
        return self.ranking if bucket is None else buckets.bucket_ranking(self.manifest, bucket)

    def set_bucket(self, name: str, options: Mapping[str, Any] | None) -> None:
        """Store (or with None remove) a named ranking configuration: options over the default."""
        buckets.set_bucket(self._index, name, options)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        encoder: Encoder | None = None,
        model: str | None = None,
    ) -> Recommender:
        """Open the index at ``path``; ``model``/``encoder`` must match the one that built it."""
        layout = storage.IndexLayout(path)
        manifest = layout.read_manifest()
        check_model(manifest, encoder.model_id if encoder else model, path)
        return cls(layout, IndexState.load(layout, manifest), encoder=encoder)

    @classmethod
    def build(
        cls,
        articles: Iterable[ArticleInput],
        path: str | os.PathLike[str],
        *,
        encoder: Encoder | None = None,
        model: str | None = None,
        strict: bool = False,
        progress: bool = False,
        total: int | None = None,
        ranking: RankingConfig | None = None,
        index_type: str = "auto",
        encoder_backend: str | None = None,
        workers: int | None = None,
        store: str = "faiss",
        embeddings: str | os.PathLike[str] | None = None,
        calibrate: bool = False,
        estimate_weight: bool = True,
    ) -> Recommender:
        """Build a new index at ``path`` and swap it in atomically; return it opened.

        ``store``: ``faiss`` or ``milvus://...``; ``embeddings``: from ``recommender embed``;
        ``calibrate``: also estimate the time prior (:meth:`calibrate`); ``estimate_weight``:
        the lexical weight from the archive, replacing ``ranking``'s. Bad records go to
        ``report`` and ``rejects.jsonl``; ``strict`` raises :class:`RejectedRecordsError` on
        any and publishes nothing.
        """
        layout = storage.IndexLayout(path)
        encoder = encoder or make_encoder(model, backend=encoder_backend)
        build = Build(
            layout, encoder, ranking=ranking, index_type=index_type, store=store, workers=workers,
            calibrate=calibrate, estimate_weight=estimate_weight,
        )  # fmt: skip
        report = build.run(
            articles, strict=strict, total=total, progress=progress, embeddings=embeddings
        )
        rec = cls.open(path, encoder=encoder)
        rec.precomputed, rec.report = build.precomputed, report
        rec.regroup_stories(progress=progress)
        return rec

    def related(
        self,
        article_id: str,
        *,
        k: int = 10,
        section: str | Iterable[str] | None = None,
        since: DateLike | None = None,
        until: DateLike | None = None,
        language: str | Iterable[str] | None = None,
        exclude: str | Iterable[str] = (),
        ranking: RankingConfig | None = None,
        explain: bool = False,
        fresh: bool = True,
        bucket: str | None = None,
        exclude_story: bool = False,
    ) -> list[Match]:
        """The related list of an indexed article, best first, never the article itself.

        ``explain`` adds :class:`Explanation` s; ``fresh=False`` answers from a usable stored list
        (no filters); ``bucket``: :meth:`set_bucket`; ``exclude_story``: background only."""
        check_k(k)
        if exclude_story:
            exclude = self._stories.with_thread(article_id, exclude)
        filters = Filters.make(
            section=section, since=since, until=until, language=language, exclude=exclude
        )
        check_fresh(fresh, filters)
        config = ranking or self.ranking_for(bucket)
        with self._index.reading() as state:
            int_id = self._index.int_id(article_id)
            asked = None if ranking is None and bucket is None else config
            stored = None if fresh else self._lists.lookup(int_id, k, asked)
            if stored is not None:
                matches = stored.matches
            else:
                matches = self._ranker.related(state, int_id, k, filters, config)
            if explain:
                title, body = state.catalog.stories([int_id])[int_id]
                matches = self._ranker.explained(state, title, body, matches)
            return matches

    def warm_up(self) -> bool:
        """Answer one query and drop it (loads what later ones reuse); whether one was asked."""
        compiled.load()
        if (article_id := self._index.state.catalog.any_id()) is not None:
            self.related(article_id)
        return article_id is not None

    def related_all(
        self,
        *,
        k: int = 10,
        ids: Iterable[str] | None = None,
        ranking: RankingConfig | None = None,
        batch_size: int = 256,
        progress: bool = False,
        workers: int = 1,
        rules: bool = True,
    ) -> Iterator[tuple[str, list[Match]]]:
        """Every article's (or ``ids``') related list, as (id, matches), ranked in batches by
        ``workers`` processes (writes may land between); ``rules=False``: no editorial rules."""
        check_k(k)
        config = ranking or self.ranking
        return related_lists(
            self._index, self._ranker, ids, k, config,
            batch_size=batch_size, progress=progress, workers=workers, rules=rules,
        )  # fmt: skip

    def similar(
        self,
        *,
        text: str | None = None,
        title: str | None = None,
        body: str | None = None,
        article: Article | None = None,
        k: int = 10,
        section: str | Iterable[str] | None = None,
        since: DateLike | None = None,
        until: DateLike | None = None,
        language: str | Iterable[str] | None = None,
        exclude: str | Iterable[str] = (),
        published_at: DateLike | None = None,
        ranking: RankingConfig | None = None,
        explain: bool = False,
        bucket: str | None = None,
    ) -> list[Match]:
        """Related articles for a story that need not be in the index: ``text``, or ``title``
        and/or ``body``, or an ``article``; ``published_at`` (or the article's date) turns on
        the time prior. ``explain``, ``bucket``: :meth:`related`."""
        check_k(k)
        config = ranking or self.ranking_for(bucket)
        query = text_query(text, title, body, article, published_at, config.lead_dates)
        filters = Filters.make(
            section=section, since=since, until=until, language=language, exclude=exclude
        )
        vectors = self._index.embed([(query.title, query.body)])
        with self._index.reading() as state:
            matches = self._ranker.similar(state, query, vectors, k, filters, config)
            if explain:
                matches = self._ranker.explained(state, query.title, query.body, matches)
            return matches

    def store_lists(
        self,
        *,
        k: int = 10,
        ranking: RankingConfig | None = None,
        progress: bool = False,
        workers: int = 1,
    ) -> int:
        """Store every article's related list; how many. Writes then keep them equal to a
        recompute (pinned lexical statistics: :mod:`recommender.stored_lists`)."""
        check_k(k)
        return self._lists.store(k, ranking or self.ranking, progress=progress, workers=workers)

    def has_stored_lists(self) -> bool:
        """Whether :meth:`store_lists` has stored lists in this index (usable or not)."""
        return self._lists.exists()

    def stored_lists_status(self) -> StoredListsStatus | None:
        """How the stored lists stand (None when none are stored)."""
        self.refresh()
        return self._lists.status()

    def stored_list(self, article_id: str) -> StoredList | None:
        """An article's stored list, if one is stored and usable."""
        return self._lists.stored_list(article_id)

    def stored_standing(
        self, article_id: str, matches: Sequence[Match], *, k: int
    ) -> StoredStanding:
        """How ``related(article_id, k=k, fresh=False)``'s answer ``matches`` stands."""
        return self._lists.standing(article_id, matches, k)

    @property
    def events(self) -> EventLog:
        """The index's append-only log of impressions and clicks (``events.sqlite3``)."""
        return EventLog(self._layout.root)

    def click_weights(self, *, since: str | None = None, seed: int = 0) -> ClickWeights:
        """The ranking weights that readers' clicks (:attr:`events`) learn, corrected for
        position bias, against the index's own on held-out clicks: a report, the ranking is
        not changed (:mod:`recommender.ranking.click_weights`). ``since``: ISO 8601 date."""
        cells = self.events.shown(since=since)
        config = self.ranking_for(None)
        with self._index.reading() as state:
            return click_weights(state, config, cells, seed=seed)

    def story(self, article_id: str) -> StoryThread:
        """The story of an article: its thread, in time order (:mod:`recommender.stories`)."""
        return self._stories.thread(article_id)

    def stories(self, *, min_size: int = 1) -> list[StoryThread]:
        """Every story with at least ``min_size`` articles, largest first."""
        return self._stories.all(min_size=min_size)

    def regroup_stories(self, *, progress: bool = False) -> None:
        """Group the whole archive into stories again and store them (a build does)."""
        self._stories.keeper.regroup(progress=progress)

    def article_at(self, url: str) -> str:
        """The id of the article at ``url`` (compared by ``urls.canonical_url``)."""
        return self._index.article_at(url)

    def get(self, article_id: str) -> Article:
        """The stored record of one article."""
        return self._index.article(article_id)

    def browse(self, *, query: str = "", offset: int = 0, limit: int = 20) -> ArticleListing:
        """Articles whose titles hold every word of ``query``, newest first (undated last)."""
        check_page(offset, limit)
        return self._index.browse(query, offset, limit)

    def sections(self) -> dict[str, int]:
        """Every section in the index, with its number of articles, sorted by name."""
        return self._index.sections()

    def field_values(self, field: str) -> dict[str, str | None]:
        """Article id -> a column (section, language, ...) or metadata field, as text."""
        return self._index.state.catalog.field_values(field)

    def __contains__(self, article_id: object) -> bool:
        text = str(article_id)
        return is_valid_text(text) and self._index.state.catalog.int_id(text) is not None

    def __len__(self) -> int:
        return self._index.state.catalog.count()

    def info(self) -> IndexInfo:
        """The manifest with live counts, for ``recommender info``."""
        self.refresh()
        return self._index.info(self._lists.status())

    @property
    def rules(self) -> Rules | None:
        """The editorial rules attached to the index (``rules.json``), or None."""
        return self._ranker.rules

    def set_rules(self, rules: Rules | None) -> None:
        """Attach ``rules`` to the index (atomically replacing any), or detach with None."""
        with self._layout.writer_lock():
            self._ranker.set_rules(rules)

    def upsert(
        self,
        articles: Iterable[ArticleInput],
        *,
        strict: bool = False,
        progress: bool = False,
        embeddings: str | os.PathLike[str] | None = None,
    ) -> UpdateReport:
        """Add new articles, re-embed changed ones, skip unchanged ones, in one transaction;
        ``embeddings`` (from ``recommender embed``) supplies vectors where the hash matches."""
        self.precomputed = open_precomputed(embeddings, self._index.embedder(), "this index")
        self.report = self._writer.upsert(
            articles, strict=strict, progress=progress, precomputed=self.precomputed
        )
        return self.report

    def remove(self, article_ids: Iterable[str]) -> UpdateReport:
        """Delete articles by id; ids not in the index are listed in ``missing``."""
        wanted = list(dict.fromkeys(checked_id(a) for a in article_ids))
        self.report = self._writer.remove(wanted)
        return self.report

    def calibrate(self, *, time: bool | None = None) -> Calibration:
        """Estimate the lexical weight (a build does) from the archive again, and publish it;
        the time prior too where the index already uses an estimated one (a build with
        ``calibrate``). ``time=True`` turns the estimated prior on, ``False`` leaves the prior
        as it is."""
        return recalibrate(self._index, self._ranker, time=time)

    def checkpoint(self) -> None:
        """Write a vector snapshot of the current state and forget replayed history."""
        self._writer.checkpoint()

    def version(self) -> tuple[object, ...]:
        """A token that changes whenever any answer may (any write, the rules): for caches."""
        return (*self._index.version(), file_stamp(self._ranker.rules_path))

    def refresh(self) -> bool:
        """Pick up writes made by other processes; whether anything changed."""
        return self._index.refresh()

    @property
    def encoder(self) -> Encoder:
        """The encoder, created (not loaded) on first use, with the index's model and backend."""
        return self._index.encoder

    def close(self) -> None:
        """Close the catalog and the vector store; the index is not used afterwards."""
        self._index.close()

    def __enter__(self) -> Recommender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Recommender({str(self._layout.root)!r}, articles={len(self._index.state.store)})"
