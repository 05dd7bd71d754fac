"""recommender sync against a small news site served on loopback by the test itself."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from recommender.embedding.encoders import HashingEncoder
from recommender.errors import InvalidArgumentError
from recommender.recommender import Recommender
from recommender.sync.run import SyncReport, article_id_for, sync_index
from recommender.sync.schedule import parse_duration, run_every, stop_on_signals
from recommender.sync.sources import Listing, parse_listing, parse_url_lines

STORIES = {
    "one": "harbor dockworkers strike valdora port cranes container shipping union wages",
    "two": "earthquake magnitude tremor rubble rescue teams aftershock epicentre province",
    "three": "council budget vote mayor taxes library funding deficit ordinance",
    "four": "football striker scored twice league derby stadium supporters coach",
    "five": "recipe lemon cake flour sugar oven bake butter eggs vanilla",
    "changing": "election ballots turnout polling stations candidates debate campaign",
    "new": "wildfire evacuation firefighters drought smoke hillside containment",
    "secret": "private draft embargoed unpublished internal memo notes",
}


def _html(slug: str, words: str, *, dated: bool = True) -> str:
    sentences = "".join(
        f"<p>{words} sentence {n} about the {slug} story, with more detail here.</p>"
        for n in range(4)
    )
    date = '<meta property="article:published_time" content="2026-03-10T09:00:00Z">'
    return (
        f'<!doctype html><html lang="en"><head><title>Story {slug}</title>'
        f'<link rel="canonical" href="/a/{slug}?utm_source=feed">{date if dated else ""}</head>'
        f"<body><nav>Home News Sport</nav><article><h1>Story {slug}</h1>{sentences}"
        "</article><footer>(c) Example News</footer></body></html>"
    )


@dataclass
class Site:
    """What the test server serves; tests change it between runs."""

    root: str = ""
    pages: dict[str, str] = field(default_factory=dict)
    feed: list[str] = field(default_factory=lambda: ["/a/one", "/a/two"])
    gone: set[str] = field(default_factory=set)
    #: (path, conditional?) of every request, in order.
    requests: list[tuple[str, bool]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.root + path

    def documents(self) -> dict[str, tuple[str, str]]:
        docs = {path: ("text/html", html) for path, html in self.pages.items()}
        docs["/robots.txt"] = ("text/plain", "User-agent: *\nDisallow: /private/\n")
        docs["/feed.rss"] = ("application/rss+xml", self._rss())
        docs["/feed.atom"] = ("application/atom+xml", self._atom())
        docs["/sitemap.xml"] = ("application/xml", self._sitemap_index())
        docs["/sitemap-news.xml"] = ("application/xml", self._news_sitemap())
        docs["/sitemap-pages.xml"] = ("application/xml", self._pages_sitemap())
        return docs

    def _rss(self) -> str:
        items = "".join(
            f"<item><title>Feed {p}</title><link>{self.url(p)}</link>"
            "<pubDate>Tue, 10 Mar 2026 09:00:00 GMT</pubDate></item>"
            for p in self.feed
        )
        channel = f"<channel><title>N</title>{items}</channel>"
        return f'<?xml version="1.0"?><rss version="2.0">{channel}</rss>'

    def _atom(self) -> str:
        return (
            '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>N</title>'
            f'<entry><title>Three</title><link href="{self.url("/a/three")}"/>'
            "<updated>2026-03-11T08:00:00Z</updated></entry></feed>"
        )

    def _sitemap_index(self) -> str:
        maps = "".join(
            f"<sitemap><loc>{self.url(p)}</loc></sitemap>"
            for p in ("/sitemap-news.xml", "/sitemap-pages.xml")
        )
        return f'<sitemapindex xmlns="{_SM}">{maps}</sitemapindex>'

    def _news_sitemap(self) -> str:
        urls = "".join(
            f"<url><loc>{self.url(p)}</loc><news:news><news:publication_date>"
            f"2026-03-12T07:30:00+01:00</news:publication_date><news:title>News {p}"
            "</news:title></news:news></url>"
            for p in ("/a/four", "/a/changing")
        )
        return f'<urlset xmlns="{_SM}" xmlns:news="{_NEWS}">{urls}</urlset>'

    def _pages_sitemap(self) -> str:
        urls = "".join(
            f"<url><loc>{self.url(p)}</loc><lastmod>2026-03-01</lastmod></url>"
            for p in ("/private/secret", "/a/missing", "/a/five")
        )
        return f'<urlset xmlns="{_SM}">{urls}</urlset>'


_SM = "http://www.sitemaps.org/schemas/sitemap/0.9"
_NEWS = "http://www.google.com/schemas/sitemap-news/0.9"


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path
            site.requests.append((path, "If-None-Match" in self.headers))
            if path == "/slow":
                time.sleep(1.5)
            if path == "/broken":
                return self._send(500, "text/plain", "oops")
            doc = site.documents().get(path)
            if doc is None or path in site.gone:
                return self._send(404, "text/plain", "not found")
            etag = '"' + hashlib.sha1(doc[1].encode()).hexdigest()[:12] + '"'
            if self.headers.get("If-None-Match") == etag:
                return self._send(304, None, "", etag)
            self._send(200, doc[0], doc[1], etag)

        def _send(self, status: int, kind: str | None, body: str, etag: str = "") -> None:
            data = body.encode()
            self.send_response(status)
            if kind:
                self.send_header("Content-Type", f"{kind}; charset=utf-8")
            if etag:
                self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(autouse=True)
def _loopback_only(loopback_only: None) -> None:
    """The test talks to its own server on 127.0.0.1, nothing else."""


@pytest.fixture
def site() -> Iterator[Site]:
    state = Site(pages={f"/a/{slug}": _html(slug, words) for slug, words in STORIES.items()})
    state.pages["/private/secret"] = state.pages.pop("/a/secret")
    state.pages["/a/four"] = _html("four", STORIES["four"], dated=False)
    del state.pages["/a/new"]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    server.block_on_close = False
    state.root = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def _sync(site: Site, index: Path, *sources: str, **options: Any) -> SyncReport:
    options = {"delay": 0.0, "backoff": 0.0, "timeout": 5.0, **options}
    urls = sources or ("/feed.rss", "/feed.atom", "/sitemap.xml")
    wanted = [site.url(s) if s.startswith("/") and not Path(s).exists() else s for s in urls]
    return sync_index(wanted, index, encoder=HashingEncoder(256), **options)


def _ids(index: Path) -> set[str]:
    with Recommender.open(index, encoder=HashingEncoder(256)) as rec:
        return set(rec.field_values("url"))


def _id(site: Site, slug: str) -> str:
    return article_id_for(site.url(f"/a/{slug}"))


ALLOWED = ("one", "two", "three", "four", "five", "changing")


# -- 1. the first run ------------------------------------------------------------------


def test_sync_indexes_exactly_the_allowed_pages(site: Site, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    report = _sync(site, index)

    assert _ids(index) == {_id(site, slug) for slug in ALLOWED}
    assert (report.added, report.updated, report.removed, report.fetched) == (6, 0, 0, 6)
    assert [(p.url, p.reason) for p in report.failed] == [(site.url("/a/missing"), "HTTP 404")]
    assert [(p.url, p.reason) for p in report.skipped] == [
        (site.url("/private/secret"), "disallowed by robots.txt")
    ]
    paths = [path for path, _ in site.requests]
    assert "/private/secret" not in paths
    assert paths.count("/robots.txt") == 1
    assert (index / "sync.sqlite3").is_file()
    with Recommender.open(index, encoder=HashingEncoder(256)) as rec:
        one = rec.get(_id(site, "one"))
        # The page's canonical link, resolved against its address; the id ignores utm_*.
        assert one.url == site.url("/a/one?utm_source=feed")
        assert one.title == "Story one"
        # No date in the page: the Google News sitemap's publication date fills it.
        four = rec.get(_id(site, "four"))
        assert four.published_at is not None
        assert four.published_at == datetime(2026, 3, 12, 6, 30, tzinfo=timezone.utc)
        assert rec.article_at(site.url("/a/two")) == _id(site, "two")


# -- 2. a second run: conditional requests, no change ------------------------------------


def test_second_run_is_conditional_and_changes_nothing(site: Site, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    _sync(site, index)
    site.requests.clear()

    report = _sync(site, index)

    assert (report.added, report.updated, report.removed, report.fetched) == (0, 0, 0, 0)
    assert report.unchanged == 6
    fetched = [(p, cond) for p, cond in site.requests if p not in ("/robots.txt", "/a/missing")]
    assert fetched and all(conditional for _, conditional in fetched), fetched
    assert _ids(index) == {_id(site, slug) for slug in ALLOWED}


# -- 3. changed, new and gone pages -----------------------------------------------------


def test_changed_new_and_gone_pages(site: Site, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    _sync(site, index)
    site.pages["/a/changing"] = _html("changing", STORIES["changing"] + " recount ordered")
    site.pages["/a/new"] = _html("new", STORIES["new"])
    site.feed.append("/a/new")
    site.gone.add("/a/two")

    third = _sync(site, index, remove_after=2)
    assert (third.added, third.updated, third.removed) == (1, 1, 0)
    assert _id(site, "two") in _ids(index)  # one 404 is not enough
    assert any(
        p.url == site.url("/a/two") and p.reason.startswith("HTTP 404") for p in third.failed
    )
    with Recommender.open(index, encoder=HashingEncoder(256)) as rec:
        assert "recount ordered" in rec.get(_id(site, "changing")).body

    fourth = _sync(site, index, remove_after=2)
    assert (fourth.added, fourth.updated, fourth.removed) == (0, 0, 1)
    assert _id(site, "two") not in _ids(index)

    site.gone.discard("/a/two")
    back = _sync(site, index, remove_after=2)
    assert (back.added, back.removed) == (1, 0)
    assert _id(site, "two") in _ids(index)


# -- 4. a server that hangs, one that fails ---------------------------------------------


def test_timeouts_and_server_errors_do_not_stop_the_run(site: Site, tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    lines = ["# pages to keep", site.url("/slow"), site.url("/broken"), "", site.url("/a/one")]
    urls.write_text("\n".join(lines) + "\n")
    started = time.monotonic()

    report = _sync(site, tmp_path / "idx", str(urls), timeout=0.5, retries=2)

    assert time.monotonic() - started < 5
    assert report.added == 1
    reasons = {p.url: p.reason for p in report.failed}
    assert reasons == {site.url("/slow"): "timeout", site.url("/broken"): "HTTP 500"}
    # A 500 is retried (twice), a read timeout is not.
    paths = [path for path, _ in site.requests]
    assert (paths.count("/broken"), paths.count("/slow")) == (3, 1)
    assert "timeout" in report.summary() and "HTTP 500" in report.summary()


def test_bad_sources_name_the_value(tmp_path: Path) -> None:
    for bad in ("ftp://example.com/feed", str(tmp_path / "absent.txt"), "http://"):
        with pytest.raises(InvalidArgumentError, match=r"source|file") as caught:
            sync_index([bad], tmp_path / "idx", encoder=HashingEncoder(256))
        assert bad in str(caught.value)
    listed = tmp_path / "urls.txt"
    listed.write_text("https://example.com/a\njavascript:alert(1)\n")
    with pytest.raises(InvalidArgumentError, match="line 2"):
        sync_index([str(listed)], tmp_path / "idx", encoder=HashingEncoder(256))


# -- 5. parsers: any bytes are read or refused with a reason --------------------------------


_XML_PARTS = st.sampled_from(
    [
        f'<urlset xmlns="{_SM}">',
        f'<sitemapindex xmlns="{_SM}">',
        "<url><loc>",
        "<sitemap><loc>",
        "</loc></url>",
        "https://example.com/a",
        "/relative",
        "javascript:alert(1)",
        f'<news:news xmlns:news="{_NEWS}"><news:publication_date>',
        "2026-13-45T99:00",
        '<rss version="2.0"><channel><item><link>',
        '<feed xmlns="http://www.w3.org/2005/Atom"><entry><link href="',
        "<pubDate>",
        "&amp;",
        "<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>",
        "&e;",
        "\x00",
        "\ud800",
    ]
)


def _check_listing(data: bytes) -> None:
    try:
        listing = parse_listing(data, "https://example.com/sitemap.xml")
    except InvalidArgumentError as exc:
        assert str(exc)
        return
    assert isinstance(listing, Listing)
    for url in [*listing.sitemaps, *(p.url for p in listing.pages)]:
        assert url.startswith(("http://", "https://"))


@given(st.binary(max_size=400))
def test_listing_parser_takes_any_bytes(data: bytes) -> None:
    _check_listing(data)


@given(st.lists(_XML_PARTS | st.text(max_size=20), max_size=12))
def test_listing_parser_takes_any_near_xml(parts: list[str]) -> None:
    _check_listing("".join(parts).encode("utf-8", "surrogatepass"))


@given(st.text(max_size=300))
def test_url_file_parser_takes_any_text(text: str) -> None:
    try:
        listed = parse_url_lines(text)
    except InvalidArgumentError as exc:
        assert "line" in str(exc)
        return
    assert all(item.url.startswith(("http://", "https://")) for item in listed)


def test_listing_parsers_read_no_files_and_expand_no_entities(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    # feedparser opens bytes that name a file: the listing parser must not let it.
    with pytest.raises(InvalidArgumentError):
        parse_listing(str(secret).encode(), "https://example.com/feed")
    entity = (
        f'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY e SYSTEM "file://{secret}">]>'
        f'<urlset xmlns="{_SM}"><url><loc>https://example.com/&e;</loc></url></urlset>'
    )
    listing = parse_listing(entity.encode(), "https://example.com/sitemap.xml")
    assert all("TOPSECRET" not in page.url for page in listing.pages)


# -- 6. the command line, --every -------------------------------------------------------


def test_cli_sync_adds_to_an_index_built_elsewhere(site: Site, tmp_path: Path) -> None:
    from recommender.cli import main

    index = tmp_path / "idx"
    seed = {"id": "seed", "title": "Seed", "body": STORIES["five"] + " archive seed story"}
    Recommender.build([seed], index, encoder=HashingEncoder(256)).close()
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{site.url('/a/one')}\n{site.url('/a/missing')}\n")
    args = ["sync", str(urls), "--index", str(index), "--json", "--delay", "0", "--quiet"]

    result = CliRunner().invoke(main, args)

    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["added"], data["failed"], data["total"]) == (1, 1, 2)
    assert data["failures"] == [{"url": site.url("/a/missing"), "reason": "HTTP 404"}]
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["unchanged"] == 1


def test_cli_refuses_bad_arguments(tmp_path: Path) -> None:
    from recommender.cli import main

    runner = CliRunner()
    url = "https://example.com/feed.xml"
    bad_every = runner.invoke(main, ["sync", url, "--index", str(tmp_path), "--every", "10x"])
    assert bad_every.exit_code == 2 and "'10x'" in bad_every.output
    bad_source = runner.invoke(main, ["sync", "ftp://x/feed", "--index", str(tmp_path)])
    assert bad_source.exit_code == 2 and "ftp://x/feed" in bad_source.output


def test_parse_duration() -> None:
    assert parse_duration("30s") == 30
    assert parse_duration("15m") == 900
    assert parse_duration("1h30m") == 5400
    assert parse_duration(" 2D ") == 172800
    for bad in ("", "15", "m", "-1m", "0s", "1h 30m", "1.5.2m"):
        with pytest.raises(InvalidArgumentError, match="duration"):
            parse_duration(bad)


def test_every_finishes_the_current_run_on_sigterm_then_stops() -> None:
    calls: list[str] = []

    def job() -> None:
        calls.append("start")
        os.kill(os.getpid(), signal.SIGTERM)  # arrives mid-run: the run still finishes
        calls.append("end")

    with stop_on_signals() as stop:
        run_every(job, 0.01, stop, on_error=lambda exc: None)
    assert calls == ["start", "end"]
    assert stop.is_set()


def test_every_skips_a_round_when_the_index_is_locked() -> None:
    from recommender.errors import IndexLockedError

    stop = threading.Event()
    seen: list[Exception] = []
    rounds = 0

    def job() -> None:
        nonlocal rounds
        rounds += 1
        if rounds == 1:
            raise IndexLockedError("busy")
        stop.set()

    run_every(job, 0.0, stop, on_error=seen.append)
    assert rounds == 2 and [str(e) for e in seen] == ["busy"]
