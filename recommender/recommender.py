"""The Recommender facade: build, open, update and query an index directory.

The facade checks arguments and delegates: :class:`~recommender.ranking.live.LiveIndex`
holds the live generation and catches up with other processes,
:class:`~recommender.ranking.ranker.Ranker` ranks,
:class:`~recommender.stored_lists.keeper.ListKeeper` keeps the stored lists exact,
and :mod:`recommender.writes` builds and updates.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from recommender.embedding.encoders import Encoder, make_encoder
from recommender.embedding.precomputed import PrecomputedEmbeddings
from recommender.errors import ArticleNotFoundError, InvalidArgumentError
from recommender.filters import DateLike, Filters
from recommender.index import layout as storage
from recommender.index.events import EventLog
from recommender.index.state import IndexState
from recommender.ranking.batches import chunked, progress_bar, ranked_batches, selected
from recommender.ranking.buckets import bucket_ranking, bucket_rankings, check_bucket, with_bucket
from recommender.ranking.live import LiveIndex, check_model
from recommender.ranking.queries import (
    check_fresh,
    check_k,
    check_page,
    checked_id,
    query_text,
    text_query,
)
from recommender.ranking.ranker import Ranker
from recommender.ranking.rules import RULES_FILE, Rules
from recommender.ranking.scoring import RankingConfig
from recommender.stored_lists.keeper import ListKeeper
from recommender.text import is_valid_text
from recommender.types import (
    Article,
    ArticleListing,
    ArticleSummary,
    Match,
    StoredStanding,
    UpdateReport,
)
from recommender.writes.build import Build, check_target
from recommender.writes.inputs import ArticleInput, open_precomputed
from recommender.writes.update import Updater

__all__ = ["Recommender"]


class Recommender:
    """A related-articles index on disk, ready to query and update.

    Use :meth:`open` or :meth:`build`; pass ``encoder=`` to inject a model (tests
    use a fake). Queries by id never load the model. Many threads may query
    while one thread writes: a readers-writer lock makes each write appear at
    once and whole. Other processes' writes are picked up on the next query.
    """

    def __init__(
        self, layout: storage.IndexLayout, state: IndexState, *, encoder: Encoder | None = None
    ) -> None:
        self._layout = layout
        self._index = LiveIndex(layout, state, encoder=encoder)
        self._ranker = Ranker(layout.root / RULES_FILE)  # checked on every query
        self._lists = ListKeeper(self._index, self._ranker)
        self._writer = Updater(self._index, self._lists)
        #: What the last build/upsert/remove did.
        self.report: UpdateReport | None = None
        #: The precomputed embeddings the last build/upsert read, with what it used of them.
        self.precomputed: PrecomputedEmbeddings | None = None
        self._sections: tuple[tuple[int, int], dict[str, int]] | None = None

    @property
    def _state(self) -> IndexState:
        return self._index.state

    @property
    def manifest(self) -> dict[str, Any]:
        """The live generation's manifest (replaced whole on every change)."""
        return self._index.manifest

    @property
    def refreshed_lists(self) -> int:
        """How many stored lists the last write recomputed (what keeping them exact cost)."""
        return self._lists.refreshed

    # -- ranking configurations ------------------------------------------------------

    @property
    def ranking(self) -> RankingConfig:
        """The index's default ranking (from its manifest)."""
        return self._index.ranking

    @property
    def buckets(self) -> dict[str, RankingConfig]:
        """Named ranking configurations (for A/B tests), from the manifest."""
        return bucket_rankings(self.manifest)

    def ranking_for(self, bucket: str | None) -> RankingConfig:
        """The ranking of a named bucket; the index's default for None."""
        if bucket is None:
            return self.ranking
        self.refresh()
        return bucket_ranking(self.manifest, bucket)

    def set_bucket(self, name: str, options: Mapping[str, Any] | None) -> None:
        """Store (or with None remove) a named ranking configuration: options over the default."""
        check_bucket(self.manifest, name, options)
        with self._layout.writer_lock():
            self.refresh()
            manifest = with_bucket(self._index.manifest, name, options)
            with self._index.lock.write():
                self._index.set_manifest(manifest)

    # -- constructors ------------------------------------------------------------

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
    ) -> Recommender:
        """Build a new index at ``path`` and swap it in atomically; return it opened.

        ``store`` says where the vectors live: ``faiss`` (files in the index
        directory), ``milvus:///path/file.db`` (Milvus Lite) or
        ``milvus://HOST:PORT`` (a Milvus server; token from
        ``$RECOMMENDER_MILVUS_TOKEN``). A Milvus build writes a new collection,
        so the live one is untouched until the build is published.

        ``embeddings`` is a directory written by ``recommender embed``: articles
        found there with the same text hash take their vector from it; the
        others are embedded here.

        ``encoder_backend`` (``torch``, ``onnx``, ``onnx-int8``; default
        ``DEFAULT_BACKEND``) runs the model when no ``encoder`` is given; it is
        recorded in the manifest, and later queries and adds use the same one.

        ``index_type`` is ``flat`` (exact search), ``ivf`` (approximate, for
        large archives) or ``auto``: flat below ``IVF_THRESHOLD`` articles, IVF
        above, decided again whenever a snapshot is written. Each article's pool
        statistics are computed by ``workers`` processes (default: one per CPU
        core) once the archive has ``PARALLEL_STATS_MIN`` articles.

        Bad records become :class:`Rejection` entries in ``report`` and in
        ``rejects.jsonl``; with ``strict`` any rejection raises
        :class:`RejectedRecordsError` and nothing is published.
        """
        layout = storage.IndexLayout(path)
        check_target(layout, index_type=index_type, store=store)
        encoder = encoder or make_encoder(model, backend=encoder_backend)
        build = Build(
            layout, encoder, ranking=ranking, index_type=index_type, store=store, workers=workers
        )
        report = build.run(
            articles, strict=strict, total=total, progress=progress, embeddings=embeddings
        )
        rec = cls.open(path, encoder=encoder)
        rec.precomputed, rec.report = build.precomputed, report
        return rec

    # -- queries -------------------------------------------------------------------

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
    ) -> list[Match]:
        """The related list of an indexed article, best first, never the article itself.

        With ``explain``, each match carries an :class:`Explanation` (shared
        names, terms and the closest pair of sentences); it costs a few
        milliseconds per match and is computed only when asked.

        ``fresh=False`` answers from the list stored by :meth:`store_lists` (a
        lookup, no ranking), which add/remove keep up to date; without a usable
        stored list (none stored, a longer ``k``, other ranking or rules) the
        list is computed as usual. Stored lists are unfiltered: filters and
        ``fresh=False`` do not go together.

        ``bucket`` ranks with a named configuration of the index (:meth:`set_bucket`)
        instead of the default, for A/B tests; ``ranking`` overrides both.
        """
        check_k(k)
        if ranking is None and bucket is not None:
            ranking = self.ranking_for(bucket)
        filters = Filters.make(
            section=section, since=since, until=until, language=language, exclude=exclude
        )
        check_fresh(fresh, filters)
        self.refresh()
        with self._index.lock.read():
            state = self._state
            int_id = state.catalog.int_id(checked_id(article_id))
            if int_id is None:
                raise ArticleNotFoundError(str(article_id))
            stored = None if fresh else self._lists.lookup(int_id, k, ranking)
            if stored is not None:
                matches = stored[1]
            else:
                matches = self._ranker.related(state, int_id, k, filters, ranking or self.ranking)
            if explain:
                title, body = state.catalog.stories([int_id])[int_id]
                matches = self._ranker.explained(state, title, body, matches)
            return matches

    def warm_up(self) -> bool:
        """Answer one related-by-id query and drop the answer; whether one was answered.

        The first query of a process loads what later ones reuse: the compiled
        lexical kernels (compiled on the first query after installing, seconds),
        the id tables and the inverse norms. A server calls this before it accepts
        requests, so that no request pays for it.
        """
        article_id = self._state.catalog.any_id()
        if article_id is None:
            return False
        self.related(article_id)
        return True

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
        """The related list of every article (or of ``ids``), as (article id, matches) pairs.

        Queries run in batches (one FAISS search and one inverted-list pass per
        batch) with the same ranking as :meth:`related`; a read lock is held per
        batch, so writes may land between batches. With ``workers`` > 1,
        batches are ranked by that many processes that map the same snapshot
        (the per-candidate ranking is Python-bound, so threads would not help);
        lists still come out in order. ``rules=False`` ignores the index's
        editorial rules (relevance evaluation measures the ranking alone).
        """
        check_k(k)
        if workers < 1:
            raise InvalidArgumentError(f"workers must be >= 1, got {workers}")
        self.refresh()
        everything = selected(self._state.catalog.all_ids(), ids)
        chunks = chunked(everything, batch_size)
        config = ranking or self.ranking
        lists = ranked_batches(
            self._index, self._ranker, chunks, k, config, workers=workers, rules=rules
        )
        with progress_bar(progress, len(everything), "related lists") as bar:
            for chunk, results in zip(chunks, lists, strict=True):
                yield from results
                bar.update(len(chunk))

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
        """Related articles for a story that need not be in the index.

        Give ``text`` (a whole story), or ``title`` and/or ``body``, or an
        ``article``. ``published_at`` (or the article's date) turns on the
        time prior for the query, as for indexed articles. ``explain`` adds an
        :class:`Explanation` to each match, and ``bucket`` selects a named
        ranking, as for :meth:`related`.
        """
        check_k(k)
        if ranking is None and bucket is not None:
            ranking = self.ranking_for(bucket)
        title, body = query_text(text=text, title=title, body=body, article=article)
        filters = Filters.make(
            section=section, since=since, until=until, language=language, exclude=exclude
        )
        lead_dates = (ranking or self.ranking).lead_dates
        query = text_query(
            title, body, published_at=published_at, article=article, lead_dates=lead_dates
        )
        vectors = self._index.embed([(title, body)])
        self.refresh()
        with self._index.lock.read():
            state = self._state
            matches = self._ranker.similar(
                state, query, vectors, k, filters, ranking or self.ranking
            )
            return self._ranker.explained(state, title, body, matches) if explain else matches

    # -- stored related lists ----------------------------------------------------------

    def store_lists(
        self,
        *,
        k: int = 10,
        ranking: RankingConfig | None = None,
        progress: bool = False,
        workers: int = 1,
    ) -> int:
        """Compute every article's related list and store it in the catalog; return the count.

        This pins the lexical statistics (document frequencies, article count)
        to their current values, and while lists are stored an indexed article's
        own stored pool statistics standardise its side of the hybrid score: every
        ranking of the index does so, so that a write changes only the lists it
        enters high enough or whose candidate pools it leaves, and :meth:`upsert`
        and :meth:`remove` refresh exactly those. Stored lists then stay equal to a
        recompute (:meth:`related_all`). Terms first seen after the pin carry no
        weight until the next ``store_lists``. Holds the writer lock meanwhile, so
        no write can land between the lists.
        """
        check_k(k)
        return self._lists.store(k, ranking or self.ranking, progress=progress, workers=workers)

    def has_stored_lists(self) -> bool:
        """Whether :meth:`store_lists` has stored lists in this index (usable or not)."""
        return self._lists.exists()

    def stored_lists_status(self) -> dict[str, Any] | None:
        """How the stored lists stand (None when none are stored).

        ``usable`` is False when they are not answered from: ``stale`` (a reason)
        when they may differ from a recompute, or other rules than they were
        computed with. ``related --all --store-lists`` recomputes them.
        """
        self.refresh()
        return self._lists.status()

    def stored_list(self, article_id: str) -> tuple[str, list[Match]] | None:
        """(computed at, matches) of an article's stored list, if one is stored and usable."""
        self.refresh()
        with self._index.lock.read():
            int_id = self._state.catalog.int_id(checked_id(article_id))
            if int_id is None:
                raise ArticleNotFoundError(str(article_id))
            return self._lists.lookup(int_id, None, None)

    def stored_standing(
        self, article_id: str, matches: Sequence[Match], *, k: int
    ) -> StoredStanding:
        """How ``related(article_id, k=k, fresh=False)``'s answer ``matches`` stands: when its
        stored list was computed, if the answer is that list, and why the stored lists are
        stale, if they are (the edges report both; see :class:`StoredStanding`)."""
        stored = self.stored_list(article_id)
        computed_at = None
        if stored is not None and [m.id for m in stored[1][:k]] == [m.id for m in matches]:
            computed_at = stored[0]
        status = self.stored_lists_status()
        if status is None or not status["stale"]:
            return StoredStanding(computed_at)
        return StoredStanding(computed_at, str(status["stale"]), str(status["recompute"]))

    # -- the catalog -------------------------------------------------------------------

    @property
    def events(self) -> EventLog:
        """The index's append-only log of impressions and clicks (``events.sqlite3``)."""
        return EventLog(self._layout.root)

    def get(self, article_id: str) -> Article:
        """The stored record of one article."""
        found = self._state.catalog.article(checked_id(article_id))
        if found is None:
            raise ArticleNotFoundError(str(article_id))
        return found

    def browse(self, *, query: str = "", offset: int = 0, limit: int = 20) -> ArticleListing:
        """A page of indexed articles whose titles hold every word of ``query``, newest first.

        Undated articles come last. ``query`` matches case-insensitively (ASCII letters).
        """
        check_page(offset, limit)
        self.refresh()
        rows, total = self._state.catalog.browse(query=query, offset=offset, limit=limit)
        articles = tuple(
            ArticleSummary(r.id, r.title, r.url, r.published_at, r.section) for r in rows
        )
        return ArticleListing(articles=articles, total=total, offset=offset, limit=limit)

    def sections(self) -> dict[str, int]:
        """Every section in the index, with its number of articles, sorted by name."""
        self.refresh()
        # A scan of the whole catalog; every page of the web UI asks, so keep it until a write.
        key = (id(self._state), self._state.seq)
        if self._sections is None or self._sections[0] != key:
            self._sections = (key, self._state.catalog.sections())
        return dict(self._sections[1])

    def field_values(self, field: str) -> dict[str, str | None]:
        """Article id -> a column (section, language, ...) or metadata field, as text."""
        return self._state.catalog.field_values(field)

    def __contains__(self, article_id: object) -> bool:
        text = str(article_id)
        return is_valid_text(text) and self._state.catalog.int_id(text) is not None

    def __len__(self) -> int:
        return self._state.catalog.count()

    def info(self) -> dict[str, Any]:
        """The manifest with live counts, for ``recommender info``."""
        self.refresh()
        state = self._state
        data = dict(state.manifest)
        data["path"] = str(self._layout.root)
        data["counts"] = {"articles": state.catalog.count(), "vectors": len(state.store)}
        data["search"] = state.store.describe()
        data["stored_lists"] = self.stored_lists_status()
        return data

    # -- editorial rules ---------------------------------------------------------------

    @property
    def rules(self) -> Rules | None:
        """The editorial rules attached to the index (``rules.json``), or None."""
        return self._ranker.rules

    def set_rules(self, rules: Rules | None) -> None:
        """Attach ``rules`` to the index (atomically replacing any), or detach with None."""
        with self._layout.writer_lock():
            self._ranker.set_rules(rules)

    # -- updates -------------------------------------------------------------------

    def upsert(
        self,
        articles: Iterable[ArticleInput],
        *,
        strict: bool = False,
        progress: bool = False,
        embeddings: str | os.PathLike[str] | None = None,
    ) -> UpdateReport:
        """Add new articles, re-embed changed ones, skip unchanged ones (no model call).

        The whole batch lands in one transaction: an interrupted upsert leaves
        the index as it was before. ``embeddings`` (a directory written by
        ``recommender embed``) supplies vectors instead of the model where the
        text hash matches.
        """
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

    def checkpoint(self) -> None:
        """Write a vector snapshot of the current state and forget replayed history."""
        self._writer.checkpoint()

    def refresh(self) -> bool:
        """Pick up writes made by other processes; return whether anything changed.

        A rebuilt index (new generation) is reopened whole; updates to the same
        generation are replayed from the catalog's change log.
        """
        return self._index.refresh()

    @property
    def encoder(self) -> Encoder:
        """The encoder, created (not loaded) on first use, with the index's model and backend."""
        return self._index.encoder

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Close the catalog and the vector store; the index is not used afterwards."""
        self._index.close()

    def __enter__(self) -> Recommender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Recommender({str(self._layout.root)!r}, articles={len(self._state.store)})"
