"""Keeping an index current from the site itself: ``recommender sync``.

    sources    feeds (RSS, Atom), sitemaps (index, urlset, Google News), files of URLs
    fetch      the HTTP client: conditional GETs, retries, per-host delay, robots.txt
    state      sync.sqlite3 in the index directory: validators and counts per URL
    run        sync_index: one run (listings -> fetches -> extraction -> upsert/remove)
    schedule   --every: durations, the stop flag SIGTERM/SIGINT set, the loop

The names below are imported from their modules on first use (recommender.lazy), so
importing the package loads neither httpx nor lxml.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recommender.lazy import lazy_exports

if TYPE_CHECKING:
    from recommender.sync.run import Problem, SyncReport, article_id_for, sync_index
    from recommender.sync.schedule import parse_duration, run_every, stop_on_signals

__all__ = [
    "Problem",
    "SyncReport",
    "article_id_for",
    "parse_duration",
    "run_every",
    "stop_on_signals",
    "sync_index",
]

_HOME = {
    "Problem": "recommender.sync.run",
    "SyncReport": "recommender.sync.run",
    "article_id_for": "recommender.sync.run",
    "parse_duration": "recommender.sync.schedule",
    "run_every": "recommender.sync.schedule",
    "stop_on_signals": "recommender.sync.schedule",
    "sync_index": "recommender.sync.run",
}

__getattr__ = lazy_exports(__name__, _HOME)
