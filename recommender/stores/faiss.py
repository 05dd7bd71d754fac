"""The embedded default store: FAISS inner-product search with stable ids.

The index type follows the archive's size: exact search (``flat``) below
:data:`IVF_THRESHOLD` vectors, an inverted-file index (``ivf``: vectors in
half precision, grouped into ~2·sqrt(n) lists, of which a query scans the
nearest ``nprobe``) above it. ``nprobe`` is tuned on the index's own vectors
when the snapshot is written, to the smallest value whose recall@10 against
exact search reaches :data:`TARGET_RECALL`.

A store read from a snapshot maps the file read-only (``IO_FLAG_MMAP_IFC``)
instead of copying it, so every process serving one index shares one copy of
the vectors in the page cache. Such a base can never change in place (FAISS
aborts the process on a write to a mapped index), so writes made after the
snapshot go to a small private overlay: a ``delta`` index for added vectors and
a set of ``dead`` base ids for removed ones, merged at query time and folded
into the next snapshot by a checkpoint. Deleting from an IVF base therefore
works like deleting from a flat one: hidden at once, gone at the next snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np

from recommender.compiled import switch as compiled
from recommender.compiled.positions import position_table, positions
from recommender.errors import InvalidArgumentError
from recommender.stores import files
from recommender.stores.base import SearchResult, VectorMeta, VectorStore

if TYPE_CHECKING:
    from recommender.filters import Filters

__all__ = ["INDEX_TYPES", "IVF_THRESHOLD", "TARGET_RECALL", "FaissStore"]

#: ``auto`` picks ``flat`` or ``ivf`` by size when a snapshot is written.
INDEX_TYPES = ("auto", "flat", "ivf")
#: From this many vectors, ``auto`` writes an IVF index. Exact search of 50k
#: 384-d vectors takes ~2 ms per query on one core; the IVF index ~0.3 ms.
IVF_THRESHOLD = 50_000
#: Up to this many vectors an IVF snapshot also keeps its vectors as float16 rows
#: (``rows.<seq>.npy``), read back by a row gather instead of an IVF reconstruct (a hash
#: lookup and a decode per id). A speed trick that earns its place: at 100k articles it
#: makes related-by-id and ``related --all`` 1.25x faster (paired runs, docs/benchmarks.md,
#: issue 20). It is a second copy of the vectors, so at 1M (768 MB) it is not written: the
#: copy cost more memory (+731 MiB RSS) than the reconstructs cost time.
ROWS_MAX_VECTORS = 500_000
#: recall@10 against exact search that the tuned ``nprobe`` must reach.
TARGET_RECALL = 0.99
#: Fewer queries than this search on one thread: with OpenMP's threads
#: competing with other processes for the cores, a single-query search was
#: measured 100x slower multi-threaded (12 ms against 0.13 ms) on a busy machine.
_PARALLEL_QUERIES = 32
_THREADS = faiss.omp_get_max_threads()


def use_threads(count: int) -> None:
    """The OpenMP threads batch searches and index builds use in this process.

    A worker of a process pool sets 1: the pool is the parallelism, and each
    worker's idle OpenMP threads would otherwise spin on the cores the others use.
    """
    global _THREADS
    _THREADS = max(1, int(count))
    faiss.omp_set_num_threads(_THREADS)


def _flat(dimension: int) -> Any:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))


def check_index_type(index_type: str) -> str:
    if index_type not in INDEX_TYPES:
        raise InvalidArgumentError(
            f"unknown index type {index_type!r}; expected one of {list(INDEX_TYPES)}"
        )
    return index_type


class FaissStore(VectorStore):
    """Search over unit vectors (inner product = cosine), exact or IVF.

    Ids live inside the index (``IndexIDMap2`` for flat, the inverted lists
    and a hash-table direct map for IVF), so a query by article id reads its
    vector back without the model.
    """

    name = "faiss"

    def __init__(
        self,
        dimension: int,
        index: Any = None,
        *,
        mapped: bool = False,
        index_type: str = "auto",
    ) -> None:
        super().__init__(dimension)
        self.index_type = check_index_type(index_type)
        self.index = index if index is not None else _flat(dimension)
        #: True when ``index`` is a read-only memory map: only the overlay changes.
        self.mapped = mapped
        self._delta = _flat(dimension)
        self._base_ids = np.sort(_index_ids(self.index)) if mapped else None
        self._dead = np.zeros(0, dtype=np.int64)  # sorted base ids removed since the snapshot
        #: The mapped base's vectors in ``_base_ids`` order (float16), when the snapshot has them.
        self._rows: np.ndarray | None = None
        #: The lists an IVF search of each base vector probes, in ``_base_ids`` order.
        self._probes: np.ndarray | None = None
        #: Each id's position in ``_base_ids`` (positions.position_table), built on first use.
        self._base_row: np.ndarray | None = None
        #: The index the snapshot being written holds (built once for its rows and its file).
        self._pending: Any = None

    @property
    def kind(self) -> str:
        """The type of the index searched now: ``flat`` or ``ivf``."""
        return "ivf" if _is_ivf(self.index) else "flat"

    @property
    def exact(self) -> bool:
        return self.kind == "flat"

    def __len__(self) -> int:
        return int(self.index.ntotal) - len(self._dead) + int(self._delta.ntotal)

    def options(self) -> dict[str, Any]:
        return {"index_type": self.index_type}

    def describe(self) -> dict[str, Any]:
        """What ``info`` shows of the search structure in use."""
        out: dict[str, Any] = {"index_type": self.index_type, "kind": self.kind}
        if _is_ivf(self.index):
            out.update(lists=int(self.index.nlist), nprobe=int(self.index.nprobe))
        out["overlay"] = self.overlay_size
        return out

    @property
    def overlay_size(self) -> int:
        """Vectors added or removed since the mapped snapshot (held privately)."""
        return int(self._delta.ntotal) + len(self._dead)

    def add(
        self, ids: np.ndarray, vectors: np.ndarray, meta: Sequence[VectorMeta] | None = None
    ) -> None:
        # Filters reach FAISS as id selectors (resolved by the catalog): no metadata here.
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._check(ids, vectors)
        if len(ids):
            self._pending = None
            (self._delta if self.mapped else self.index).add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> int:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids):
            return 0
        self._pending = None
        if not self.mapped:
            return int(self.index.remove_ids(faiss.IDSelectorBatch(ids)))
        removed = int(self._delta.remove_ids(faiss.IDSelectorBatch(ids)))
        in_base = ids[self._in_base(ids)]
        self._dead = np.union1d(self._dead, in_base)
        return removed + len(np.unique(in_base))

    def _in_base(self, ids: np.ndarray) -> np.ndarray:
        """Which ids are live in the mapped base."""
        assert self._base_ids is not None
        live: np.ndarray = _member(ids, self._base_ids) & ~_member(ids, self._dead)
        return live

    def get(self, ids: np.ndarray) -> np.ndarray:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids):
            return np.zeros((0, self.dimension), dtype=np.float32)
        if not self.mapped:
            return _reconstruct(self.index, ids)
        where, in_base = self._places(ids)
        if in_base.all():
            return self._base_vectors(ids, where)
        out = np.empty((len(ids), self.dimension), dtype=np.float32)
        if in_base.any():
            out[in_base] = self._base_vectors(ids[in_base], where[in_base])
        out[~in_base] = _reconstruct(self._delta, ids[~in_base])
        return out

    def _places(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each id's row in the mapped base, and whether it is live there."""
        assert self._base_ids is not None
        if self._base_row is None:
            self._base_row = position_table(self._base_ids)
        where = positions(self._base_row, ids)
        in_base = where >= 0
        if len(self._dead):
            in_base &= ~_member(ids, self._dead)
        return where, in_base

    def _base_vectors(self, ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The base vectors of ``ids``, at ``rows`` of the base (their places in its ids)."""
        if self._rows is None:
            return _reconstruct(self.index, ids)
        # A row gather from the mapped file (ROWS_MAX_VECTORS says why).
        if compiled.enabled():
            return compiled.kernels().widen(self._rows.view(np.uint16), rows)  # type: ignore[no-any-return]
        return np.asarray(self._rows[rows], dtype=np.float32)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        include: np.ndarray | None = None,
        exclude: np.ndarray | None = None,
        where: Filters | None = None,
        stored: np.ndarray | None = None,
        nprobe: int | None = None,
    ) -> SearchResult:
        if where is not None:
            raise TypeError("FaissStore keeps no metadata: resolve filters to include ids")
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = max(0, min(k, len(self)))
        if k == 0:
            empty = np.empty((len(queries), 0))
            return SearchResult(empty.astype(np.float32), empty.astype(np.int64))
        faiss.omp_set_num_threads(1 if len(queries) < _PARALLEL_QUERIES else _THREADS)
        if include is not None and _is_ivf(self.index) and nprobe is None:
            # A filter that lets a share f of the vectors through leaves about
            # f of each scanned list usable: scan 1/f times as many lists.
            share = max(len(include), 1) / max(int(self.index.ntotal), 1)
            nprobe = min(int(self.index.nlist), int(np.ceil(self.index.nprobe / min(share, 1.0))))
        probes = self._probes_of(stored) if include is None and nprobe is None else None
        if not self.mapped or not self.overlay_size:
            return _search(self.index, queries, k, include, exclude, nprobe, probes)
        hidden = self._dead if exclude is None else np.union1d(self._dead, exclude)
        base = _search(self.index, queries, k, include, hidden, nprobe, probes)
        delta = _search(self._delta, queries, k, include, exclude, None)
        scores = np.hstack([base.scores, delta.scores])
        ids = np.hstack([base.ids, delta.ids])
        # Empty slots (id -1) carry FAISS's lowest score, so they sort last.
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return SearchResult(
            np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)
        )

    def _probes_of(self, stored: np.ndarray | None) -> np.ndarray | None:
        """The lists to probe for queries that are live base vectors; None unless all are.

        Choosing them means scanning every list's centroid (at 100k articles 632 of 384
        floats); the snapshot wrote each vector's choice. A speed trick that earns its
        place: related-by-id at 100k 1.06x faster (0.94 in four paired runs of 300-1,000
        queries, from 0.92 to 0.97; issue 20, docs/benchmarks.md).
        """
        if self._probes is None or stored is None or not len(stored):
            return None
        where, in_base = self._places(np.asarray(stored, dtype=np.int64))
        if not in_base.all():
            return None  # a query that is not in the snapshot, or was replaced since
        lists: np.ndarray = self._probes[where].astype(np.int64)
        return lists

    def live(self) -> tuple[np.ndarray, np.ndarray]:
        """Every live (id, vector), base then overlay."""
        ids = _index_ids(self.index)
        if self.mapped:
            ids = ids[~_member(ids, self._dead)]
            ids = np.concatenate([ids, faiss.vector_to_array(self._delta.id_map)])
        vectors = np.empty((len(ids), self.dimension), dtype=np.float32)
        for start in range(0, len(ids), 65_536):
            chunk = ids[start : start + 65_536]
            vectors[start : start + len(chunk)] = self.get(chunk)
        return ids, vectors

    def target_kind(self) -> str:
        """The index type the next snapshot is written as."""
        if self.index_type != "auto":
            return self.index_type
        return "ivf" if len(self) >= IVF_THRESHOLD else "flat"

    def optimise(self) -> None:
        """Turn an in-memory store into the index type its snapshot will have.

        A build calls this once every vector is in, so that the searches which
        follow (each article's pool statistics) already run on the IVF index.
        """
        kind = self.target_kind()
        if not self.mapped and kind != self.kind:
            ids, vectors = self.live()
            self.index = build_index(kind, self.dimension, ids, vectors)

    def _snapshot(self) -> Any:
        """The index the next snapshot holds: this one, or a new one built whole."""
        if self._pending is None:
            kind = self.target_kind()
            if not self.mapped and self.kind == kind and not _residual(self.index):
                self._pending = self.index
            else:
                # A new file, written whole (overlay folded in), for the next mapping.
                ids, vectors = self.live()
                self._pending = build_index(kind, self.dimension, ids, vectors)
        return self._pending

    @property
    def writes_rows(self) -> bool:
        # A flat index reads a vector back cheaply; an IVF one does not.
        return self.target_kind() == "ivf" and len(self) <= ROWS_MAX_VECTORS

    def save_rows(self, path: Path) -> None:
        """The snapshot's vectors in id order, float16: exactly its fp16 codes."""
        _write_by_id(self._snapshot(), path, np.float16, self.dimension, lambda vectors: vectors)

    @property
    def writes_probes(self) -> bool:
        return self.target_kind() == "ivf"

    def save_probes(self, path: Path) -> None:
        """Each snapshot vector's ``nprobe`` nearest lists, in id order (int32).

        What an IVF search of the vector itself would scan first (up to float
        rounding on exactly tied centroids): a query by id then reads no centroid.
        """
        write_probes(self._snapshot(), path)

    def save(self, path: Path) -> None:
        index, self._pending = self._snapshot(), None
        faiss.write_index(index, str(path))

    @classmethod
    def load(cls, path: Path, dimension: int, *, mmap: bool = False, **options: Any) -> FaissStore:
        """Read a snapshot; ``options`` may set ``index_type`` (from the manifest)."""
        index_type = str(options.pop("index_type", "auto"))
        if options:
            raise TypeError(f"unknown FaissStore options: {sorted(options)}")
        flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mmap else 0
        index = faiss.read_index(str(path), flags)
        if index.d != dimension:
            raise ValueError(f"{path} holds {index.d}-d vectors, expected {dimension}")
        store = cls(dimension, index, mapped=mmap, index_type=index_type)
        rows = files.rows_path_for(path)
        if mmap and rows is not None and rows.is_file() and not _residual(index):
            store._attach_rows(np.load(rows, mmap_mode="r"))
        probes = files.probes_path_for(path)
        # Residual codes score through each list's distance to the query: not written.
        if (
            mmap
            and probes is not None
            and probes.is_file()
            and _is_ivf(index)
            and not _residual(index)
        ):
            store._attach_probes(np.load(probes, mmap_mode="r"))
        return store

    def _attach_rows(self, rows: np.ndarray) -> None:
        # A row file that does not match the index (e.g. left by an older
        # version) is ignored: vectors are then read back from the index.
        assert self._base_ids is not None
        if rows.dtype == np.float16 and rows.shape == (len(self._base_ids), self.dimension):
            self._rows = rows.view(np.ndarray)  # without np.memmap's per-index overhead

    def _attach_probes(self, probes: np.ndarray) -> None:
        # Ignored, as a row file is, unless it matches the index (and its nprobe).
        assert self._base_ids is not None
        expected = (len(self._base_ids), int(self.index.nprobe))
        if probes.dtype == np.int32 and probes.shape == expected and len(self._base_ids):
            self._probes = probes.view(np.ndarray)


def write_probes(index: Any, path: Path) -> None:
    """The probe file of an IVF ``index``: each vector's ``nprobe`` nearest lists, id order."""
    quantizer = faiss.downcast_index(index.quantizer)
    nprobe = int(index.nprobe)
    faiss.omp_set_num_threads(_THREADS)
    _write_by_id(
        index, path, np.int32, nprobe, lambda vectors: quantizer.search(vectors, nprobe)[1]
    )


def _write_by_id(
    index: Any,
    path: Path,
    dtype: Any,
    width: int,
    row_of: Callable[[np.ndarray], np.ndarray],
) -> None:
    """A .npy of one row per vector of ``index`` in id order: ``row_of`` its vectors, in chunks."""
    ids = np.sort(_index_ids(index))
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(len(ids), width))
    for start in range(0, len(ids), 65_536):
        chunk = ids[start : start + 65_536]
        out[start : start + len(chunk)] = row_of(_reconstruct(index, chunk))
    out.flush()
    del out


def build_index(kind: str, dimension: int, ids: np.ndarray, vectors: np.ndarray) -> Any:
    """A new flat or IVF index holding ``vectors`` under ``ids``."""
    if kind == "flat" or len(ids) < 2:
        index = _flat(dimension)
        if len(ids):
            index.add_with_ids(vectors, ids)
        return index
    faiss.omp_set_num_threads(_THREADS)
    # ~2·sqrt(n) lists of ~sqrt(n)/2 vectors; k-means on at most 64 per list.
    nlist = max(1, min(int(2 * np.sqrt(len(ids))), len(ids) // 39))
    quantizer = faiss.IndexFlatIP(dimension)
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, dimension, nlist, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
    )
    # Codes of the vectors themselves, not of their offsets from the list's centroid:
    # fp16 is precise either way, and then a vector read back is exactly its float16
    # row, so the snapshot's row file (save_rows) agrees with the scores FAISS gives.
    index.by_residual = False
    # The index owns its quantizer (freed with it, written with it).
    index.own_fields = True
    quantizer.this.disown()  # type: ignore[attr-defined]
    rng = np.random.default_rng(0)
    sample = rng.choice(len(ids), size=min(len(ids), 64 * nlist), replace=False)
    index.cp.niter = 10
    index.train(vectors[np.sort(sample)])
    index.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
    index.add_with_ids(vectors, ids)
    index.nprobe = tune_nprobe(index, ids, vectors, rng)
    return index


def tune_nprobe(
    index: Any, ids: np.ndarray, vectors: np.ndarray, rng: np.random.Generator, k: int = 10
) -> int:
    """The smallest nprobe (a power of two) whose recall@k on sampled vectors reaches the target."""
    queries = vectors[rng.choice(len(vectors), size=min(len(vectors), 500), replace=False)]
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth = exact.search(queries, k)
    truth = ids[truth]
    nprobe = 1
    while nprobe < index.nlist:
        params = faiss.SearchParametersIVF()
        params.nprobe = nprobe
        _, found = index.search(queries, k, params=params)
        if recall_at(found, truth) >= TARGET_RECALL:
            return nprobe
        nprobe *= 2
    return int(index.nlist)


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of the true top-k ids that ``found`` holds, over all queries."""
    hits = sum(len(np.intersect1d(f[f >= 0], t[t >= 0])) for f, t in zip(found, truth, strict=True))
    total = int((truth >= 0).sum())
    return hits / total if total else 1.0


def _is_ivf(index: Any) -> bool:
    return isinstance(index, faiss.IndexIVF)


def _residual(index: Any) -> bool:
    """Whether an IVF index encodes vectors as offsets from centroids (older snapshots)."""
    return _is_ivf(index) and bool(index.by_residual)


def _index_ids(index: Any) -> np.ndarray:
    """The ids held by a flat (IDMap) or IVF index."""
    if not _is_ivf(index):
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    lists = index.invlists
    parts = [
        faiss.rev_swig_ptr(lists.get_ids(n), lists.list_size(n)).copy()
        for n in range(index.nlist)
        if lists.list_size(n)
    ]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def _member(ids: np.ndarray, sorted_ids: np.ndarray) -> np.ndarray:
    """Membership of ``ids`` in a sorted array, without hashing either."""
    if not len(sorted_ids):
        return np.zeros(len(ids), dtype=bool)
    where = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    found: np.ndarray = sorted_ids[where] == ids
    return found


def _reconstruct(index: Any, ids: np.ndarray) -> np.ndarray:
    try:
        return np.asarray(index.reconstruct_batch(ids), dtype=np.float32)
    except RuntimeError:
        missing = [int(i) for i in ids if not _has(index, int(i))]
        raise KeyError(missing[0] if missing else int(ids[0])) from None


def _has(index: Any, int_id: int) -> bool:
    try:
        index.reconstruct(int_id)
    except RuntimeError:
        return False
    return True


def _search(
    index: Any,
    queries: np.ndarray,
    k: int,
    include: np.ndarray | None,
    exclude: np.ndarray | None,
    nprobe: int | None,
    probes: np.ndarray | None = None,
) -> SearchResult:
    k = min(k, int(index.ntotal))
    if k == 0:
        return SearchResult(
            np.full((len(queries), 0), -np.inf, dtype=np.float32),
            np.full((len(queries), 0), -1, dtype=np.int64),
        )
    # The selector objects must stay referenced until search returns.
    keep: list[Any] = []
    selector = _selector(include, exclude, keep)
    params: Any = None
    if _is_ivf(index):
        params = faiss.SearchParametersIVF()
        params.nprobe = nprobe or index.nprobe
    elif selector is not None:
        params = faiss.SearchParameters()
    if selector is not None:
        params.sel = selector
    if probes is not None:
        return _search_probes(index, queries, k, probes, params)
    scores, ids = index.search(queries, k, params=params)
    return SearchResult(scores, ids)


def _search_probes(
    index: Any, queries: np.ndarray, k: int, probes: np.ndarray, params: Any
) -> SearchResult:
    """An IVF search that scans the given lists (``nprobe`` per query), not the quantizer's.

    Through the C++ call: the Python wrapper of search_preassigned takes no
    parameters, and they carry the id selector.
    """
    n = len(queries)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    probes = np.ascontiguousarray(probes, dtype=np.int64)
    params.nprobe = probes.shape[1]
    # The lists' own distances to the query: unused, the codes are not residuals.
    centroid_scores = np.zeros(probes.shape, dtype=np.float32)
    scores = np.empty((n, k), dtype=np.float32)
    ids = np.empty((n, k), dtype=np.int64)
    index.search_preassigned_c(
        n,
        faiss.swig_ptr(queries),
        k,
        faiss.swig_ptr(probes),
        faiss.swig_ptr(centroid_scores),
        faiss.swig_ptr(scores),
        faiss.swig_ptr(ids),
        False,
        params,
    )
    return SearchResult(scores, ids)


def _selector(include: np.ndarray | None, exclude: np.ndarray | None, keep: list[Any]) -> Any:
    parts: list[Any] = []
    if include is not None:
        arr = np.ascontiguousarray(include, dtype=np.int64)
        keep.append(arr)
        parts.append(faiss.IDSelectorBatch(arr))
    if exclude is not None and len(exclude):
        arr = np.ascontiguousarray(exclude, dtype=np.int64)
        keep.append(arr)
        inner = faiss.IDSelectorBatch(arr)
        keep.append(inner)
        parts.append(faiss.IDSelectorNot(inner))
    keep.extend(parts)
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return faiss.IDSelectorAnd(parts[0], parts[1])
