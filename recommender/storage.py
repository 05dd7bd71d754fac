"""The on-disk layout of an index directory, and how it changes safely.

    indexes/news/
      manifest.json          format version, model, dimension, counts, live generation
      rejects.jsonl          records the last build/add rejected, with reasons
      .lock                  held (flock) by the one writer at a time
      gen-<time>-<rand>/     the live generation
        catalog.sqlite3      records, id map, hashes, vectors (source of truth)
        vectors.<seq>.faiss  vector snapshot containing catalog writes up to <seq>
        lexical.<seq>.npz    hashed term counts (lexical side), same <seq>

A build writes a whole new generation, then replaces ``manifest.json`` with
``os.replace`` (atomic on POSIX): a reader sees the old index or the new one,
never a mix, and a build killed at any moment leaves the old one in place.
Updates go through one SQLite transaction, then a new snapshot file; a reader
that finds the snapshot older than the catalog replays the logged changes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import IndexFormatError, IndexLockedError, IndexNotFoundError

__all__ = [
    "FORMAT_VERSION",
    "IndexLayout",
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
    def writer_lock(self, timeout: float = 60.0) -> Iterator[None]:
        """Hold the index's single-writer lock (across processes) for the block."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK, "a+") as handle:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise IndexLockedError(
                            f"index {str(self.root)!r} is being written by another process; "
                            f"gave up after {timeout:g}s"
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

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


def snapshot_path(gen_dir: Path, seq: int, suffix: str = "faiss") -> Path:
    return gen_dir / f"vectors.{seq}.{suffix}"


def lexical_path(gen_dir: Path, seq: int) -> Path:
    return gen_dir / f"lexical.{seq}.npz"


def rows_path(gen_dir: Path, seq: int) -> Path:
    return gen_dir / f"rows.{seq}.npy"


def rows_path_for(snapshot: Path) -> Path | None:
    """The row file written with the vector snapshot at ``snapshot`` (None: not a snapshot name)."""
    match = _SNAPSHOT.match(snapshot.name)
    return rows_path(snapshot.parent, int(match.group(1))) if match else None


def probes_path(gen_dir: Path, seq: int) -> Path:
    return gen_dir / f"probes.{seq}.npy"


def probes_path_for(snapshot: Path) -> Path | None:
    """The probe file written with the vector snapshot at ``snapshot`` (None: not a snapshot)."""
    match = _SNAPSHOT.match(snapshot.name)
    return probes_path(snapshot.parent, int(match.group(1))) if match else None


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


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ours(name: str) -> bool:
    return (
        bool(_GEN.match(name))
        or name in {LOCK, REJECTS, RULES, EVENTS}
        or name.startswith((f".{MANIFEST}.", f".{RULES}."))
    )
