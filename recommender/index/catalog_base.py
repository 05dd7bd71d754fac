"""The catalog's connections: one SQLite connection per thread, in WAL mode.

The catalog's parts (articles in ``catalog``, numbers in ``catalog_numbers``,
stored lists in ``catalog_lists``, stories in ``catalog_stories``) are classes over
:class:`CatalogBase`, joined into ``Catalog``: each keeps its tables and queries in its own
module, and all of them share the thread's one connection, so that a write's single
transaction covers every table it touches (the articles, the change log, the stored lists'
write mark and the stories' pending articles).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["CatalogBase"]


class CatalogBase:
    """Thread-safe access to one ``catalog.sqlite3``: a connection per thread, WAL mode."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # check_same_thread=False only so close() may close every thread's connection.
            conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL makes a committed write survive power loss, not just a crash.
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
            with self._guard:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        with self._guard:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def _conn_with(self, schema: str, flag: str) -> sqlite3.Connection:
        """This thread's connection, ``schema`` (``CREATE ... IF NOT EXISTS``) run on it once:
        the tables of a catalog part created on first use, no migration needed."""
        conn = self._conn()
        if not getattr(self._local, flag, False):
            with conn:
                conn.executescript(schema)
            setattr(self._local, flag, True)
        return conn

    def _select_in(
        self, conn: sqlite3.Connection, sql: str, values: Iterable[Any]
    ) -> Iterator[tuple[Any, ...]]:
        """Rows of ``sql`` (its ``{marks}`` an IN list) over ``values``, 900 at a time
        (SQLite's limit on bound parameters)."""
        for chunk in _chunks(sorted(set(values)), 900):
            yield from conn.execute(sql.format(marks=",".join("?" * len(chunk))), chunk)

    def _meta(self, key: str) -> str:
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0])

    def _has_lead_dates(self) -> bool:
        return self._has_column("lead_ts")

    def _has_written_years(self) -> bool:
        return self._has_column("written_year")

    def _has_column(self, name: str) -> bool:
        columns = self._conn().execute("PRAGMA table_info(articles)").fetchall()
        return any(column[1] == name for column in columns)


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
