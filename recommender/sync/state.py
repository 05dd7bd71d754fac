"""What sync remembers between runs: ``sync.sqlite3`` in the index directory.

    PageState      per page URL: article id, validators, last status, failure counts
    ListingState   per feed or sitemap: validators and what it listed (reused on a 304)
    SyncState      all rows of the file, read at the start of a run, written at its end in
                   one transaction (a killed run leaves the previous run's state)

The index is written before the state: a run killed in between fetches the same pages
again next time, and the index's content hashes make that upsert a no-op.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from recommender.sync.fetch import Validators
from recommender.sync.sources import Listed, Listing

__all__ = ["STATE_FILE", "ListingState", "PageState", "SyncState"]

STATE_FILE = "sync.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pages (
    url TEXT PRIMARY KEY,
    article_id TEXT,
    etag TEXT,
    last_modified TEXT,
    status INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    failures INTEGER NOT NULL DEFAULT 0,
    gone INTEGER NOT NULL DEFAULT 0,
    indexed INTEGER NOT NULL DEFAULT 0,
    content_hash TEXT,
    fetched_at TEXT
);
CREATE TABLE IF NOT EXISTS listings (
    url TEXT PRIMARY KEY,
    etag TEXT,
    last_modified TEXT,
    fetched_at TEXT,
    pages TEXT NOT NULL,
    sitemaps TEXT NOT NULL
);
"""
_PAGE_COLUMNS = (
    "url, article_id, etag, last_modified, status, reason, failures, gone, indexed, "
    "content_hash, fetched_at"
)


@dataclass(frozen=True)
class PageState:
    """One page URL as the last run left it.

    ``failures``: consecutive runs without a usable answer; ``gone``: consecutive runs that
    answered 404 or 410; ``indexed``: whether its article is in the index by sync's doing.
    """

    url: str
    article_id: str | None = None
    validators: Validators = field(default_factory=Validators)
    status: int = 0
    reason: str | None = None
    failures: int = 0
    gone: int = 0
    indexed: bool = False
    content_hash: str | None = None
    fetched_at: str | None = None


@dataclass(frozen=True)
class ListingState:
    """One feed or sitemap as last fetched: a 304 reuses ``listing``."""

    url: str
    validators: Validators
    listing: Listing
    fetched_at: str


class SyncState:
    """The rows of ``sync.sqlite3``; :meth:`put` marks a row to be written by :meth:`save`."""

    def __init__(self, pages: dict[str, PageState], listings: dict[str, ListingState]) -> None:
        self.pages = pages
        self.listings = listings
        self._dirty_pages: set[str] = set()
        self._dirty_listings: set[str] = set()

    @classmethod
    def load(cls, index_dir: str | os.PathLike[str]) -> SyncState:
        """The state of the index at ``index_dir`` (empty when there is none yet)."""
        path = Path(index_dir) / STATE_FILE
        if not path.is_file():
            return cls({}, {})
        with closing(sqlite3.connect(path)) as db:
            db.executescript(_SCHEMA)
            pages = {row[0]: _page(row) for row in db.execute(f"SELECT {_PAGE_COLUMNS} FROM pages")}
            listings = {
                row[0]: _listing(row)
                for row in db.execute(
                    "SELECT url, etag, last_modified, fetched_at, pages, sitemaps FROM listings"
                )
            }
        return cls(pages, listings)

    def page(self, url: str) -> PageState:
        return self.pages.get(url) or PageState(url)

    def put(self, row: PageState | ListingState) -> None:
        if isinstance(row, PageState):
            self.pages[row.url] = row
            self._dirty_pages.add(row.url)
        else:
            self.listings[row.url] = row
            self._dirty_listings.add(row.url)

    def save(self, index_dir: str | os.PathLike[str]) -> None:
        """Write every row :meth:`put` changed, in one transaction."""
        Path(index_dir).mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(Path(index_dir) / STATE_FILE)) as db:
            db.executescript(_SCHEMA)
            with db:  # one transaction: committed whole or rolled back
                db.executemany(
                    f"INSERT OR REPLACE INTO pages ({_PAGE_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [_page_row(self.pages[url]) for url in sorted(self._dirty_pages)],
                )
                db.executemany(
                    "INSERT OR REPLACE INTO listings VALUES (?, ?, ?, ?, ?, ?)",
                    [_listing_row(self.listings[url]) for url in sorted(self._dirty_listings)],
                )
        self._dirty_pages.clear()
        self._dirty_listings.clear()


def _page(row: tuple[object, ...]) -> PageState:
    url, aid, etag, modified, status, reason, failures, gone, indexed, digest, when = row
    return PageState(
        url=str(url),
        article_id=_text(aid),
        validators=Validators(_text(etag), _text(modified)),
        status=int(str(status)),
        reason=_text(reason),
        failures=int(str(failures)),
        gone=int(str(gone)),
        indexed=bool(indexed),
        content_hash=_text(digest),
        fetched_at=_text(when),
    )


def _page_row(page: PageState) -> tuple[object, ...]:
    return (
        page.url,
        page.article_id,
        page.validators.etag,
        page.validators.last_modified,
        page.status,
        page.reason,
        page.failures,
        page.gone,
        int(page.indexed),
        page.content_hash,
        page.fetched_at,
    )


def _listing(row: tuple[object, ...]) -> ListingState:
    url, etag, modified, when, pages, sitemaps = row
    listed = tuple(Listed(**item) for item in json.loads(str(pages)))
    return ListingState(
        url=str(url),
        validators=Validators(_text(etag), _text(modified)),
        listing=Listing(pages=listed, sitemaps=tuple(json.loads(str(sitemaps)))),
        fetched_at=str(when),
    )


def _listing_row(state: ListingState) -> tuple[object, ...]:
    return (
        state.url,
        state.validators.etag,
        state.validators.last_modified,
        state.fetched_at,
        json.dumps([page.to_dict() for page in state.listing.pages], ensure_ascii=False),
        json.dumps(list(state.listing.sitemaps)),
    )


def _text(value: object) -> str | None:
    return None if value is None else str(value)
