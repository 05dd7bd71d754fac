"""SQLite catalog: article records, the stable int64 id map, content hashes and vectors.

The catalog is the source of truth. Every write is one SQLite transaction that
also bumps a sequence number and logs the touched int ids in ``changes``; the
FAISS file is a snapshot tagged with the sequence it contains, so a reader
that finds a newer sequence replays the logged ids instead of trusting a
stale file. ``AUTOINCREMENT`` guarantees a removed article's int id is never
handed to another article.

The catalog's parts live in modules next to this one: ``catalog_base`` (the
per-thread connections), ``catalog_numbers`` (times, sections and pool
statistics read in bulk) and ``catalog_lists`` (stored related lists and the
lexical pin); :class:`Catalog` joins them, and this module keeps the articles,
the id map and the change log.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from recommender.index.catalog_base import _chunks
from recommender.index.catalog_lists import (
    LISTS_WRITE_UNFINISHED,
    CatalogLists,
    ListRow,
    StoredLists,
)
from recommender.index.catalog_numbers import CatalogNumbers
from recommender.index.catalog_stories import CatalogStories
from recommender.ingest.dates import lead_date, written_year
from recommender.types import Article

__all__ = [
    "LISTS_WRITE_UNFINISHED",
    "Catalog",
    "CatalogRow",
    "ListRow",
    "StoredHash",
    "StoredLists",
    "lexical_text",
]

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
    written_year INTEGER,
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


class Catalog(CatalogNumbers, CatalogLists, CatalogStories):
    """One ``catalog.sqlite3``: articles, ids, vectors, numbers, stored lists and stories.

    Thread-safe: a connection per thread, WAL mode (:class:`CatalogBase`).
    """

    @classmethod
    def create(cls, path: Path) -> Catalog:
        catalog = cls(path)
        with catalog._conn() as conn:
            conn.executescript(_SCHEMA)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('seq', '0'), ('pruned_through', '0')")
        return catalog

    # -- reads ---------------------------------------------------------------

    def seq(self) -> int:
        return int(self._meta("seq"))

    def data_version(self) -> int:
        """Changes whenever another connection commits (SQLite ``PRAGMA data_version``)."""
        return int(self._conn().execute("PRAGMA data_version").fetchone()[0])

    def pruned_through(self) -> int:
        return int(self._meta("pruned_through"))

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

    def external_ids(self, int_ids: Iterable[int]) -> dict[int, str]:
        """Int id -> article id, for those of ``int_ids`` that are stored."""
        sql = "SELECT int_id, id FROM articles WHERE int_id IN ({marks})"
        return {int(i): str(a) for i, a in self._select_in(self._conn(), sql, int_ids)}

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
        conn = self._stories_conn()  # its tables exist before the transaction starts
        touched: list[int] = []
        embedded: list[int] = []
        moved: list[int] = []  # metadata only, its date moved: placed again in the stories
        now = datetime.now(timezone.utc).isoformat()
        with conn:  # one transaction: all of it lands or none of it does
            if not self._has_lead_dates():
                conn.execute("ALTER TABLE articles ADD COLUMN lead_ts REAL")
            if not self._has_written_years():
                _add_written_years(conn)
            seq = int(conn.execute("SELECT value FROM meta WHERE key='seq'").fetchone()[0]) + 1
            for article, vector in upserts:
                int_id, redated = self._upsert(conn, article, vector, now)
                touched.append(int_id)
                if vector is not None:
                    embedded.append(int_id)
                elif redated:
                    moved.append(int_id)
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
            self._forget_stories(conn, embedded, touched[len(upserts) :], moved)
            if before_commit is not None:
                before_commit(touched)
        return seq, touched

    def _upsert(
        self, conn: sqlite3.Connection, article: Article, vector: np.ndarray | None, now: str
    ) -> tuple[int, bool]:
        """Insert or update one article; its int id, and whether its date moved."""
        values = (*_row_values(article), now)
        existing = conn.execute(
            "SELECT int_id, published_ts, lead_ts FROM articles WHERE id = ?", (article.id,)
        ).fetchone()
        if existing is None:
            if vector is None:
                raise ValueError(f"new article {article.id!r} needs a vector")
            cursor = conn.execute(
                "INSERT INTO articles (id, title, body, url, published_at, published_ts, lead_ts,"
                " section, language, tags, metadata, content_hash, record_hash, written_year,"
                " updated_at, vector) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (*values, _blob(vector)),
            )
            return int(cursor.lastrowid or 0), False
        int_id = int(existing[0])
        conn.execute(
            "UPDATE articles SET id=?, title=?, body=?, url=?, published_at=?, published_ts=?,"
            " lead_ts=?, section=?, language=?, tags=?, metadata=?, content_hash=?, record_hash=?,"
            " written_year=?, updated_at=? WHERE int_id=?",
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
        return int_id, tuple(existing[1:]) != (values[5], values[6])

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
        written_year(article.title, article.body),
    )


def _add_written_years(conn: sqlite3.Connection) -> None:
    """Add the written-year column to a catalog written before it existed, filled for every
    stored article in the same transaction (the ranking reads it for undated stories)."""
    conn.execute("ALTER TABLE articles ADD COLUMN written_year INTEGER")
    conn.create_function("recommender_written_year", 2, written_year, deterministic=True)
    conn.execute("UPDATE articles SET written_year = recommender_written_year(title, body)")


def _like_escaped(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern (with ESCAPE '\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()
