"""The sync command: keep an index current from the site's feeds, sitemaps or URL lists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from recommender.cli._app import index_option, main, progress_enabled

if TYPE_CHECKING:
    from recommender.sync.run import SyncReport


@main.command()
@click.argument("sources", nargs=-1, required=True)
@index_option
@click.option(
    "--model",
    help="Model for a new index [default: all-MiniLM-L6-v2, packaged]; with an existing "
    "index, fail unless it was built with this model.",
)
@click.option(
    "--timeout", type=float, default=10.0, show_default=True, help="Seconds to connect or read."
)
@click.option(
    "--delay",
    type=float,
    default=1.0,
    show_default=True,
    help="Least seconds between two requests to one host (a robots.txt Crawl-delay can raise it).",
)
@click.option(
    "--retries",
    type=int,
    default=2,
    show_default=True,
    help="Retries after a connection error, 429 or 5xx (backoff 0.5 s, doubled each time).",
)
@click.option(
    "--remove-after",
    type=int,
    default=2,
    show_default=True,
    help="Remove a page from the index once it answered 404/410 on this many runs in a row.",
)
@click.option(
    "--every",
    metavar="DURATION",
    help="Keep running: sync again every DURATION (30s, 15m, 1h, 1h30m) until SIGTERM or "
    "SIGINT, which end the process after the run in progress.",
)
@click.option("--json", "as_json", is_flag=True, help="Print each run's summary as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def sync(
    sources: tuple[str, ...],
    index: Path,
    model: str | None,
    timeout: float,
    delay: float,
    retries: int,
    remove_after: int,
    every: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Fetch the pages that feeds, sitemaps or files of URLs list; index what changed.

    SOURCE: an RSS/Atom feed URL, a sitemap URL (index, urlset, Google News) or a file of
    URLs (one a line, # comments). Requests are conditional (ETag, Last-Modified), obey
    robots.txt and wait --delay between requests to one host; the index is created when
    absent. State is kept in DIR/sync.sqlite3.
    """
    from recommender.sync.run import sync_index
    from recommender.sync.schedule import parse_duration, run_every, stop_on_signals

    interval = parse_duration(every) if every is not None else None

    def once() -> None:
        report = sync_index(
            sources,
            index,
            model=model,
            timeout=timeout,
            delay=delay,
            retries=retries,
            remove_after=remove_after,
            progress=progress_enabled(quiet),
        )
        _print_report(report, index, as_json)

    if interval is None:
        once()
        return
    with stop_on_signals() as stop:
        run_every(once, interval, stop, on_error=_warn)


def _warn(exc: Exception) -> None:
    click.echo(f"warning: {exc}; trying again at the next run", err=True)


def _print_report(report: SyncReport, index: Path, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    click.echo(f"synced {index}: {report.summary()}")
