"""Where the Milvus-backed tests find an engine: a Lite file, or the server CI starts.

The real server comes from scripts/with_milvus_server.sh, which sets
RECOMMENDER_MILVUS_URL. Without it the server tests skip locally; under CI
(``$CI`` set) they fail, so a server that did not start can never pass silently.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

ENV_URL = "RECOMMENDER_MILVUS_URL"
STORES = ("faiss", "milvus-lite", "milvus-server")
_reachable: dict[str, str | None] = {}


def server_url() -> str:
    """The URL of the running test server, or skip (fail under CI) when there is none."""
    url = os.environ.get(ENV_URL)
    problem = None if url else f"${ENV_URL} is not set (run under scripts/with_milvus_server.sh)"
    if url and url not in _reachable:
        _reachable[url] = _probe(url)
    if url:
        problem = _reachable[url]
    if problem is None:
        assert url is not None
        return url
    if os.environ.get("CI"):
        pytest.fail(f"no Milvus server for the integration tests: {problem}")
    pytest.skip(f"no Milvus server: {problem}")


def _probe(url: str) -> str | None:
    from recommender.errors import StoreError
    from recommender.stores.milvus import MilvusStore

    try:
        MilvusStore(0, url=url, collection="").close()
    except StoreError as exc:
        return str(exc)
    return None


def store_url(kind: str, tmp_path: Path) -> str:
    """The ``--store`` value of one kind of store, for a test."""
    if kind == "faiss":
        return "faiss"
    if kind == "milvus-lite":
        return f"milvus://{tmp_path / 'milvus.db'}"
    if kind == "milvus-server":
        return server_url()
    raise ValueError(f"unknown store kind {kind!r}; expected one of {list(STORES)}")


def unique_collection() -> str:
    return f"test_{secrets.token_hex(6)}"
