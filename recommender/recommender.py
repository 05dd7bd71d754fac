"""The Recommender facade: build, open, update and query an index directory."""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from . import storage
from ._rwlock import RWLock
from .catalog import Catalog, CatalogRow
from .encoders import ArticleEmbedder, Encoder, canonical_model_id, make_encoder
from .errors import (
    ArticleNotFoundError,
    IndexFormatError,
    InvalidArgumentError,
    ModelMismatchError,
    RejectedRecordsError,
)
from .filters import DateLike, Filters
from .ingest import article_from_mapping
from .stores import VectorStore, store_class
from .stores.faiss import FaissStore
from .types import Article, Match, Rejection, UpdateReport

__all__ = ["Recommender"]

ArticleInput = Article | Mapping[str, Any] | Rejection
_BATCH = 256
#: Replayable changes kept in the catalog before a new vector snapshot is written.
_CHECKPOINT_CHANGES = 2_000


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
        manifest: dict[str, Any],
        catalog: Catalog,
        store: VectorStore,
        seq: int,
        *,
        encoder: Encoder | None = None,
    ) -> None:
        self._layout = layout
        self.manifest = manifest
        self._catalog = catalog
        self._store = store
        self._seq = seq
        self._encoder = encoder
        self._lock = RWLock()
        self._manifest_stamp = _stamp(layout.manifest_path)
        #: What the last build/upsert/remove did.
        self.report: UpdateReport | None = None

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
        catalog, store, seq = _load(layout, manifest)
        return cls(layout, manifest, catalog, store, seq, encoder=encoder)

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
    ) -> Recommender:
        """Build a new index at ``path`` and swap it in atomically; return it opened.

        Bad records become :class:`Rejection` entries in ``report`` and in
        ``rejects.jsonl``; with ``strict`` any rejection raises
        :class:`RejectedRecordsError` and nothing is published.
        """
        layout = storage.IndexLayout(path)
        layout.check_writable_target()
        encoder = encoder or make_encoder(model)
        embedder = ArticleEmbedder(encoder)
        items: Iterable[Article | Rejection] = _validated(articles)
        if strict:
            items = list(items)
            _raise_if_rejected(layout, [r for r in items if isinstance(r, Rejection)])
        rejected: list[Rejection] = []
        with layout.writer_lock():
            gen = layout.new_generation()
            catalog = Catalog.create(gen / storage.CATALOG)
            store: VectorStore | None = None
            with _progress(progress, total, "embedding") as bar:
                for batch in _batched(_split(items, rejected), _BATCH):
                    vectors = embedder.embed_articles(batch)
                    _, ids = catalog.write(list(zip(batch, vectors, strict=True)))
                    store = store or FaissStore(vectors.shape[1])
                    store.add(np.array(ids, dtype=np.int64), vectors)
                    bar.update(len(batch))
            store = store or FaissStore(encoder.dimension)
            seq = catalog.seq()
            _write_snapshot(gen, store, seq)
            catalog.prune_changes(seq)
            count = catalog.count()
            catalog.close()
            _write_rejects(layout, rejected)
            manifest = _new_manifest(layout, gen.name, encoder.model_id, store, embedder, count)
            layout.publish(manifest)
        rec = cls.open(path, encoder=encoder)
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
    ) -> list[Match]:
        """The related list of an indexed article, best first, never the article itself."""
        _check_k(k)
        filters = Filters.make(
            section=section, since=since, until=until, language=language, exclude=exclude
        )
        self.refresh()
        with self._lock.read():
            int_id = self._catalog.int_id(str(article_id))
            if int_id is None:
                raise ArticleNotFoundError(str(article_id))
            query = self._store.get(np.array([int_id], dtype=np.int64))
            return self._search(query, k, filters, skip=[int_id])

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
    ) -> list[Match]:
        """Related articles for a story that need not be in the index.

        Give ``text`` (a whole story), or ``title`` and/or ``body``, or an ``article``.
        """
        _check_k(k)
        title, body = _query_text(text=text, title=title, body=body, article=article)
        filters = Filters.make(
            section=section, since=since, until=until, language=language, exclude=exclude
        )
        query = self._embed([(title, body)])
        self.refresh()
        with self._lock.read():
            return self._search(query, k, filters, skip=[])

    def get(self, article_id: str) -> Article:
        """The stored record of one article."""
        found = self._catalog.article(str(article_id))
        if found is None:
            raise ArticleNotFoundError(str(article_id))
        return found

    def __contains__(self, article_id: object) -> bool:
        return self._catalog.int_id(str(article_id)) is not None

    def __len__(self) -> int:
        return self._catalog.count()

    def info(self) -> dict[str, Any]:
        """The manifest with live counts, for ``recommender info``."""
        self.refresh()
        data = dict(self.manifest)
        data["path"] = str(self._layout.root)
        data["counts"] = {"articles": self._catalog.count(), "vectors": len(self._store)}
        return data

    def _search(self, query: np.ndarray, k: int, filters: Filters, skip: list[int]) -> list[Match]:
        include = (
            self._catalog.filter_ids(
                sections=filters.sections,
                languages=filters.languages,
                since=filters.since,
                until=filters.until,
            )
            if filters.restricts
            else None
        )
        excluded = list(self._catalog.int_ids(filters.exclude).values()) + skip
        exclude = np.array(excluded, dtype=np.int64) if excluded else None
        found = self._store.search(query, k, include=include, exclude=exclude)
        hits = [
            (int(i), float(s)) for i, s in zip(found.ids[0], found.scores[0], strict=True) if i >= 0
        ]
        rows = self._catalog.rows([i for i, _ in hits])
        return [_match(rows[i], score) for i, score in hits if i in rows]

    # -- updates -------------------------------------------------------------------

    def upsert(
        self, articles: Iterable[ArticleInput], *, strict: bool = False, progress: bool = False
    ) -> UpdateReport:
        """Add new articles, re-embed changed ones, skip unchanged ones (no model call).

        The whole batch lands in one transaction: an interrupted upsert leaves
        the index as it was before.
        """
        items = list(_validated(articles))
        rejected = [r for r in items if isinstance(r, Rejection)]
        if strict:
            _raise_if_rejected(self._layout, rejected)
        good = [a for a in items if isinstance(a, Article)]
        with self._layout.writer_lock():
            self.refresh()
            stored = self._catalog.hashes([a.id for a in good])
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
                self._apply(upserts, [])
            _write_rejects(self._layout, rejected)
            added = sum(1 for a in to_embed if a.id not in stored)
            self.report = UpdateReport(
                added=added,
                reembedded=len(to_embed) - added,
                metadata_updated=len(meta_only),
                unchanged=len(good) - len(to_embed) - len(meta_only),
                rejected=tuple(rejected),
                rejects_path=str(self._layout.rejects_path) if rejected else None,
                total=self._catalog.count(),
            )
        return self.report

    def remove(self, article_ids: Iterable[str]) -> UpdateReport:
        """Delete articles by id; ids not in the index are listed in ``missing``."""
        wanted = list(dict.fromkeys(str(a) for a in article_ids))
        with self._layout.writer_lock():
            self.refresh()
            present = self._catalog.int_ids(wanted)
            if present:
                self._apply([], list(present))
            self.report = UpdateReport(
                removed=len(present),
                missing=tuple(a for a in wanted if a not in present),
                total=self._catalog.count(),
            )
        return self.report

    def checkpoint(self) -> None:
        """Write a vector snapshot of the current state and forget replayed history."""
        with self._layout.writer_lock(), self._lock.write():
            self._checkpoint_locked()

    def _apply(self, upserts: list[tuple[Article, np.ndarray | None]], removals: list[str]) -> None:
        # Caller holds the file lock; the write lock makes the catalog commit
        # and the store change one step for readers in this process.
        with self._lock.write():
            seq, touched = self._catalog.write(upserts, removals)
            upserted = touched[: len(upserts)]
            re_vectored = [i for i, (_, v) in zip(upserted, upserts, strict=True) if v is not None]
            self._store.remove(np.array(re_vectored + touched[len(upserts) :], dtype=np.int64))
            if re_vectored:
                vecs = np.stack([v for _, v in upserts if v is not None])
                self._store.add(np.array(re_vectored, dtype=np.int64), vecs)
            self._seq = seq
            pending = self._catalog.changed_since(self._snapshot_seq())
            if pending is None or len(pending) >= _CHECKPOINT_CHANGES:
                self._checkpoint_locked()
            self._touch_manifest()

    def _snapshot_seq(self) -> int:
        gen = self._layout.generation_dir(self.manifest)
        found = storage.latest_snapshot(gen, self._seq)
        return found[0] if found else 0

    def _checkpoint_locked(self) -> None:
        gen = self._layout.generation_dir(self.manifest)
        _write_snapshot(gen, self._store, self._seq)
        self._catalog.prune_changes(self._seq)
        storage.remove_old_snapshots(gen, self._seq)

    def _touch_manifest(self) -> None:
        manifest = dict(self.manifest)
        manifest["updated_at"] = _now()
        manifest["counts"] = {"articles": self._catalog.count()}
        storage.write_json_atomic(self._layout.manifest_path, manifest)
        self.manifest = manifest
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
        if self._catalog.seq() == self._seq:
            return False
        with self._lock.write():
            return self._catch_up()

    def _reload_manifest(self, stamp: tuple[int, int] | None) -> bool:
        manifest = self._layout.read_manifest()
        self._manifest_stamp = stamp
        if manifest.get("generation") == self.manifest.get("generation"):
            self.manifest = manifest
            return self._catch_up()
        _check_model(manifest, self.manifest["model"]["id"], self._layout.root)
        catalog, store, seq = _load(self._layout, manifest)
        self._catalog.close()
        self.manifest, self._catalog, self._store, self._seq = manifest, catalog, store, seq
        return True

    def _catch_up(self) -> bool:
        seq = self._catalog.seq()
        if seq == self._seq:
            return False
        changed = self._catalog.changed_since(self._seq)
        if changed is None:  # history pruned by a checkpoint: reload the snapshot
            self._store, self._seq = _load_store(self._layout, self.manifest, self._catalog)
            return True
        _replay(self._store, self._catalog, changed)
        self._seq = seq
        return True

    # -- embedding -------------------------------------------------------------------

    @property
    def encoder(self) -> Encoder:
        """The encoder, created (not loaded) on first use."""
        if self._encoder is None:
            self._encoder = make_encoder(self.manifest["model"]["id"])
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
        with _progress(progress, len(articles), "embedding") as bar:
            for batch in _batched(iter(articles), _BATCH):
                parts.append(self._embed([(a.title, a.body) for a in batch]))
                bar.update(len(batch))
        return np.concatenate(parts)

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        self._catalog.close()

    def __enter__(self) -> Recommender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Recommender({str(self._layout.root)!r}, articles={len(self._store)})"


# -- helpers ---------------------------------------------------------------------------


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
    if not title and not body:
        raise InvalidArgumentError("similar() needs text, or a title and/or body that is not empty")
    return title, body


def _validated(items: Iterable[ArticleInput]) -> Iterator[Article | Rejection]:
    """Turn mappings into articles and reject repeated ids (the first one wins)."""
    seen: dict[str, int] = {}
    for position, item in enumerate(items, start=1):
        if isinstance(item, Mapping):
            try:
                item = article_from_mapping(item)
            except InvalidArgumentError as exc:
                raw = json.dumps(item, default=str, ensure_ascii=False)[:2000]
                yield Rejection(source="<input>", line=position, reason=str(exc), raw=raw)
                continue
        if isinstance(item, Article):
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
        _write_rejects(layout, rejected)
        raise RejectedRecordsError(rejected, str(layout.rejects_path))


def _write_rejects(layout: storage.IndexLayout, rejected: list[Rejection]) -> None:
    """Replace rejects.jsonl with this run's rejections (removed when there are none)."""
    if not rejected:
        layout.rejects_path.unlink(missing_ok=True)
        return
    layout.root.mkdir(parents=True, exist_ok=True)
    tmp = layout.root / f".rejects.{secrets.token_hex(4)}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        for rejection in rejected:
            handle.write(json.dumps(rejection.to_dict(), ensure_ascii=False) + "\n")
    os.replace(tmp, layout.rejects_path)


def _load(
    layout: storage.IndexLayout, manifest: dict[str, Any]
) -> tuple[Catalog, VectorStore, int]:
    gen = layout.generation_dir(manifest)
    catalog_path = gen / storage.CATALOG
    if not catalog_path.is_file():
        raise IndexFormatError(f"index {str(layout.root)!r}: {catalog_path.name} is missing")
    catalog = Catalog(catalog_path)
    store, seq = _load_store(layout, manifest, catalog)
    return catalog, store, seq


def _load_store(
    layout: storage.IndexLayout, manifest: dict[str, Any], catalog: Catalog
) -> tuple[VectorStore, int]:
    gen = layout.generation_dir(manifest)
    dimension = int(manifest["model"]["dimension"])
    cls = store_class(manifest.get("store", FaissStore.name))
    # A checkpoint in another process may delete the snapshot we picked
    # between listing and replaying; try again with the newer one.
    for _ in range(5):
        seq = catalog.seq()
        found = storage.latest_snapshot(gen, seq)
        if found is None:
            break
        try:
            store = cls.load(found[1], dimension)
        except (FileNotFoundError, RuntimeError):
            continue
        changed = catalog.changed_since(found[0])
        if changed is not None:
            _replay(store, catalog, changed)
            return store, seq
    # No usable snapshot: rebuild from the vectors the catalog holds.
    seq = catalog.seq()
    store = cls(dimension)
    for ids, vectors in catalog.iter_vectors():
        store.add(ids, vectors)
    return store, seq


def _replay(store: VectorStore, catalog: Catalog, changed: list[int]) -> None:
    if not changed:
        return
    store.remove(np.array(changed, dtype=np.int64))
    vectors = catalog.vectors(changed, store.dimension)
    if vectors:
        ids = np.array(list(vectors), dtype=np.int64)
        store.add(ids, np.stack(list(vectors.values())))


def _write_snapshot(gen: Path, store: VectorStore, seq: int) -> None:
    final = storage.snapshot_path(gen, seq)
    tmp = gen / f".{final.name}.{secrets.token_hex(4)}.tmp"
    store.save(tmp)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)
    storage.fsync_dir(gen)


def _new_manifest(
    layout: storage.IndexLayout,
    generation: str,
    model_id: str,
    store: VectorStore,
    embedder: ArticleEmbedder,
    count: int,
) -> dict[str, Any]:
    created = _now()
    return {
        "format_version": storage.FORMAT_VERSION,
        "generation": generation,
        "model": {"id": model_id, "dimension": store.dimension, "normalized": True},
        "embedding": embedder.config(),
        "store": store.name,
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
        st = path.stat()
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
