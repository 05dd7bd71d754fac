"""The on-disk layout of an index directory, and how it changes safely.

    indexes/news/
      manifest.json          format version, model, dimension, counts, live generation
      rejects.jsonl          records the last build/add rejected, with reasons
      .lock                  held (flock) by the one writer at a time
      .<name>.<rand>.tmp     an atomic write in progress (or the remains of a killed one)
      gen-<time>-<rand>/     the live generation
        catalog.sqlite3      records, id map, hashes, vectors (source of truth)
        vectors.<seq>.faiss  vector snapshot containing catalog writes up to <seq>
        lexical.<seq>.npz    hashed term counts (lexical side), same <seq>

A build writes a whole new generation, then replaces ``manifest.json`` with
``os.replace`` (atomic on POSIX): a reader sees the old index or the new one,
never a mix, and a build killed at any moment leaves the old one in place.
Updates go through one SQLite transaction, then a new snapshot file; a reader
that finds the snapshot older than the catalog replays the logged changes.

A killed writer can leave a generation the manifest does not name (a build
killed before publishing, or after publishing but before removing the one it
replaced) and temporary files. Whoever takes the writer lock next removes them
before doing anything else (:meth:`IndexLayout.remove_leftovers`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import filelock

from recommender.errors import (
    IndexFormatError,
    IndexLockedError,
    IndexNotFoundError,
    InvalidArgumentError,
)
from recommender.stores.files import (
    probes_path as probes_path,
)
from recommender.stores.files import (
    probes_path_for as probes_path_for,
)
from recommender.stores.files import (
    rows_path as rows_path,
)
from recommender.stores.files import (
    rows_path_for as rows_path_for,
)
from recommender.stores.files import (
    snapshot_path as snapshot_path,
)

_log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "ENV_LOCK_TIMEOUT",
    "FORMAT_VERSION",
    "IndexLayout",
    "lock_timeout",
    "write_json_atomic",
]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CATALOG = "catalog.sqlite3"
REJECTS = "rejects.jsonl"
LOCK = ".lock"
#: Kept at the root, not in a generation: they outlive rebuilds.
RULES = "rules.json"
EVENTS = "events.sqlite3"
_GEN = re.compile(r"^gen-[0-9TZ]+-[0-9a-f]+$")
#: Seconds a writer waits for the lock before IndexLockedError, unless this variable says.
ENV_LOCK_TIMEOUT = "RECOMMENDER_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 60.0
# Temporary files of the atomic writes at the root: write_json_atomic (manifest, rules)
# and the rejects file, in its current (.rejects.jsonl.<rand>.tmp) and older naming.
_ROOT_TEMP = re.compile(r"^\.(?:manifest\.json|rules\.json|rejects|rejects\.jsonl)\.\w+\.tmp$")
# Inside a generation everything is ours: any dot-file ending in .tmp is an atomic write
# (a snapshot) that a killed writer never renamed into place.
_GEN_TEMP = re.compile(r"^\..+\.tmp$")
# A FAISS file, or (a shared store) a small file naming the engine's collection.
_SNAPSHOT = re.compile(r"^vectors\.(\d+)\.(?:faiss|milvus)$")
_LEXICAL = re.compile(r"^lexical\.(\d+)\.npz$")
# A vector snapshot's vectors as rows in id order (an IVF store reads them back from here).
_ROWS = re.compile(r"^rows\.(\d+)\.npy$")
# An IVF snapshot's lists to probe for each of its vectors as a query, in id order.
_PROBES = re.compile(r"^probes\.(\d+)\.npy$")


class IndexLayout:
    """Paths and safe operations for one index directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        # Read on every query (has another process changed the index?): built once.
        self.manifest_path = self.root / MANIFEST
        #: Orphan generations this object's writer locks removed, oldest first: a caller
        #: can drop what they held outside the directory (a Milvus collection).
        self.removed_generations: list[str] = []

    @property
    def rejects_path(self) -> Path:
        return self.root / REJECTS

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def read_manifest(self) -> dict[str, Any]:
        if not self.root.exists():
            raise IndexNotFoundError(
                f"no index at {str(self.root)!r}; build one with 'recommender build'"
            )
        try:
            manifest = json.loads(self.manifest_path.read_text("utf-8"))
        except FileNotFoundError:
            raise IndexNotFoundError(
                f"{str(self.root)!r} is not an index (no {MANIFEST}); "
                "build one with 'recommender build'"
            ) from None
        except (OSError, ValueError) as exc:
            raise IndexFormatError(f"cannot read {self.manifest_path}: {exc}") from exc
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        if version != FORMAT_VERSION:
            raise IndexFormatError(
                f"index {str(self.root)!r} has format version {version!r}; "
                f"this recommender reads version {FORMAT_VERSION}"
            )
        result: dict[str, Any] = manifest
        return result

    def generation_dir(self, manifest: dict[str, Any]) -> Path:
        gen = manifest.get("generation")
        if not isinstance(gen, str) or not _GEN.match(gen) or not (self.root / gen).is_dir():
            raise IndexFormatError(f"index {str(self.root)!r}: generation {gen!r} is missing")
        return self.root / gen

    # -- writing ---------------------------------------------------------------

    def check_writable_target(self) -> None:
        """Refuse to build over a directory that holds something other than an index."""
        if not self.root.exists():
            return
        if not self.root.is_dir():
            raise IndexFormatError(f"{str(self.root)!r} exists and is not a directory")
        if self.exists():
            return
        foreign = [p.name for p in self.root.iterdir() if not _ours(p.name)]
        if foreign:
            raise IndexFormatError(
                f"refusing to build into {str(self.root)!r}: it is not an index and holds "
                f"{sorted(foreign)[:5]}; choose an empty or new directory"
            )

    @contextlib.contextmanager
    def writer_lock(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the index's single-writer lock (across processes) for the block.

        Waits up to ``timeout`` seconds (default: :func:`lock_timeout`) for another
        writer, then raises :class:`IndexLockedError`. Once the lock is held, and
        before the block runs, the remains of killed writers are removed
        (:meth:`remove_leftovers`).
        """
        wait = lock_timeout() if timeout is None else timeout
        self.root.mkdir(parents=True, exist_ok=True)
        # filelock (flock on POSIX) rather than our own loop; the file stays, as readers
        # and older versions expect, and an unlink race could let two writers in.
        lock = filelock.FileLock(self.root / LOCK, preserve_lock_file=True)
        try:
            try:
                lock.acquire(timeout=0)
            except filelock.Timeout:
                # Say why a command seems to hang (the CLI shows warnings on stderr).
                _log.warning(
                    "index %r is being written by another process; waiting up to %gs",
                    str(self.root),
                    wait,
                )
                lock.acquire(timeout=wait, poll_interval=0.05)
        except filelock.Timeout:
            raise IndexLockedError(
                f"index {str(self.root)!r} is being written by another process; "
                f"gave up after {wait:g}s"
            ) from None
        try:
            self.removed_generations += self.remove_leftovers()
            yield
        finally:
            lock.release()

    def new_generation(self) -> Path:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        path = self.root / f"gen-{stamp}-{secrets.token_hex(4)}"
        path.mkdir(parents=True)
        return path

    def publish(self, manifest: dict[str, Any]) -> None:
        """Make ``manifest`` (and the generation it names) live, then drop other generations."""
        write_json_atomic(self.manifest_path, manifest)
        self.remove_stale_generations(keep=manifest["generation"])

    def remove_stale_generations(self, keep: str) -> None:
        # Only called under the writer lock: any other generation is either a
        # replaced one or the remains of a killed build. Readers that still
        # have files of a replaced one open keep reading them (POSIX unlink).
        for path in self.root.iterdir():
            if _GEN.match(path.name) and path.name != keep:
                shutil.rmtree(path, ignore_errors=True)

    def remove_leftovers(self) -> list[str]:
        """Remove what killed writers left behind; return the orphan generations removed.

        Called by :meth:`writer_lock` as soon as the lock is held, before its
        holder creates anything, so no writer is at work: a generation the live
        manifest does not name is a killed build's, or one a killed build
        replaced (with no manifest, every generation is a killed first build's).
        Temporary files of atomic writes at the root and in the live generation
        are removed too. A Milvus collection an orphan generation wrote is left
        on the engine. Nothing is removed from a directory whose manifest cannot
        be read or names a missing generation: which data is live is then unknown.
        """
        live = self._live_generation()
        removed: list[str] = []
        for path in self.root.iterdir():
            name = path.name
            if _GEN.match(name) and live is not None and name not in live:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(name)
            elif _ROOT_TEMP.match(name):
                _unlink_quietly(path)
        for gen in live or ():
            for path in (self.root / gen).iterdir():
                if _GEN_TEMP.match(path.name):
                    _unlink_quietly(path)
        return sorted(removed)

    def _live_generation(self) -> set[str] | None:
        """The generation the manifest names (empty: no manifest); None when it is unknown."""
        try:
            manifest = json.loads(self.manifest_path.read_text("utf-8"))
        except FileNotFoundError:
            return set()
        except (OSError, ValueError):
            return None
        gen = manifest.get("generation") if isinstance(manifest, dict) else None
        if not isinstance(gen, str) or not _GEN.match(gen) or not (self.root / gen).is_dir():
            return None
        return {gen}


def latest_snapshot(gen_dir: Path, max_seq: int) -> tuple[int, Path] | None:
    """The newest vector snapshot not newer than the catalog (``max_seq``)."""
    best: tuple[int, Path] | None = None
    for path in gen_dir.iterdir():
        match = _SNAPSHOT.match(path.name)
        if (
            match
            and int(match.group(1)) <= max_seq
            and (best is None or int(match.group(1)) > best[0])
        ):
            best = (int(match.group(1)), path)
    return best


def lexical_path(gen_dir: Path, seq: int) -> Path:
    return gen_dir / f"lexical.{seq}.npz"


def remove_old_snapshots(gen_dir: Path, keep_seq: int) -> None:
    for path in gen_dir.iterdir():
        match = (
            _SNAPSHOT.match(path.name)
            or _LEXICAL.match(path.name)
            or _ROWS.match(path.name)
            or _PROBES.match(path.name)
        )
        if match and int(match.group(1)) < keep_seq:
            path.unlink(missing_ok=True)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file, fsync it, and rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_lines_atomic(path: Path, lines: Iterable[str]) -> int:
    """Write lines to a temp file beside ``path``, rename it into place; return the count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    count = 0
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            for line in lines:
                handle.write(line + "\n")
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def lock_timeout() -> float:
    """Seconds a writer waits for the lock: ``$RECOMMENDER_LOCK_TIMEOUT``, else 60."""
    raw = os.environ.get(ENV_LOCK_TIMEOUT, "").strip()
    if not raw:
        return DEFAULT_LOCK_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidArgumentError(
            f"${ENV_LOCK_TIMEOUT} must be a number of seconds, 0 or more; got {raw!r}"
        )
    return seconds


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    # Clearing leftovers is housekeeping: a file that cannot go must not fail a write.
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def _ours(name: str) -> bool:
    return (
        bool(_GEN.match(name) or _ROOT_TEMP.match(name))
        or name in {LOCK, REJECTS, RULES, EVENTS}
        or name.startswith((f".{MANIFEST}.", f".{RULES}."))
    )
