"""Click feedback: an append-only log of impressions and clicks, and click-through reports.

The log is ``events.sqlite3`` at the root of an index directory (it outlives
rebuilds, like the rules): one row per event, never updated or deleted. SQLite
in WAL mode lets the service's workers and the CLI append and read at once.

An event says that the related item ``related_id`` was shown (``impression``)
or clicked (``click``) at ``position`` (1 = first) of ``article_id``'s list,
optionally under an A/B ``bucket`` (the ranking configuration that made it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from recommender.errors import InvalidArgumentError
from recommender.index.layout import EVENTS
from recommender.text import checked_text

__all__ = ["EVENT_TYPES", "MAX_EVENTS", "Event", "EventLog", "ReportRow", "ShownCell"]

EVENT_TYPES = ("impression", "click")
#: Events accepted in one call (a page view's impressions fit many times over).
MAX_EVENTS = 1_000
#: SQLite's largest integer: a larger position could not be stored.
MAX_POSITION = 2**63 - 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    type TEXT NOT NULL,
    article_id TEXT NOT NULL,
    related_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    bucket TEXT
);
"""


@dataclass(frozen=True)
class Event:
    """One impression or click of a related item."""

    type: str
    article_id: str
    related_id: str
    position: int
    bucket: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "event") -> Event:
        """Validate one event record; errors name the field and the valid values."""
        if not isinstance(data, Mapping):
            raise InvalidArgumentError(
                f"{where}: expected a JSON object, got {type(data).__name__}"
            )
        unknown = sorted(set(data) - {"type", "article_id", "related_id", "position", "bucket"})
        if unknown:
            raise InvalidArgumentError(
                f"{where}.{unknown[0]}: unknown field; expected type, article_id, related_id, "
                "position, bucket"
            )
        kind = data.get("type")
        if kind not in EVENT_TYPES:
            raise InvalidArgumentError(
                f"{where}.type: expected one of {list(EVENT_TYPES)}, got {kind!r}"
            )
        ids = {}
        for name in ("article_id", "related_id"):
            value = data.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str) or not value.strip():
                raise InvalidArgumentError(f"{where}.{name}: expected an article id, got {value!r}")
            ids[name] = checked_text(value, field=f"{where}.{name}")
        position = data.get("position")
        if (
            isinstance(position, bool)
            or not isinstance(position, int)
            or not 1 <= position <= MAX_POSITION
        ):
            raise InvalidArgumentError(
                f"{where}.position: expected an integer >= 1 (1 is the first item) and "
                f"<= {MAX_POSITION}, got {position!r}"
            )
        bucket = data.get("bucket")
        if bucket is not None and (not isinstance(bucket, str) or not bucket.strip()):
            raise InvalidArgumentError(f"{where}.bucket: expected a bucket name, got {bucket!r}")
        if bucket is not None:
            checked_text(bucket, field=f"{where}.bucket")
        return cls(kind, ids["article_id"], ids["related_id"], position, bucket)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReportRow:
    """Click-through of one (bucket, position) cell; ``position`` None is the bucket's total."""

    bucket: str | None
    position: int | None
    impressions: int
    clicks: int

    @property
    def ctr(self) -> float | None:
        return self.clicks / self.impressions if self.impressions else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ctr": self.ctr}


@dataclass(frozen=True)
class ShownCell:
    """How often ``related_id`` was shown and clicked at ``position`` of ``article_id``'s list
    (every bucket together; a click without its impression counts as one)."""

    article_id: str
    related_id: str
    position: int
    impressions: int
    clicks: int


class EventLog:
    """The append-only event log of one index directory."""

    def __init__(self, root: str | Path) -> None:
        self.path = Path(root) / EVENTS

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(_SCHEMA)
        return conn

    def record(self, events: Iterable[Event | Mapping[str, Any]]) -> int:
        """Validate every event, then append them all in one transaction; return the count."""
        batch = [
            e if isinstance(e, Event) else Event.from_dict(e, where=f"events[{n}]")
            for n, e in enumerate(events)
        ]
        if len(batch) > MAX_EVENTS:
            raise InvalidArgumentError(
                f"events: {len(batch)} in one call; send at most {MAX_EVENTS} at a time"
            )
        if not batch:
            return 0
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        conn = self._connect()
        try:
            with conn:
                conn.executemany(
                    "INSERT INTO events (at, type, article_id, related_id, position, bucket)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (now, e.type, e.article_id, e.related_id, e.position, e.bucket)
                        for e in batch
                    ],
                )
        finally:
            conn.close()
        return len(batch)

    def shown(self, *, since: str | None = None) -> list[ShownCell]:
        """Impressions and clicks per (article, related item, position), in that order."""
        rows = self._counts(("article_id", "related_id", "position"), since)
        return [ShownCell(a, r, int(p), max(int(i), int(c)), int(c)) for a, r, p, i, c in rows]

    def report(self, *, since: str | None = None) -> list[ReportRow]:
        """Impressions, clicks and CTR by bucket and position, then each bucket's total."""
        rows = self._counts(("bucket", "position"), since)
        cells = [ReportRow(b, int(p), int(i), int(c)) for b, p, i, c in rows]
        totals: dict[str | None, list[int]] = {}
        for cell in cells:
            total = totals.setdefault(cell.bucket, [0, 0])
            total[0] += cell.impressions
            total[1] += cell.clicks
        out: list[ReportRow] = []
        for bucket, (impressions, clicks) in totals.items():
            out.extend(c for c in cells if c.bucket == bucket)
            out.append(ReportRow(bucket, None, impressions, clicks))
        return out

    def _counts(self, columns: tuple[str, ...], since: str | None) -> list[tuple[Any, ...]]:
        """Impressions and clicks per value of ``columns`` (ordered by them), from ``since``."""
        if not self.path.exists():
            return []
        where, params = ("WHERE at >= ?", [since]) if since else ("", [])
        keys = ", ".join(columns)
        sql = (
            f"SELECT {keys}, sum(type = 'impression'), sum(type = 'click') FROM events {where}"
            f" GROUP BY {keys} ORDER BY {keys}"
        )
        conn = self._connect()
        try:
            return list(conn.execute(sql, params))
        finally:
            conn.close()
