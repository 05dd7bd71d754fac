"""Kill `recommender build`, `add` and `serve` with SIGKILL at random moments; check the index.

    .venv/bin/python scripts/crash_test.py [--runs 20] [--seed N] [--only build|add|serve]
        [--at-events 1] [--articles 2000] [--serve-seconds 4]
        [--strict-cleanup] [--strict-stats] [--keep] [-v]

Everything runs on a synthetic corpus with the fast hashing encoder (`--model hashing:256`),
in a private temporary directory, so a build takes seconds and nothing of yours is touched.
For each kind of process:

- build: an index of `--articles` articles is rebuilt from a different set (other ids, other
  titles, another count, 3 bad records so `rejects.jsonl` is written); every fourth run is a
  first build into a path with no index yet. The command is timed unkilled (twice; the
  longer counts), then each run kills it at a uniform random time in [0, that duration].
- add: the same index takes an upsert of as many new articles, 200 re-embedded ones, 100
  metadata-only changes and 3 bad records: over 2,000 changes, so the command ends with a
  checkpoint (a new snapshot). Timed and killed the same way.
- serve: `recommender serve` on 127.0.0.1 (a free port, a bearer token) over an index with
  1,700 changes since its snapshot, so the stream soon crosses a checkpoint; the script PUTs
  batches of 1-50 articles (some of them new versions of earlier ones) one request at a time
  and kills the server's process group at a uniform random time in [0, --serve-seconds]
  after the first PUT.

Uniform times rarely land in the short late steps, so `--at-events N` (default 1) adds N runs
per step that poll the index directory and kill the process the moment the step starts:
build: snapshot writing, rejects, the manifest swap; add: the checkpoint, the manifest
update, rejects; serve: a checkpoint.

After each kill, in a fresh process: the index opens (`Recommender.open`), `info()` counts
as many vectors as articles, a related query answers, SQLite `PRAGMA integrity_check` on the
catalog says ok, and the articles (id, title, section of every one) are exactly the old
state or exactly the new one (serve: every article of a PUT answered 2xx before the kill
holds its acknowledged version; the PUT in flight landed whole or not at all). Then a next
command must succeed and leave the expected state (build/add: `recommender add` of 5
articles, or `build` where a killed first build left no index; serve: restart the server,
compare `/v1/info`, PUT one more article, stop it with SIGTERM). Orphan `gen-*` directories
and temporary files are counted before and after that next command, and articles left
without pool statistics are noted (`--strict-cleanup`, `--strict-stats`: count those as
failures).

Prints each run, a summary table, kills by phase and every failure with its reason; exits 1
on any failure, keeping the run directories (logs, indexes) for a look.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # loopback only: nothing here listens on or talks to another address
MODEL = "hashing:256"
MODES = ("build", "add", "serve")
TIMEOUT = 180.0  # any one command or check; far above what any takes unkilled
_GEN = re.compile(r"^gen-[0-9TZ]+-[0-9a-f]+$")
_SNAPSHOT = re.compile(r"^vectors\.(\d+)\.faiss$")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

# Run in a fresh process after each kill: what a new reader of the index finds.
_CHECKER = r"""
import json, re, sqlite3, sys
from pathlib import Path

request = json.loads(sys.argv[1])
path = Path(request["index"])
out = {}
try:
    from recommender import Recommender
    with Recommender.open(path) as rec:
        info = rec.info().to_dict()
        out["count"] = len(rec)
        out["info_articles"] = info["counts"]["articles"]
        out["info_vectors"] = info["counts"]["vectors"]
        out["related"] = {p: len(rec.related(p, k=5)) for p in request["probes"] if p in rec}
except Exception as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
    sys.exit(0)
manifest = json.loads((path / "manifest.json").read_text("utf-8"))
out["manifest_articles"] = manifest.get("counts", {}).get("articles")
gen = path / manifest["generation"]
names = [re.match(r"vectors\.(\d+)\.faiss$", p.name) for p in gen.iterdir()]
seqs = [int(m.group(1)) for m in names if m]
out["snapshot_seq"] = max(seqs, default=None)
conn = sqlite3.connect(gen / "catalog.sqlite3")
try:
    out["integrity"] = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    out["seq"] = int(conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()[0])
    rows = conn.execute("SELECT id, title || '|' || coalesce(section, '') FROM articles")
    out["articles"] = dict(rows.fetchall())
    query = "SELECT count(*) FROM articles WHERE pool_stats IS NULL"
    out["no_stats"] = conn.execute(query).fetchone()[0]
finally:
    conn.close()
print(json.dumps(out))
"""

Signature = dict[str, str]  # article id -> "title|section": what tells one version from another


# -- the corpus --------------------------------------------------------------------------


@dataclass
class Corpus:
    """The synthetic inputs of every run, and what the index holds after each of them."""

    base: Signature
    rebuilt: Signature
    added: Signature
    followup: Signature
    preload: Signature
    files: dict[str, Path]


_SECTIONS = ("politics", "business", "sport", "science", "culture")


class Writer:
    """Synthetic news articles: each on one of 60 topics, with that topic's words."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        common = [f"word{i}" for i in range(2000)]
        self.topics = [
            [f"topic{t}term{i}" for i in range(40)] + self.rng.sample(common, 200)
            for t in range(60)
        ]

    def record(self, article_id: str, version: str, section: str | None = None) -> dict[str, Any]:
        topic = self.rng.randrange(len(self.topics))
        words = self.rng.choices(self.topics[topic], k=self.rng.randint(40, 120))
        day = self.rng.randint(1, 28)
        return {
            "id": article_id,
            "title": f"Story {article_id} {version} on topic {topic}",
            "body": " ".join(words) + ".",
            "section": section or self.rng.choice(_SECTIONS),
            "published_at": f"2026-{self.rng.randint(1, 11):02d}-{day:02d}",
        }


def _sig(records: Sequence[dict[str, Any]]) -> Signature:
    return {r["id"]: f"{r['title']}|{r['section']}" for r in records}


# Rejected by validation (missing id, nothing to index, an unparseable date): they make
# build and add write rejects.jsonl, one of their late steps.
_BAD = [
    {"title": "no id", "body": "text"},
    {"id": "bad-empty", "title": "", "body": ""},
    {"id": "bad-date", "title": "t", "body": "b", "published_at": "the day after"},
]


def make_corpus(folder: Path, size: int) -> Corpus:
    writer = Writer(seed=0)
    base = [writer.record(f"s-{i}", "v0") for i in range(size)]
    # Another count, other ids and a new version of the ids both share: never mistakable.
    shift = size * 3 // 20
    rebuilt = [writer.record(f"s-{i}", "v1") for i in range(shift, size + 2 * shift)]
    new = [writer.record(f"s-{i}", "v1") for i in range(size, 2 * size)]
    reembedded = [writer.record(f"s-{i}", "v1") for i in range(size - 200, size)]
    metadata = [
        {**r, "section": "corrections"} for r in base[size - 300 : size - 200]
    ]  # same title and body: updated without the model
    followup = [writer.record(f"f-{i}", "v0") for i in range(5)]
    preload = [writer.record(f"pre-{i}", "v0") for i in range(1700)]
    files = {
        "base": _write_jsonl(folder / "base.jsonl", base),
        "rebuilt": _write_jsonl(folder / "rebuilt.jsonl", rebuilt + _BAD),
        "added": _write_jsonl(folder / "added.jsonl", new + reembedded + metadata + _BAD),
        "followup": _write_jsonl(folder / "followup.jsonl", followup),
        "preload": _write_jsonl(folder / "preload.jsonl", preload),
    }
    return Corpus(
        base=_sig(base),
        rebuilt=_sig(rebuilt),
        added={**_sig(base), **_sig(new), **_sig(reembedded), **_sig(metadata)},
        followup=_sig(followup),
        preload=_sig(preload),
        files=files,
    )


def _write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return path


# -- processes and checks ----------------------------------------------------------------


def cli(*args: str, log: Path) -> subprocess.Popen[bytes]:
    """Start ``recommender ARGS`` in a process group of its own (killed as a whole)."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "recommender", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=ENV,
            start_new_session=True,
        )


def run_cli(*args: str, log: Path) -> int:
    proc = cli(*args, log=log)
    try:
        return proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        return -1


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Signal the process group this script started for ``proc``, then reap ``proc``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    proc.wait(timeout=60)


def kill_at(proc: subprocess.Popen[bytes], seconds: float) -> bool:
    """SIGKILL ``proc`` ``seconds`` after now unless it exits first; True if it was killed."""
    try:
        proc.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        kill_group(proc)
        return True


def kill_on(proc: subprocess.Popen[bytes], seen: Callable[[], bool]) -> bool:
    """SIGKILL ``proc`` as soon as ``seen()`` (polled every millisecond) unless it exits first."""
    deadline = time.monotonic() + TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        if seen():
            kill_group(proc)
            return True
        time.sleep(0.001)
    return False


# Moments too short for uniform random times to hit often: a run "at an event" polls the
# index directory and kills the process the moment it sees one begin.
def _new_temp(index: Path, old: Layout) -> bool:
    """A snapshot being written: a temporary file in a generation (or a new generation's)."""
    for gen in _generations(index):
        with contextlib.suppress(FileNotFoundError):
            if any(
                e.name.startswith(".") or (gen != old.generation and e.name.startswith("lexical."))
                for e in os.scandir(index / gen)
            ):
                return True
    return False


def _rejects(index: Path, old: Layout) -> bool:
    """The rejects file being written (the template index has none)."""
    return any(e.name.startswith((".rejects", "rejects.jsonl")) for e in os.scandir(index))


def _swapped(index: Path, old: Layout) -> bool:
    """manifest.json replaced (os.replace gives it a new inode)."""
    with contextlib.suppress(FileNotFoundError):
        return (index / "manifest.json").stat().st_ino != old.manifest_inode
    return False


def _generations(index: Path) -> list[str]:
    with contextlib.suppress(FileNotFoundError):
        return [e.name for e in os.scandir(index) if _GEN.match(e.name)]
    return []


EVENTS: dict[str, dict[str, Callable[[Path, Layout], bool]]] = {
    "build": {"snapshot": _new_temp, "rejects": _rejects, "manifest swap": _swapped},
    "add": {"checkpoint": _new_temp, "manifest update": _swapped, "rejects": _rejects},
    "serve": {"checkpoint": _new_temp},
}


def check(index: Path, probes: Sequence[str]) -> dict[str, Any]:
    """What a fresh process finds at ``index`` (see _CHECKER)."""
    request = json.dumps({"index": str(index), "probes": list(probes)})
    done = subprocess.run(
        [sys.executable, "-c", _CHECKER, request],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=ENV,
        timeout=TIMEOUT,
        check=False,
    )
    if done.returncode != 0 or not done.stdout.strip():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"checker exited {done.returncode}: {tail[0]}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def health(found: dict[str, Any]) -> list[str]:
    """What is wrong with an index that opened: counts, related queries, SQLite integrity."""
    problems = []
    if found["integrity"] != ["ok"]:
        problems.append(f"integrity_check: {found['integrity'][:3]}")
    count = found["count"]
    if not count == found["info_articles"] == found["info_vectors"] == len(found["articles"]):
        problems.append(
            f"counts disagree: len {count}, info articles {found['info_articles']}, "
            f"vectors {found['info_vectors']}, catalog rows {len(found['articles'])}"
        )
    empty = [p for p, n in found["related"].items() if n == 0]
    if empty or not found["related"]:
        problems.append(f"related() answered nothing for {empty or 'any probe'}")
    return problems


@dataclass
class Layout:
    """Generation directories and temporary files found in an index directory."""

    root: Path
    generation: str | None
    generations: list[str]
    temporary: list[str]
    rejects: bool
    manifest_inode: int | None = None

    @property
    def orphans(self) -> list[str]:
        return [g for g in self.generations if g != self.generation]


def layout(index: Path) -> Layout:
    if not index.exists():
        return Layout(index, None, [], [], False)
    generation = None
    with contextlib.suppress(OSError, ValueError, KeyError):
        generation = json.loads((index / "manifest.json").read_text("utf-8"))["generation"]
    gens = sorted(p.name for p in index.iterdir() if _GEN.match(p.name) and p.is_dir())
    temporary = [
        str(p.relative_to(index))
        for p in index.rglob(".*")
        if p.is_file() and p.name.endswith(".tmp")
    ]
    inode = None
    with contextlib.suppress(FileNotFoundError):
        inode = (index / "manifest.json").stat().st_ino
    # Written, or being written (a temporary file of it at the root).
    rejects = any(e.name.startswith((".rejects", "rejects.jsonl")) for e in os.scandir(index))
    return Layout(index, generation, gens, sorted(temporary), rejects, inode)


def copy_index(source: Path, target: Path) -> None:
    shutil.copytree(source, target)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# -- results -----------------------------------------------------------------------------


@dataclass
class Run:
    """One killed process and what was found after it."""

    mode: str
    number: int
    kill_at: float  # seconds after the start (serve: after the first PUT)
    event: str | None = None  # killed at this event instead of at kill_at
    killed: bool = False
    phase: str = ""
    outcome: str = ""
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    orphans_before: int = 0
    orphans_after: int = 0
    temporary_before: int = 0
    temporary_after: int = 0
    acked: int = 0
    acked_present: int = 0
    puts: int = 0
    seconds: float = 0.0

    def fail(self, reason: str) -> None:
        self.failures.append(reason)


def run_name(run: Run) -> str:
    """The run's directory under the work directory."""
    at = f"-at-{run.event.replace(' ', '-')}" if run.event else ""
    return f"{run.mode}{at}-{run.number:03d}"


def compare(found: Signature, expected: Signature) -> str:
    """A short account of how two article sets differ (for failure messages)."""
    missing = [a for a in expected if a not in found]
    extra = [a for a in found if a not in expected]
    changed = [a for a in expected if a in found and found[a] != expected[a]]
    parts = []
    for name, ids in (("missing", missing), ("unexpected", extra), ("other version", changed)):
        if ids:
            parts.append(f"{len(ids)} {name} (e.g. {sorted(ids)[:3]})")
    return ", ".join(parts) or "same"


def outcome_of(found: Signature, states: dict[str, Signature]) -> str | None:
    """Which named state ``found`` is exactly, if any."""
    return next((name for name, sig in states.items() if found == sig), None)


def count_gaps(run: Run, before: Layout, after: Layout) -> None:
    run.orphans_before, run.orphans_after = len(before.orphans), len(after.orphans)
    run.temporary_before, run.temporary_after = len(before.temporary), len(after.temporary)
    if after.orphans:
        run.notes.append(f"orphan generations left after the next command: {after.orphans}")
    if after.temporary:
        run.notes.append(f"temporary files left after the next command: {after.temporary}")


# -- build and add -----------------------------------------------------------------------


@dataclass
class Context:
    """What every run shares: the corpus, the template indexes, options."""

    work: Path
    corpus: Corpus
    template: Path
    rng: random.Random
    args: argparse.Namespace
    durations: dict[str, float] = field(default_factory=dict)


def command(mode: str, ctx: Context, index: Path) -> list[str]:
    files = ctx.corpus.files
    if mode == "build":
        return ["build", str(files["rebuilt"]), "--index", str(index), "--model", MODEL, "--quiet"]
    return ["add", str(files["added"]), "--index", str(index), "--quiet"]


def calibrate(mode: str, ctx: Context) -> float:
    """Time the command unkilled (twice; the longer counts) and check what it leaves."""
    expected = ctx.corpus.rebuilt if mode == "build" else ctx.corpus.added
    times = []
    for n in range(2):
        folder = ctx.work / f"calibrate-{mode}-{n}"
        folder.mkdir()
        index = folder / "index"
        copy_index(ctx.template, index)
        start = time.monotonic()
        status = run_cli(*command(mode, ctx, index), log=folder / "log.txt")
        times.append(time.monotonic() - start)
        found = check(index, ["s-1000"])
        if status != 0 or "error" in found or found["articles"] != expected:
            detail = found.get("error") or compare(found.get("articles", {}), expected)
            sys.exit(f"{mode} does not work unkilled (exit {status}): {detail}; see {folder}")
        shutil.rmtree(folder)
    return max(times)


def build_phase(killed: bool, seen: Layout, old_gen: str | None) -> str:
    """Where a build was when it died, from what it left on disk."""
    if not killed:
        return "finished before the kill"
    new = [g for g in seen.generations if g != old_gen]
    if seen.generation in (None, old_gen):
        if not new:
            return "1 start-up (no new generation yet)"
        files = {p.name for p in (seen.root / new[-1]).iterdir()}
        if any(_SNAPSHOT.match(f) for f in files):
            return "5 rejects, before the manifest swap" if seen.rejects else "4 statistics"
        if any(f.startswith((".", "lexical.", "rows.", "probes.")) for f in files):
            return "3 snapshot writing"
        return "2 embedding into the catalog"
    if old_gen is not None and old_gen in seen.generations:
        return "6 manifest swapped, old generation not yet removed"
    return "7 after the swap (reopening, report)"


def add_phase(killed: bool, found: dict[str, Any], outcome: str, seen: Layout) -> str:
    """Where an add was when it died, from what it left."""
    if not killed:
        return "finished before the kill"
    if outcome == "old":
        if seen.temporary:
            return "1 before the commit (temporary files left)"
        return "1 before the commit (start-up, reading, embedding)"
    if found["no_stats"]:
        return "2 committed, pool statistics being written"
    if found["snapshot_seq"] is None or found["snapshot_seq"] < found["seq"]:
        return "3 checkpoint: snapshot being written"
    if found["manifest_articles"] != found["count"]:
        return "4 snapshot written, manifest not updated"
    if not seen.rejects:
        return "5 manifest updated, rejects not yet written"
    if any(t.startswith(".rejects") for t in seen.temporary):
        return "6 rejects being written"
    return "7 after the write (report, exit)"


def writer_run(mode: str, number: int, ctx: Context, event: str | None = None) -> Run:
    """Kill one build or add at a random moment (or at ``event``) and check what it left."""
    run = Run(mode, number, kill_at=ctx.rng.uniform(0, ctx.durations[mode]), event=event)
    folder = ctx.work / run_name(run)
    folder.mkdir()
    index = folder / "index"
    log = folder / "log.txt"
    first = mode == "build" and number % 4 == 3 and event is None
    if first:
        run.notes.append("first build (no index at the path before)")
    else:
        copy_index(ctx.template, index)
    old = layout(index)
    old_gen = old.generation
    start = time.monotonic()
    proc = cli(*command(mode, ctx, index), log=log)
    if event is None:
        run.killed = kill_at(proc, run.kill_at)
    else:
        seen_event = EVENTS[mode][event]
        run.killed = kill_on(proc, lambda: seen_event(index, old))
        run.kill_at = time.monotonic() - start
    if not run.killed and proc.returncode != 0:
        run.fail(f"exited {proc.returncode} unkilled; see {log}")
    seen = layout(index)
    found = check(index, ["s-1000", "s-100", f"s-{ctx.args.articles + 10}"])

    new_state = ctx.corpus.rebuilt if mode == "build" else ctx.corpus.added
    states = {"old": ctx.corpus.base, "new": new_state}
    if "error" in found:
        if first and "IndexNotFoundError" in found["error"]:
            run.outcome = "none"
        else:
            run.fail(f"the index does not open after the kill: {found['error']}")
    else:
        run.failures += health(found)
        run.outcome = outcome_of(found["articles"], states) or "mixed"
        if run.outcome == "mixed":
            run.fail(
                f"neither the old nor the new articles: against new "
                f"{compare(found['articles'], new_state)}; against old "
                f"{compare(found['articles'], ctx.corpus.base)}"
            )
        elif run.outcome == "old" and first:
            run.fail("a first build left the articles of an index that never existed")
        if found["no_stats"]:
            run.notes.append(f"{found['no_stats']} articles without pool statistics after the kill")
    if not run.killed and run.outcome not in ("new", ""):
        run.fail(f"finished unkilled but the index holds the {run.outcome} articles")
    run.phase = (
        build_phase(run.killed, seen, old_gen)
        if mode == "build"
        else add_phase(run.killed, found, run.outcome, seen)
        if "error" not in found
        else "?"
    )
    next_command(run, ctx, index, found, folder)
    run.seconds = time.monotonic() - start
    return run


def next_command(run: Run, ctx: Context, index: Path, found: dict[str, Any], folder: Path) -> None:
    """The command after the kill must work and leave the expected articles."""
    before = layout(index)
    files = ctx.corpus.files
    if run.outcome == "none":
        args = ["build", str(files["base"]), "--index", str(index), "--model", MODEL, "--quiet"]
        expected = ctx.corpus.base
    elif run.outcome in ("old", "new"):
        args = ["add", str(files["followup"]), "--index", str(index), "--quiet"]
        expected = {**found["articles"], **ctx.corpus.followup}
    else:
        # The index is damaged or mixed: still see whether a rebuild gets past it.
        args = ["build", str(files["base"]), "--index", str(index), "--model", MODEL, "--quiet"]
        expected = ctx.corpus.base
    status = run_cli(*args, log=folder / "next.txt")
    if status != 0:
        tail = (folder / "next.txt").read_text(errors="replace").strip().splitlines()[-1:]
        run.fail(f"the next command ({args[0]}) failed with exit {status}: {tail}")
    after = check(index, ["s-1000", "s-100", "f-0"])
    if "error" in after:
        run.fail(f"the index does not open after the next command: {after['error']}")
    else:
        run.failures += [f"after the next command: {p}" for p in health(after)]
        if after["articles"] != expected:
            run.fail(f"after the next {args[0]}: {compare(after['articles'], expected)}")
        if after["no_stats"]:
            run.notes.append(
                f"{after['no_stats']} articles still without pool statistics after the next command"
            )
    count_gaps(run, before, layout(index))
    if ctx.args.strict_cleanup and (run.orphans_after or run.temporary_after):
        run.fail("the next command left orphan generations or temporary files")
    if ctx.args.strict_stats and after.get("no_stats"):
        run.fail(f"{after['no_stats']} articles without pool statistics after the next command")


# -- serve -------------------------------------------------------------------------------


@dataclass
class Stream:
    """What the PUT client saw before the server died."""

    acked: dict[str, str] = field(default_factory=dict)  # id -> signature of its acked version
    in_flight: dict[str, str] = field(default_factory=dict)
    puts: int = 0
    answered_not_2xx: list[int] = field(default_factory=list)
    versions: Counter[str] = field(default_factory=Counter)


class Server:
    """``recommender serve`` on a free loopback port, in a process group of its own."""

    def __init__(self, index: Path, token: str, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "recommender", "serve", "--index", str(index)),
                    *("--host", HOST, "--port", str(self.port), "--no-access-log"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env={**ENV, "RECOMMENDER_API_TOKEN": token},
                start_new_session=True,
            )
        self.headers = {"Authorization": f"Bearer {token}"}

    def wait_ready(self) -> str | None:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"the server exited with status {self.proc.returncode} while starting"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return None
            time.sleep(0.1)
        return f"the server did not answer /healthz within {TIMEOUT:g} s"

    def stop(self) -> None:
        """SIGTERM (graceful), SIGKILL if it is still there after 40 s."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            kill_group(self.proc)


def stream_until_killed(
    server: Server, run: Run, rng: random.Random, writer: Writer, event: Callable[[], bool] | None
) -> Stream:
    """PUT batches one at a time while a thread kills the server at run.kill_at (or ``event``)."""
    seen = Stream()
    stop = threading.Event()
    started = time.monotonic()

    def killer() -> None:
        if event is None:
            if not stop.wait(run.kill_at):
                kill_group(server.proc)
            return
        while not stop.is_set() and server.proc.poll() is None:
            if event():
                kill_group(server.proc)
                run.kill_at = time.monotonic() - started
                return
            time.sleep(0.001)

    thread = threading.Thread(target=killer)
    deadline = started + run.kill_at + TIMEOUT
    with httpx.Client(base_url=server.base, headers=server.headers, timeout=TIMEOUT) as client:
        thread.start()
        try:
            while time.monotonic() < deadline:
                batch = _batch(run.number, seen, rng, writer)
                seen.in_flight = _sig(batch)
                try:
                    answer = client.put("/v1/articles", json=batch)
                except httpx.TransportError:
                    break  # the server is gone: this batch may or may not have landed
                seen.puts += 1
                if 200 <= answer.status_code < 300:
                    seen.acked.update(seen.in_flight)
                else:
                    seen.answered_not_2xx.append(answer.status_code)
                seen.in_flight = {}
            else:
                run.fail("the server was still answering long after it should have been killed")
        finally:
            stop.set()
            thread.join()
    run.killed = server.proc.poll() == -signal.SIGKILL
    if not run.killed:
        kill_group(server.proc)
    return seen


def _batch(number: int, seen: Stream, rng: random.Random, writer: Writer) -> list[dict[str, Any]]:
    size = rng.choice((1, 1, 5, 10, 20, 50))
    fresh = [writer.record(f"put-{number}-{seen.puts}-{i}", "v0") for i in range(size)]
    if seen.acked and rng.random() < 0.3:
        # New versions of acknowledged articles: the newest acknowledged one must win.
        for article_id in rng.sample(sorted(seen.acked), min(3, len(seen.acked))):
            seen.versions[article_id] += 1
            fresh.append(writer.record(article_id, f"v{seen.versions[article_id]}"))
    return fresh


def serve_run(number: int, ctx: Context, writer: Writer, event: str | None = None) -> Run:
    """Kill one server under a stream of PUTs, check the index, restart and write again."""
    run = Run("serve", number, kill_at=ctx.rng.uniform(0, ctx.args.serve_seconds), event=event)
    folder = ctx.work / run_name(run)
    folder.mkdir()
    index = folder / "index"
    copy_index(ctx.work / "serve-template", index)
    old = layout(index)
    seen_event = EVENTS["serve"][event] if event else None
    token = secrets.token_urlsafe(24)
    start = time.monotonic()
    server = Server(index, token, folder / "server.txt")
    problem = server.wait_ready()
    if problem:
        kill_group(server.proc)
        run.fail(problem)
        return run
    seen = stream_until_killed(
        server, run, ctx.rng, writer, (lambda: seen_event(index, old)) if seen_event else None
    )
    run.puts = seen.puts
    if seen.answered_not_2xx:
        run.fail(f"PUTs answered {sorted(set(seen.answered_not_2xx))} before the kill")
    start_state = {**ctx.corpus.base, **ctx.corpus.preload}
    without = {**start_state, **seen.acked}
    with_flight = {**without, **seen.in_flight}
    after_kill = layout(index)
    found = check(index, ["s-100", *list(seen.acked)[:2]])
    if "error" in found:
        run.fail(f"the index does not open after the kill: {found['error']}")
        run.phase = "?"
        return run
    run.failures += health(found)
    articles = found["articles"]
    run.acked = len(seen.acked)
    run.acked_present = sum(
        1 for a, sig in seen.acked.items() if articles.get(a) in (sig, seen.in_flight.get(a, sig))
    )
    if run.acked_present < run.acked:
        run.fail(f"{run.acked - run.acked_present} of {run.acked} acknowledged articles lost")
    states = (
        {"in flight lost": without, "in flight landed": with_flight}
        if seen.in_flight
        else {"nothing in flight": without}
    )
    run.outcome = outcome_of(articles, states) or "mixed"
    if run.outcome == "mixed":
        run.fail(
            f"neither the acknowledged writes alone ({compare(articles, without)}) nor with "
            f"the whole PUT in flight ({compare(articles, with_flight)})"
        )
    if found["no_stats"]:
        run.notes.append(f"{found['no_stats']} articles without pool statistics after the kill")
    run.phase = _serve_phase(found, run.outcome, after_kill)
    restart(run, index, token, found, folder)
    if ctx.args.strict_cleanup and (run.orphans_after or run.temporary_after):
        run.fail("the restart and its PUT left orphan generations or temporary files")
    if ctx.args.strict_stats and any("still without pool statistics" in n for n in run.notes):
        run.fail("articles without pool statistics after the restart and a PUT")
    run.seconds = time.monotonic() - start
    return run


def _serve_phase(found: dict[str, Any], outcome: str, after_kill: Layout) -> str:
    """Where the PUT in flight was when the server died."""
    if outcome != "in flight landed":
        return "1 PUT in flight not committed (reading, validating, embedding)"
    if found["no_stats"]:
        return "2 committed, pool statistics being written"
    if after_kill.temporary:
        return "3 checkpoint: snapshot being written"
    return "4 committed, before the answer (snapshot, manifest, response)"


def restart(run: Run, index: Path, token: str, found: dict[str, Any], folder: Path) -> None:
    """Serve the index again: it must show the same count and take a write."""
    before = layout(index)
    server = Server(index, token, folder / "restart.txt")
    try:
        problem = server.wait_ready()
        if problem:
            run.fail(f"restart: {problem}")
            return
        with httpx.Client(base_url=server.base, headers=server.headers, timeout=TIMEOUT) as api:
            info = api.get("/v1/info").json()
            if info["counts"]["articles"] != found["count"]:
                run.fail(
                    f"restarted server counts {info['counts']['articles']} articles, "
                    f"a fresh reader {found['count']}"
                )
            record = Writer(seed=run.number).record("after-restart", "v0")
            answer = api.put("/v1/articles", json=[record])
            if answer.status_code != 200:
                run.fail(f"PUT after restart answered {answer.status_code}: {answer.text[:200]}")
            got = api.get("/v1/articles/after-restart")
            if got.status_code != 200:
                run.fail(f"GET of the article PUT after restart answered {got.status_code}")
            related = api.get("/v1/articles/s-100/related", params={"k": 5})
            if related.status_code != 200 or not related.json()["related"]:
                run.fail(f"related after restart answered {related.status_code}")
    except httpx.HTTPError as exc:
        run.fail(f"after restart: {type(exc).__name__}: {exc}")
    finally:
        server.stop()
    after = check(index, ["s-100"])
    if "error" in after:
        run.fail(f"the index does not open after the restart: {after['error']}")
    else:
        run.failures += [f"after the restart: {p}" for p in health(after)]
        if after["count"] != found["count"] + 1:
            run.fail(
                f"after the restart's PUT: {after['count']} articles, not {found['count'] + 1}"
            )
        if after["no_stats"]:
            run.notes.append(
                f"{after['no_stats']} articles still without pool statistics after the restart "
                "and a PUT"
            )
    count_gaps(run, before, layout(index))


# -- the whole test ----------------------------------------------------------------------


def prepare(ctx: Context) -> None:
    """Build the template index once, and the serve template (1,700 changes pending)."""
    log = ctx.work / "prepare.txt"
    base = ctx.corpus.files["base"]
    status = run_cli(
        "build", str(base), "--index", str(ctx.template), "--model", MODEL, "--quiet", log=log
    )
    if status != 0:
        sys.exit(f"building the template index failed; see {log}")
    serve_template = ctx.work / "serve-template"
    copy_index(ctx.template, serve_template)
    status = run_cli(
        "add", str(ctx.corpus.files["preload"]), "--index", str(serve_template), "--quiet", log=log
    )
    if status != 0:
        sys.exit(f"preparing the serve template failed; see {log}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    modes = args.only or list(MODES)
    print(
        f"crash test: {args.runs} runs of {', '.join(modes)}; seed {seed} "
        f"(--seed {seed} repeats the kill times)"
    )
    work = Path(tempfile.mkdtemp(prefix="crash-test-", dir=args.workdir))
    corpus = make_corpus(work, args.articles)
    ctx = Context(work, corpus, work / "template", random.Random(seed), args)
    prepare(ctx)
    results: dict[str, list[Run]] = {}
    elapsed: dict[str, float] = {}
    for mode in modes:
        began = time.monotonic()
        if mode in ("build", "add"):
            ctx.durations[mode] = calibrate(mode, ctx)
            print(f"{mode}: unkilled run takes {ctx.durations[mode]:.2f} s; killing in [0, that]")
        else:
            print(f"serve: killing in [0, {args.serve_seconds:g}] s after the first PUT")
        elapsed[mode] = time.monotonic() - began  # the calibration counts with the random kills
        writer = Writer(seed=seed)
        plan: list[tuple[str, str | None]] = [(mode, None)] * args.runs
        plan += [(f"{mode} at events", e) for e in EVENTS[mode] for _ in range(args.at_events)]
        for number, (row, event) in enumerate(plan):
            began = time.monotonic()
            if mode == "serve":
                run = serve_run(number, ctx, writer, event)
            else:
                run = writer_run(mode, number, ctx, event)
            results.setdefault(row, []).append(run)
            elapsed[row] = elapsed.get(row, 0.0) + time.monotonic() - began
            report_run(run, verbose=args.verbose)
            if not run.failures and not args.keep:
                shutil.rmtree(ctx.work / run_name(run), ignore_errors=True)
    failed = print_summary(results, elapsed)
    if failed or args.keep:
        print(f"\nrun directories (logs, indexes) kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


def report_run(run: Run, *, verbose: bool) -> None:
    status = "FAIL" if run.failures else "ok"
    when = f"at {run.event} ({run.kill_at:.2f}s)" if run.event else f"at {run.kill_at:5.2f}s"
    line = (
        f"  {run.mode} #{run.number:02d} kill {when} "
        f"{'killed' if run.killed else 'not killed'}: {run.phase or '-'}; "
        f"{run.outcome or '-'}; {status} ({run.seconds:.1f} s)"
    )
    print(line, flush=True)
    for reason in run.failures:
        print(f"      failure: {reason}", flush=True)
    if verbose:
        for note in run.notes:
            print(f"      note: {note}", flush=True)


def print_summary(results: dict[str, list[Run]], elapsed: dict[str, float]) -> int:
    print(
        "\n| process | runs | killed | passed | failed | outcomes | orphan gen-* seen / left "
        "| temp files seen / left | acked articles present / total | time |"
    )
    print("|---|---:|---:|---:|---:|---|---|---|---|---:|")
    failed = 0
    for mode, runs in results.items():
        bad = [r for r in runs if r.failures]
        failed += len(bad)
        outcomes = ", ".join(
            f"{k} {v}" for k, v in sorted(Counter(r.outcome for r in runs).items())
        )
        acked = (
            f"{sum(r.acked_present for r in runs)} / {sum(r.acked for r in runs)} "
            f"({sum(r.puts for r in runs)} PUTs)"
            if mode == "serve"
            else "-"
        )
        print(
            f"| {mode} | {len(runs)} | {sum(r.killed for r in runs)} | {len(runs) - len(bad)} "
            f"| {len(bad)} | {outcomes} "
            f"| {sum(r.orphans_before for r in runs)} / {sum(r.orphans_after for r in runs)} "
            f"| {sum(r.temporary_before for r in runs)} / {sum(r.temporary_after for r in runs)} "
            f"| {acked} | {elapsed[mode]:.0f} s |"
        )
    for mode, runs in results.items():
        print(f"\n{mode}: kills by phase")
        for phase, n in sorted(Counter(r.phase for r in runs).items()):
            print(f"  {n:3d}  {phase}")
        notes = Counter(_note_kind(n) for r in runs for n in r.notes)
        for note, n in sorted(notes.items()):
            print(f"  note ({n} runs): {note}")
        for run in runs:
            for reason in run.failures:
                print(
                    f"  FAILED #{run.number:02d} (kill at {run.kill_at:.2f} s, "
                    f"{run.phase}): {reason}"
                )
    return failed


def _note_kind(note: str) -> str:
    return re.sub(r"\d+ articles", "N articles", re.sub(r"\[.*\]", "[...]", note))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="kills per process kind (20)")
    parser.add_argument(
        "--seed", type=int, help="seed for the kill times (default: random, printed)"
    )
    parser.add_argument(
        "--only", action="append", choices=MODES, help="just this kind (repeatable; default all)"
    )
    parser.add_argument("--articles", type=int, default=2000, help="articles in the index (2000)")
    parser.add_argument(
        "--serve-seconds",
        type=float,
        default=4.0,
        help="serve: kill within this many seconds of the first PUT (4)",
    )
    parser.add_argument(
        "--strict-cleanup",
        action="store_true",
        help="fail a run whose next command leaves orphan generations or temporary files",
    )
    parser.add_argument(
        "--strict-stats",
        action="store_true",
        help="fail a run that leaves articles without pool statistics after the next command",
    )
    parser.add_argument(
        "--at-events",
        type=int,
        default=1,
        help="then, for each short late step (snapshot writing, rejects, manifest swap, "
        "checkpoint), this many runs killed the moment it starts (1; 0: none)",
    )
    parser.add_argument(
        "--workdir", help="where to make the temporary directory (default: $TMPDIR)"
    )
    parser.add_argument("--keep", action="store_true", help="keep every run's directory")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each run's notes")
    args = parser.parse_args(argv)
    if args.runs < 0 or args.at_events < 0 or args.articles < 400:
        parser.error("--runs and --at-events must be at least 0, --articles at least 400")
    return args


if __name__ == "__main__":
    sys.exit(main())
