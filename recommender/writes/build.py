"""The build pipeline: read -> validate -> embed -> write -> publish a new generation.

A build writes a whole generation directory (catalog, vector store, lexical
index, pool statistics) next to the live one and publishes it by renaming the
manifest into place: readers see the old index or the new one, never a mix, and
a build that fails or is killed leaves no generation (nor Milvus collection) behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

from recommender.embedding.encoders import ARTICLE_BATCH, LEGACY_BACKEND, ArticleEmbedder, Encoder
from recommender.embedding.precomputed import PrecomputedEmbeddings
from recommender.errors import RecommenderError
from recommender.index import layout as storage
from recommender.index.catalog import Catalog, lexical_text
from recommender.index.state import (
    IndexState,
    store_options,
    with_catalog_vectors,
    write_snapshots,
)
from recommender.lexical.index import LexicalIndex
from recommender.ranking.batches import progress_bar
from recommender.ranking.calibration import calibrate
from recommender.ranking.pool_stats import (
    PARALLEL_STATS_MIN,
    compute_pool_stats,
    compute_pool_stats_in_workers,
)
from recommender.ranking.ranker import Ranker
from recommender.ranking.rules import RULES_FILE
from recommender.ranking.scoring import RankingConfig
from recommender.stores import VectorMeta, VectorStore, check_store_url, new_store
from recommender.stores.faiss import check_index_type
from recommender.types import Article, Rejection, UpdateReport
from recommender.writes.inputs import (
    ArticleInput,
    batched,
    open_precomputed,
    raise_if_rejected,
    split,
    validated,
    write_rejects,
)

__all__ = ["Build", "check_target", "new_manifest", "now", "removed_unless_published"]


def check_target(layout: storage.IndexLayout, *, index_type: str, store: str) -> None:
    """Raise unless a build with these options can write at ``layout``."""
    layout.check_writable_target()
    check_index_type(index_type)
    check_store_url(store)


class Build:
    """One build of a new index generation at ``layout`` (checked by :func:`check_target`).

    ``precomputed`` is the embeddings directory the last :meth:`run` took vectors from.
    """

    def __init__(
        self,
        layout: storage.IndexLayout,
        encoder: Encoder,
        *,
        ranking: RankingConfig | None,
        index_type: str,
        store: str,
        workers: int | None,
        calibrate: bool = False,
        estimate_weight: bool = True,
    ) -> None:
        check_target(layout, index_type=index_type, store=store)
        self.layout = layout
        self.encoder = encoder
        self.config = ranking or RankingConfig()
        #: Estimate the time prior, and the lexical weight, from the archive before publishing
        #: (ranking/calibration.py, ranking/fusion_weight.py).
        self.calibrate = calibrate
        self.estimate_weight = estimate_weight
        self.index_type = index_type
        self.store_url = store
        self.workers = workers or os.cpu_count() or 1
        self.embedder = ArticleEmbedder(encoder)
        self.precomputed: PrecomputedEmbeddings | None = None

    def run(
        self,
        articles: Iterable[ArticleInput],
        *,
        strict: bool,
        total: int | None,
        progress: bool,
        embeddings: str | os.PathLike[str] | None,
    ) -> UpdateReport:
        """Build and publish the new generation; what it added and rejected.

        ``embeddings`` (a directory written by ``recommender embed``) supplies
        vectors where the text hash matches; the model embeds the rest.
        """
        layout = self.layout
        self.precomputed = open_precomputed(embeddings, self.embedder, "this build")
        items: Iterable[Article | Rejection] = validated(articles)
        if strict:
            items = list(items)
            raise_if_rejected(layout, [r for r in items if isinstance(r, Rejection)])
        rejected: list[Rejection] = []
        with layout.writer_lock():
            gen = layout.new_generation()
            with removed_unless_published(layout, gen):
                catalog = Catalog.create(gen / storage.CATALOG)
                articles_in = split(items, rejected)
                store, lexical = self._write(gen, catalog, articles_in, total, progress)
                # The pool statistics read many stored vectors: from the catalog, not the engine.
                store = with_catalog_vectors(store, catalog)
                seq = catalog.seq()
                write_snapshots(gen, store, lexical, seq)
                self._pool_stats(gen, seq, store, lexical, catalog, progress)
                catalog.prune_changes(seq)
                count = catalog.count()
                catalog.set_pool_stats_basis(count)
                catalog.close()
                write_rejects(layout, rejected)
                self._publish(gen, store, count)
        return UpdateReport(
            added=count,
            rejected=tuple(rejected),
            rejects_path=str(layout.rejects_path) if rejected else None,
            total=count,
        )

    def _write(
        self,
        gen: Path,
        catalog: Catalog,
        articles: Iterator[Article],
        total: int | None,
        progress: bool,
    ) -> tuple[VectorStore, LexicalIndex]:
        """Embed the articles batch by batch into the catalog, a new store and a lexical index."""
        embedder, pre = self.embedder, self.precomputed
        store: VectorStore | None = None
        lexical = LexicalIndex()
        with progress_bar(progress, total, "embedding") as bar:
            for batch in batched(articles, ARTICLE_BATCH):
                vectors = (
                    pre.vectors_for(batch, embedder.embed_articles)
                    if pre is not None
                    else embedder.embed_articles(batch)
                )
                _, touched = catalog.write(list(zip(batch, vectors, strict=True)))
                ids = np.array(touched, dtype=np.int64)
                store = store or self._new_store(gen, vectors.shape[1])
                store.add(ids, vectors, [VectorMeta.of(a) for a in batch])
                lexical.add(ids, [lexical_text(a.title, a.body) for a in batch])
                bar.update(len(batch))
        store = store or self._new_store(gen, self.encoder.dimension)
        store.optimise()
        return store, lexical

    def _new_store(self, gen: Path, dimension: int) -> VectorStore:
        return new_store(self.store_url, dimension, generation=gen, index_type=self.index_type)

    def _pool_stats(
        self,
        gen: Path,
        seq: int,
        store: VectorStore,
        lexical: LexicalIndex,
        catalog: Catalog,
        progress: bool,
    ) -> None:
        """Each article's statistics over its own candidate pool, in worker processes if large."""
        workers = 1 if store.single_process else self.workers
        config = self.config
        with progress_bar(progress, len(lexical), "normalising") as bar:
            if workers > 1 and len(lexical) >= PARALLEL_STATS_MIN:
                compute_pool_stats_in_workers(
                    gen,
                    seq,
                    store,
                    catalog,
                    lexical.ids,
                    config=config,
                    workers=workers,
                    progress=bar,
                )
            else:
                compute_pool_stats(
                    store, lexical, catalog, lexical.ids, config=config, progress=bar
                )

    def _publish(self, gen: Path, store: VectorStore, count: int) -> None:
        """Publish ``gen`` with a new manifest, then drop the Milvus collections it replaced."""
        layout, encoder = self.layout, self.encoder
        manifest = new_manifest(
            gen.name,
            encoder.model_id,
            store,
            self.embedder,
            count,
            self.config,
            # An injected encoder without a backend runs like the pre-backend default.
            backend=getattr(encoder, "backend", LEGACY_BACKEND),
        )
        if self.calibrate or self.estimate_weight:
            self._calibrate(manifest)
        # A/B buckets are settings of the index, not of its contents: keep them.
        if layout.exists():
            buckets = layout.read_manifest().get("buckets")
            if buckets:
                manifest["buckets"] = buckets
        replaced = _replaced_collections(layout, gen, store)
        layout.publish(manifest)
        store.close()
        _drop_collections(replaced)

    def _calibrate(self, manifest: dict[str, Any]) -> None:
        """What the new generation estimates, into its manifest (unpublished)."""
        state = IndexState.load(self.layout, manifest)
        try:
            config, found = calibrate(
                state, Ranker(self.layout.root / RULES_FILE), self.config,
                fusion=self.estimate_weight, time=self.calibrate,
            )  # fmt: skip
        finally:
            state.close()
        manifest["ranking"] = config.to_dict()
        if estimates := found.to_dict():
            manifest["calibration"] = estimates


@contextlib.contextmanager
def removed_unless_published(layout: storage.IndexLayout, gen: Path) -> Iterator[None]:
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


def new_manifest(
    generation: str,
    model_id: str,
    store: VectorStore,
    embedder: ArticleEmbedder,
    count: int,
    ranking: RankingConfig,
    *,
    backend: str = LEGACY_BACKEND,
) -> dict[str, Any]:
    """The manifest of a new generation: what opening it checks, and how it was built."""
    created = now()
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


def now() -> str:
    """The current UTC time as the manifest records it (ISO 8601, seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
