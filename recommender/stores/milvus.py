"""Vectors in Milvus: Milvus Lite (a local file), a standalone server or a cluster.

One client, pymilvus ``MilvusClient``, covers all three; the store URL says
which (:func:`parse_url`). The engine keeps each vector with the fields the
query filters read (section, language, publication time), so a filtered search
is filtered inside Milvus rather than through a list of allowed ids.

Each build writes a new collection, named after the index generation, and the
manifest names it: a failed or killed build never touches the collection that
queries use, and publishing a build switches every reader to the new one at
its next query. Credentials never reach the manifest: the token comes from
``$RECOMMENDER_MILVUS_TOKEN`` or the file named by
``$RECOMMENDER_MILVUS_TOKEN_FILE``.

Search is exact inner product (``FLAT``) unless the URL asks for an
approximate index (``?index=HNSW`` or ``?index=IVF_FLAT``); see docs/scaling.md.
The ranking reads stored vectors from the catalog (``state.CatalogVectors``),
so a query costs one search round trip.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from recommender.errors import InvalidArgumentError, StoreError
from recommender.stores.base import SearchResult, VectorMeta, VectorStore, in_order

if TYPE_CHECKING:
    from recommender.filters import Filters

__all__ = [
    "ENV_TOKEN",
    "ENV_TOKEN_FILE",
    "INDEXES",
    "MilvusStore",
    "MilvusTarget",
    "collection_name",
    "drop_collections",
    "filter_expression",
    "parse_url",
]

ENV_TOKEN = "RECOMMENDER_MILVUS_TOKEN"
ENV_TOKEN_FILE = "RECOMMENDER_MILVUS_TOKEN_FILE"
#: Index types the URL may ask for, with the search parameters each gets.
INDEXES: dict[str, dict[str, Any]] = {
    "FLAT": {},
    "HNSW": {"ef": 256},
    "IVF_FLAT": {"nprobe": 32},
}
_BUILD_PARAMS: dict[str, dict[str, Any]] = {
    "FLAT": {},
    "HNSW": {"M": 16, "efConstruction": 200},
    "IVF_FLAT": {"nlist": 1024},
}
# Rows per insert/upsert call: 2,000 x 384 floats is ~3 MB, far under the 64 MB gRPC limit.
_WRITE_BATCH = 2_000
# Ids per "id in [...]" expression, to keep expressions short.
_ID_BATCH = 1_000
_FIELD_LEN = 256
#: Seconds of Strong reads after a change this process knows of (see MilvusStore.saw_change);
#: above Milvus's default gracefulTime of 5 s, the staleness Bounded reads allow.
STRONG_WINDOW_S = 10.0
_NAME = re.compile(r"[^0-9A-Za-z_]")


@dataclass(frozen=True)
class MilvusTarget:
    """Where a Milvus store lives: a Lite file or a server address, and the index type."""

    uri: str
    lite: bool
    index: str = "FLAT"

    @property
    def url(self) -> str:
        """The store URL as recorded in the manifest (no credentials)."""
        base = f"milvus://{self.uri}" if self.lite else f"milvus://{self.uri.split('://')[1]}"
        return base if self.index == "FLAT" else f"{base}?index={self.index}"


def parse_url(url: str) -> MilvusTarget:
    """``milvus:///abs/file.db`` or ``milvus://rel/file.db`` (Lite), ``milvus://HOST:PORT``.

    A Lite path is made absolute, so the index opens from any directory.
    ``?index=HNSW|IVF_FLAT|FLAT`` picks the index type (default ``FLAT``: exact).
    """
    if not url.startswith("milvus://"):
        raise InvalidArgumentError(f"not a Milvus store URL: {url!r}; expected milvus://...")
    rest, _, query = url[len("milvus://") :].partition("?")
    params = parse_qs(query)
    unknown = sorted(set(params) - {"index"})
    if unknown:
        raise InvalidArgumentError(f"unknown Milvus URL option {unknown[0]!r}; expected 'index'")
    index = params.get("index", ["FLAT"])[-1].upper()
    if index not in INDEXES:
        raise InvalidArgumentError(
            f"unknown Milvus index {index!r}; expected one of {sorted(INDEXES)}"
        )
    if rest.endswith(".db"):
        return MilvusTarget(str(Path(rest).resolve()), lite=True, index=index)
    parts = urlsplit(f"//{rest}")
    if parts.username or parts.password:
        raise InvalidArgumentError(
            f"the store URL must not hold credentials (it is stored in the manifest); "
            f"put the token in ${ENV_TOKEN} or a file named by ${ENV_TOKEN_FILE}"
        )
    if not parts.hostname or parts.path not in ("", "/"):
        raise InvalidArgumentError(
            f"bad Milvus store URL {url!r}; expected milvus://HOST:PORT (a server) or "
            f"milvus:///path/to/file.db (Milvus Lite)"
        )
    return MilvusTarget(f"http://{parts.hostname}:{parts.port or 19530}", lite=False, index=index)


def collection_name(generation: str) -> str:
    """The collection of an index generation (``gen-<time>-<rand>`` is unique)."""
    return "recommender_" + _NAME.sub("_", generation)


def _token() -> str:
    token = os.environ.get(ENV_TOKEN, "")
    path = os.environ.get(ENV_TOKEN_FILE)
    if not token and path:
        try:
            token = Path(path).read_text("utf-8").strip()
        except OSError as exc:
            raise StoreError(f"cannot read the Milvus token file {path!r}: {exc}") from None
    return token


class MilvusStore(VectorStore):
    """One Milvus collection: int64 id, the vector, and the filterable fields.

    Use :meth:`create` for a new (empty) collection and :meth:`connect` for an
    existing one. Reads are ``Strong`` for a while after any change this process
    knows of and ``Bounded`` otherwise (:meth:`saw_change`), so a query sees
    every write acknowledged before it, from any process.
    """

    name = "milvus"
    shared = True
    keeps_metadata = True
    snapshot_suffix = "milvus"

    def __init__(self, dimension: int, *, url: str, collection: str) -> None:
        super().__init__(dimension)
        self.target = parse_url(url)
        self.collection = collection
        # Milvus Lite serves a file to one process at a time.
        self.single_process = self.target.lite
        self._client = _connect(self.target)
        self._strong_until = 0.0
        self.saw_change()

    @classmethod
    def create(cls, url: str, dimension: int, *, collection: str) -> MilvusStore:
        """A new, empty collection (an old one of the same name is dropped)."""
        store = cls(dimension, url=url, collection=collection)
        store._create()
        return store

    @classmethod
    def connect(cls, url: str, dimension: int, *, collection: str) -> MilvusStore:
        """An existing collection; :class:`StoreError` when it is gone."""
        store = cls(dimension, url=url, collection=collection)
        if not store._call("has_collection", collection_name=collection):
            store.close()
            raise StoreError(
                f"Milvus collection {collection!r} is missing at {store.target.url}; "
                f"rebuild the index with 'recommender build'"
            )
        store._ensure_loaded()
        return store

    def _ensure_loaded(self) -> None:
        """Load the collection into memory if it is not (Milvus Lite, or a restarted server)."""
        state = self._call("get_load_state", collection_name=self.collection)
        if "Loaded" not in str(state.get("state", "")):
            self._call("load_collection", collection_name=self.collection)

    def _create(self) -> None:
        from pymilvus import DataType, MilvusClient

        if self._call("has_collection", collection_name=self.collection):
            self._call("drop_collection", collection_name=self.collection)
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dimension)
        schema.add_field("section", DataType.VARCHAR, max_length=_FIELD_LEN)
        schema.add_field("language", DataType.VARCHAR, max_length=_FIELD_LEN)
        schema.add_field("published", DataType.DOUBLE)
        schema.add_field("dated", DataType.BOOL)
        index = self._client.prepare_index_params()
        index.add_index(
            field_name="vector",
            index_type=self.target.index,
            metric_type="IP",
            params=_BUILD_PARAMS[self.target.index],
        )
        self._call(
            "create_collection",
            collection_name=self.collection,
            schema=schema,
            index_params=index,
            consistency_level="Strong",
        )

    # -- consistency ------------------------------------------------------------------

    def saw_change(self) -> None:
        """A write happened (here, or in another process per the catalog): read it for a while.

        ``Strong`` reads wait for the server's next time tick (~200 ms on 2.3);
        ``Bounded`` reads may miss writes up to the server's ``gracefulTime``
        (5 s by default) old. Reads use ``Strong`` for :data:`STRONG_WINDOW_S`
        after a change this process knows of (its own writes, other processes'
        seen through the catalog's sequence number, or opening the store), and
        ``Bounded`` otherwise: a query that starts after a write was
        acknowledged sees it, and the rest do not wait for time ticks.
        """
        self._strong_until = time.monotonic() + STRONG_WINDOW_S

    def _consistency(self) -> str:
        return "Strong" if time.monotonic() < self._strong_until else "Bounded"

    # -- the contract -----------------------------------------------------------------

    def __len__(self) -> int:
        rows = self._call(
            "query",
            collection_name=self.collection,
            filter="",
            output_fields=["count(*)"],
            consistency_level=self._consistency(),
        )
        return int(rows[0]["count(*)"])

    def add(
        self, ids: np.ndarray, vectors: np.ndarray, meta: Sequence[VectorMeta] | None = None
    ) -> None:
        self._write("insert", ids, vectors, meta)

    def upsert(
        self, ids: np.ndarray, vectors: np.ndarray, meta: Sequence[VectorMeta] | None = None
    ) -> None:
        self._write("upsert", ids, vectors, meta)

    def _write(
        self, method: str, ids: np.ndarray, vectors: np.ndarray, meta: Sequence[VectorMeta] | None
    ) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._check(ids, vectors)
        if meta is not None and len(meta) != len(ids):
            raise ValueError(f"{len(meta)} metadata rows for {len(ids)} vectors")
        fields = meta if meta is not None else [VectorMeta()] * len(ids)
        self.saw_change()
        for start in range(0, len(ids), _WRITE_BATCH):
            end = start + _WRITE_BATCH
            rows = [
                _row(int(i), v, m)
                for i, v, m in zip(
                    ids[start:end], vectors[start:end], fields[start:end], strict=True
                )
            ]
            self._call(method, collection_name=self.collection, data=rows)

    def remove(self, ids: np.ndarray) -> int:
        # Milvus deletes ids whether or not they exist: count the present ones first.
        present = list(self._present(np.asarray(ids, dtype=np.int64)))
        if present:
            self.saw_change()
        for chunk in _chunks(present, _ID_BATCH):
            self._call("delete", collection_name=self.collection, ids=chunk)
        return len(present)

    def _present(self, ids: np.ndarray) -> Iterator[int]:
        for chunk in _chunks(sorted({int(i) for i in ids}), _ID_BATCH):
            rows = self._call(
                "query",
                collection_name=self.collection,
                filter=f"id in {chunk}",
                output_fields=["id"],
                consistency_level=self._consistency(),
            )
            yield from (int(r["id"]) for r in rows)

    def get(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        found: dict[int, Any] = {}
        for chunk in _chunks(sorted({int(i) for i in ids}), _ID_BATCH):
            rows = self._call(
                "query",
                collection_name=self.collection,
                filter=f"id in {chunk}",
                output_fields=["id", "vector"],
                consistency_level=self._consistency(),
            )
            found.update((int(r["id"]), r["vector"]) for r in rows)
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
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        scores = np.full((len(queries), max(k, 0)), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), max(k, 0)), -1, dtype=np.int64)
        if k <= 0 or not len(queries) or (include is not None and not len(include)):
            return SearchResult(scores, ids)
        hits = self._call(
            "search",
            collection_name=self.collection,
            data=list(queries),
            limit=k,
            filter=filter_expression(include=include, exclude=exclude, where=where),
            output_fields=[],
            search_params={"metric_type": "IP", "params": INDEXES[self.target.index]},
            consistency_level=self._consistency(),
        )
        for row, found in enumerate(hits):
            # pymilvus keeps each query's ids and distances as lists: no per-hit objects.
            got = np.asarray(found.ids[:k], dtype=np.int64)
            ids[row, : len(got)] = got
            scores[row, : len(got)] = np.asarray(found.distances[:k], dtype=np.float32)
        return SearchResult(scores, ids)

    def save(self, path: Path) -> None:
        """Write where the vectors are (the collection holds them)."""
        path.write_text(json.dumps({"store": self.name, **self.options()}) + "\n", "utf-8")

    @classmethod
    def load(cls, path: Path, dimension: int, *, mmap: bool = False, **options: Any) -> MilvusStore:
        """Connect to the collection named in ``options`` (from the manifest)."""
        url, collection = options.pop("url", None), options.pop("collection", None)
        if options or not url or not collection:
            raise TypeError(f"MilvusStore needs url and collection options, got {sorted(options)}")
        return cls.connect(str(url), dimension, collection=str(collection))

    def options(self) -> dict[str, Any]:
        return {"url": self.target.url, "collection": self.collection}

    def describe(self) -> dict[str, Any]:
        return {
            "engine": "milvus-lite" if self.target.lite else "milvus",
            "url": self.target.url,
            "collection": self.collection,
            "index": self.target.index,
        }

    def drop(self) -> None:
        """Delete the collection (a replaced build's)."""
        if self._call("has_collection", collection_name=self.collection):
            self._call("drop_collection", collection_name=self.collection)

    def drop_others(self, collections: Sequence[str]) -> None:
        """Drop these collections if they exist on the same engine (stale builds')."""
        existing = set(self._call("list_collections"))
        for name in collections:
            if name in existing and name != self.collection:
                self._call("drop_collection", collection_name=name)

    def close(self) -> None:
        # Closing a dead connection must not fail a shutdown.
        with contextlib.suppress(Exception):
            self._client.close()

    def _call(self, method: str, **kwargs: Any) -> Any:
        """One client call; engine failures become :class:`StoreError` naming the engine."""
        from pymilvus.exceptions import MilvusException

        try:
            return getattr(self._client, method)(**kwargs)
        except MilvusException as exc:
            raise StoreError(
                f"Milvus at {self.target.url} failed {method} on {self.collection!r}: {exc.message}"
            ) from exc


def filter_expression(
    *,
    include: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
    where: Filters | None = None,
) -> str:
    """A Milvus boolean expression for the filters (empty: no restriction)."""
    clauses: list[str] = []
    if include is not None:
        clauses.append(f"id in {sorted(int(i) for i in include)}")
    if exclude is not None and len(exclude):
        clauses.append(f"id not in {sorted(int(i) for i in exclude)}")
    if where is not None:
        for field, values in (("section", where.sections), ("language", where.languages)):
            if values:
                clauses.append(f"{field} in {json.dumps([v.lower() for v in values])}")
        if where.since is not None or where.until is not None:
            clauses.append("dated == true")
        if where.since is not None:
            clauses.append(f"published >= {where.since!r}")
        if where.until is not None:
            clauses.append(f"published < {where.until!r}")
    return " and ".join(clauses)


def _row(int_id: int, vector: np.ndarray, meta: VectorMeta) -> dict[str, Any]:
    return {
        "id": int_id,
        "vector": vector.tolist(),
        "section": meta.section[:_FIELD_LEN],
        "language": meta.language[:_FIELD_LEN],
        "published": meta.published if meta.published is not None else 0.0,
        "dated": meta.published is not None,
    }


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _connect(target: MilvusTarget) -> Any:
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise InvalidArgumentError(
            "the milvus store needs pymilvus (and milvus-lite for a local file): "
            "pip install -c constraints.txt -e '.[milvus]'"
        ) from None
    if target.lite:
        Path(target.uri).parent.mkdir(parents=True, exist_ok=True)
    try:
        return MilvusClient(uri=target.uri, token=_token(), timeout=10)
    except Exception as exc:  # pymilvus raises several kinds on connect
        raise StoreError(f"cannot connect to Milvus at {target.url}: {exc}") from exc


def drop_collections(url: str, names: Sequence[str]) -> None:
    """Drop the named collections that exist on the engine at ``url``."""
    if not names:
        return
    store = MilvusStore(0, url=url, collection="")
    try:
        store.drop_others(names)
    finally:
        store.close()
