"""Stored stories: every article's story and the scored neighbours it was placed by.

A row per placed article: its story id and its content neighbours (int ids and scores,
the pairs a story grows through), so that a later article is placed against the same pairs,
and a regrouping reads them back instead of ranking the archive again. The model that read
the pairs (:class:`~recommender.ranking.calibration.StoryModel`) is kept in ``meta``. The
tables are created on first use (catalogs from before stories need no migration); a write
deletes the rows of the articles it removes or re-embeds and marks the new and re-embedded
ones pending in its own transaction, so an article is placed even after a crash
(:meth:`CatalogStories.unplaced`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recommender.index.catalog_base import CatalogBase

__all__ = ["CatalogStories", "StoryRow"]

_STORIES_SCHEMA = """
CREATE TABLE IF NOT EXISTS story_rows (
    int_id INTEGER PRIMARY KEY,
    story TEXT NOT NULL,
    neighbours BLOB NOT NULL,
    scores BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS story_rows_story ON story_rows (story);
CREATE TABLE IF NOT EXISTS story_pending (int_id INTEGER PRIMARY KEY);
"""


@dataclass(frozen=True)
class StoryRow:
    """A placed article's story and its content neighbours (int ids, scores)."""

    story: str
    neighbours: np.ndarray
    scores: np.ndarray


class CatalogStories(CatalogBase):
    """The catalog's stored stories."""

    def _stories_conn(self) -> sqlite3.Connection:
        return self._conn_with(_STORIES_SCHEMA, "stories_ready")

    def stories_meta(self) -> dict[str, Any] | None:
        """How the stories were grouped (model, articles then), or None when none are stored."""
        row = self._conn().execute("SELECT value FROM meta WHERE key = 'stories'").fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def story_rows(self, int_ids: Iterable[int] | None = None) -> dict[int, StoryRow]:
        """The rows of those of ``int_ids`` that are placed (None: every placed article's)."""
        conn, sql = self._stories_conn(), "SELECT * FROM story_rows"
        found = (
            conn.execute(sql)
            if int_ids is None
            else self._select_in(conn, sql + " WHERE int_id IN ({marks})", int_ids)
        )
        return {
            int(int_id): StoryRow(
                story,
                np.frombuffer(neighbours, dtype=np.int64),
                np.frombuffer(scores, dtype=np.float32),
            )
            for int_id, story, neighbours, scores in found
        }

    def story_of(self, int_ids: Iterable[int]) -> dict[int, str]:
        """The story of each of ``int_ids`` that is placed (no neighbour lists read)."""
        sql = "SELECT int_id, story FROM story_rows WHERE int_id IN ({marks})"
        return {int(i): str(s) for i, s in self._select_in(self._stories_conn(), sql, int_ids)}

    def story_members(self, stories: Iterable[str]) -> dict[str, list[int]]:
        """Story id -> the int ids placed in it."""
        out: dict[str, list[int]] = {}
        sql = "SELECT story, int_id FROM story_rows WHERE story IN ({marks})"
        for story, int_id in self._select_in(self._stories_conn(), sql, stories):
            out.setdefault(story, []).append(int(int_id))
        return out

    def story_assignments(self) -> dict[int, str]:
        """Every placed article's story (int id -> story id)."""
        rows = self._stories_conn().execute("SELECT int_id, story FROM story_rows")
        return {int(i): str(s) for i, s in rows}

    def story_in_use(self, story: str) -> bool:
        row = (
            self._stories_conn()
            .execute("SELECT 1 FROM story_rows WHERE story = ? LIMIT 1", (story,))
            .fetchone()
        )
        return row is not None

    def unplaced(self) -> list[int]:
        """Articles still to place: added or re-embedded since (or left by a killed writer)."""
        rows = self._stories_conn().execute("SELECT int_id FROM story_pending")
        return sorted(int(r[0]) for r in rows)

    def put_stories(
        self, rows: Mapping[int, StoryRow], meta: Mapping[str, Any], *, replace_all: bool = False
    ) -> None:
        """Store rows and ``meta`` in one transaction; ``replace_all`` drops every other row
        (a regrouping)."""
        conn = self._stories_conn()
        with conn:
            if replace_all:
                conn.execute("DELETE FROM story_rows")
                conn.execute("DELETE FROM story_pending")
            conn.executemany(
                "INSERT OR REPLACE INTO story_rows VALUES (?, ?, ?, ?)",
                [
                    (
                        int_id, row.story,
                        np.ascontiguousarray(row.neighbours, dtype=np.int64).tobytes(),
                        np.ascontiguousarray(row.scores, dtype=np.float32).tobytes(),
                    )
                    for int_id, row in rows.items()
                ],
            )  # fmt: skip
            conn.executemany("DELETE FROM story_pending WHERE int_id = ?", [(i,) for i in rows])
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('stories', ?)", (json.dumps(dict(meta)),)
            )

    def _forget_stories(
        self,
        conn: sqlite3.Connection,
        embedded: Sequence[int],
        removed: Sequence[int],
        moved: Sequence[int] = (),
    ) -> None:
        """Inside a write's transaction: the rows of removed and re-embedded articles go, and
        the new and re-embedded ones, and those a metadata change moved in time (``moved``:
        they keep their rows meanwhile), wait to be placed (:meth:`unplaced`), so that a
        writer killed before placing them leaves them to the next. The schema exists
        (:meth:`_stories_conn`, called before the transaction)."""
        gone = [(i,) for i in [*embedded, *removed]]
        placed = list(self.story_of(embedded))  # re-embedded: their text changed
        conn.executemany("DELETE FROM story_rows WHERE int_id = ?", gone)
        _strip_mentions(conn, placed)
        conn.executemany("DELETE FROM story_pending WHERE int_id = ?", [(i,) for i in removed])
        conn.executemany(
            "INSERT OR IGNORE INTO story_pending VALUES (?)", [(i,) for i in [*embedded, *moved]]
        )


def _strip_mentions(conn: sqlite3.Connection, int_ids: Sequence[int]) -> None:
    """Drop re-embedded articles from every stored neighbour list: those lists scored
    their old text, and a pair takes the higher of its two scores (stories.grouping).
    One read of every row, on writes that re-embed a placed article only."""
    if not int_ids:
        return
    rows = conn.execute("SELECT int_id, neighbours, scores FROM story_rows").fetchall()
    flat = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.int64)
    hit = np.isin(flat, np.array(sorted(int_ids), dtype=np.int64))
    if not hit.any():
        return
    ends = np.cumsum([len(r[1]) // 8 for r in rows])
    updates = []
    for row in sorted(set(np.searchsorted(ends, np.flatnonzero(hit), side="right").tolist())):
        int_id, neighbours, scores = rows[row]
        keep = ~hit[ends[row] - len(neighbours) // 8 : ends[row]]
        updates.append((
            np.frombuffer(neighbours, dtype=np.int64)[keep].tobytes(),
            np.frombuffer(scores, dtype=np.float32)[keep].tobytes(),
            int(int_id),
        ))  # fmt: skip
    conn.executemany("UPDATE story_rows SET neighbours = ?, scores = ? WHERE int_id = ?", updates)
