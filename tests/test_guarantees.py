"""The README's concurrency and durability promises, checked with real processes.

Each test runs the CLI in a child process that a prelude patches to die (SIGKILL:
no cleanup code runs) or to pause at one exact step of a write: while a snapshot
is written, while the manifest is swapped, while a replaced generation is
removed, or while it holds the writer lock. The parent then checks what
"Concurrency and durability guarantees" promises: the index opens and holds the
old contents or the new ones, never a mix, with every acknowledged write; SQLite
finds its catalog sound; the next command works and clears what the killed one
left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from recommender import Article, Recommender
from recommender.embedding.encoders import HashingEncoder
from recommender.errors import InvalidArgumentError
from recommender.index import layout as storage
from recommender.serving.app import create_app

from .conftest import article

ROOT = Path(__file__).resolve().parents[1]
MODEL = "hashing:256"
PRELUDE = "RECOMMENDER_TEST_PRELUDE"
# The CLI, once the Python source in $RECOMMENDER_TEST_PRELUDE has patched the library.
_DRIVER = (
    f"import os; exec(os.environ.get({PRELUDE!r}, ''))\n"
    "from recommender.cli import main\n"
    "main(prog_name='recommender')\n"
)
_HOOK = """
def _install():
    import importlib, os, signal, sys
    from pathlib import Path

    module, _, attribute = {target!r}.partition(":")
    owner = importlib.import_module(module)
    *path, name = attribute.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    hits = [0]

    def act(what):
        if what == "pause":
            print("paused", flush=True)
            sys.stdin.readline()
        else:
            os.kill(os.getpid(), signal.SIGKILL)

    def hooked(*args, **kwargs):
        hit = bool({where})
        hits[0] += hit
        now = hit and hits[0] == {nth}
        if now and {action!r} != "kill-after":
            act({action!r})
        result = original(*args, **kwargs)
        if now and {action!r} == "kill-after":
            act("kill")
        return result

    setattr(owner, name, hooked)


_install()
"""
# A kill in the middle of removing the replaced generation: some of its files
# (the catalog first) are gone, the rest are not.
HALF_REMOVED = """
import os, shutil, signal, sys
from pathlib import Path

_rmtree = shutil.rmtree


def _interrupted(path, *args, **kwargs):
    if sys._getframe(1).f_code.co_name != "remove_stale_generations":
        return _rmtree(path, *args, **kwargs)
    for entry in sorted(Path(path).iterdir())[::2]:
        entry.unlink()
    os.kill(os.getpid(), signal.SIGKILL)


shutil.rmtree = _interrupted
"""
# Every write ends with a checkpoint (a new snapshot of the live generation).
CHECKPOINT_EVERY_WRITE = "import recommender.writes.update as r; r._CHECKPOINT_CHANGES = 1\n"


def at_call(target: str, action: str, *, where: str = "True", nth: int = 1) -> str:
    """A prelude that acts at the ``nth`` call of ``target`` for which ``where`` holds.

    ``target`` is ``module:attribute`` (``os:replace``, ``pkg.mod:Class.method``);
    ``where`` is a Python expression over the call's ``args`` and ``kwargs``.
    ``action``: ``kill`` (SIGKILL before the call runs), ``kill-after`` (once it
    returned) or ``pause`` (print ``paused`` and wait for a line on stdin).
    """
    return _HOOK.format(target=target, action=action, where=where, nth=nth)


def renaming(prefix: str) -> str:
    """``where`` for ``os:replace``: the file renamed into place is named ``prefix...``."""
    return f"Path(args[1]).name.startswith({prefix!r})"


def cli_env(prelude: str = "", **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), PRELUDE: prelude, **extra}


def cli(*args: str | Path, prelude: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``recommender ARGS`` in a child process (patched by ``prelude``)."""
    return subprocess.run(
        [sys.executable, "-c", _DRIVER, *map(str, args)],
        env=cli_env(prelude, **env),
        capture_output=True,
        text=True,
        timeout=180,
    )


def cli_started(*args: str | Path, prelude: str = "", **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _DRIVER, *map(str, args)],
        env=cli_env(prelude, **env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def killed(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == -signal.SIGKILL, (
        f"the child was not killed (exit {result.returncode}):\n{result.stderr}"
    )


def write_jsonl(path: Path, articles: Iterable[Article]) -> Path:
    path.write_text("".join(json.dumps(a.to_dict()) + "\n" for a in articles), "utf-8")
    return path


def live_generation(index: Path) -> str:
    generation: str = json.loads((index / "manifest.json").read_text())["generation"]
    return generation


def generations(index: Path) -> set[str]:
    return {p.name for p in index.glob("gen-*")}


def leftovers(index: Path) -> list[str]:
    """What killed writers left: generations the manifest does not name, temporary files."""
    live = live_generation(index) if (index / "manifest.json").exists() else None
    found = [p.name for p in index.glob("*.tmp")] + sorted(generations(index) - {live})
    if live is not None:
        found += [f"{live}/{p.name}" for p in (index / live).glob("*.tmp")]
    return found


def integrity(index: Path) -> str:
    catalog = index / live_generation(index) / "catalog.sqlite3"
    with sqlite3.connect(f"file:{catalog}?mode=ro", uri=True) as db:
        verdict: str = db.execute("PRAGMA integrity_check").fetchone()[0]
    return verdict


FRESH = [
    article(f"fresh-{n}", f"harbor cranes valdora port strike fresh report {n}", section="business")
    for n in range(6)
]
ADDED = [article(f"added-{n}", f"valdora port dockworkers union wages added {n}") for n in range(2)]
ACKED = article("acked", "valdora harbor dockworkers acknowledged before the kill")


@pytest.fixture
def index(built: Path) -> Iterator[Path]:
    """The test index with one acknowledged write since its build."""
    with Recommender.open(built, encoder=HashingEncoder(256)) as rec:
        rec.upsert([ACKED])
    yield built


# -- A killed writer, at each step of a write ----------------------------------------------

# (command, prelude, which contents the index must hold afterwards)
KILLS = {
    "build: lexical snapshot written, vector snapshot not": (
        "build",
        at_call("os:replace", "kill", where=renaming("vectors.")),
        "old",
    ),
    "build: new manifest written to its temp file, not renamed": (
        "build",
        at_call("os:replace", "kill", where=renaming("manifest.json")),
        "old",
    ),
    "build: manifest swapped, replaced generation not removed": (
        "build",
        at_call("os:replace", "kill-after", where=renaming("manifest.json")),
        "new",
    ),
    "build: replaced generation half removed": ("build", HALF_REMOVED, "new"),
    "add: committed, checkpoint's lexical snapshot in its temp file": (
        "add",
        CHECKPOINT_EVERY_WRITE + at_call("os:replace", "kill", where=renaming("lexical.")),
        "added",
    ),
    "add: committed, checkpoint's vector snapshot in its temp file": (
        "add",
        CHECKPOINT_EVERY_WRITE + at_call("os:replace", "kill", where=renaming("vectors.")),
        "added",
    ),
    "add: committed, manifest's new counts not renamed into place": (
        "add",
        at_call("os:replace", "kill", where=renaming("manifest.json")),
        "added",
    ),
}


@pytest.mark.parametrize("step", list(KILLS))
def test_a_kill_at_any_step_leaves_the_old_or_the_new_index(
    index: Path, corpus: list[Article], tmp_path: Path, step: str
) -> None:
    command, prelude, outcome = KILLS[step]
    with Recommender.open(index) as rec:
        before = [m.id for m in rec.related("port-0", k=5)]
    source = write_jsonl(tmp_path / "in.jsonl", FRESH if command == "build" else ADDED)
    model = ["--model", MODEL] if command == "build" else []
    killed(cli(command, source, "--index", index, *model, prelude=prelude))
    assert leftovers(index), "the kill came after the command had cleaned up"

    old = {a.id for a in corpus} | {ACKED.id}
    expected = {
        "old": old,
        "new": {a.id for a in FRESH},
        "added": old | {a.id for a in ADDED},
    }[outcome]
    with Recommender.open(index, encoder=HashingEncoder(256)) as rec:
        assert len(rec) == len(expected)
        assert all(aid in rec for aid in expected)
        assert rec.info().counts == {
            "articles": len(expected),
            "vectors": len(expected),
        }
        query = "port-0" if outcome != "new" else "fresh-0"
        related = [m.id for m in rec.related(query, k=5)]
        assert related and set(related) <= expected
        if outcome == "old":
            assert related == before
        assert integrity(index) == "ok"
        # The next write works, and clears what the killed command left behind.
        rec.upsert([article("after", "valdora port strike written after the kill")])
        assert len(rec) == len(expected) + 1
    assert leftovers(index) == []
    assert integrity(index) == "ok"
    with Recommender.open(index) as rec:
        assert "after" in rec and len(rec) == len(expected) + 1


# -- Orphan generations --------------------------------------------------------------------

KILLED_MID_BUILD = at_call("os:replace", "kill", where=renaming("vectors."))


def test_killed_builds_never_pile_up_and_the_next_command_clears_them(
    index: Path, tmp_path: Path
) -> None:
    fresh = write_jsonl(tmp_path / "fresh.jsonl", FRESH)
    added = write_jsonl(tmp_path / "added.jsonl", ADDED)
    live = live_generation(index)
    orphans: list[str] = []
    for _ in range(3):
        killed(cli("build", fresh, "--index", index, "--model", MODEL, prelude=KILLED_MID_BUILD))
        # Each build removed the previous one's remains when it took the lock.
        left = sorted(generations(index) - {live})
        assert len(left) == 1 and left[0] not in orphans
        orphans += left
    result = cli("add", added, "--index", index)
    assert result.returncode == 0, result.stderr
    assert generations(index) == {live} and leftovers(index) == []

    killed(cli("build", fresh, "--index", index, "--model", MODEL, prelude=KILLED_MID_BUILD))
    result = cli("build", fresh, "--index", index, "--model", MODEL)
    assert result.returncode == 0, result.stderr
    # The build cleared the killed one's generation, never its own.
    assert generations(index) == {live_generation(index)} != {live}
    assert leftovers(index) == []
    with Recommender.open(index) as rec:
        assert len(rec) == len(FRESH)


def test_a_directory_holding_only_our_leftovers_still_builds(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "s.jsonl", FRESH)
    path = tmp_path / "i1"
    # A first build killed with its manifest in a temp file: no manifest, one orphan.
    first = at_call("os:replace", "kill", where=renaming("manifest.json"))
    killed(cli("build", source, "--index", path, "--model", MODEL, prelude=first))
    assert not (path / "manifest.json").exists()
    orphan = generations(path)
    assert len(orphan) == 1 and list(path.glob(".manifest.json.*.tmp"))
    # Every rejects file is written under the writer lock: any temp one is a killed write's.
    old_rejects = path / ".rejects.x.tmp"
    old_rejects.write_text("{}\n")
    new_rejects = path / ".rejects.jsonl.0badc0de.tmp"
    new_rejects.write_text("{}\n")

    result = cli("build", source, "--index", path, "--model", MODEL)
    assert result.returncode == 0, result.stderr
    assert generations(path) == {live_generation(path)} and not orphan & generations(path)
    assert not old_rejects.exists() and not list(path.glob(".manifest.json.*.tmp"))
    assert not new_rejects.exists()
    result = cli("related", "fresh-0", "--index", path, "--json")
    assert result.returncode == 0, result.stderr


def test_a_directory_with_other_files_is_still_refused(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "s.jsonl", FRESH)
    path = tmp_path / "i1"
    first = at_call("os:replace", "kill", where=renaming("manifest.json"))
    killed(cli("build", source, "--index", path, "--model", MODEL, prelude=first))
    (path / "notes.txt").write_text("not ours\n")
    orphan = generations(path)
    result = cli("build", source, "--index", path, "--model", MODEL)
    assert result.returncode == 4
    assert "it is not an index and holds ['notes.txt']" in result.stderr
    assert generations(path) == orphan  # refused before the lock: nothing was touched


# -- Two writers ---------------------------------------------------------------------------

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _read_until(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdout is not None
    for got in proc.stdout:
        if got.strip() == line:
            return
    _, errors = proc.communicate()
    raise AssertionError(f"the child exited ({proc.returncode}) before {line!r}:\n{errors}")


def _wait_at_lock(proc: subprocess.Popen[str], index: Path) -> None:
    """Wait until ``proc`` says it is waiting for the index's writer lock."""
    assert proc.stderr is not None
    for got in proc.stderr:
        if f"index {str(index)!r} is being written by another process; waiting up to" in got:
            return
    raise AssertionError(f"the second writer never reached the lock ({proc.wait()})")


def test_a_second_writer_waits_for_the_lock_then_gives_up(
    index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = write_jsonl(tmp_path / "fresh.jsonl", FRESH)
    late = write_jsonl(tmp_path / "late.jsonl", [article("late", "valdora port late news")])
    live = live_generation(index)
    # A build that holds the lock, paused with its new generation half written.
    holder = cli_started(
        "build",
        fresh,
        "--index",
        index,
        "--model",
        MODEL,
        prelude=at_call("os:replace", "pause", where=renaming("vectors.")),
    )
    patient: subprocess.Popen[str] | None = None
    try:
        _read_until(holder, "paused")
        building = generations(index) - {live}
        assert len(building) == 1

        started = time.monotonic()
        result = cli("add", late, "--index", index, **{storage.ENV_LOCK_TIMEOUT: "1"})
        assert time.monotonic() - started >= 1.0
        assert result.returncode == 4, result.stderr
        assert "is being written by another process; gave up after 1s" in result.stderr

        monkeypatch.setenv(storage.ENV_LOCK_TIMEOUT, "0.2")
        with (
            Recommender.open(index, encoder=HashingEncoder(256)) as rec,
            TestClient(create_app(rec, token=TOKEN)) as client,
        ):
            put = client.put("/v1/articles", json=[ADDED[0].to_dict()], headers=AUTH)
            assert put.status_code == 503, put.text
            assert put.json()["error"]["type"] == "IndexLockedError"
            assert int(put.headers["retry-after"]) > 0
            assert client.delete("/v1/articles/port-1", headers=AUTH).status_code == 503
            # Readers are not held up by the writer.
            assert client.get("/v1/articles/port-0/related").status_code == 200

        patient = cli_started("add", late, "--index", index, **{storage.ENV_LOCK_TIMEOUT: "60"})
        _wait_at_lock(patient, index)
        time.sleep(0.3)
        assert patient.poll() is None, "the second writer did not wait"
        assert generations(index) - {live} == building  # nobody touched the build's files
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=120) == 0, holder.communicate()
        assert patient.wait(timeout=120) == 0, patient.communicate()
    finally:
        for proc in (holder, patient):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert generations(index) == building == {live_generation(index)}
    with Recommender.open(index) as rec:
        assert len(rec) == len(FRESH) + 1 and "late" in rec


def test_the_lock_timeout_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(storage.ENV_LOCK_TIMEOUT, raising=False)
    assert storage.lock_timeout() == storage.DEFAULT_LOCK_TIMEOUT == 60.0
    monkeypatch.setenv(storage.ENV_LOCK_TIMEOUT, "2.5")
    assert storage.lock_timeout() == 2.5
    for bad in ("soon", "-1", "nan", "inf"):
        monkeypatch.setenv(storage.ENV_LOCK_TIMEOUT, bad)
        with pytest.raises(InvalidArgumentError, match=f"RECOMMENDER_LOCK_TIMEOUT.*{bad!r}"):
            storage.lock_timeout()


# -- A write killed after its commit, before the work that follows it ---------------------------


def _pool_stats(path: Path) -> dict[str, bytes | None]:
    gen = path / json.loads((path / "manifest.json").read_text())["generation"]
    conn = sqlite3.connect(gen / "catalog.sqlite3")
    try:
        return dict(conn.execute("SELECT id, pool_stats FROM articles").fetchall())
    finally:
        conn.close()


LATE = "valdora port late news"


def test_statistics_a_killed_add_never_computed_are_computed_by_the_next_write(
    index: Path, tmp_path: Path
) -> None:
    """Killed between its commit and the pool statistics: the write is there, its statistics
    missing (never the old text's), and the next write computes them as if nothing happened."""
    twin = tmp_path / "twin"
    shutil.copytree(index, twin)
    changed = article("port-0", "a rewritten story about volcanic ash over the valdora port")
    source = write_jsonl(tmp_path / "w.jsonl", [*ADDED, changed])
    late = write_jsonl(tmp_path / "late.jsonl", [article("late", LATE)])
    kill = at_call("recommender.writes.update:compute_pool_stats", "kill")
    killed(cli("add", source, "--index", index, prelude=kill))
    stats = _pool_stats(index)
    assert {aid for aid, s in stats.items() if s is None} == {"added-0", "added-1", "port-0"}

    assert cli("add", late, "--index", index).returncode == 0
    stats = _pool_stats(index)
    assert all(s is not None for s in stats.values())
    # The statistics depend on the archive they are computed over: the same as one
    # uninterrupted write of both batches, computed over the same archive.
    both = write_jsonl(tmp_path / "both.jsonl", [*ADDED, changed, article("late", LATE)])
    assert cli("add", both, "--index", twin).returncode == 0
    assert _pool_stats(twin) == stats


def test_stored_lists_a_killed_write_never_refreshed_are_stale_not_wrong(
    index: Path, tmp_path: Path
) -> None:
    with Recommender.open(index, encoder=HashingEncoder(256)) as rec:
        rec.store_lists(k=5)
        status = rec.stored_lists_status()
        assert status is not None and status.stale is None
        double = article("double", rec.get("port-1").body)
    source = write_jsonl(tmp_path / "double.jsonl", [double])
    kill = at_call("recommender.stored_lists.keeper:ListKeeper.after_write", "kill")
    killed(cli("add", source, "--index", index, prelude=kill))
    with Recommender.open(index, encoder=HashingEncoder(256)) as rec:
        assert "double" in rec
        status = rec.stored_lists_status()
        assert status is not None and not status.usable
        assert "has not refreshed the stored lists" in (status.stale or "")
        assert rec.stored_list("port-1") is None  # never served as if it were current
        # A later write does not clear the mark of the one that died...
        rec.upsert([article("later", "an unrelated note on council budgets")])
        later = rec.stored_lists_status()
        assert later is not None and later.stale is not None
        # ...a recompute of every list does, and then the lists hold the duplicate.
        rec.store_lists(k=5)
        redone = rec.stored_lists_status()
        assert redone is not None and redone.stale is None
        stored = rec.stored_list("port-1")
        assert stored is not None
        assert [m.id for m in stored.matches] == [m.id for m in rec.related("port-1", k=5)]
        assert "double" in [m.id for m in stored.matches]
