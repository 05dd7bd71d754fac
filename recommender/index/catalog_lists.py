"""Stored related lists: their tables, their staleness, and the pinned lexical statistics.

``related --all --store-lists`` stores every article's list with the bounds a
write must reach to change it, and a reverse index (which lists hold an
article) so that a write refreshes only those lists. The tables are created on
first use, so catalogs from before stored lists need no migration. The
document frequencies the lists were computed with (the lexical pin) are stored
beside them, because the lists equal a recompute only under those. The
articles' side touches these tables once: a write marks the lists as awaiting
its refresh, in its own transaction.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from recommender.index.catalog_base import CatalogBase, _chunks

__all__ = ["LISTS_WRITE_UNFINISHED", "CatalogLists", "ListRow", "StoredLists"]

#: Why stored lists are stale while a write has not refreshed them.
LISTS_WRITE_UNFINISHED = (
    "a write changed articles and has not refreshed the stored lists yet (in progress in "
    "another process, or interrupted); recompute them with 'related --all --store-lists' "
    "if this lasts"
)

# Stored related lists (``related --all --store-lists``): created on first use, so
# indexes built before them need no migration. ``related_members`` is the reverse
# index (which lists hold an article) that lets a write refresh only those lists.
_LISTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS related_lists (
    int_id INTEGER PRIMARY KEY,
    items TEXT NOT NULL,
    computed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS related_members (member INTEGER NOT NULL, owner INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS related_members_member ON related_members (member);
CREATE INDEX IF NOT EXISTS related_members_owner ON related_members (owner);
CREATE TABLE IF NOT EXISTS related_bounds (
    int_id INTEGER PRIMARY KEY,
    dense_entry REAL NOT NULL,
    lexical_entry REAL NOT NULL,
    dense_room REAL NOT NULL,
    lexical_room REAL NOT NULL,
    hits_floor REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS lexical_pin (
    token TEXT PRIMARY KEY,
    live INTEGER NOT NULL,
    terms BLOB NOT NULL,
    counts BLOB NOT NULL
);
"""

#: One stored list: owner int id, its (int id, score) items, and its pool's bounds
#: (:class:`~recommender.ranking.scoring.PoolBounds` as a tuple): what a write must reach to
#: change it.
ListRow = tuple[int, list[tuple[int, float]], tuple[float, float, float, float, float]]


@dataclass(frozen=True)
class StoredLists:
    """How the stored lists were computed: list length, ranking and rules.

    ``pin`` names the lexical statistics they were computed with; ``stale``
    says why they no longer equal a recompute (None while they do).
    """

    k: int
    ranking: dict[str, Any]
    rules: str | None
    pin: str | None = None
    stale: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "k": self.k,
                "ranking": self.ranking,
                "rules": self.rules,
                "pin": self.pin,
                "stale": self.stale,
            }
        )


class CatalogLists(CatalogBase):
    """The catalog's stored related lists and the lexical pin they were computed with."""

    def _lists_conn(self) -> sqlite3.Connection:
        return self._conn_with(_LISTS_SCHEMA, "lists_ready")

    def lists_info(self) -> StoredLists | None:
        """The settings of the stored lists, or None when none were stored.

        Lists are stale while a write that changed articles has not refreshed them
        (another process's write in progress, or one killed in between), except for the
        writer itself, which is about to refresh them.
        """
        conn = self._conn()
        row = conn.execute("SELECT value FROM meta WHERE key = 'lists'").fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        stale = data.get("stale")
        pending = conn.execute("SELECT value FROM meta WHERE key = 'lists_write'").fetchone()
        if stale is None and pending is not None and pending[0] != self._own_lists_write():
            stale = LISTS_WRITE_UNFINISHED
        return StoredLists(
            int(data["k"]),
            dict(data["ranking"]),
            data.get("rules"),
            pin=data.get("pin"),
            stale=stale,
        )

    def _begin_lists_write(self, conn: sqlite3.Connection) -> None:
        """Mark, inside a write's transaction, that stored lists await its refresh.

        A mark left by an earlier writer that died stays: its lists were never refreshed.
        """
        if conn.execute("SELECT 1 FROM meta WHERE key = 'lists'").fetchone() is None:
            return
        token = secrets.token_hex(8)
        cursor = conn.execute("INSERT OR IGNORE INTO meta VALUES ('lists_write', ?)", (token,))
        if cursor.rowcount:
            self._local.lists_write = token

    def finish_lists_write(self) -> None:
        """The stored lists are refreshed for this connection's last write: clear its mark."""
        token = self._own_lists_write()
        if token is None:
            return
        conn = self._conn()
        with conn:
            conn.execute("DELETE FROM meta WHERE key = 'lists_write' AND value = ?", (token,))
        self._local.lists_write = None

    def _own_lists_write(self) -> str | None:
        return getattr(self._local, "lists_write", None)

    def lists_version(self) -> int:
        """A number that every change to the stored lists (by any process) increases."""
        row = self._conn().execute("SELECT value FROM meta WHERE key = 'lists_version'").fetchone()
        return int(row[0]) if row else 0

    def replace_lists(self, info: StoredLists, lists: Iterable[ListRow]) -> int:
        """Replace every stored list (one transaction); return how many were stored."""
        conn = self._lists_conn()
        with conn:
            conn.execute("DELETE FROM related_lists")
            conn.execute("DELETE FROM meta WHERE key = 'lists_write'")
            conn.execute("DELETE FROM related_members")
            conn.execute("DELETE FROM related_bounds")
            count = self._put_lists(conn, lists)
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('lists', ?)", (info.to_json(),))
        return count

    def mark_lists_stale(self, reason: str) -> None:
        """Record that the stored lists no longer equal a recompute, and why."""
        info = self.lists_info()
        if info is None or info.stale:
            return
        conn = self._conn()
        with conn:
            value = StoredLists(info.k, info.ranking, info.rules, info.pin, reason).to_json()
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('lists', ?)", (value,))
            self._bump_lists_version(conn)

    def update_lists(
        self,
        lists: Sequence[ListRow],
        removed: Sequence[int] = (),
        bounds: Sequence[tuple[int, Sequence[float] | np.ndarray]] = (),
    ) -> None:
        """Replace the lists of some owners and drop those of ``removed``, in one transaction.

        ``bounds`` (owner, bounds) updates the bounds of lists that keep their items.
        """
        conn = self._lists_conn()
        with conn:
            conn.executemany(
                "UPDATE related_bounds SET dense_entry = ?, lexical_entry = ?, dense_room = ?,"
                " lexical_room = ?, hits_floor = ? WHERE int_id = ?",
                [(*map(float, b), int(owner)) for owner, b in bounds],
            )
            gone = [int(i) for i in removed] + [owner for owner, _, _ in lists]
            for chunk in _chunks(gone, 500):
                marks = ",".join("?" * len(chunk))
                conn.execute(f"DELETE FROM related_lists WHERE int_id IN ({marks})", chunk)
                conn.execute(f"DELETE FROM related_members WHERE owner IN ({marks})", chunk)
                conn.execute(f"DELETE FROM related_bounds WHERE int_id IN ({marks})", chunk)
            self._put_lists(conn, lists)

    def _put_lists(self, conn: sqlite3.Connection, lists: Iterable[ListRow]) -> int:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        count = 0
        for owner, items, bounds in lists:
            conn.execute(
                "INSERT OR REPLACE INTO related_lists VALUES (?, ?, ?)",
                (int(owner), json.dumps([[int(i), float(s)] for i, s in items]), now),
            )
            conn.executemany(
                "INSERT INTO related_members VALUES (?, ?)",
                [(int(i), int(owner)) for i, _ in items],
            )
            conn.execute(
                "INSERT OR REPLACE INTO related_bounds VALUES (?, ?, ?, ?, ?, ?)",
                (int(owner), *map(float, bounds)),
            )
            count += 1
        self._bump_lists_version(conn)
        return count

    def _bump_lists_version(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO meta VALUES ('lists_version', ?)",
            (str(self.lists_version() + 1),),
        )

    def list_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Owner int ids of every stored list, and their pools' bounds (one row of five each)."""
        rows = self._lists_conn().execute(
            "SELECT int_id, dense_entry, lexical_entry, dense_room, lexical_room, hits_floor"
            " FROM related_bounds ORDER BY int_id"
        )
        data = np.array(rows.fetchall(), dtype=np.float64).reshape(-1, 6)
        return data[:, 0].astype(np.int64), data[:, 1:]

    def set_lexical_pin(self, token: str, live: int, df: np.ndarray) -> None:
        """Store the document frequencies stored lists are computed with (replacing any)."""
        terms = np.flatnonzero(df).astype(np.int32)
        conn = self._lists_conn()
        with conn:
            conn.execute("DELETE FROM lexical_pin")
            conn.execute(
                "INSERT INTO lexical_pin VALUES (?, ?, ?, ?)",
                (token, int(live), terms.tobytes(), df[terms].astype(np.int32).tobytes()),
            )

    def lexical_pin(self, size: int) -> tuple[str, int, np.ndarray] | None:
        """(token, article count, document frequency per term) of the pin, or None."""
        row = self._pin_row("token, live, terms, counts")
        if not row:
            return None
        df = np.zeros(size, dtype=np.int32)
        df[np.frombuffer(row[2], dtype=np.int32)] = np.frombuffer(row[3], dtype=np.int32)
        return str(row[0]), int(row[1]), df

    def lexical_pin_token(self) -> str | None:
        """The token of the pin (one small read, to notice another process's new pin)."""
        row = self._pin_row("token")
        return str(row[0]) if row else None

    def _pin_row(self, columns: str) -> tuple[Any, ...] | None:
        """``columns`` of the pin's row; None without one (or in a catalog from before pins)."""
        conn = self._conn()
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'lexical_pin'"
        ).fetchone()
        row = conn.execute(f"SELECT {columns} FROM lexical_pin").fetchone() if exists else None
        return tuple(row) if row else None

    def stored_list(self, int_id: int) -> tuple[str, list[tuple[int, float]]] | None:
        """(computed_at, [(int id, score), ...]) of one stored list, or None."""
        row = (
            self._lists_conn()
            .execute("SELECT computed_at, items FROM related_lists WHERE int_id = ?", (int_id,))
            .fetchone()
        )
        if row is None:
            return None
        return str(row[0]), [(int(i), float(s)) for i, s in json.loads(row[1])]

    def stored_lists(
        self, owners: Sequence[int] | None = None
    ) -> dict[int, list[tuple[int, float]]]:
        """The stored lists of ``owners`` (every list for None)."""
        sql = "SELECT int_id, items FROM related_lists"
        rows: list[tuple[int, str]] = []
        if owners is None:
            rows.extend(self._lists_conn().execute(sql))
        for chunk in _chunks([int(i) for i in owners or ()], 500):
            marks = ",".join("?" * len(chunk))
            rows.extend(self._lists_conn().execute(f"{sql} WHERE int_id IN ({marks})", chunk))
        return {int(o): [(int(i), float(s)) for i, s in json.loads(items)] for o, items in rows}

    def owners_of(self, members: Sequence[int]) -> set[int]:
        """Owners of the stored lists that hold any of ``members``."""
        out: set[int] = set()
        for chunk in _chunks([int(i) for i in members], 500):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT DISTINCT owner FROM related_members WHERE member IN ({marks})"
            out.update(int(r[0]) for r in self._lists_conn().execute(sql, chunk))
        return out
