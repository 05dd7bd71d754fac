"""Vector stores, picked by the name recorded in an index manifest.

A build chooses one with a store URL (``--store``): ``faiss`` (the embedded
default: files in the index directory), ``milvus:///path/file.db`` (Milvus
Lite, a local file) or ``milvus://HOST:PORT`` (a Milvus server or cluster).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recommender.stores.base import SearchResult, VectorMeta, VectorStore

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "STORES",
    "SearchResult",
    "VectorMeta",
    "VectorStore",
    "check_store_url",
    "new_store",
    "store_class",
]

#: Store name -> "module:Class", imported only when used.
STORES = {
    "faiss": "recommender.stores.faiss:FaissStore",
    # The name indexes written before the IVF index type recorded.
    "faiss-flat": "recommender.stores.faiss:FaissStore",
    "milvus": "recommender.stores.milvus:MilvusStore",
}


def store_class(name: str) -> type[VectorStore]:
    """The store class registered under ``name``."""
    from importlib import import_module

    from recommender.errors import IndexFormatError

    try:
        target = STORES[name]
    except KeyError:
        raise IndexFormatError(
            f"unknown vector store {name!r}; expected one of {sorted(STORES)}"
        ) from None
    module, _, attr = target.partition(":")
    cls: type[VectorStore] = getattr(import_module(module), attr)
    return cls


def check_store_url(url: str) -> str:
    """``url`` if it names a store (``faiss`` or a Milvus URL), else InvalidArgumentError."""
    from recommender.errors import InvalidArgumentError

    if url == "faiss":
        return url
    if url.startswith("milvus:"):
        from recommender.stores.milvus import parse_url

        parse_url(url)
        return url
    raise InvalidArgumentError(
        f"unknown store {url!r}; expected 'faiss', 'milvus:///path/file.db' (Milvus Lite) "
        f"or 'milvus://HOST:PORT' (a Milvus server)"
    )


def new_store(url: str, dimension: int, *, generation: Path, index_type: str) -> VectorStore:
    """An empty store for a new build of ``generation`` (a Milvus collection of its own)."""
    if check_store_url(url) == "faiss":
        from recommender.stores.faiss import FaissStore

        return FaissStore(dimension, index_type=index_type)
    from recommender.stores.milvus import MilvusStore, collection_name

    return MilvusStore.create(url, dimension, collection=collection_name(generation.name))
