"""The README's Milvus promises, against Milvus Lite and a real Milvus server.

- A write the engine fails part-way commits nothing: the CLI exits 8, the service
  answers 503 with Retry-After, the catalog and the manifest are as before, and so
  is every answer to a query (the requests the engine took are undone).
- Publishing a build drops the collection of a build killed before it, also when the
  writer lock has already cleared that build's generation from disk.
- The service keeps every acknowledged write through kill -9 and shows it to
  every worker (the FAISS checks of test_service.py, run on a Milvus index).
- What a reader in another process sees at each consistency level the README
  documents.

The server tests use the Milvus server the test session starts (tests/milvus_support.py),
or $RECOMMENDER_MILVUS_URL; without milvus-server they skip, and under CI they fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from recommender import Article, Recommender
from recommender.cli import main
from recommender.embedding.encoders import HashingEncoder
from recommender.serving.app import create_app

from . import test_service as service
from .conftest import article
from .milvus_support import server_url, store_url
from .test_guarantees import (
    KILLED_MID_BUILD,
    MODEL,
    cli,
    generations,
    integrity,
    killed,
    live_generation,
    write_jsonl,
)


@pytest.fixture(params=["milvus-lite", "milvus-server"])
def milvus_index(
    request: pytest.FixtureRequest, tmp_path: Path, corpus: list[Article], encoder: HashingEncoder
) -> Path:
    path = tmp_path / "idx"
    store = store_url(str(request.param), tmp_path)
    Recommender.build(corpus, path, encoder=encoder, store=store).close()
    return path


@pytest.fixture
def served(tmp_path: Path, corpus: list[Article], encoder: HashingEncoder) -> Path:
    """The test index on the Milvus server (skips without one, fails under CI)."""
    path = tmp_path / "idx"
    Recommender.build(corpus, path, encoder=encoder, store=server_url()).close()
    return path


# -- A write the engine fails part-way --------------------------------------------------------

# The engine takes the first two rows (one re-embedded article, one new), then fails.
WRITE = [
    article("port-1", "recipe lemon cake flour sugar oven bake", section="food"),
    article("new-1", "football striker scored twice league derby final"),
    article("port-2", "recipe lemon cake flour sugar icing", section="food"),
    article("new-2", "football striker derby penalty"),
]


class FailingEngine:
    """Milvus fails the second write request it gets while armed: the first one has landed."""

    def __init__(self) -> None:
        self.armed = True
        self.requests: list[str] = []


@pytest.fixture
def failing_engine(monkeypatch: pytest.MonkeyPatch) -> FailingEngine:
    """The client's write requests, the second one failing as a lost server would."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    import recommender.stores.milvus as milvus

    engine = FailingEngine()
    monkeypatch.setattr(milvus, "_WRITE_BATCH", 2)

    def failing(method: str) -> Any:
        original = getattr(MilvusClient, method)

        def request(self: MilvusClient, *args: Any, **kwargs: Any) -> Any:
            if engine.armed:
                engine.requests.append(method)
                if len(engine.requests) == 2:
                    raise MilvusException(message="injected: the engine went away mid-write")
            return original(self, *args, **kwargs)

        return request

    for method in ("insert", "upsert", "delete"):
        monkeypatch.setattr(MilvusClient, method, failing(method))
    return engine


def _catalog_state(path: Path) -> dict[str, Any]:
    with Recommender.open(path, encoder=HashingEncoder(256)) as rec:
        return {
            "manifest": (path / "manifest.json").read_bytes(),
            "articles": len(rec),
            "new": [a.id for a in WRITE if a.id in rec],
            "bodies": [rec.get(a.id).body for a in WRITE if a.id in rec],
            "integrity": integrity(path),
        }


def _answers(path: Path) -> dict[str, Any]:
    with Recommender.open(path, encoder=HashingEncoder(256)) as rec:
        return {
            "counts": rec.info().counts,
            "related": {
                aid: [(m.id, round(m.score, 4)) for m in rec.related(aid, k=5)]
                for aid in ("port-0", "port-1", "port-2", "budget-0")
            },
            "similar": [(m.id, round(m.score, 4)) for m in rec.similar(text=WRITE[0].body, k=3)],
        }


def _fail_a_write(path: Path, tmp_path: Path, via: str) -> None:
    if via == "cli":
        source = write_jsonl(tmp_path / "write.jsonl", WRITE)
        result = CliRunner().invoke(main, ["add", str(source), "--index", str(path)])
        assert result.exit_code == 8, result.output
        assert "Error: Milvus at " in result.output and "injected" in result.output
        return
    with (
        Recommender.open(path, encoder=HashingEncoder(256)) as rec,
        TestClient(create_app(rec, token=service.TOKEN)) as client,
    ):
        records = [a.to_dict() for a in WRITE]
        response = client.put("/v1/articles", json=records, headers=service.AUTH)
        assert response.status_code == 503, response.text
        assert response.json()["error"]["type"] == "StoreError"
        assert int(response.headers["retry-after"]) > 0


@pytest.mark.parametrize("via", ["cli", "http"])
def test_a_failed_engine_write_commits_nothing_to_the_index(
    milvus_index: Path, tmp_path: Path, failing_engine: FailingEngine, via: str
) -> None:
    before = _catalog_state(milvus_index)
    _fail_a_write(milvus_index, tmp_path, via)
    # The engine failed the write's second request, after its first one had landed; the
    # undo then put back the old rows and deleted the ids the write was adding.
    assert failing_engine.requests == ["upsert", "upsert", "upsert", "delete"]
    assert _catalog_state(milvus_index) == before
    # Once the engine is back, the same write goes through whole.
    failing_engine.armed = False
    with Recommender.open(milvus_index, encoder=HashingEncoder(256)) as rec:
        report = rec.upsert(WRITE)
        assert (report.added, report.reembedded) == (2, 2)
        assert rec.info().counts == {"articles": 16, "vectors": 16}


def test_a_failed_engine_write_leaves_every_answer_as_it_was(
    milvus_index: Path, tmp_path: Path, failing_engine: FailingEngine
) -> None:
    before = _answers(milvus_index)
    _fail_a_write(milvus_index, tmp_path, "cli")
    assert _answers(milvus_index) == before


# -- A killed build's collection ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["milvus-lite", "milvus-server"])
def test_the_collection_of_a_killed_build_is_dropped_by_the_next_build(
    tmp_path: Path, corpus: list[Article], kind: str
) -> None:
    """README: publishing a build drops the replaced collection and those of killed builds."""
    from recommender.stores.milvus import MilvusStore, collection_name

    store = store_url(kind, tmp_path)  # Lite: no process here opens the file before the kill
    path = tmp_path / "idx"
    source = write_jsonl(tmp_path / "corpus.jsonl", corpus)
    build = ("build", source, "--index", path, "--model", MODEL, "--store", store)
    result = cli(*build)
    assert result.returncode == 0, result.stderr
    live = live_generation(path)
    killed(cli(*build, prelude=KILLED_MID_BUILD))
    (orphan,) = generations(path) - {live}
    Recommender.build(corpus, path, encoder=HashingEncoder(256), store=store).close()
    assert generations(path) == {live_generation(path)}
    url = json.loads((path / "manifest.json").read_text())["store_options"]["url"]
    engine = MilvusStore(0, url=url, collection="")
    try:
        names = set(engine._call("list_collections"))
    finally:
        engine.close()
    assert collection_name(live_generation(path)) in names
    assert collection_name(live) not in names  # the replaced build's: dropped
    assert collection_name(orphan) not in names  # the killed build's


# -- The service on a Milvus server ----------------------------------------------------------


@pytest.mark.usefixtures("loopback_only")
def test_a_server_on_milvus_keeps_every_acknowledged_write_through_kill_9(served: Path) -> None:
    service.test_real_server_keeps_every_acknowledged_write_through_kill_9(served)


@pytest.mark.usefixtures("loopback_only")
def test_every_worker_on_milvus_sees_every_acknowledged_write(served: Path, tmp_path: Path) -> None:
    service.test_every_worker_sees_every_acknowledged_write(served, tmp_path)


# -- What a reader in another process sees ----------------------------------------------------

# Milvus's default gracefulTime (common.gracefulTime, 5,000 ms): how stale a Bounded read may be.
GRACEFUL_TIME_S = 5.0
DENSE = {"method": "dense"}  # candidates from the engine's search alone, not the lexical side


@pytest.fixture
def reader(served: Path) -> Iterator[Recommender]:
    """A process's Recommender that has seen no change for a while: it reads Bounded."""
    from recommender.stores.milvus import MilvusStore

    with Recommender.open(served, encoder=HashingEncoder(256)) as rec:
        engine = getattr(rec._index.state.store, "inner", rec._index.state.store)
        assert isinstance(engine, MilvusStore)
        engine._strong_until = 0.0  # as if the last change it knew of were long ago
        assert engine._consistency() == "Bounded"
        yield rec


@pytest.fixture
def probe(served: Path) -> Iterator[Any]:
    """A client of its own on the index's collection, for reads at a chosen level."""
    from recommender.stores.milvus import MilvusStore

    options = json.loads((served / "manifest.json").read_text())["store_options"]
    store = MilvusStore.connect(options["url"], 256, collection=options["collection"])
    yield store
    store.close()


def _rows(probe: Any, int_id: int, level: str) -> int:
    found = probe._call(
        "query",
        collection_name=probe.collection,
        filter=f"id in [{int_id}]",
        output_fields=["id"],
        consistency_level=level,
    )
    return len(found)


def _added_by_another_process(served: Path, tmp_path: Path, aid: str) -> float:
    """``aid`` added by `recommender add` in a child process; the time it was acknowledged."""
    text = "harbor dockworkers strike valdora port cranes union wages " + aid
    source = write_jsonl(tmp_path / f"{aid}.jsonl", [article(aid, text, section="business")])
    result = cli("add", source, "--index", served)
    assert result.returncode == 0, result.stderr
    return time.monotonic()


def test_the_next_query_after_an_acknowledged_write_sees_it(
    served: Path, tmp_path: Path, reader: Recommender
) -> None:
    """README: a process reads Strong for a while after any change it knows of (seen through
    the catalog for other processes' writes), so its next query sees an acknowledged write."""
    _added_by_another_process(served, tmp_path, "late-1")
    dense = reader.ranking.with_options(**DENSE)
    assert "late-1" in [m.id for m in reader.related("port-0", k=20, ranking=dense)]
    engine = reader._index.state.store.inner  # type: ignore[attr-defined]
    assert engine._consistency() == "Strong"
    result = cli("remove", "late-1", "--index", served)
    assert result.returncode == 0, result.stderr
    assert "late-1" not in [m.id for m in reader.related("port-0", k=20, ranking=dense)]


def test_strong_reads_see_a_write_at_once_and_bounded_ones_within_graceful_time(
    served: Path, tmp_path: Path, probe: Any
) -> None:
    acknowledged = _added_by_another_process(served, tmp_path, "late-2")
    with Recommender.open(served) as rec:
        int_id = rec._index.state.catalog.int_ids(["late-2"])["late-2"]
    assert _rows(probe, int_id, "Strong") == 1
    # Bounded may miss writes up to gracefulTime old, never older ones.
    while _rows(probe, int_id, "Bounded") == 0:
        assert time.monotonic() - acknowledged < GRACEFUL_TIME_S + 1.0, "still unseen"
        time.sleep(0.05)


_REEMBED = textwrap.dedent(
    """
    import sys
    from recommender import Article, Recommender
    from recommender.embedding.encoders import HashingEncoder

    with Recommender.open(sys.argv[1], encoder=HashingEncoder(256)) as rec:
        for n in range(int(sys.argv[2])):
            words = "harbor dockworkers strike valdora port cranes union wages"
            rec.upsert([Article(id="port-2", body=f"{words} revision {n}", section="business")])
            print(n, flush=True)
    """
)


def test_an_article_rewritten_in_another_process_is_never_missing(served: Path, probe: Any) -> None:
    """README: Milvus applies each upsert in place, so no reader sees an article half-replaced
    (gone, or twice) while another process re-embeds it, at either level."""
    with Recommender.open(served) as rec:
        int_id = rec._index.state.catalog.int_ids(["port-2"])["port-2"]
    writer = subprocess.Popen(
        [sys.executable, "-c", _REEMBED, str(served), "15"],
        env={**os.environ, "PYTHONPATH": str(service.ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: dict[str, list[int]] = {"Strong": [], "Bounded": []}
    try:
        while writer.poll() is None:
            for level, counts in seen.items():
                counts.append(_rows(probe, int_id, level))
    finally:
        if writer.poll() is None:
            writer.kill()
        out, err = writer.communicate()
    assert writer.returncode == 0, err
    assert out.split()[-1] == "14"
    assert all(len(counts) >= 5 for counts in seen.values()), seen
    assert {level: set(counts) for level, counts in seen.items()} == {
        "Strong": {1},
        "Bounded": {1},
    }
