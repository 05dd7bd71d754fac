"""One index directory as this process holds it, kept current with other processes' writes.

The facade, the ranking worker processes, the stored-list keeper and the write path
share one :class:`LiveIndex`: the state of the live generation, the readers-writer
lock that makes each write appear whole to this process's readers, the manifest
stamp that tells when another process has published a change, and the encoder of
the index's model (created on first use: queries by id never need it).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from recommender.embedding.encoders import LEGACY_BACKEND, ArticleEmbedder, Encoder, make_encoder
from recommender.embedding.models import canonical_model_id
from recommender.errors import ArticleNotFoundError, InvalidArgumentError, ModelMismatchError
from recommender.index import layout as storage
from recommender.index.rwlock import RWLock
from recommender.index.state import IndexState
from recommender.text import checked_id, checked_text
from recommender.types import (
    Article,
    ArticleListing,
    ArticleSummary,
    IndexInfo,
    StoredListsStatus,
)
from recommender.urls import canonical_url

__all__ = ["LiveIndex", "check_model", "file_stamp"]


class LiveIndex:
    """The live generation's state, its lock, and catching up with other processes.

    ``state`` is replaced whole when another process publishes a new generation:
    read it once per operation, under ``lock.read()``.
    """

    def __init__(
        self, layout: storage.IndexLayout, state: IndexState, *, encoder: Encoder | None = None
    ) -> None:
        self.layout = layout
        self.state = state
        self.lock = RWLock()
        self._encoder = encoder
        self._manifest_stamp = file_stamp(layout.manifest_path)
        #: The sections and their counts, with the (state, seq) they were counted at.
        self._sections: tuple[tuple[int, int], dict[str, int]] | None = None
        #: Canonical URL -> article id (absolute URLs, then site paths), and when read.
        self._urls: tuple[tuple[int, int], dict[str, str], dict[str, str]] | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, model: str | None = None) -> LiveIndex:
        """Open the index at ``path``; ``model``, when given, must be the one that built it."""
        layout = storage.IndexLayout(path)
        manifest = layout.read_manifest()
        check_model(manifest, model, path)
        return cls(layout, IndexState.load(layout, manifest))

    @property
    def manifest(self) -> dict[str, Any]:
        """The live generation's manifest."""
        return self.state.manifest

    @contextmanager
    def reading(self) -> Iterator[IndexState]:
        """The live state, caught up with other processes, under the read lock."""
        self.refresh()
        with self.lock.read():
            yield self.state

    def version(self) -> tuple[object, ...]:
        """What every answer depends on, read without catching up: it changes with any
        commit by another connection or process (the manifest's stamp, the catalog's data
        version) and with this process's own state (its generation and sequence number)."""
        state = self.state
        stamp = file_stamp(self.layout.manifest_path)
        return (stamp, state.catalog.data_version(), id(state), state.seq)

    def int_id(self, article_id: str) -> int:
        """The catalog's number of an indexed article; an unknown id is ArticleNotFoundError."""
        found = self.state.catalog.int_id(checked_id(article_id))
        if found is None:
            raise ArticleNotFoundError(str(article_id))
        return found

    def article(self, article_id: str) -> Article:
        """The stored record of one article."""
        found = self.state.catalog.article(checked_id(article_id))
        if found is None:
            raise ArticleNotFoundError(str(article_id))
        return found

    def article_at(self, url: str) -> str:
        """The id of the indexed article whose URL is ``url`` (compared canonically: see
        :func:`recommender.urls.canonical_url`); an article stored with a site path matches
        a full URL with that path. An unknown URL is :class:`ArticleNotFoundError`."""
        key = canonical_url(checked_text(str(url), field="url"))
        if key is None:
            raise InvalidArgumentError(
                f"url: not an http(s) URL or a site path: {url!r}", field="url"
            )
        self.refresh()
        stamp = (id(self.state), self.state.seq)
        if self._urls is None or self._urls[0] != stamp:
            self._urls = (stamp, *_url_maps(self.state.catalog.field_values("url")))
        full, paths = self._urls[1], self._urls[2]
        found = full.get(key) or paths.get(_path_of(key))
        if found is None:
            raise ArticleNotFoundError("", url=url)
        return found

    def browse(self, query: str, offset: int, limit: int) -> ArticleListing:
        """A page of articles whose titles hold every word of ``query``, newest first."""
        self.refresh()
        rows, total = self.state.catalog.browse(query=query, offset=offset, limit=limit)
        articles = tuple(
            ArticleSummary(r.id, r.title, r.url, r.published_at, r.section) for r in rows
        )
        return ArticleListing(articles=articles, total=total, offset=offset, limit=limit)

    def sections(self) -> dict[str, int]:
        """Every section with its number of articles, sorted by name."""
        self.refresh()
        # A scan of the whole catalog; every page of the web UI asks, so keep it until a write.
        key = (id(self.state), self.state.seq)
        if self._sections is None or self._sections[0] != key:
            self._sections = (key, self.state.catalog.sections())
        return dict(self._sections[1])

    def info(self, stored_lists: StoredListsStatus | None) -> IndexInfo:
        """The manifest with live counts (``Recommender.info``)."""
        state = self.state
        counts = {"articles": state.catalog.count(), "vectors": len(state.store)}
        path = str(self.layout.root)
        meta = state.catalog.stories_meta()
        stories = None
        if meta is not None:
            stories = {
                "grouped_at": meta.get("grouped_at"),
                "articles": meta.get("articles"),
                "pending": len(state.catalog.unplaced()),
                "span_days": _finite((meta.get("model") or {}).get("span_days")),
            }
        describe = state.store.describe()
        return IndexInfo(path, state.manifest, counts, describe, stored_lists, stories)

    @property
    def encoder(self) -> Encoder:
        """The encoder, created (not loaded) on first use, with the index's model and backend."""
        if self._encoder is None:
            model = self.manifest["model"]
            backend = model.get("backend", LEGACY_BACKEND)
            self._encoder = make_encoder(model["id"], backend=backend)
        return self._encoder

    def embedder(self) -> ArticleEmbedder:
        """The encoder with the index's embedding settings (passages, lead weight)."""
        return ArticleEmbedder.from_config(self.encoder, self.manifest.get("embedding", {}))

    def embed(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Vectors of (title, body) pairs; an encoder of another dimension is refused."""
        vectors = self.embedder().embed_texts(pairs)
        dimension = self.manifest["model"]["dimension"]
        if vectors.shape[1] != dimension:
            raise ModelMismatchError(
                f"encoder {self.encoder.model_id!r} gives {vectors.shape[1]}-d vectors; index "
                f"{str(self.layout.root)!r} holds {dimension}-d vectors"
            )
        return vectors

    def refresh(self) -> bool:
        """Pick up writes made by other processes; return whether anything changed.

        A rebuilt index (new generation) is reopened whole; updates to the same
        generation are replayed from the catalog's change log.
        """
        stamp = file_stamp(self.layout.manifest_path)
        if stamp != self._manifest_stamp:
            with self.lock.write():
                return self._reload_manifest(stamp)
        if self.state.catalog.seq() == self.state.seq:
            return False
        with self.lock.write():
            return self.state.catch_up()

    def _reload_manifest(self, stamp: tuple[int, int] | None) -> bool:
        manifest = self.layout.read_manifest()
        self._manifest_stamp = stamp
        if manifest.get("generation") == self.state.manifest.get("generation"):
            self.state.manifest = manifest
            return self.state.catch_up()
        check_model(manifest, self.state.manifest["model"]["id"], self.layout.root)
        old, self.state = self.state, IndexState.load(self.layout, manifest)
        old.close()
        return True

    def set_manifest(self, manifest: dict[str, Any]) -> None:
        """Publish ``manifest`` for the live generation.

        The caller holds the writer lock and ``lock.write()``.
        """
        storage.write_json_atomic(self.layout.manifest_path, manifest)
        self.state.manifest = manifest
        self._manifest_stamp = file_stamp(self.layout.manifest_path)

    def republish(self) -> None:
        """Rewrite the manifest unchanged: its new stamp makes other processes catch up."""
        storage.write_json_atomic(self.layout.manifest_path, self.layout.read_manifest())
        self._manifest_stamp = file_stamp(self.layout.manifest_path)

    def close(self) -> None:
        """Close the live generation's catalog and store."""
        self.state.close()


def check_model(manifest: dict[str, Any], wanted: str | None, path: object) -> None:
    """Raise :class:`ModelMismatchError` unless ``wanted`` (if given) built the index."""
    built_with = manifest["model"]["id"]
    if wanted is not None and canonical_model_id(wanted) != built_with:
        raise ModelMismatchError(
            f"index {str(path)!r} was built with model {built_with!r}, not {wanted!r}; "
            f"query it with that model or rebuild it"
        )


def file_stamp(path: Path) -> tuple[int, int] | None:
    """(inode, mtime) of ``path``, None when it is missing: a replaced file changes it."""
    try:
        # os.stat, not Path.stat: every request checks the manifest and the rules file.
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns)


def _url_maps(urls: dict[str, str | None]) -> tuple[dict[str, str], dict[str, str]]:
    """Canonical URL -> article id, for absolute URLs and for site paths; the lowest id
    wins where two articles share a URL (as the catalog lists them, in id order)."""
    full: dict[str, str] = {}
    paths: dict[str, str] = {}
    for article_id in sorted(urls):
        key = canonical_url(urls[article_id] or "")
        if key is not None:
            (full if key.startswith("//") else paths).setdefault(key, article_id)
    return full, paths


def _path_of(key: str) -> str:
    """The site path of a canonical URL (``//host/a?b`` -> ``/a?b``)."""
    return "/" + key[2:].partition("/")[2] if key.startswith("//") else key


def _finite(value: float | None) -> float | None:
    """JSON has no infinity: an unbounded span is None."""
    return value if value is not None and math.isfinite(value) else None
