"""One sync run: listings -> page URLs -> conditional fetches -> extraction -> the index.

    sync_index(sources, index)   the run; returns a SyncReport
    SyncReport                   fetched, unchanged, added, updated, removed, failed, skipped
    article_id_for(url)          the article id of a page: a hash of its canonical URL

A page's article id is the first 16 hex digits of the SHA-256 of its canonical URL
(``urls.canonical_url`` of the page's ``<link rel="canonical">``, else of the fetched URL):
stable across runs and across spellings of one URL, and safe in any path or query string.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from recommender.errors import IndexNotFoundError, InputError, InvalidArgumentError
from recommender.ingest.pages import MAX_PAGE_BYTES, extract_page
from recommender.ranking.batches import progress_bar
from recommender.sync.fetch import Fetched, Fetcher, Validators, origin
from recommender.sync.sources import (
    MAX_LISTING_BYTES,
    Listed,
    Listing,
    check_source,
    is_remote,
    page_url,
    parse_listing,
    read_url_file,
)
from recommender.sync.state import ListingState, PageState, SyncState
from recommender.urls import canonical_url

if TYPE_CHECKING:
    import httpx

    from recommender.embedding.encoders import Encoder
    from recommender.types import UpdateReport

__all__ = ["Problem", "SyncReport", "article_id_for", "sync_index"]

#: How deep a sitemap index may nest (index -> index -> urlset); deeper ones are not read.
MAX_SITEMAP_DEPTH = 3


@dataclass(frozen=True)
class Problem:
    """A URL sync could not use, and why."""

    url: str
    reason: str

    def __str__(self) -> str:
        return f"{self.url}: {self.reason}"


@dataclass(frozen=True)
class SyncReport:
    """What one run did. ``failed``: no usable answer (timeouts, 5xx, 404...); ``skipped``:
    pages not fetched (robots.txt) or not indexable (no story text)."""

    sources: int = 0
    listed: int = 0
    fetched: int = 0
    unchanged: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    failed: tuple[Problem, ...] = ()
    skipped: tuple[Problem, ...] = ()
    total: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failed"] = len(self.failed)
        data["skipped"] = len(self.skipped)
        data["failures"] = [asdict(p) for p in self.failed]
        data["skips"] = [asdict(p) for p in self.skipped]
        return data

    def summary(self) -> str:
        """One line: the counts, then each failure with its reason."""
        line = (
            f"fetched {self.fetched}, unchanged {self.unchanged}, added {self.added}, "
            f"updated {self.updated}, removed {self.removed}, skipped {len(self.skipped)}, "
            f"failed: {len(self.failed)}"
        )
        if self.failed:
            line += " (" + "; ".join(str(p) for p in self.failed) + ")"
        return f"{line}; {self.total} articles"


def article_id_for(url: str) -> str:
    """The article id sync gives the page at ``url``."""
    canonical = canonical_url(url) or url
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def sync_index(
    sources: Sequence[str],
    index: str | os.PathLike[str],
    *,
    encoder: Encoder | None = None,
    model: str | None = None,
    timeout: float = 10.0,
    delay: float = 1.0,
    retries: int = 2,
    backoff: float = 0.5,
    remove_after: int = 2,
    progress: bool = False,
    transport: httpx.BaseTransport | None = None,
) -> SyncReport:
    """Fetch what the ``sources`` list and bring the index at ``index`` up to date.

    ``sources``: feed or sitemap URLs, or files of URLs. The index is built (with
    ``encoder``/``model``) when absent. Pages answering 404/410 on ``remove_after``
    consecutive runs are removed. ``transport`` replaces the network (tests).
    """
    _check_options(sources, timeout, delay, retries, backoff, remove_after)
    state = SyncState.load(index)
    fetcher = Fetcher(
        timeout=timeout, delay=delay, retries=retries, backoff=backoff, transport=transport
    )
    with fetcher:
        run = _Run(fetcher, state, remove_after=remove_after)
        pages = run.collect(sources)
        run.visit_all(pages, progress=progress)
    written = _write_index(index, run, encoder=encoder, model=model, progress=progress)
    state.save(index)
    return run.report(len(sources), len(pages), written)


def _check_options(
    sources: Sequence[str],
    timeout: float,
    delay: float,
    retries: int,
    backoff: float,
    remove_after: int,
) -> None:
    if not sources:
        raise InvalidArgumentError("give at least one source", field="source")
    for source in sources:
        check_source(source)
    if timeout <= 0:
        raise InvalidArgumentError(f"timeout must be above 0, got {timeout}", field="timeout")
    if delay < 0 or backoff < 0:
        raise InvalidArgumentError("delay and backoff must be 0 or more", field="delay")
    if retries < 0:
        raise InvalidArgumentError(f"retries must be 0 or more, got {retries}", field="retries")
    if remove_after < 1:
        raise InvalidArgumentError(
            f"remove_after must be 1 or more, got {remove_after}", field="remove_after"
        )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class _Run:
    """The fetch side of one run: what to write to the index and what to report."""

    def __init__(self, fetcher: Fetcher, state: SyncState, *, remove_after: int) -> None:
        self.fetcher = fetcher
        self.state = state
        self.remove_after = remove_after
        self.records: dict[str, dict[str, Any]] = {}
        self.record_urls: dict[str, str] = {}
        self.removals: dict[str, str] = {}  # article id -> page URL
        self.fetched = 0
        self.unchanged = 0
        self.failed: list[Problem] = []
        self.skipped: list[Problem] = []

    # -- listings ------------------------------------------------------------------

    def collect(self, sources: Iterable[str]) -> list[Listed]:
        """Every page the sources list, once per canonical URL (first spelling, merged)."""
        found: dict[str, Listed] = {}
        for source in sources:
            listed = self._listed(source) if is_remote(source) else read_url_file(source)
            for item in listed:
                key = canonical_url(item.url) or item.url
                seen = found.get(key)
                found[key] = item if seen is None else _merged(seen, item)
        return list(found.values())

    def _listed(self, url: str, depth: int = 0) -> list[Listed]:
        listing = self._listing(url)
        pages = list(listing.pages)
        for child in listing.sitemaps:
            if depth + 1 >= MAX_SITEMAP_DEPTH:
                self.failed.append(Problem(child, f"sitemaps nested over {MAX_SITEMAP_DEPTH}"))
                continue
            pages.extend(self._listed(child, depth + 1))
        return pages

    def _listing(self, url: str) -> Listing:
        known = self.state.listings.get(url)
        if not self.fetcher.allowed(url):
            self._refused(url)
            return Listing()
        answer = self.fetcher.get(url, known.validators if known else None, limit=MAX_LISTING_BYTES)
        if answer.not_modified and known is not None:
            return known.listing
        if not answer.ok:
            self.failed.append(Problem(url, answer.problem or f"HTTP {answer.status}"))
            return known.listing if known is not None else Listing()
        try:
            listing = parse_listing(answer.content, answer.url)
        except InvalidArgumentError as exc:
            self.failed.append(Problem(url, str(exc)))
            return Listing()
        self.state.put(ListingState(url, answer.validators, listing, _now()))
        return listing

    def _refused(self, url: str) -> None:
        host_problem = self.fetcher.robots_problems.get(origin(url))
        if host_problem is not None:
            self.failed.append(Problem(url, host_problem))
        else:
            self.skipped.append(Problem(url, "disallowed by robots.txt"))

    # -- pages ---------------------------------------------------------------------

    def visit_all(self, pages: Sequence[Listed], *, progress: bool) -> None:
        with progress_bar(progress, len(pages), "sync") as bar:
            for listed in pages:
                self._visit(listed)
                bar.update(1)

    def _visit(self, listed: Listed) -> None:
        row = self.state.page(listed.url)
        if not self.fetcher.allowed(listed.url):
            self._refused(listed.url)
            return
        answer = self.fetcher.get(listed.url, row.validators, limit=MAX_PAGE_BYTES)
        fresh = replace(row, status=answer.status, fetched_at=_now())
        if answer.not_modified:
            self.unchanged += 1
            self.state.put(replace(fresh, reason=None, failures=0, gone=0))
        elif answer.gone:
            self._gone(fresh, answer)
        elif not answer.ok:
            reason = answer.problem or f"HTTP {answer.status}"
            self.failed.append(Problem(listed.url, reason))
            self.state.put(replace(fresh, reason=reason, failures=row.failures + 1, gone=0))
        else:
            self.fetched += 1
            self._extracted(fresh, listed, answer)

    def _gone(self, row: PageState, answer: Fetched) -> None:
        # Validators go: a page that comes back must be fetched whole and added again.
        gone = row.gone + 1
        reason = f"HTTP {answer.status}"
        row = replace(row, validators=Validators(), content_hash=None, gone=gone)
        row = replace(row, reason=reason, failures=row.failures + 1)
        if row.indexed and row.article_id is not None and gone >= self.remove_after:
            self.removals[row.article_id] = row.url
            row = replace(row, indexed=False)
        elif row.indexed:
            reason += f" ({gone} of {self.remove_after} runs before removal)"
            self.failed.append(Problem(row.url, reason))
        else:
            self.failed.append(Problem(row.url, reason))
        self.state.put(row)

    def _extracted(self, row: PageState, listed: Listed, answer: Fetched) -> None:
        try:
            page = extract_page(answer.content, "html")
        except InputError as exc:
            self._unusable(row, answer, str(exc))
            return
        problem = page.problem()
        if problem is not None:
            self._unusable(row, answer, problem)
            return
        url = page_url(page.url, answer.url) if page.url else None
        url = url or answer.url
        aid = article_id_for(url)
        record = {**page.to_record(aid), "url": url}
        record.setdefault("title", listed.title)
        if listed.published_at:
            record.setdefault("published_at", listed.published_at)
        record = {key: value for key, value in record.items() if value is not None}
        digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()
        row = replace(row, validators=answer.validators, reason=None, failures=0, gone=0)
        if digest == row.content_hash and row.indexed and row.article_id == aid:
            self.unchanged += 1
            self.state.put(row)
            return
        if row.indexed and row.article_id not in (None, aid):
            self.removals[str(row.article_id)] = row.url  # its canonical URL changed
        self.records[aid] = record
        self.record_urls[aid] = row.url
        self.state.put(replace(row, article_id=aid, content_hash=digest, indexed=True))

    def _unusable(self, row: PageState, answer: Fetched, reason: str) -> None:
        self.skipped.append(Problem(row.url, reason))
        # The validators stay: the same page is not fetched and extracted again next run.
        self.state.put(replace(row, validators=answer.validators, reason=reason, failures=0))

    def rejected(self, article_id: str | None, reason: str) -> None:
        """An upsert refused this record: report it, and fetch the page whole next run."""
        url = self.record_urls.get(article_id or "")
        if url is None:
            return
        self.skipped.append(Problem(url, reason))
        row = self.state.page(url)
        self.state.put(replace(row, indexed=False, content_hash=None, reason=reason))

    def report(self, sources: int, listed: int, written: _Written) -> SyncReport:
        return SyncReport(
            sources=sources,
            listed=listed,
            fetched=self.fetched,
            unchanged=self.unchanged + written.unchanged,
            added=written.added,
            updated=written.updated,
            removed=written.removed,
            failed=tuple(self.failed),
            skipped=tuple(self.skipped),
            total=written.total,
        )


def _merged(first: Listed, other: Listed) -> Listed:
    return Listed(first.url, first.published_at or other.published_at, first.title or other.title)


# -- the index ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Written:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    total: int = 0


def _write_index(
    index: str | os.PathLike[str],
    run: _Run,
    *,
    encoder: Encoder | None,
    model: str | None,
    progress: bool,
) -> _Written:
    from recommender.recommender import Recommender

    records = list(run.records.values())
    try:
        rec = Recommender.open(index, encoder=encoder, model=model)
    except IndexNotFoundError:
        if not records:
            return _Written()
        built = Recommender.build(
            records, index, encoder=encoder, model=model, progress=progress, total=len(records)
        )
        with built as rec:
            return _written(run, rec.report, None, len(rec))
    with rec:
        upserted = rec.upsert(records, progress=progress) if records else None
        removed = rec.remove(list(run.removals)) if run.removals else None
        return _written(run, upserted, removed, len(rec))


def _written(
    run: _Run, upserted: UpdateReport | None, removed: UpdateReport | None, total: int
) -> _Written:
    for rejection in upserted.rejected if upserted is not None else ():
        run.rejected(rejection.id, rejection.reason)
    if upserted is None:
        return _Written(removed=removed.removed if removed else 0, total=total)
    return _Written(
        added=upserted.added,
        updated=upserted.reembedded + upserted.metadata_updated,
        unchanged=upserted.unchanged,
        removed=removed.removed if removed else 0,
        total=total,
    )
