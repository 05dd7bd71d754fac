"""The in-memory state of one index generation, and how it follows the catalog.

The catalog (SQLite) is the source of truth. The vector store and the lexical
index are derived from it: loaded from snapshot files tagged with a catalog
sequence number, then brought up to date by replaying the change log.

Snapshots are memory-mapped read-only, so every process that serves one index
(the workers of ``recommender serve``, a CLI next to them) shares one copy of
the vectors and term counts in the page cache; only changes made after the
snapshot are held privately, and a process moves to a newer snapshot as soon as
one appears. Snapshot files are never changed in place (a new one is renamed
into place, an old one unlinked), so a mapping stays valid while it is used.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import storage
from .catalog import Catalog, lexical_text
from .errors import IndexFormatError
from .lexical import LexicalIndex
from .stores import VectorStore, store_class
from .stores.faiss import FaissStore
from .types import Article

__all__ = ["IndexState"]


@dataclass
class IndexState:
    """Catalog, vector store and lexical index of one generation, at catalog sequence ``seq``."""

    manifest: dict[str, Any]
    gen_dir: Path
    catalog: Catalog
    store: VectorStore
    lexical: LexicalIndex
    seq: int
    #: The catalog sequence of the snapshot the store and lexical index were read from.
    snapshot_seq: int = 0
    _times: dict[int, float] | None = field(default=None, repr=False)

    @classmethod
    def load(cls, layout: storage.IndexLayout, manifest: dict[str, Any]) -> IndexState:
        gen = layout.generation_dir(manifest)
        catalog_path = gen / storage.CATALOG
        if not catalog_path.is_file():
            raise IndexFormatError(f"index {str(layout.root)!r}: {catalog_path.name} is missing")
        catalog = Catalog(catalog_path)
        return cls(manifest, gen, catalog, *_load_derived(gen, manifest, catalog))

    # -- following the catalog -------------------------------------------------------

    def catch_up(self) -> bool:
        """Replay catalog writes made since ``seq`` (by this or another process)."""
        seq = self.catalog.seq()
        newer = storage.latest_snapshot(self.gen_dir, seq)
        if newer is not None and newer[0] > self.snapshot_seq:
            # A checkpoint wrote a snapshot: map it (shared with the other
            # processes) rather than keep replaying into a private overlay.
            self._reload()
            return True
        if seq == self.seq:
            return False
        changed = self.catalog.changed_since(self.seq)
        if changed is None:  # history pruned by a checkpoint: reload the snapshots
            self._reload()
        else:
            _replay(self.store, self.lexical, self.catalog, changed)
            self.seq = seq
        self._times = None
        return True

    def apply(self, upserts: list[tuple[Article, np.ndarray | None]], removals: list[str]) -> None:
        """Commit a write to the catalog, then mirror it in the store and lexical index."""
        seq, touched = self.catalog.write(upserts, removals)
        upserted = touched[: len(upserts)]
        changed = [i for i, (_, v) in zip(upserted, upserts, strict=True) if v is not None]
        gone = np.array(changed + touched[len(upserts) :], dtype=np.int64)
        self.store.remove(gone)
        self.lexical.remove(gone)
        if changed:
            pairs = [(a, v) for a, v in upserts if v is not None]
            ids = np.array(changed, dtype=np.int64)
            self.store.add(ids, np.stack([v for _, v in pairs]))
            self.lexical.add(ids, [lexical_text(a.title, a.body) for a, _ in pairs])
        self.seq = seq
        self._times = None

    def pending_changes(self) -> int | None:
        found = storage.latest_snapshot(self.gen_dir, self.seq)
        changed = self.catalog.changed_since(found[0] if found else 0)
        return None if changed is None else len(changed)

    def checkpoint(self) -> None:
        """Snapshot the store and lexical index at ``seq`` and forget older history.

        The process then maps the new snapshot, dropping its private overlay.
        """
        write_snapshots(self.gen_dir, self.store, self.lexical, self.seq)
        self.catalog.prune_changes(self.seq)
        storage.remove_old_snapshots(self.gen_dir, self.seq)
        self._reload()

    def _reload(self) -> None:
        self.store, self.lexical, self.seq, self.snapshot_seq = _load_derived(
            self.gen_dir, self.manifest, self.catalog
        )
        self._times = None

    def published(self, ids: np.ndarray) -> np.ndarray:
        """Epoch seconds of each id's publication, NaN when unknown (cached until a write)."""
        if self._times is None:
            self._times = self.catalog.published_times()
        times = self._times
        return np.array([times.get(int(i), np.nan) for i in ids], dtype=np.float64)

    def close(self) -> None:
        self.catalog.close()


def compute_pool_stats(
    store: VectorStore,
    lexical: LexicalIndex,
    catalog: Catalog,
    ids: np.ndarray,
    *,
    candidates: int,
    batch_size: int = 256,
    progress: Any = None,
) -> None:
    """Run each article as a query and store its pool statistics (doc-side normalisation)."""
    from .ranking import pool_stats
    from .retrieval import QueryBatch, Retriever

    retriever = Retriever(store, lexical)
    for start in range(0, len(ids), batch_size):
        chunk = np.asarray(ids[start : start + batch_size], dtype=np.int64)
        batch = QueryBatch(store.get(chunk), lexical.stored_counts(chunk), [int(i) for i in chunk])
        pools = retriever.pools(
            batch, candidates=candidates, include=None, exclude=None, max_query_terms=None
        )
        catalog.set_pool_stats([int(i) for i in chunk], np.stack([pool_stats(p) for p in pools]))
        if progress is not None:
            progress.update(len(chunk))


def write_snapshots(gen: Path, store: VectorStore, lexical: LexicalIndex, seq: int) -> None:
    """Write both snapshots for ``seq``; the vector file last, as it marks the pair complete."""
    _atomic(storage.lexical_path(gen, seq), lexical.save)
    _atomic(storage.snapshot_path(gen, seq), store.save)
    storage.fsync_dir(gen)


def _atomic(final: Path, save: Any) -> None:
    tmp = final.with_name(f".{final.name}.{secrets.token_hex(4)}.tmp")
    save(tmp)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)


def _load_derived(
    gen: Path, manifest: dict[str, Any], catalog: Catalog
) -> tuple[VectorStore, LexicalIndex, int, int]:
    """Store, lexical index, the catalog sequence they reflect, and their snapshot's."""
    dimension = int(manifest["model"]["dimension"])
    cls = store_class(manifest.get("store", FaissStore.name))
    # A checkpoint in another process may delete the snapshot we picked
    # between listing and replaying; try again with the newer one.
    for _ in range(5):
        found = storage.latest_snapshot(gen, catalog.seq())
        if found is None:
            break
        snap_seq, path = found
        try:
            store = cls.load(path, dimension, mmap=True)
            lexical = _load_lexical(gen, snap_seq, catalog)
        except (FileNotFoundError, RuntimeError):
            continue
        seq = catalog.seq()
        changed = catalog.changed_since(snap_seq)
        if changed is not None:
            _replay(store, lexical, catalog, changed)
            return store, lexical, seq, snap_seq
    return (*_rebuild(cls, dimension, catalog), 0)


def _load_lexical(gen: Path, seq: int, catalog: Catalog) -> LexicalIndex:
    path = storage.lexical_path(gen, seq)
    if path.exists():
        return LexicalIndex.load(path, mmap=True)
    lexical = LexicalIndex()  # an index from before the lexical side: derive it
    for ids, texts in catalog.iter_texts():
        lexical.add(ids, texts)
    return lexical


def _rebuild(
    cls: type[VectorStore], dimension: int, catalog: Catalog
) -> tuple[VectorStore, LexicalIndex, int]:
    """No usable snapshot: derive everything from the catalog."""
    seq = catalog.seq()
    store = cls(dimension)
    for ids, vectors in catalog.iter_vectors():
        store.add(ids, vectors)
    lexical = LexicalIndex()
    for ids, texts in catalog.iter_texts():
        lexical.add(ids, texts)
    return store, lexical, seq


def _replay(
    store: VectorStore, lexical: LexicalIndex, catalog: Catalog, changed: list[int]
) -> None:
    if not changed:
        return
    gone = np.array(changed, dtype=np.int64)
    store.remove(gone)
    lexical.remove(gone)
    vectors = catalog.vectors(changed, store.dimension)
    if vectors:
        ids = np.array(list(vectors), dtype=np.int64)
        store.add(ids, np.stack(list(vectors.values())))
        texts = catalog.texts(list(vectors))
        lexical.add(ids, [texts[int(i)] for i in ids])
