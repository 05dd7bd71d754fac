"""A killed build or update never damages the live index; readers and a writer share it safely."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from recommender import Article, Recommender
from recommender.embedding.encoders import HashingEncoder
from recommender.ranking.scoring import RankingConfig

from .conftest import article

# A child process that builds (or upserts) through a deliberately slow encoder,
# announcing each batch so the parent can kill it mid-way.
_CHILD = textwrap.dedent(
    """
    import sys, time
    from recommender import Recommender, Article
    from recommender.embedding.encoders import HashingEncoder

    class Slow(HashingEncoder):
        def encode(self, texts):
            print("batch", flush=True)
            time.sleep(0.2)
            return super().encode(texts)

    mode, path = sys.argv[1], sys.argv[2]
    items = [Article(id=f"new-{i}", body=f"brand new article {i} body") for i in range(3000)]
    if mode == "build":
        Recommender.build(items, path, encoder=Slow(256))
    else:
        with Recommender.open(path, encoder=Slow(256)) as rec:
            rec.upsert(items)
    print("finished", flush=True)
    """
)


def _run_and_kill(mode: str, path: Path, batches_before_kill: int = 3) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, mode, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    seen = 0
    for line in child.stdout:
        seen += line.startswith("batch")
        if seen >= batches_before_kill:
            child.send_signal(signal.SIGKILL)
            break
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, "the child finished before it could be killed"


@pytest.mark.parametrize("mode", ["build", "upsert"])
def test_killed_writer_leaves_previous_index_intact(
    built: Path, corpus: list[Article], mode: str
) -> None:
    with Recommender.open(built) as rec:
        before = [m.id for m in rec.related("port-0", k=5)]
    _run_and_kill(mode, built)
    with Recommender.open(built) as rec:
        assert len(rec) == len(corpus)
        assert "new-0" not in rec
        assert [m.id for m in rec.related("port-0", k=5)] == before
    # And the index still takes writes: the killed writer's lock died with it, and
    # what it left (a killed build's generation) went when the next writer took the lock.
    Recommender.build(corpus[:3], built, encoder=HashingEncoder(256)).close()
    with Recommender.open(built) as rec:
        assert len(rec) == 3
    assert [p.name for p in built.glob("gen-*")] == [rec.manifest["generation"]]
    assert list(built.rglob("*.tmp")) == []


def test_killed_first_build_leaves_no_index_but_allows_a_retry(
    tmp_path: Path, corpus: list[Article]
) -> None:
    path = tmp_path / "fresh"
    _run_and_kill("build", path)
    with pytest.raises(Exception, match="not an index"):
        Recommender.open(path)
    Recommender.build(corpus, path, encoder=HashingEncoder(256)).close()
    with Recommender.open(path) as rec:
        assert len(rec) == len(corpus)
    assert len([p for p in path.iterdir() if p.name.startswith("gen-")]) == 1


def test_exception_mid_build_keeps_old_index(built: Path, corpus: list[Article]) -> None:
    class Exploding(HashingEncoder):
        def encode(self, texts):  # type: ignore[no-untyped-def]
            raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError, match="model crashed"):
        Recommender.build(corpus, built, encoder=Exploding(256))
    with Recommender.open(built) as rec:
        assert len(rec) == len(corpus)
        assert rec.related("port-0", k=1)


def test_concurrent_readers_with_one_writer(built: Path, corpus: list[Article]) -> None:
    """Readers in several threads never fail or see a half-applied write."""
    rec = Recommender.open(built, encoder=HashingEncoder(256))
    no_dedupe = RankingConfig(dedupe_threshold=None)
    errors: list[BaseException] = []
    stop = threading.Event()
    queries = [0]

    def reader() -> None:
        while not stop.is_set():
            try:
                # All of them (a pair never straddles the cut), copies not collapsed.
                matches = rec.related("port-0", k=1000, ranking=no_dedupe)
                ids = [m.id for m in matches]
                assert "port-0" not in ids
                assert len(ids) == len(set(ids))
                # Each writer step adds a pair together: never see one without the other.
                for n in range(200):
                    assert (f"a-{n}" in ids) == (f"b-{n}" in ids), n
                queries[0] += 1
            except BaseException as exc:  # collected and re-raised below
                errors.append(exc)
                return

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for n in range(40):
        words = "valdora port strike dockworkers cranes harbor union"
        rec.upsert([article(f"a-{n}", f"{words} a{n}"), article(f"b-{n}", f"{words} b{n}")])
        if n % 10 == 9:
            rec.remove([f"a-{n - 5}", f"b-{n - 5}"])
    time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors[0]
    assert queries[0] > 0
    assert len(rec) == len(corpus) + 80 - 8
    rec.close()


def test_processes_map_the_snapshot_and_move_to_newer_ones(built: Path) -> None:
    """Readers share the snapshot's pages; writes since live in a small private overlay."""
    encoder = HashingEncoder(256)
    with (
        Recommender.open(built, encoder=encoder) as writer,
        Recommender.open(built, encoder=encoder) as reader,
    ):
        state = reader._index.state
        assert state.store.mapped and state.snapshot_seq == state.seq
        words = "valdora port strike dockworkers cranes harbor union"
        writer.upsert([article("late", f"{words} late news")])
        writer.remove(["port-1"])
        ids = [m.id for m in reader.related("port-0", k=50)]
        assert "late" in ids and "port-1" not in ids
        assert reader._index.state.store.overlay_size == 2  # one added vector, one hidden
        writer.checkpoint()
        assert [m.id for m in reader.related("port-0", k=50)] == ids
        state = reader._index.state
        assert state.snapshot_seq == state.seq == writer._index.state.seq
        assert state.store.overlay_size == 0 and state.store.mapped
