"""SQLite catalog: article records, the stable int64 id map, content hashes and vectors.

The catalog is the source of truth. Every write is one SQLite transaction that
also bumps a sequence number and logs the touched int ids in ``changes``; the
FAISS file is a snapshot tagged with the sequence it contains, so a reader
that finds a newer sequence replays the logged ids instead of trusting a
stale file. ``AUTOINCREMENT`` guarantees a removed article's int id is never
handed to another article.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from recommender.ingest.dateline import lead_date
from recommender.types import Article

__all__ = ["Catalog", "CatalogRow", "ListRow", "StoredHash", "StoredLists", "lexical_text"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS articles (
    int_id INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    url TEXT,
    published_at TEXT,
    published_ts REAL,
    lead_ts REAL,
    section TEXT COLLATE NOCASE,
    language TEXT COLLATE NOCASE,
    tags TEXT NOT NULL,
    metadata TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    record_hash TEXT NOT NULL,
    vector BLOB NOT NULL,
    pool_stats BLOB,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS articles_section ON articles (section);
CREATE INDEX IF NOT EXISTS articles_language ON articles (language);
CREATE INDEX IF NOT EXISTS articles_published ON articles (published_ts);
CREATE TABLE IF NOT EXISTS changes (seq INTEGER NOT NULL, int_id INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS changes_seq ON changes (seq);
"""


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


@dataclass(frozen=True)
class CatalogRow:
    """The fields a related list shows for one article."""

    int_id: int
    id: str
    title: str
    url: str | None
    published_at: str | None
    section: str | None


@dataclass(frozen=True)
class StoredHash:
    int_id: int
    content_hash: str
    record_hash: str


class Catalog:
    """Thread-safe access to one ``catalog.sqlite3``: a connection per thread, WAL mode."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()

    @classmethod
    def create(cls, path: Path) -> Catalog:
        catalog = cls(path)
        with catalog._conn() as conn:
            conn.executescript(_SCHEMA)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('seq', '0'), ('pruned_through', '0')")
        return catalog

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

    # -- reads ---------------------------------------------------------------

    def seq(self) -> int:
        return int(self._meta("seq"))

    def data_version(self) -> int:
        """Changes whenever another connection commits (SQLite ``PRAGMA data_version``)."""
        return int(self._conn().execute("PRAGMA data_version").fetchone()[0])

    def pruned_through(self) -> int:
        return int(self._meta("pruned_through"))

    def _meta(self, key: str) -> str:
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0])

    def count(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM articles").fetchone()[0])

    def any_id(self) -> str | None:
        """The id of one indexed article (the first stored), None when there is none."""
        row = self._conn().execute("SELECT id FROM articles ORDER BY int_id LIMIT 1").fetchone()
        return None if row is None else str(row[0])

    def int_id(self, article_id: str) -> int | None:
        row = (
            self._conn()
            .execute("SELECT int_id FROM articles WHERE id = ?", (article_id,))
            .fetchone()
        )
        return None if row is None else int(row[0])

    def int_ids(self, article_ids: Iterable[str]) -> dict[str, int]:
        ids = list(dict.fromkeys(article_ids))
        return {aid: iid for aid, (iid, _, _) in self._hash_rows(ids).items()}

    def hashes(self, article_ids: Sequence[str]) -> dict[str, StoredHash]:
        return {aid: StoredHash(*row) for aid, row in self._hash_rows(article_ids).items()}

    def _hash_rows(self, article_ids: Sequence[str]) -> dict[str, tuple[int, str, str]]:
        out: dict[str, tuple[int, str, str]] = {}
        for chunk in _chunks(list(article_ids), 500):
            marks = ",".join("?" * len(chunk))
            sql = (
                f"SELECT id, int_id, content_hash, record_hash FROM articles WHERE id IN ({marks})"
            )
            for aid, iid, chash, rhash in self._conn().execute(sql, chunk):
                out[aid] = (int(iid), chash, rhash)
        return out

    def rows(self, int_ids: Sequence[int]) -> dict[int, CatalogRow]:
        out: dict[int, CatalogRow] = {}
        for chunk in _chunks([int(i) for i in int_ids], 500):
            marks = ",".join("?" * len(chunk))
            sql = (
                "SELECT int_id, id, title, url, published_at, section FROM articles"
                f" WHERE int_id IN ({marks})"
            )
            for row in self._conn().execute(sql, chunk):
                out[int(row[0])] = CatalogRow(*row)
        return out

    def article(self, article_id: str) -> Article | None:
        sql = (
            "SELECT id, body, title, url, published_at, section, tags, language, metadata"
            " FROM articles WHERE id = ?"
        )
        row = self._conn().execute(sql, (article_id,)).fetchone()
        if row is None:
            return None
        aid, body, title, url, published, section, tags, language, metadata = row
        return Article(
            id=aid,
            body=body,
            title=title,
            url=url,
            published_at=datetime.fromisoformat(published) if published else None,
            section=section,
            tags=tuple(json.loads(tags)),
            language=language,
            metadata=json.loads(metadata),
        )

    def browse(
        self, *, query: str = "", offset: int = 0, limit: int = 20
    ) -> tuple[list[CatalogRow], int]:
        """Articles whose title holds every word of ``query``, newest first; and how many match.

        Undated articles come after dated ones; ties go to the most recently added.
        Matching is SQLite's ``LIKE``: case-insensitive for ASCII letters only.
        """
        clauses: list[str] = []
        params: list[Any] = []
        for word in query.split():
            clauses.append("title LIKE ? ESCAPE '\\'")
            params.append(f"%{_like_escaped(word)}%")
        where = " AND ".join(clauses) or "1"
        conn = self._conn()
        total = int(
            conn.execute(f"SELECT count(*) FROM articles WHERE {where}", params).fetchone()[0]
        )
        sql = (
            "SELECT int_id, id, title, url, published_at, section FROM articles"
            f" WHERE {where} ORDER BY published_ts IS NULL, published_ts DESC, int_id DESC"
            " LIMIT ? OFFSET ?"
        )
        rows = [CatalogRow(*row) for row in conn.execute(sql, [*params, limit, offset])]
        return rows, total

    def sections(self) -> dict[str, int]:
        """Each section (as first written; case-insensitive) and how many articles it has."""
        rows = self._conn().execute(
            "SELECT min(section), count(*) FROM articles WHERE section IS NOT NULL"
            " AND section != '' GROUP BY section ORDER BY section"
        )
        return {str(name): int(n) for name, n in rows}

    def published_ts(self, int_id: int) -> float | None:
        row = (
            self._conn()
            .execute("SELECT published_ts FROM articles WHERE int_id = ?", (int_id,))
            .fetchone()
        )
        return None if row is None or row[0] is None else float(row[0])

    def filter_ids(
        self,
        *,
        sections: Sequence[str] = (),
        languages: Sequence[str] = (),
        since: float | None = None,
        until: float | None = None,
    ) -> np.ndarray:
        """Int ids of the articles passing every given filter (each list is an OR)."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, values in (("section", sections), ("language", languages)):
            if values:
                clauses.append(f"{column} IN ({','.join('?' * len(values))})")
                params.extend(values)
        if since is not None:
            clauses.append("published_ts >= ?")
            params.append(since)
        if until is not None:
            clauses.append("published_ts < ?")
            params.append(until)
        where = " AND ".join(clauses) or "1"
        rows = self._conn().execute(f"SELECT int_id FROM articles WHERE {where}", params)
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def vectors(self, int_ids: Sequence[int], dimension: int) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}
        for chunk in _chunks([int(i) for i in int_ids], 500):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT int_id, vector FROM articles WHERE int_id IN ({marks})"
            for iid, blob in self._conn().execute(sql, chunk):
                out[int(iid)] = np.frombuffer(blob, dtype=np.float32, count=dimension)
        return out

    def texts(self, int_ids: Sequence[int]) -> dict[int, str]:
        """The text the lexical side indexes (title and body) of each id."""
        out: dict[int, str] = {}
        for chunk in _chunks([int(i) for i in int_ids], 500):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT int_id, title, body FROM articles WHERE int_id IN ({marks})"
            for iid, title, body in self._conn().execute(sql, chunk):
                out[int(iid)] = lexical_text(title, body)
        return out

    def stories(self, int_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        """(title, body) of each id, for explanations."""
        out: dict[int, tuple[str, str]] = {}
        for chunk in _chunks([int(i) for i in int_ids], 500):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT int_id, title, body FROM articles WHERE int_id IN ({marks})"
            for iid, title, body in self._conn().execute(sql, chunk):
                out[int(iid)] = (title, body)
        return out

    def iter_texts(self, batch: int = 5_000) -> Iterator[tuple[np.ndarray, list[str]]]:
        cursor = self._conn().execute("SELECT int_id, title, body FROM articles ORDER BY int_id")
        while rows := cursor.fetchmany(batch):
            yield (
                np.array([r[0] for r in rows], dtype=np.int64),
                [lexical_text(r[1], r[2]) for r in rows],
            )

    def numbers(
        self, int_ids: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(int ids, publication times, lead times, pool statistics, case-folded sections)
        of ``int_ids``, or all.

        The lead time is the publication time, or for an undated article the
        date written in its lead (recommender.ingest.dateline); NaN when neither exists.

        The ranking reads them for every candidate; the state keeps them in arrays.
        """
        # Catalogs written before lead dates existed lack the column until their next write.
        lead = "lead_ts" if self._has_lead_dates() else "published_ts"
        sql = f"SELECT int_id, published_ts, {lead}, pool_stats, section FROM articles"
        parts = []
        if int_ids is None:
            # In slices: a million rows as Python tuples would cost ~250 MB at once.
            cursor = self._conn().execute(sql)
            while rows := cursor.fetchmany(20_000):
                parts.append(_number_arrays(rows))
        for chunk in _chunks([int(i) for i in int_ids or ()], 500):
            marks = ",".join("?" * len(chunk))
            rows = self._conn().execute(f"{sql} WHERE int_id IN ({marks})", chunk).fetchall()
            parts.append(_number_arrays(rows))
        if not parts:
            parts.append(_number_arrays([]))
        ids, times, leads, stats, sections = (
            np.concatenate(arrays) for arrays in zip(*parts, strict=True)
        )
        return ids, times, leads, stats, sections

    def _has_lead_dates(self) -> bool:
        columns = self._conn().execute("PRAGMA table_info(articles)").fetchall()
        return any(column[1] == "lead_ts" for column in columns)

    def latest(self, section: str | None, limit: int) -> list[int]:
        """Int ids of the newest dated articles of ``section`` (any section if None).

        Sections compare case-folded, as editorial rules name them ("World" is "world").
        """
        params: list[Any] = []
        where = "published_ts IS NOT NULL"
        if section:
            # Stored as written: find the spellings that fold to it (SQLite's own
            # NOCASE folds ASCII only), from the section index.
            rows = self._conn().execute("SELECT DISTINCT section FROM articles")
            names = [n for (n,) in rows if n and n.casefold() == section.casefold()]
            if not names:
                return []
            where += f" AND section IN ({','.join('?' * len(names))})"
            params += names
        sql = f"SELECT int_id FROM articles WHERE {where} ORDER BY published_ts DESC LIMIT ?"
        return [int(r[0]) for r in self._conn().execute(sql, [*params, limit])]

    def published_times(self) -> dict[int, float]:
        rows = self._conn().execute(
            "SELECT int_id, published_ts FROM articles WHERE published_ts IS NOT NULL"
        )
        return {int(i): float(ts) for i, ts in rows}

    def field_values(self, field: str) -> dict[str, str | None]:
        """Article id -> value of a column or metadata field, as text (for evaluation labels)."""
        columns = {"section", "language", "url", "title"}
        if field in columns:
            sql = f"SELECT id, {field} FROM articles"
            rows = self._conn().execute(sql)
        else:
            sql = "SELECT id, json_extract(metadata, ?) FROM articles"
            rows = self._conn().execute(sql, (f'$."{field}"',))
        return {aid: (None if value is None or value == "" else str(value)) for aid, value in rows}

    def all_ids(self) -> list[tuple[int, str]]:
        return [
            (int(i), a)
            for i, a in self._conn().execute("SELECT int_id, id FROM articles ORDER BY int_id")
        ]

    def pool_stats(self, int_ids: Sequence[int]) -> np.ndarray:
        """Each id's score statistics over its own candidate pool; NaN rows when unknown."""
        out = np.full((len(int_ids), 4), np.nan, dtype=np.float64)
        position = {int(i): n for n, i in enumerate(int_ids)}
        for chunk in _chunks(list(position), 500):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT int_id, pool_stats FROM articles WHERE int_id IN ({marks})"
            for iid, blob in self._conn().execute(sql, chunk):
                if blob is not None:
                    out[position[int(iid)]] = np.frombuffer(blob, dtype=np.float64, count=4)
        return out

    def set_pool_stats(self, int_ids: Sequence[int], stats: np.ndarray) -> None:
        conn = self._conn()
        rows = [(_blob64(row), int(i)) for i, row in zip(int_ids, stats, strict=True)]
        with conn:
            conn.executemany("UPDATE articles SET pool_stats = ? WHERE int_id = ?", rows)

    def iter_vectors(self, batch: int = 10_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All (int ids, vectors) in batches, for rebuilding a store from scratch."""
        cursor = self._conn().execute("SELECT int_id, vector FROM articles ORDER BY int_id")
        while rows := cursor.fetchmany(batch):
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            vecs = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
            yield ids, vecs

    def changed_since(self, seq: int) -> list[int] | None:
        """Int ids touched after ``seq``, or ``None`` if that history was pruned."""
        if seq < self.pruned_through():
            return None
        rows = self._conn().execute("SELECT DISTINCT int_id FROM changes WHERE seq > ?", (seq,))
        return [int(r[0]) for r in rows]

    # -- writes --------------------------------------------------------------

    def write(
        self,
        upserts: Sequence[tuple[Article, np.ndarray | None]],
        removals: Sequence[str] = (),
        *,
        before_commit: Callable[[list[int]], None] | None = None,
    ) -> tuple[int, list[int]]:
        """Apply upserts and removals in one transaction; return (new seq, touched int ids).

        A ``None`` vector keeps the stored one (metadata-only change).
        ``before_commit`` gets the touched int ids (upserts first, in order, then
        removals) inside the transaction: if it raises, nothing is committed.
        """
        conn = self._conn()
        touched: list[int] = []
        now = datetime.now(timezone.utc).isoformat()
        with conn:  # one transaction: all of it lands or none of it does
            if not self._has_lead_dates():
                conn.execute("ALTER TABLE articles ADD COLUMN lead_ts REAL")
            seq = int(conn.execute("SELECT value FROM meta WHERE key='seq'").fetchone()[0]) + 1
            for article, vector in upserts:
                touched.append(self._upsert(conn, article, vector, now))
            for article_id in removals:
                row = conn.execute(
                    "SELECT int_id FROM articles WHERE id = ?", (article_id,)
                ).fetchone()
                if row is not None:
                    conn.execute("DELETE FROM articles WHERE int_id = ?", (row[0],))
                    touched.append(int(row[0]))
            conn.executemany("INSERT INTO changes VALUES (?, ?)", [(seq, i) for i in touched])
            conn.execute("UPDATE meta SET value = ? WHERE key = 'seq'", (str(seq),))
            self._begin_lists_write(conn)
            if before_commit is not None:
                before_commit(touched)
        return seq, touched

    def _upsert(
        self, conn: sqlite3.Connection, article: Article, vector: np.ndarray | None, now: str
    ) -> int:
        values = (*_row_values(article), now)
        existing = conn.execute(
            "SELECT int_id FROM articles WHERE id = ?", (article.id,)
        ).fetchone()
        if existing is None:
            if vector is None:
                raise ValueError(f"new article {article.id!r} needs a vector")
            cursor = conn.execute(
                "INSERT INTO articles (id, title, body, url, published_at, published_ts, lead_ts,"
                " section, language, tags, metadata, content_hash, record_hash, updated_at,"
                " vector) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (*values, _blob(vector)),
            )
            return int(cursor.lastrowid or 0)
        int_id = int(existing[0])
        conn.execute(
            "UPDATE articles SET id=?, title=?, body=?, url=?, published_at=?, published_ts=?,"
            " lead_ts=?, section=?, language=?, tags=?, metadata=?, content_hash=?, record_hash=?,"
            " updated_at=? WHERE int_id=?",
            (*values, int_id),
        )
        if vector is not None:
            # The statistics belong to the old vector: cleared in the same commit, so a
            # writer killed before it computes the new ones leaves them missing, not stale
            # (the next write computes every missing one: missing_pool_stats).
            conn.execute(
                "UPDATE articles SET vector=?, pool_stats=NULL WHERE int_id=?",
                (_blob(vector), int_id),
            )
        return int_id

    def missing_pool_stats(self) -> list[int]:
        """Int ids whose pool statistics are missing (a writer died before computing them)."""
        conn = self._conn()
        with conn:
            # A partial index keeps this cheap at every write: no scan of the vectors.
            conn.execute(
                "CREATE INDEX IF NOT EXISTS articles_no_stats ON articles (int_id)"
                " WHERE pool_stats IS NULL"
            )
        rows = conn.execute("SELECT int_id FROM articles WHERE pool_stats IS NULL")
        return [int(row[0]) for row in rows]

    # -- stored related lists ------------------------------------------------------

    def _lists_conn(self) -> sqlite3.Connection:
        conn = self._conn()
        if not getattr(self._local, "lists_ready", False):
            with conn:
                conn.executescript(_LISTS_SCHEMA)
            self._local.lists_ready = True
        return conn

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

    def prune_changes(self, through: int) -> None:
        """Forget change history up to ``through`` once a snapshot holds it."""
        conn = self._conn()
        with conn:
            conn.execute("DELETE FROM changes WHERE seq <= ?", (through,))
            conn.execute(
                "UPDATE meta SET value = ? WHERE key = 'pruned_through'"
                " AND CAST(value AS INTEGER) < ?",
                (str(through), through),
            )


def lexical_text(title: str, body: str) -> str:
    """What the lexical side reads of an article: all of it, title first."""
    return f"{title}\n{body}" if title else body


def _row_values(article: Article) -> tuple[Any, ...]:
    published = article.published_at
    lead = published or lead_date(article.title, article.body)
    return (
        article.id,
        article.title,
        article.body,
        article.url,
        published.isoformat() if published else None,
        published.timestamp() if published else None,
        lead.timestamp() if lead else None,
        article.section,
        article.language,
        json.dumps(list(article.tags), ensure_ascii=False),
        json.dumps(dict(article.metadata), ensure_ascii=False, default=str),
        article.content_hash,
        article.record_hash,
    )


def _number_arrays(
    rows: Sequence[tuple[int, float | None, float | None, bytes | None, str | None]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    times = np.array([r[1] for r in rows], dtype=np.float64)  # None becomes NaN
    leads = np.array([r[2] for r in rows], dtype=np.float64)
    stats = np.full((len(rows), 4), np.nan, dtype=np.float64)
    for n, row in enumerate(rows):
        if row[3] is not None:
            stats[n] = np.frombuffer(row[3], dtype=np.float64, count=4)
    sections = np.array([(r[4] or "").casefold() for r in rows], dtype=object)
    return ids, times, leads, stats, sections


def _like_escaped(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern (with ESCAPE '\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def _blob64(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype=np.float64).tobytes()


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
