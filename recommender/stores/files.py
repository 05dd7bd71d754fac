"""The names of a vector snapshot's files in a generation directory.

A snapshot ``vectors.<seq>.<suffix>`` may have companions written with it: ``rows.<seq>.npy``
(the vectors as rows in id order) and ``probes.<seq>.npy`` (each vector's IVF lists to
probe). The stores read their companions by these names; the index layout lists and prunes
them.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = [
    "SNAPSHOT_NAME",
    "probes_path",
    "probes_path_for",
    "rows_path",
    "rows_path_for",
    "snapshot_path",
]

#: A FAISS file, or (a shared store) a small file naming the engine's collection.
SNAPSHOT_NAME = re.compile(r"^vectors\.(\d+)\.(?:faiss|milvus)$")


def snapshot_path(gen_dir: Path, seq: int, suffix: str = "faiss") -> Path:
    return gen_dir / f"vectors.{seq}.{suffix}"


def rows_path(gen_dir: Path, seq: int) -> Path:
    return gen_dir / f"rows.{seq}.npy"


def rows_path_for(snapshot: Path) -> Path | None:
    """The row file written with the vector snapshot at ``snapshot`` (None: not a snapshot name)."""
    match = SNAPSHOT_NAME.match(snapshot.name)
    return rows_path(snapshot.parent, int(match.group(1))) if match else None


def probes_path(gen_dir: Path, seq: int) -> Path:
    return gen_dir / f"probes.{seq}.npy"


def probes_path_for(snapshot: Path) -> Path | None:
    """The probe file written with the vector snapshot at ``snapshot`` (None: not a snapshot)."""
    match = SNAPSHOT_NAME.match(snapshot.name)
    return probes_path(snapshot.parent, int(match.group(1))) if match else None
