"""The Recommender facade: build, open, update and query an index directory."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from recommender.embedding.encoders import (
    ARTICLE_BATCH,
    LEGACY_BACKEND,
    ArticleEmbedder,
    Encoder,
    make_encoder,
)
from recommender.embedding.models import canonical_model_id
from recommender.embedding.precomputed import PrecomputedEmbeddings
from recommender.errors import (
    ArticleNotFoundError,
    InvalidArgumentError,
    ModelMismatchError,
    RecommenderError,
    RejectedRecordsError,
)
from recommender.filters import DateLike, Filters
from recommender.index import layout as storage
from recommender.index.catalog import Catalog, CatalogRow, ListRow, StoredLists, lexical_text
from recommender.index.events import EventLog
from recommender.index.rwlock import RWLock
from recommender.index.state import (
    IndexState,
    store_options,
    with_catalog_vectors,
    write_snapshots,
)
from recommender.ingest.dateline import lead_date
from recommender.ingest.records import article_from_mapping, check_article
from recommender.lexical.index import LexicalIndex, PinnedStats
from recommender.ranking.pool_stats import (
    PARALLEL_STATS_MIN,
    compute_pool_stats,
    compute_pool_stats_in_workers,
)
from recommender.ranking.retrieval import QueryBatch, Retriever
from recommender.ranking.rules import RULES_FILE, Editorial, QueryStory, Rules
from recommender.ranking.scoring import (
    Candidates,
    PoolBounds,
    RankingConfig,
    pair_scores,
    pool_bounds,
    rank,
)
from recommender.stored_lists.lists import ListOwners, Reach, Written
from recommender.stores import VectorMeta, VectorStore, check_store_url, new_store
from recommender.stores.faiss import FaissStore, check_index_type
from recommender.text import checked_text, is_valid_text, printable
from recommender.types import (
    Article,
    ArticleListing,
    ArticleSummary,
    Match,
    Rejection,
    UpdateReport,
)

__all__ = ["Recommender"]

ArticleInput = Article | Mapping[str, Any] | Rejection
_BATCH = ARTICLE_BATCH
#: Replayable changes kept in the catalog before a new vector snapshot is written.
_CHECKPOINT_CHANGES = 2_000
#: How far under a list's k-th score a newcomer is still tested as entering it: stored
#: scores are rounded to 6 decimals, and the test's cosines are summed another way.
_SCORE_EPSILON = 1e-4


class Recommender:
    """A related-articles index on disk, ready to query and update.

    Use :meth:`open` or :meth:`build`; pass ``encoder=`` to inject a model (tests
    use a fake). Queries by id never load the model. Many threads may query
    while one thread writes: a readers-writer lock makes each write appear at
    once and whole. Other processes' writes are picked up on the next query.
    """

    def __init__(
        self,
        layout: storage.IndexLayout,
        state: IndexState,
        *,
        encoder: Encoder | None = None,
    ) -> None:
        self._layout = layout
        self._state = state
        self._encoder = encoder
        self._lock = RWLock()
        self._manifest_stamp = _stamp(layout.manifest_path)
        self._rules_stamp: tuple[int, int] | None = None
        self._rules_path = layout.root / RULES_FILE  # checked on every query
        self._rules_cache: Rules | None = None
        self._editorial_cache: tuple[int, IndexState, Editorial] | None = None
        #: The manifest's ranking section and the config read from it (a request reads it).
        self._ranking_cache: tuple[Any, RankingConfig] | None = None
        #: What the last build/upsert/remove did.
        self.report: UpdateReport | None = None
        #: The precomputed embeddings the last build/upsert read, with what it used of them.
        self.precomputed: PrecomputedEmbeddings | None = None
        self._sections: tuple[tuple[int, int], dict[str, int]] | None = None
        #: The stored lists' owners, for the reverse tests of writes (built on first write).
        self._list_owners: ListOwners | None = None
        #: How many stored lists the last write recomputed (what keeping them exact cost).
        self.refreshed_lists = 0

    @property
    def manifest(self) -> dict[str, Any]:
        return self._state.manifest

    @property
    def ranking(self) -> RankingConfig:
        """The index's default ranking (from its manifest)."""
        section = self.manifest.get("ranking")
        cached = self._ranking_cache
        # A manifest is replaced whole on every change, never edited in place.
        if cached is None or cached[0] is not section:
            cached = self._ranking_cache = (section, RankingConfig.from_dict(section))
        return cached[1]

    @property
    def buckets(self) -> dict[str, RankingConfig]:
        """Named ranking configurations (for A/B tests), from the manifest."""
        base = self.manifest.get("ranking") or {}
        named = self.manifest.get("buckets") or {}
        return {name: RankingConfig.from_dict({**base, **opts}) for name, opts in named.items()}

    def ranking_for(self, bucket: str | None) -> RankingConfig:
        """The ranking of a named bucket; the index's default for None."""
        if bucket is None:
            return self.ranking
        self.refresh()
        buckets = self.buckets
        if bucket not in buckets:
            raise InvalidArgumentError(
                f"unknown bucket {bucket!r}; this index has {sorted(buckets) or 'none'}"
                " (add one with 'recommender buckets set')"
            )
        return buckets[bucket]

    def set_bucket(self, name: str, options: Mapping[str, Any] | None) -> None:
        """Store (or with None remove) a named ranking configuration: options over the default."""
        if not name or not name.strip():
            raise InvalidArgumentError("a bucket needs a non-empty name")
        if options is not None:
            RankingConfig.from_dict({**(self.manifest.get("ranking") or {}), **options})
            unknown = sorted(set(options) - set(RankingConfig().to_dict()))
            if unknown:
                raise InvalidArgumentError(
                    f"unknown ranking option {unknown[0]!r}; expected one of "
                    f"{sorted(RankingConfig().to_dict())}"
                )
        with self._layout.writer_lock():
            self.refresh()
            manifest = dict(self._state.manifest)
            buckets = dict(manifest.get("buckets") or {})
            if options is None:
                buckets.pop(name, None)
            else:
                buckets[name] = dict(options)
            manifest["buckets"] = buckets
            with self._lock.write():
                storage.write_json_atomic(self._layout.manifest_path, manifest)
                self._state.manifest = manifest
                self._manifest_stamp = _stamp(self._layout.manifest_path)

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
        _check_model(manifest, encoder.model_id if encoder else model, path)
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
        layout.check_writable_target()
        check_index_type(index_type)
        check_store_url(store)
        workers = workers or os.cpu_count() or 1
        encoder = encoder or make_encoder(model, backend=encoder_backend)
        embedder = ArticleEmbedder(encoder)
        pre = _precomputed(embeddings, embedder, "this build")
        items: Iterable[Article | Rejection] = _validated(articles)
        if strict:
            items = list(items)
            _raise_if_rejected(layout, [r for r in items if isinstance(r, Rejection)])
        rejected: list[Rejection] = []
        with layout.writer_lock():
            gen = layout.new_generation()
            with _removed_unless_published(layout, gen):
                catalog = Catalog.create(gen / storage.CATALOG)
                vectors_in: VectorStore | None = None
                lexical = LexicalIndex()
                with _progress(progress, total, "embedding") as bar:
                    for batch in _batched(_split(items, rejected), _BATCH):
                        vectors = (
                            pre.vectors_for(batch, embedder.embed_articles)
                            if pre is not None
                            else embedder.embed_articles(batch)
                        )
                        _, touched = catalog.write(list(zip(batch, vectors, strict=True)))
                        ids = np.array(touched, dtype=np.int64)
                        vectors_in = vectors_in or new_store(
                            store, vectors.shape[1], generation=gen, index_type=index_type
                        )
                        vectors_in.add(ids, vectors, [VectorMeta.of(a) for a in batch])
                        lexical.add(ids, [lexical_text(a.title, a.body) for a in batch])
                        bar.update(len(batch))
                vectors_in = vectors_in or new_store(
                    store, encoder.dimension, generation=gen, index_type=index_type
                )
                vectors_in.optimise()
                # The pool statistics read many stored vectors: from the catalog, not the engine.
                vectors_in = with_catalog_vectors(vectors_in, catalog)
                if vectors_in.single_process:
                    workers = 1
                config = ranking or RankingConfig()
                seq = catalog.seq()
                write_snapshots(gen, vectors_in, lexical, seq)
                with _progress(progress, len(lexical), "normalising") as bar:
                    if workers > 1 and len(lexical) >= PARALLEL_STATS_MIN:
                        compute_pool_stats_in_workers(
                            gen,
                            seq,
                            vectors_in,
                            catalog,
                            lexical.ids,
                            config=config,
                            workers=workers,
                            progress=bar,
                        )
                    else:
                        compute_pool_stats(
                            vectors_in, lexical, catalog, lexical.ids, config=config, progress=bar
                        )
                catalog.prune_changes(seq)
                count = catalog.count()
                catalog.close()
                _write_rejects(layout, rejected)
                manifest = _new_manifest(
                    gen.name,
                    encoder.model_id,
                    vectors_in,
                    embedder,
                    count,
                    config,
                    # An injected encoder without a backend runs like the pre-backend default.
                    backend=getattr(encoder, "backend", LEGACY_BACKEND),
                )
                # A/B buckets are settings of the index, not of its contents: keep them.
                if layout.exists():
                    buckets = layout.read_manifest().get("buckets")
                    if buckets:
                        manifest["buckets"] = buckets
                replaced = _replaced_collections(layout, gen, vectors_in)
                layout.publish(manifest)
                vectors_in.close()
                _drop_collections(replaced)
        rec = cls.open(path, encoder=encoder)
        rec.precomputed = pre
        rec.report = UpdateReport(
            added=count,
            rejected=tuple(rejected),
            rejects_path=str(layout.rejects_path) if rejected else None,
            total=count,
        )
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
        _check_k(k)
        if ranking is None and bucket is not None:
            ranking = self.ranking_for(bucket)
        filters = Filters.make(
            section=section, since=since, until=until, language=language, exclude=exclude
        )
        if not fresh and (filters.restricts or filters.exclude):
            raise InvalidArgumentError(
                "fresh=False answers from stored, unfiltered lists; drop the filters "
                "(section, since, until, language, exclude) or ask for a fresh list"
            )
        self.refresh()
        with self._lock.read():
            state = self._state
            int_id = state.catalog.int_id(_article_id(article_id))
            if int_id is None:
                raise ArticleNotFoundError(str(article_id))
            stored = None if fresh else self._stored(int_id, k, ranking)
            if stored is not None:
                matches = stored[1]
            else:
                batch = QueryBatch.of_articles(state.store, state.lexical, np.array([int_id]))
                matches = self._ranked(batch, k, filters, ranking)[0]
            if explain:
                title, body = state.catalog.stories([int_id])[int_id]
                matches = self._explained(title, body, matches)
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
        _check_k(k)
        if workers < 1:
            raise InvalidArgumentError(f"workers must be >= 1, got {workers}")
        self.refresh()
        everything = self._state.catalog.all_ids()
        if ids is not None:
            wanted = set(map(_article_id, ids))
            missing = wanted - {aid for _, aid in everything}
            if missing:
                raise ArticleNotFoundError(sorted(missing)[0])
            everything = [(i, aid) for i, aid in everything if aid in wanted]
        chunks = [everything[s : s + batch_size] for s in range(0, len(everything), batch_size)]
        config = ranking or self.ranking
        if workers > 1 and len(chunks) > workers and not self._state.store.single_process:
            lists = _parallel_lists(self._layout.root, chunks, k, config, workers, rules)
        else:
            lists = (self._lists(chunk, k, config, rules) for chunk in chunks)
        with _progress(progress, len(everything), "related lists") as bar:
            for chunk, results in zip(chunks, lists, strict=True):
                yield from results
                bar.update(len(chunk))

    def _lists(
        self, chunk: list[tuple[int, str]], k: int, ranking: RankingConfig, rules: bool = True
    ) -> list[tuple[str, list[Match]]]:
        """Related lists of one batch of (int id, article id)."""
        self.refresh()
        with self._lock.read():
            state = self._state
            ids = np.array([i for i, _ in chunk], dtype=np.int64)
            present = ids[state.lexical.rows(ids) >= 0]
            batch = QueryBatch.of_articles(state.store, state.lexical, present)
            lists = self._ranked(batch, k, Filters(), ranking, rules=rules)
        names = dict(chunk)
        return [(names[int(i)], m) for i, m in zip(present, lists, strict=True)]

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
        _check_k(k)
        if ranking is None and bucket is not None:
            ranking = self.ranking_for(bucket)
        title, body = _query_text(text=text, title=title, body=body, article=article)
        filters = Filters.make(
            section=section, since=since, until=until, language=language, exclude=exclude
        )
        when = Filters.make(since=published_at).since if published_at is not None else None
        if article is not None and article.published_at is not None:
            when = article.published_at.timestamp()
        stated = np.array([np.nan if when is None else when])
        if when is None and (ranking or self.ranking).lead_dates:
            lead = lead_date(title, body)
            when = lead.timestamp() if lead else None
        vectors = self._embed([(title, body)])
        self.refresh()
        with self._lock.read():
            counts = self._state.lexical.counts([lexical_text(title, body)])
            batch = QueryBatch(vectors, counts, [None])
            times = np.array([np.nan if when is None else when])
            sections = [article.section if article is not None else None]
            matches = self._ranked(
                batch, k, filters, ranking, times=times, story_times=stated, sections=sections
            )[0]
            return self._explained(title, body, matches) if explain else matches

    def _explained(self, title: str, body: str, matches: list[Match]) -> list[Match]:
        """``matches`` with explanations against the query story; the caller holds the read lock."""
        from recommender.ranking.explain import Story, explain, prepare

        state = self._state
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
        _check_k(k)
        config = ranking or self.ranking
        with self._layout.writer_lock():
            self.refresh()
            token = self._pin_lexical()
            rules = self.rules
            info = StoredLists(k, config.to_dict(), rules.digest if rules else None, pin=token)
            everything = self._state.catalog.all_ids()
            chunks = [everything[s : s + _BATCH] for s in range(0, len(everything), _BATCH)]
            if workers > 1 and len(chunks) > workers and not self._state.store.single_process:
                lists = _parallel_lists(self._layout.root, chunks, k, config, workers, rows=True)
            else:
                lists = (self._list_rows(chunk, k, config) for chunk in chunks)
            with _progress(progress, len(everything), "related lists") as bar:
                rows = (row for chunk in _counted(lists, bar) for row in chunk)
                count = self._state.catalog.replace_lists(info, rows)
            self._list_owners = None
            return count

    def _pin_lexical(self) -> str:
        """Pin the live lexical statistics, in the catalog and here; return the pin's token.

        Republishes the manifest so that other processes (workers too) pin them on
        their next query.
        """
        state = self._state
        df, live = state.lexical.document_stats()
        token = secrets.token_hex(8)
        state.catalog.set_lexical_pin(token, live, df)
        with self._lock.write():
            state.lexical.pin(PinnedStats(token, live, df))
        storage.write_json_atomic(self._layout.manifest_path, self._layout.read_manifest())
        self._manifest_stamp = _stamp(self._layout.manifest_path)
        return token

    def _list_rows(
        self, chunk: list[tuple[int, str]], k: int, config: RankingConfig
    ) -> list[ListRow]:
        """Stored-list rows (owner, hits, entry scores) of a batch of (int id, article id)."""
        self.refresh()
        with self._lock.read():
            return self._hit_lists(np.array([i for i, _ in chunk], dtype=np.int64), k, config)

    def has_stored_lists(self) -> bool:
        """Whether :meth:`store_lists` has stored lists in this index (usable or not)."""
        return self._state.catalog.lists_info() is not None

    def stored_lists_status(self) -> dict[str, Any] | None:
        """How the stored lists stand (None when none are stored).

        ``usable`` is False when they are not answered from: ``stale`` (a reason)
        when they may differ from a recompute, or other rules than they were
        computed with. ``related --all --store-lists`` recomputes them.
        """
        self.refresh()
        info = self._state.catalog.lists_info()
        if info is None:
            return None
        stale, same_rules = self._lists_standing(info)
        return {
            "k": info.k,
            "usable": stale is None and same_rules,
            "stale": stale,
            "rules_changed": not same_rules,
            "recompute": "recommender related --all --store-lists",
        }

    def _lists_standing(self, info: StoredLists) -> tuple[str | None, bool]:
        """Why stored lists may differ from a recompute (None: they do not), and whether
        the index's rules are still the ones they were computed with."""
        rules = self.rules
        current = self._state.lexical.pinned
        stale = info.stale
        if stale is None and info.pin != (current.token if current else None):
            stale = "the lexical statistics were pinned again after these lists were computed"
        return stale, info.rules == (rules.digest if rules else None)

    def stored_list(self, article_id: str) -> tuple[str, list[Match]] | None:
        """(computed at, matches) of an article's stored list, if one is stored and usable."""
        self.refresh()
        with self._lock.read():
            int_id = self._state.catalog.int_id(_article_id(article_id))
            if int_id is None:
                raise ArticleNotFoundError(str(article_id))
            return self._stored(int_id, None, None)

    def _usable_lists(self) -> StoredLists | None:
        """The stored lists' settings if they equal a recompute under the current rules."""
        info = self._state.catalog.lists_info()
        if info is None:
            return None
        stale, same_rules = self._lists_standing(info)
        return info if stale is None and same_rules else None

    def _stored(
        self, int_id: int, k: int | None, ranking: RankingConfig | None
    ) -> tuple[str, list[Match]] | None:
        info = self._usable_lists()
        if (
            info is None
            or (k is not None and k > info.k)
            or (ranking is not None and ranking.to_dict() != info.ranking)
        ):
            return None
        found = self._state.catalog.stored_list(int_id)
        if found is None:
            return None
        computed_at, hits = found
        return computed_at, self._matches([hits[:k] if k is not None else hits])[0]

    def _before_write(self, article_ids: Sequence[str]) -> Written | None:
        """The touched articles as the index holds them before a write (None: no usable lists)."""
        info = self._usable_lists()
        if info is None:
            return None
        state = self._state
        # The reverse tests read every list's owner: build them while all are indexed.
        self._owners_index(RankingConfig.from_dict(info.ranking))
        ids = np.array(sorted(state.catalog.int_ids(article_ids).values()), dtype=np.int64)
        with self._lock.read():
            before = Written.read(state.store, state.lexical, ids)
            before.sections = set(state.sections(ids).tolist())
        return before

    def _refresh_stored(
        self, before: Written | None, touched: list[int], removed: list[int]
    ) -> None:
        """Recompute exactly the stored lists a write changed. Caller holds the writer lock.

        Affected: the touched articles' own lists, the lists holding one, the
        lists whose candidate pool one of them left, the lists a newcomer enters
        high enough or crowds a listed item out of (see :mod:`recommender.stored_lists.lists`),
        and those editorial rules tie to them (pins, backfill). Every other list
        keeps its items and scores: under pinned statistics an item's score
        depends on the two articles alone.
        """
        self.refreshed_lists = 0
        info = self._usable_lists() if before is not None else None
        if before is None or info is None or not (touched or removed):
            return
        config = RankingConfig.from_dict(info.ranking)
        catalog = self._state.catalog
        with self._lock.read():
            after = Written.read(self._state.store, self._state.lexical, np.array(touched))
            after.sections = set(self._state.sections(after.ids).tolist())
            owners, roomier = self._affected(before, after, config)
            owners -= set(removed)
            ordered = np.array(sorted(owners), dtype=np.int64)
            lists = [
                row
                for start in range(0, len(ordered), _BATCH)
                for row in self._hit_lists(ordered[start : start + _BATCH], info.k, config)
            ]
        bounds = [(o, b) for o, b in roomier.items() if o not in owners and o not in removed]
        catalog.update_lists(lists, removed, bounds)
        self._patch_owners(lists, removed, bounds, config)
        self.refreshed_lists = len(lists)

    def _affected(
        self, before: Written, after: Written, config: RankingConfig
    ) -> tuple[set[int], dict[int, np.ndarray]]:
        """Owners of the stored lists a write may change, and the new bounds of lists that
        newcomers enter without changing them; the caller holds the read lock."""
        state = self._state
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
        gone = before.subset(~np.isin(before.ids, kept))
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
        state = self._state
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
            stats=state.pool_stats(article),
            query_stats=own,
        )
        times = state.published(owners, lead_dates=config.lead_dates)
        scores = pair_scores(pairs, config, query_times=times)
        out: np.ndarray = np.where(np.isfinite(own).all(axis=1), scores, np.inf)
        return out

    def _ruled_owners(self, touched: set[int], sections: set[str], owners: np.ndarray) -> set[int]:
        """Owners (of ``owners``, every stored list's) whose lists editorial rules tie to
        the touched articles: pins, backfill."""
        editorial = self._editorial()
        if editorial is None:
            return set()
        out = {owner for owner, pins in editorial.pinned.items() if touched & set(pins)}
        minimum = editorial.rules.min_score
        if minimum is None or minimum.fallback != "backfill":
            return out
        # A list filled with the latest articles of its section changes with any
        # write in that section (a list without a section takes any section's).
        # Only those owners' lists are read, not every stored list per write.
        owner_sections = self._state.sections(owners)
        near = owners[np.isin(owner_sections, [*sections, ""])]
        for owner, items in self._state.catalog.stored_lists(near.tolist()).items():
            pins = set(editorial.pinned.get(owner, []))
            above = sum(1 for i, s in items if i not in pins and round(s, 6) >= minimum.score)
            if above < minimum.min_items:
                out.add(owner)
        return out

    def _owners_index(self, config: RankingConfig) -> ListOwners:
        """The reverse-test index of every stored list, current with the catalog."""
        state = self._state
        version = state.catalog.lists_version()
        if self._list_owners is None or self._list_owners.version != version:
            self._list_owners = ListOwners.load(state.catalog, state.store, state.lexical, config)
        return self._list_owners

    def _patch_owners(
        self,
        lists: list[ListRow],
        removed: list[int],
        bounds: list[tuple[int, np.ndarray]],
        config: RankingConfig,
    ) -> None:
        """Bring the reverse-test index up to the lists and bounds just stored."""
        reverse = self._list_owners
        if reverse is None:
            return
        state = self._state
        reverse.drop(removed)
        reverse.set_bounds(bounds)
        if lists:
            owners = np.array([o for o, _, _ in lists], dtype=np.int64)
            fresh = np.array([b for _, _, b in lists], dtype=np.float64)
            with self._lock.read():
                reverse.put(owners, fresh, state.store, state.lexical, config)
        reverse.version = state.catalog.lists_version()

    def _hit_lists(
        self, ids: np.ndarray, k: int, ranking: RankingConfig, *, rules: bool = True
    ) -> list[ListRow]:
        """Stored-list rows of indexed ``ids`` (scores as shown); the caller holds the read lock."""
        state = self._state
        ids = np.asarray(ids, dtype=np.int64)
        present = ids[state.lexical.rows(ids) >= 0]
        if not len(present):
            return []
        batch = QueryBatch.of_articles(state.store, state.lexical, present)
        entries: list[PoolBounds] = []
        ranked = self._ranked_hits(batch, k, Filters(), ranking, rules=rules, entries=entries)
        return [
            (int(i), [(h, round(s, 6)) for h, s in hits], entry.as_tuple())
            for i, hits, entry in zip(present, ranked, entries, strict=True)
        ]

    # -- feedback ----------------------------------------------------------------------

    @property
    def events(self) -> EventLog:
        """The index's append-only log of impressions and clicks (``events.sqlite3``)."""
        return EventLog(self._layout.root)

    def get(self, article_id: str) -> Article:
        """The stored record of one article."""
        found = self._state.catalog.article(_article_id(article_id))
        if found is None:
            raise ArticleNotFoundError(str(article_id))
        return found

    def browse(self, *, query: str = "", offset: int = 0, limit: int = 20) -> ArticleListing:
        """A page of indexed articles whose titles hold every word of ``query``, newest first.

        Undated articles come last. ``query`` matches case-insensitively (ASCII letters).
        """
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidArgumentError(f"offset must be an integer >= 0, got {offset!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidArgumentError(f"limit must be an integer in 1-1000, got {limit!r}")
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

    def _ranked(
        self,
        batch: QueryBatch,
        k: int,
        filters: Filters,
        ranking: RankingConfig | None,
        *,
        times: np.ndarray | None = None,
        story_times: np.ndarray | None = None,
        sections: Sequence[str | None] | None = None,
        rules: bool = True,
    ) -> list[list[Match]]:
        """Rank a batch of queries into matches; the caller holds the read lock."""
        ranked = self._ranked_hits(
            batch,
            k,
            filters,
            ranking,
            times=times,
            story_times=story_times,
            sections=sections,
            rules=rules,
        )
        return self._matches(ranked)

    def _matches(self, ranked: list[list[tuple[int, float]]]) -> list[list[Match]]:
        # One catalog read for the whole batch's results.
        rows = self._state.catalog.rows(list({i for hits in ranked for i, _ in hits}))
        return [[_match(rows[i], score) for i, score in hits if i in rows] for hits in ranked]

    def _ranked_hits(
        self,
        batch: QueryBatch,
        k: int,
        filters: Filters,
        ranking: RankingConfig | None,
        *,
        times: np.ndarray | None = None,
        story_times: np.ndarray | None = None,
        sections: Sequence[str | None] | None = None,
        rules: bool = True,
        entries: list[PoolBounds] | None = None,
    ) -> list[list[tuple[int, float]]]:
        """Rank a batch of queries into (int id, score) lists; the caller holds the read lock.

        ``times`` are the queries' publication times and ``sections`` their
        sections; by default those of the indexed query articles, looked up
        only when the time prior or the index's editorial rules need them.
        This is the one place where editorial rules are applied (``rules``),
        so related, related_all, similar, the CLI and the service agree.
        """
        config = ranking or self.ranking
        state = self._state
        editorial = self._editorial() if rules else None
        skip = np.array([-1 if s is None else s for s in batch.skip], dtype=np.int64)
        if times is None:
            times = np.full(len(batch.skip), np.nan)
            if config.time_weight or editorial is not None:
                times = state.published(skip, lead_dates=config.lead_dates)
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
        ranked = self._rank_pools(
            batch, k, config, times, include, exclude, filters, masks, entries
        )
        if config.feedback_docs:
            batch = _with_feedback(batch, ranked, state.store, config)
            ranked = self._rank_pools(batch, k, config, times, include, exclude, filters, masks)
        if editorial is not None:
            passes = _passes(include, excluded)
            ranked = [
                editorial.finish(story, hits, k, passes=passes)
                for story, hits in zip(stories, ranked, strict=True)
            ]
        return ranked

    def _rank_pools(
        self,
        batch: QueryBatch,
        k: int,
        config: RankingConfig,
        times: np.ndarray,
        include: np.ndarray | None,
        exclude: np.ndarray | None,
        filters: Filters,
        masks: Callable[[int, np.ndarray], np.ndarray | None] | None = None,
        entries: list[PoolBounds] | None = None,
    ) -> list[list[tuple[int, float]]]:
        """Rank each query's pool; ``entries`` collects each pool's bounds."""
        state = self._state
        # While lists are stored, an indexed query's own statistics standardise its side.
        own = (
            state.pool_stats(np.array([-1 if s is None else s for s in batch.skip]))
            if state.lexical.pinned is not None and _pool_free(config)
            else None
        )
        pools = Retriever(state.store, state.lexical).pools(
            batch,
            candidates=max(config.candidates, k),
            include=include,
            exclude=exclude,
            max_query_terms=config.max_query_terms,
            candidate_terms=config.candidate_terms,
            use_lexical=config.method != "dense",
            where=filters if state.store.keeps_metadata and filters.restricts else None,
            with_vectors=config.dedupe_threshold is not None or config.diversity > 0,
            # Settling every cut one fixed way is what stored lists (pinned while they
            # exist) need to equal a recompute; other queries skip its cost.
            exact=state.lexical.pinned is not None,
        )
        out = []
        for q, (pool, when) in enumerate(zip(pools, times, strict=True)):
            if config.time_weight:
                pool.published = state.published(pool.ids, lead_dates=config.lead_dates)
            if config.method == "hybrid":
                pool.stats = state.pool_stats(pool.ids)
                if own is not None and np.isfinite(own[q]).all():
                    pool.query_stats = own[q]
            query_time = None if np.isnan(when) else float(when)
            allowed = masks(q, pool.ids) if masks is not None else None
            out.append(rank(pool, k, config, query_time=query_time, allowed=allowed))
            if entries is not None:
                entries.append(pool_bounds(pool, out[-1], k, config))
        return out

    # -- editorial rules ---------------------------------------------------------------

    @property
    def rules(self) -> Rules | None:
        """The editorial rules attached to the index (``rules.json``), or None."""
        path = self._rules_path
        stamp = _stamp(path)
        if stamp != self._rules_stamp:
            self._rules_cache = Rules.load(path) if stamp is not None else None
            self._rules_stamp = stamp
            self._editorial_cache = None
        return self._rules_cache

    def set_rules(self, rules: Rules | None) -> None:
        """Attach ``rules`` to the index (atomically replacing any), or detach with None."""
        path = self._rules_path
        with self._layout.writer_lock():
            if rules is None:
                path.unlink(missing_ok=True)
            else:
                storage.write_json_atomic(path, rules.to_dict())

    def _editorial(self) -> Editorial | None:
        rules = self.rules
        if rules is None:
            return None
        seq = self._state.seq
        cached = self._editorial_cache
        if cached is not None and cached[0] == seq and cached[1] is self._state:
            return cached[2]
        state = self._state
        named = set(rules.pinned) | {p for pins in rules.pinned.values() for p in pins}
        named |= {a for pair in rules.blocked_pairs for a in pair}
        editorial = Editorial(
            rules,
            state.catalog.int_ids(sorted(named)),
            sections_of=state.sections,
            times_of=state.published,
            latest=state.catalog.latest,
        )
        self._editorial_cache = (seq, state, editorial)
        return editorial

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
        self.precomputed = _precomputed(embeddings, self._embedder(), "this index")
        items = list(_validated(articles))
        rejected = [r for r in items if isinstance(r, Rejection)]
        if strict:
            _raise_if_rejected(self._layout, rejected)
        good = [a for a in items if isinstance(a, Article)]
        with self._layout.writer_lock():
            self.refresh()
            stored = self._state.catalog.hashes([a.id for a in good])
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
            vectors = self._embed_articles(to_embed, progress=progress)
            upserts: list[tuple[Article, np.ndarray | None]] = list(
                zip(to_embed, vectors, strict=True)
            )
            upserts += [(a, None) for a in meta_only]
            if upserts:
                before = self._before_write([a.id for a, _ in upserts])
                self._apply(upserts, [])
                # A metadata change moves a story too (its date, its section's rules).
                touched = self._state.catalog.int_ids([a.id for a, _ in upserts])
                self._refresh_stored(before, sorted(touched.values()), [])
                self._state.catalog.finish_lists_write()
            _write_rejects(self._layout, rejected)
            added = sum(1 for a in to_embed if a.id not in stored)
            self.report = UpdateReport(
                added=added,
                reembedded=len(to_embed) - added,
                metadata_updated=len(meta_only),
                unchanged=len(good) - len(to_embed) - len(meta_only),
                rejected=tuple(rejected),
                rejects_path=str(self._layout.rejects_path) if rejected else None,
                total=self._state.catalog.count(),
            )
        return self.report

    def remove(self, article_ids: Iterable[str]) -> UpdateReport:
        """Delete articles by id; ids not in the index are listed in ``missing``."""
        wanted = list(dict.fromkeys(_article_id(a) for a in article_ids))
        with self._layout.writer_lock():
            self.refresh()
            present = self._state.catalog.int_ids(wanted)
            if present:
                before = self._before_write(list(present))
                self._apply([], list(present))
                self._refresh_stored(before, [], sorted(present.values()))
                self._state.catalog.finish_lists_write()
            self.report = UpdateReport(
                removed=len(present),
                missing=tuple(a for a in wanted if a not in present),
                total=self._state.catalog.count(),
            )
        return self.report

    def checkpoint(self) -> None:
        """Write a vector snapshot of the current state and forget replayed history."""
        with self._layout.writer_lock():
            self.refresh()
            with self._lock.write():
                self._state.checkpoint()
            self._after_checkpoint()
            # Republish the manifest unchanged: its new stamp tells other
            # processes to move to the new snapshot on their next query.
            storage.write_json_atomic(self._layout.manifest_path, self._layout.read_manifest())
            self._manifest_stamp = _stamp(self._layout.manifest_path)

    def _apply(self, upserts: list[tuple[Article, np.ndarray | None]], removals: list[str]) -> None:
        # Caller holds the file lock; the write lock makes the catalog commit
        # and the in-memory change one step for readers in this process.
        with self._lock.write():
            state = self._state
            state.apply(upserts, removals)
            # New and re-embedded articles (the catalog cleared theirs in the commit), and
            # any a writer killed before computing them left (see missing_pool_stats).
            missing = set(state.catalog.missing_pool_stats())
            if missing:
                ids = np.array(sorted(missing), dtype=np.int64)
                compute_pool_stats(
                    state.store, state.lexical, state.catalog, ids, config=self.ranking
                )
                # This connection's own commits leave its data version as it was.
                state._forget(ids.tolist())
            pending = self._state.pending_changes()
            if pending is None or pending >= _CHECKPOINT_CHANGES:
                self._state.checkpoint()
                self._after_checkpoint()
            self._touch_manifest()

    def _after_checkpoint(self) -> None:
        """Mark stored lists stale if the new snapshot searches differently (an IVF rebuild).

        An exact (flat) store finds the same neighbours before and after; an IVF
        index is retrained at each snapshot (new lists, new nprobe), which moves
        approximate candidate pools in ways no per-write test can follow.
        """
        if not _exact_search(self._state.store):
            self._state.catalog.mark_lists_stale(
                f"the vector snapshot was rebuilt as {_store_kind(self._state.store)!r} "
                "(approximate search) at a checkpoint"
            )

    def _touch_manifest(self) -> None:
        manifest = dict(self._state.manifest)
        manifest["updated_at"] = _now()
        manifest["counts"] = {"articles": self._state.catalog.count()}
        storage.write_json_atomic(self._layout.manifest_path, manifest)
        self._state.manifest = manifest
        self._manifest_stamp = _stamp(self._layout.manifest_path)

    # -- freshness -------------------------------------------------------------------

    def refresh(self) -> bool:
        """Pick up writes made by other processes; return whether anything changed.

        A rebuilt index (new generation) is reopened whole; updates to the same
        generation are replayed from the catalog's change log.
        """
        stamp = _stamp(self._layout.manifest_path)
        if stamp != self._manifest_stamp:
            with self._lock.write():
                return self._reload_manifest(stamp)
        if self._state.catalog.seq() == self._state.seq:
            return False
        with self._lock.write():
            return self._state.catch_up()

    def _reload_manifest(self, stamp: tuple[int, int] | None) -> bool:
        manifest = self._layout.read_manifest()
        self._manifest_stamp = stamp
        if manifest.get("generation") == self._state.manifest.get("generation"):
            self._state.manifest = manifest
            return self._state.catch_up()
        _check_model(manifest, self._state.manifest["model"]["id"], self._layout.root)
        old, self._state = self._state, IndexState.load(self._layout, manifest)
        old.close()
        return True

    # -- embedding -------------------------------------------------------------------

    @property
    def encoder(self) -> Encoder:
        """The encoder, created (not loaded) on first use, with the index's model and backend."""
        if self._encoder is None:
            model = self.manifest["model"]
            backend = model.get("backend", LEGACY_BACKEND)
            self._encoder = make_encoder(model["id"], backend=backend)
        return self._encoder

    def _embedder(self) -> ArticleEmbedder:
        return ArticleEmbedder.from_config(self.encoder, self.manifest.get("embedding", {}))

    def _embed(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        vectors = self._embedder().embed_texts(pairs)
        if vectors.shape[1] != self.manifest["model"]["dimension"]:
            raise ModelMismatchError(
                f"encoder {self.encoder.model_id!r} gives {vectors.shape[1]}-d vectors; index "
                f"{str(self._layout.root)!r} holds {self.manifest['model']['dimension']}-d vectors"
            )
        return vectors

    def _embed_articles(self, articles: list[Article], *, progress: bool) -> np.ndarray:
        if not articles:
            return np.zeros((0, self.manifest["model"]["dimension"]), dtype=np.float32)
        parts = []
        pre = self.precomputed

        def embed(batch: Sequence[Article]) -> np.ndarray:
            return self._embed([(a.title, a.body) for a in batch])

        with _progress(progress, len(articles), "embedding") as bar:
            for batch in _batched(iter(articles), _BATCH):
                parts.append(pre.vectors_for(batch, embed) if pre is not None else embed(batch))
                bar.update(len(batch))
        return np.concatenate(parts)

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        self._state.close()

    def __enter__(self) -> Recommender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Recommender({str(self._layout.root)!r}, articles={len(self._state.store)})"


# -- helpers ---------------------------------------------------------------------------


_WORKER: Recommender | None = None


def _parallel_lists(
    root: Path,
    chunks: list[list[tuple[int, str]]],
    k: int,
    ranking: RankingConfig,
    workers: int,
    rules: bool = True,
    *,
    rows: bool = False,
) -> Iterator[Any]:
    """Rank batches in ``workers`` processes, yielding results in batch order."""
    import multiprocessing

    # spawn, not fork: a forked child of a process that has run OpenMP (FAISS) can hang.
    context = multiprocessing.get_context("spawn")
    jobs = ((chunk, k, ranking, rules, rows) for chunk in chunks)
    with context.Pool(workers, initializer=_open_worker, initargs=(str(root),)) as pool:
        yield from pool.imap(_worker_lists, jobs)


def _open_worker(root: str) -> None:
    global _WORKER
    from recommender.stores.faiss import use_threads

    use_threads(1)  # the pool is the parallelism
    _WORKER = Recommender.open(root)


def _worker_lists(
    job: tuple[list[tuple[int, str]], int, RankingConfig, bool, bool],
) -> list[tuple[str, list[Match]]] | list[ListRow]:
    assert _WORKER is not None
    chunk, k, ranking, rules, rows = job
    if rows:
        return _WORKER._list_rows(chunk, k, ranking)
    return _WORKER._lists(chunk, k, ranking, rules)


def _pool_free(config: RankingConfig) -> bool:
    """Whether a candidate's score can be made independent of the rest of its pool."""
    return config.method == "hybrid" and config.fusion == "symmetric-z"


def _counted(chunks: Iterable[list[Any]], bar: Any) -> Iterator[list[Any]]:
    for chunk in chunks:
        yield chunk
        bar.update(len(chunk))


def _exact_search(store: VectorStore) -> bool:
    """Whether ``store`` finds the exact nearest neighbours (FAISS flat)."""
    inner = getattr(store, "inner", store)
    return isinstance(inner, FaissStore) and inner.kind == "flat"


def _store_kind(store: VectorStore) -> str:
    inner = getattr(store, "inner", store)
    return str(getattr(inner, "kind", inner.name))


def _with_feedback(
    batch: QueryBatch,
    ranked: list[list[tuple[int, float]]],
    store: VectorStore,
    config: RankingConfig,
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


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidArgumentError(f"k must be a positive integer, got {k!r}")


def _check_model(manifest: dict[str, Any], wanted: str | None, path: object) -> None:
    built_with = manifest["model"]["id"]
    if wanted is not None and canonical_model_id(wanted) != built_with:
        raise ModelMismatchError(
            f"index {str(path)!r} was built with model {built_with!r}, not {wanted!r}; "
            f"query it with that model or rebuild it"
        )


def _query_text(
    *, text: str | None, title: str | None, body: str | None, article: Article | None
) -> tuple[str, str]:
    if article is not None:
        return article.title, article.body
    if text is not None and (title is not None or body is not None):
        raise InvalidArgumentError("give either text or title/body, not both")
    title, body = (title or "").strip(), (text if text is not None else body or "").strip()
    checked_text(title, field="title")
    checked_text(body, field="text" if text is not None else "body")
    if not title and not body:
        raise InvalidArgumentError("similar() needs text, or a title and/or body that is not empty")
    return title, body


@contextlib.contextmanager
def _removed_unless_published(layout: storage.IndexLayout, gen: Path) -> Iterator[None]:
    """Remove a new generation that a failed build never published (no orphan is left)."""
    try:
        yield
    except BaseException:
        if _live_generation(layout) != gen.name:
            shutil.rmtree(gen, ignore_errors=True)
        raise


def _live_generation(layout: storage.IndexLayout) -> str | None:
    try:
        return str(layout.read_manifest().get("generation")) if layout.exists() else None
    except RecommenderError:
        return None


def _article_id(value: object) -> str:
    """An id from a caller as the catalog stores it; invalid Unicode is a bad argument."""
    return checked_text(str(value), field="id")


def _validated(items: Iterable[ArticleInput]) -> Iterator[Article | Rejection]:
    """Turn mappings into articles and reject repeated ids (the first one wins)."""
    seen: dict[str, int] = {}
    for position, item in enumerate(items, start=1):
        if isinstance(item, Mapping):
            try:
                item = article_from_mapping(item)
            except InvalidArgumentError as exc:
                raw = printable(json.dumps(item, default=str, ensure_ascii=False)[:2000])
                reason = printable(str(exc))
                yield Rejection(source="<input>", line=position, reason=reason, raw=raw)
                continue
        if isinstance(item, Article):
            try:
                check_article(item)
            except InvalidArgumentError as exc:
                reason = printable(str(exc))
                yield Rejection("<input>", position, reason, printable(item.id))
                continue
            if item.id in seen:
                reason = f"duplicate id {item.id!r} (first at item {seen[item.id]})"
                yield Rejection(source="<input>", line=position, reason=reason, id=item.id)
                continue
            seen[item.id] = position
        yield item


def _split(items: Iterable[Article | Rejection], rejected: list[Rejection]) -> Iterator[Article]:
    for item in items:
        if isinstance(item, Rejection):
            rejected.append(item)
        else:
            yield item


def _batched(items: Iterator[Article] | Iterable[Article], size: int) -> Iterator[list[Article]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _raise_if_rejected(layout: storage.IndexLayout, rejected: list[Rejection]) -> None:
    if rejected:
        layout.check_writable_target()
        with layout.writer_lock():
            _write_rejects(layout, rejected)
        raise RejectedRecordsError(rejected, str(layout.rejects_path))


def _write_rejects(layout: storage.IndexLayout, rejected: list[Rejection]) -> None:
    """Replace rejects.jsonl with this run's rejections (removed when there are none)."""
    if not rejected:
        layout.rejects_path.unlink(missing_ok=True)
        return
    # ASCII with escapes: any rejected input can be written, lone surrogates included,
    # and its raw text reads back exactly as it came in.
    storage.write_lines_atomic(
        layout.rejects_path, (json.dumps(r.to_dict(), ensure_ascii=True) for r in rejected)
    )


def _precomputed(
    path: str | os.PathLike[str] | None, embedder: ArticleEmbedder, where: str
) -> PrecomputedEmbeddings | None:
    if path is None:
        return None
    pre = PrecomputedEmbeddings.open(path)
    pre.check(embedder, where)
    return pre


def _replaced_collections(
    layout: storage.IndexLayout, gen: Path, new: VectorStore
) -> dict[str, list[str]]:
    """Engine URL -> the collections that publishing ``gen`` leaves unused.

    The live index's collection (if its store is shared) and those of other
    generations on disk (builds that were killed before publishing).
    """
    out: dict[str, list[str]] = {}
    others = [p.name for p in layout.root.iterdir() if p.is_dir() and p.name != gen.name]
    # Orphans the writer lock already removed from disk still have their collections.
    others += [g for g in layout.removed_generations if g != gen.name]
    if new.shared:
        from recommender.stores.milvus import collection_name

        url = new.options()["url"]
        out[url] = [collection_name(g) for g in others if g.startswith("gen-")]
    if layout.exists():
        try:
            old = store_options(layout.read_manifest())
        except RecommenderError:
            return out  # a damaged index: nothing of it to clean up
        if "collection" in old and "url" in old:
            out.setdefault(str(old["url"]), []).append(str(old["collection"]))
    return out


def _drop_collections(collections: dict[str, list[str]]) -> None:
    """Drop replaced collections; a failure only leaves an unused collection behind."""
    from recommender.stores.milvus import drop_collections

    for url, names in collections.items():
        try:
            drop_collections(url, names)
        except RecommenderError as exc:
            print(f"warning: could not drop replaced collections {names}: {exc}", file=sys.stderr)


def _new_manifest(
    generation: str,
    model_id: str,
    store: VectorStore,
    embedder: ArticleEmbedder,
    count: int,
    ranking: RankingConfig,
    *,
    backend: str = LEGACY_BACKEND,
) -> dict[str, Any]:
    created = _now()
    return {
        "format_version": storage.FORMAT_VERSION,
        "generation": generation,
        "model": {
            "id": model_id,
            "backend": backend,
            "dimension": store.dimension,
            "normalized": True,
        },
        "embedding": embedder.config(),
        "ranking": ranking.to_dict(),
        "store": store.name,
        "index_type": getattr(store, "index_type", None),
        # Where the vectors are (a Milvus URL and collection); never credentials.
        "store_options": store.options(),
        "metric": "inner_product",
        "counts": {"articles": count},
        "created_at": created,
        "updated_at": created,
        "versions": _versions(),
    }


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for package in ("recommender", "sentence-transformers", "faiss-cpu", "numpy", "torch"):
        try:
            out[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            out[package] = None
    return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)  # not Path.stat: a request checks the manifest, and pathlib adds ~3 us
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns)


class _NullBar:
    def update(self, n: int) -> None:
        pass

    def __enter__(self) -> _NullBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _progress(enabled: bool, total: int | None, desc: str) -> Any:
    if not enabled:
        return _NullBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="article", file=sys.stderr, dynamic_ncols=True)
