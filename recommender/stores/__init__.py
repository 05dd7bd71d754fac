"""Vector stores, picked by the name recorded in an index manifest."""

from __future__ import annotations

from .base import SearchResult, VectorStore

__all__ = ["STORES", "SearchResult", "VectorStore", "store_class"]

#: Store name -> "module:Class", imported only when used.
STORES = {
    "faiss": "recommender.stores.faiss:FaissStore",
    # The name indexes written before the IVF index type recorded.
    "faiss-flat": "recommender.stores.faiss:FaissStore",
}


def store_class(name: str) -> type[VectorStore]:
    """The store class registered under ``name``."""
    from importlib import import_module

    from ..errors import IndexFormatError

    try:
        target = STORES[name]
    except KeyError:
        raise IndexFormatError(
            f"unknown vector store {name!r}; expected one of {sorted(STORES)}"
        ) from None
    module, _, attr = target.partition(":")
    cls: type[VectorStore] = getattr(import_module(module), attr)
    return cls
