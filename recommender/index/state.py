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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recommender.errors import IndexFormatError
from recommender.index import layout as storage
from recommender.index.catalog import Catalog, lexical_text
from recommender.lexical.index import N_FEATURES, LexicalIndex, PinnedStats
from recommender.stores import SearchResult, VectorMeta, VectorStore, store_class
from recommender.stores.base import in_order
from recommender.stores.faiss import FaissStore
from recommender.types import Article

if TYPE_CHECKING:
    from recommender.filters import Filters

__all__ = ["CatalogVectors", "IndexState", "read_pin", "with_catalog_vectors"]


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
    _numbers: ArticleNumbers | None = field(default=None, repr=False)

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
        self.sync_pin()
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
            self.forget(changed)
        return True

    def apply(self, upserts: list[tuple[Article, np.ndarray | None]], removals: list[str]) -> None:
        """Commit a write to the catalog, then mirror it in the store and lexical index.

        A shared store (Milvus) is written inside the catalog transaction,
        before it commits: if the engine fails, the catalog is unchanged too, and
        the requests the engine already took are undone (:class:`_EngineUndo`).
        """
        shared = self.store.shared
        undo = _EngineUndo.before(self.catalog, self.store, upserts, removals) if shared else None

        def write_engine(touched: list[int]) -> None:
            if undo is None:
                return
            try:
                _write_shared(self.store, upserts, touched)
            except BaseException:
                undo.restore(touched)
                raise

        seq, touched = self.catalog.write(upserts, removals, before_commit=write_engine)
        upserted = touched[: len(upserts)]
        changed = [i for i, (_, v) in zip(upserted, upserts, strict=True) if v is not None]
        gone = np.array(changed + touched[len(upserts) :], dtype=np.int64)
        if not shared:
            self.store.remove(gone)
        self.lexical.remove(gone)
        if changed:
            pairs = [(a, v) for a, v in upserts if v is not None]
            ids = np.array(changed, dtype=np.int64)
            if not shared:
                self.store.add(ids, np.stack([v for _, v in pairs]))
            self.lexical.add(ids, [lexical_text(a.title, a.body) for a, _ in pairs])
        self.seq = seq
        self.forget(touched)

    def sync_pin(self) -> None:
        """Score with the lexical statistics pinned in the catalog (another process may have
        pinned new ones with ``store_lists``)."""
        token = self.catalog.lexical_pin_token()
        current = self.lexical.pinned
        if token != (current.token if current else None):
            self.lexical.pin(read_pin(self.catalog))

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
        old = self.store
        self.store, self.lexical, self.seq, self.snapshot_seq = _load_derived(
            self.gen_dir, self.manifest, self.catalog
        )
        old.close()
        self._numbers = None

    def forget(self, int_ids: list[int]) -> None:
        """Drop what this process cached about these ids; the next read fetches them again."""
        if self._numbers is not None:
            self._numbers.forget(np.asarray(int_ids, dtype=np.int64))

    @property
    def numbers(self) -> ArticleNumbers:
        if self._numbers is None:
            self._numbers = ArticleNumbers(self.catalog)
        return self._numbers

    def published(self, ids: np.ndarray, *, lead_dates: bool = False) -> np.ndarray:
        """Epoch seconds of each id's publication, NaN when unknown.

        With ``lead_dates``, an undated article's time is the date written in its lead.
        """
        return self.numbers.times(ids, lead_dates=lead_dates)

    def years(self, ids: np.ndarray, *, lead_dates: bool = False) -> np.ndarray:
        """Each id's year, NaN when unknown: its date's (as :meth:`published` reads it),
        else the latest year its text writes (:func:`recommender.ingest.dates.written_year`)."""
        return self.numbers.years(ids, lead_dates=lead_dates)

    def pool_stats(self, ids: np.ndarray) -> np.ndarray:
        """Each id's score statistics over its own candidate pool (NaN rows when unknown)."""
        return self.numbers.stats(ids)

    def sections(self, ids: np.ndarray) -> np.ndarray:
        """Each id's section, case-folded ("" when none or unknown)."""
        return self.numbers.sections(ids)

    def close(self) -> None:
        self.catalog.close()
        self.store.close()


def _write_shared(
    store: VectorStore, upserts: list[tuple[Article, np.ndarray | None]], touched: list[int]
) -> None:
    """Mirror a catalog write in a shared store: upsert in place, then delete."""
    upserted = touched[: len(upserts)]
    fresh = [(i, a, v) for i, (a, v) in zip(upserted, upserts, strict=True) if v is not None]
    if fresh:
        ids = np.array([i for i, _, _ in fresh], dtype=np.int64)
        store.upsert(
            ids, np.stack([v for _, _, v in fresh]), [VectorMeta.of(a) for _, a, _ in fresh]
        )
    # Metadata-only changes: the engine keeps the fields that filters read.
    moved = [(i, a) for i, (a, v) in zip(upserted, upserts, strict=True) if v is None]
    if moved:
        ids = np.array([i for i, _ in moved], dtype=np.int64)
        store.upsert(ids, store.get(ids), [VectorMeta.of(a) for _, a in moved])
    store.remove(np.array(touched[len(upserts) :], dtype=np.int64))


@dataclass
class _EngineUndo:
    """What a shared store held for the ids a write touches, to put back if the write fails.

    The engine takes a write in several requests (upserts in batches, then deletes) and has
    no transaction: a failure after the first one would leave its rows in the engine while
    the catalog rolls back. The catalog, read before the write, knows the old vectors and
    fields, so restoring them (and deleting ids the write was adding) undoes it.
    """

    store: VectorStore
    old: dict[int, tuple[np.ndarray, VectorMeta]]

    @classmethod
    def before(
        cls,
        catalog: Catalog,
        store: VectorStore,
        upserts: list[tuple[Article, np.ndarray | None]],
        removals: list[str],
    ) -> _EngineUndo:
        existing = catalog.int_ids([a.id for a, _ in upserts] + removals)
        vectors = catalog.vectors(list(existing.values()), store.dimension)
        old: dict[int, tuple[np.ndarray, VectorMeta]] = {}
        for article_id, int_id in existing.items():
            article = catalog.article(article_id)
            if article is not None and int_id in vectors:
                old[int_id] = (vectors[int_id], VectorMeta.of(article))
        return cls(store, old)

    def restore(self, touched: list[int]) -> None:
        """Put the old rows back and delete the ids the failed write was adding."""
        ids = sorted(self.old)
        if ids:
            self.store.upsert(
                np.array(ids, dtype=np.int64),
                np.stack([self.old[i][0] for i in ids]),
                [self.old[i][1] for i in ids],
            )
        new = sorted(set(touched) - set(self.old))
        if new:
            self.store.remove(np.array(new, dtype=np.int64))


class CatalogVectors(VectorStore):
    """A shared store whose vectors are read back from the catalog instead of the engine.

    The ranking reads stored vectors often (the query article's, the lexical-only
    candidates'); each would be a round trip to Milvus, while the catalog holds
    the same float32 vectors in a local file. Searches and writes go to the engine.
    """

    def __init__(self, store: VectorStore, catalog: Catalog) -> None:
        super().__init__(store.dimension)
        self.inner = store
        self.catalog = catalog
        self.name = store.name
        self.shared = store.shared
        self.keeps_metadata = store.keeps_metadata
        self.single_process = store.single_process
        self.snapshot_suffix = store.snapshot_suffix

    def __len__(self) -> int:
        return len(self.inner)

    @property
    def exact(self) -> bool:
        return self.inner.exact

    def add(
        self, ids: np.ndarray, vectors: np.ndarray, meta: Sequence[VectorMeta] | None = None
    ) -> None:
        self.inner.add(ids, vectors, meta)

    def upsert(
        self, ids: np.ndarray, vectors: np.ndarray, meta: Sequence[VectorMeta] | None = None
    ) -> None:
        self.inner.upsert(ids, vectors, meta)

    def remove(self, ids: np.ndarray) -> int:
        return self.inner.remove(ids)

    def get(self, ids: np.ndarray) -> np.ndarray:
        found = self.catalog.vectors([int(i) for i in ids], self.dimension)
        return in_order(ids, found, self.dimension)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        include: np.ndarray | None = None,
        exclude: np.ndarray | None = None,
        where: Filters | None = None,
        stored: np.ndarray | None = None,
    ) -> SearchResult:
        return self.inner.search(
            queries, k, include=include, exclude=exclude, where=where, stored=stored
        )

    def save(self, path: Path) -> None:
        self.inner.save(path)

    @classmethod
    def load(cls, path: Path, dimension: int, *, mmap: bool = False, **options: Any) -> VectorStore:
        raise TypeError("CatalogVectors wraps an open store; load the store itself")

    def options(self) -> dict[str, Any]:
        return self.inner.options()

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "vectors_read_from": "catalog"}

    def saw_change(self) -> None:
        self.inner.saw_change()

    def close(self) -> None:
        self.inner.close()


def with_catalog_vectors(store: VectorStore, catalog: Catalog) -> VectorStore:
    """``store``, reading vectors from ``catalog`` when it is a shared engine."""
    if store.shared and not isinstance(store, CatalogVectors):
        return CatalogVectors(store, catalog)
    return store


def dated_years(times: np.ndarray, written: np.ndarray) -> np.ndarray:
    """Each article's year for the time prior: the UTC calendar year of its time (epoch
    seconds), else its ``written`` year (the latest its text writes); NaN when neither."""
    times = np.asarray(times, dtype=np.float64)
    known = np.isfinite(times)
    stamps = np.where(known, times, 0.0).astype("datetime64[s]")
    calendar = stamps.astype("datetime64[Y]").astype(np.float64) + 1970.0
    out: np.ndarray = np.where(known, calendar, written)
    return out


class ArticleNumbers:
    """Publication time, written year and pool statistics of every article, in arrays
    indexed by int id.

    The ranking reads both for each of a query's ~400 candidates; one SQL
    round trip per query costs more than the rest of the ranking. Catalog int
    ids only grow, so arrays indexed by id stay small (65 bytes per id).
    Written ids are marked unknown and read again on next use, which also
    picks up statistics another process stores just after its write commits.
    """

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        ids, times, leads, stats, sections, years = catalog.numbers()
        size = int(ids.max()) + 1 if len(ids) else 0
        self._times = np.full(size, np.nan)
        self._leads = np.full(size, np.nan)
        self._written = np.full(size, np.nan)  # the latest year each text writes
        self._stats = np.full((size, 4), np.nan)
        self._sections = np.full(size, "", dtype=object)
        self._known = np.zeros(size, dtype=bool)
        self._set(ids, times, leads, stats, sections, years)
        #: The catalog's data version when ids without statistics were last read again.
        self._unset_read_at: int | None = None

    def _set(
        self,
        ids: np.ndarray,
        times: np.ndarray,
        leads: np.ndarray,
        stats: np.ndarray,
        sections: np.ndarray,
        years: np.ndarray,
    ) -> None:
        self._known[ids] = True
        self._times[ids] = times
        self._leads[ids] = leads
        self._written[ids] = years
        self._stats[ids] = stats
        self._sections[ids] = sections

    def forget(self, ids: np.ndarray) -> None:
        ids = ids[(ids >= 0) & (ids < len(self._known))]
        self._known[ids] = False

    def _fetch(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``ids`` clipped into the arrays, after reading unknown ones from the catalog.

        And which ids are valid (not negative); None when all are.
        """
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) and ids.min() >= 0 and ids.max() < len(self._known) and self._usable(ids):
            return ids, None  # the usual case: every id read, with its statistics
        top = int(ids.max()) + 1 if len(ids) else 0
        if top > len(self._known):
            grow = top - len(self._known)
            self._times = np.concatenate([self._times, np.full(grow, np.nan)])
            self._leads = np.concatenate([self._leads, np.full(grow, np.nan)])
            self._written = np.concatenate([self._written, np.full(grow, np.nan)])
            self._stats = np.concatenate([self._stats, np.full((grow, 4), np.nan)])
            self._sections = np.concatenate([self._sections, np.full(grow, "", dtype=object)])
            self._known = np.concatenate([self._known, np.zeros(grow, dtype=bool)])
        valid = ids >= 0
        missing = ids[valid][~self._known[ids[valid]]]
        unset = ids[valid][np.isnan(self._stats[ids[valid], 0])]
        if len(unset):
            # Statistics not stored yet: another process computes them just after its
            # write commits. Read them again only once something has been committed
            # since the last look (not a catalog query on every request).
            version = self._catalog.data_version()
            if version != self._unset_read_at:
                self._unset_read_at = version
                missing = np.concatenate([missing, unset])
        if len(missing):
            self._known[missing] = True
            self._times[missing] = np.nan
            self._leads[missing] = np.nan
            self._written[missing] = np.nan
            self._stats[missing] = np.nan
            self._sections[missing] = ""
            self._set(*self._catalog.numbers(np.unique(missing).tolist()))
        return np.where(valid, ids, 0), valid

    def _usable(self, ids: np.ndarray) -> bool:
        """Whether every one of ``ids`` (all inside the arrays) is read and has statistics."""
        return bool(self._known[ids].all() and not np.isnan(self._stats[ids, 0]).any())

    def times(self, ids: np.ndarray, *, lead_dates: bool = False) -> np.ndarray:
        rows, valid = self._fetch(ids)
        source = self._leads if lead_dates else self._times
        out: np.ndarray = source[rows] if valid is None else np.where(valid, source[rows], np.nan)
        return out

    def years(self, ids: np.ndarray, *, lead_dates: bool = False) -> np.ndarray:
        rows, valid = self._fetch(ids)
        out = dated_years((self._leads if lead_dates else self._times)[rows], self._written[rows])
        return out if valid is None else np.where(valid, out, np.nan)

    def sections(self, ids: np.ndarray) -> np.ndarray:
        rows, valid = self._fetch(ids)
        out: np.ndarray = (
            self._sections[rows] if valid is None else np.where(valid, self._sections[rows], "")
        )
        return out

    def stats(self, ids: np.ndarray) -> np.ndarray:
        rows, valid = self._fetch(ids)
        picked = self._stats[rows]
        out: np.ndarray = picked if valid is None else np.where(valid[:, None], picked, np.nan)
        return out


def write_snapshots(gen: Path, store: VectorStore, lexical: LexicalIndex, seq: int) -> None:
    """Write both snapshots for ``seq``; the vector file last, as it marks the pair complete."""
    _atomic(storage.lexical_path(gen, seq), lexical.save)
    if store.writes_rows:
        _atomic(storage.rows_path(gen, seq), store.save_rows)
    if store.writes_probes:
        _atomic(storage.probes_path(gen, seq), store.save_probes)
    _atomic(storage.snapshot_path(gen, seq, store.snapshot_suffix), store.save)
    storage.fsync_dir(gen)


def _atomic(final: Path, save: Any) -> None:
    tmp = final.with_name(f".{final.name}.{secrets.token_hex(4)}.tmp")
    save(tmp)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)


def read_pin(catalog: Catalog) -> PinnedStats | None:
    """The lexical statistics pinned by ``store_lists``, or None (live statistics)."""
    found = catalog.lexical_pin(N_FEATURES)
    return PinnedStats(*found) if found is not None else None


def _load_derived(
    gen: Path, manifest: dict[str, Any], catalog: Catalog
) -> tuple[VectorStore, LexicalIndex, int, int]:
    """Store, lexical index, the catalog sequence they reflect, and their snapshot's."""
    store, lexical, seq, snap_seq = _load_unpinned(gen, manifest, catalog)
    lexical.pin(read_pin(catalog))
    return store, lexical, seq, snap_seq


def _load_unpinned(
    gen: Path, manifest: dict[str, Any], catalog: Catalog
) -> tuple[VectorStore, LexicalIndex, int, int]:
    dimension = int(manifest["model"]["dimension"])
    cls = store_class(manifest.get("store", FaissStore.name))
    options = store_options(manifest)
    # A checkpoint in another process may delete the snapshot we picked
    # between listing and replaying; try again with the newer one.
    for _ in range(5):
        found = storage.latest_snapshot(gen, catalog.seq())
        if found is None:
            break
        snap_seq, path = found
        try:
            store = with_catalog_vectors(cls.load(path, dimension, mmap=True, **options), catalog)
            lexical = _load_lexical(gen, snap_seq, catalog)
        except (FileNotFoundError, RuntimeError):
            continue
        seq = catalog.seq()
        changed = catalog.changed_since(snap_seq)
        if changed is not None:
            _replay(store, lexical, catalog, changed)
            return store, lexical, seq, snap_seq
    if cls.shared:
        # No snapshot yet (an index whose build was interrupted is never published,
        # so this is rare): the engine holds the vectors, only the lexical side is derived.
        store = with_catalog_vectors(cls.load(gen, dimension, **options), catalog)
        return (*_rebuild(store, catalog), 0)
    return (*_rebuild(cls(dimension, **options), catalog), 0)


def _load_lexical(gen: Path, seq: int, catalog: Catalog) -> LexicalIndex:
    path = storage.lexical_path(gen, seq)
    if path.exists():
        return LexicalIndex.load(path, mmap=True)
    lexical = LexicalIndex()  # an index from before the lexical side: derive it
    for ids, texts in catalog.iter_texts():
        lexical.add(ids, texts)
    return lexical


def store_options(manifest: dict[str, Any]) -> dict[str, Any]:
    """The vector store's settings recorded in a manifest."""
    if "store_options" in manifest:
        return dict(manifest["store_options"])
    return {"index_type": manifest.get("index_type", "auto")}


def _rebuild(store: VectorStore, catalog: Catalog) -> tuple[VectorStore, LexicalIndex, int]:
    """No usable snapshot: derive everything from the catalog."""
    seq = catalog.seq()
    if not store.shared:
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
    # A shared store already holds the changes: the writer put them in the engine.
    if store.shared:
        store.saw_change()
    else:
        store.remove(gone)
    lexical.remove(gone)
    vectors = catalog.vectors(changed, store.dimension)
    if vectors:
        ids = np.array(list(vectors), dtype=np.int64)
        if not store.shared:
            store.add(ids, np.stack(list(vectors.values())))
        texts = catalog.texts(list(vectors))
        lexical.add(ids, [texts[int(i)] for i in ids])
