"""Where a site lists its pages: feeds, sitemaps and files of URLs -> page URLs.

    Listed                 one page URL, with the date and title its listing gave
    Listing                what one fetched listing holds: pages, and child sitemaps
    parse_listing(data)    a feed (RSS, Atom) or a sitemap (index, urlset, Google News)
    parse_url_lines(text)  a local file's lines: one URL a line, ``#`` comments
    read_url_file(path)    the same, read from the file
    check_source(value)    an http(s) URL or an existing file, else InvalidArgumentError

Every parser takes untrusted bytes: it returns what it found or raises InvalidArgumentError
with the reason, nothing else. ``<lastmod>`` is read but not used as a publication date: a
site bumps it on every correction, and conditional requests already say what changed.
"""

from __future__ import annotations

import calendar
import io
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from recommender.errors import InputError, InvalidArgumentError
from recommender.ingest.dates import parse_datetime
from recommender.text import printable
from recommender.urls import url_problem

__all__ = [
    "MAX_LISTING_BYTES",
    "Listed",
    "Listing",
    "check_source",
    "is_remote",
    "page_url",
    "parse_listing",
    "parse_url_lines",
    "read_url_file",
]

#: The sitemap protocol's own limit for one (uncompressed) sitemap file.
MAX_LISTING_BYTES = 50 * 1024 * 1024

SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
NEWS_NS = "http://www.google.com/schemas/sitemap-news/0.9"
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Listed:
    """One page a listing names; ``published_at`` is ISO 8601 when the listing dated it."""

    url: str
    published_at: str | None = None
    title: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Listing:
    """What one listing holds: its pages and, for a sitemap index, the child sitemaps."""

    pages: tuple[Listed, ...] = ()
    sitemaps: tuple[str, ...] = ()


def is_remote(source: str) -> bool:
    """Whether a SOURCE is a URL (else it names a local file of URLs)."""
    return urlsplit(source).scheme.lower() in ("http", "https")


def check_source(source: str) -> str:
    """``source`` if it is an absolute http(s) URL or an existing file, else raise."""
    if is_remote(source):
        if page_url(source) is None:
            raise InvalidArgumentError(f"bad source URL {source!r}", field="source")
        return source
    if "://" in source:
        raise InvalidArgumentError(
            f"bad source {source!r}: expected an http(s) URL of a feed or sitemap, or a file "
            "of URLs",
            field="source",
        )
    if not Path(source).is_file():
        raise InvalidArgumentError(f"no such file of URLs: {source!r}", field="source")
    return source


def page_url(value: str, base: str | None = None) -> str | None:
    """``value`` (resolved against ``base``) as an absolute http(s) URL with a host, or None."""
    value = printable(value).strip()
    if base is not None:
        try:
            value = urljoin(base, value)
        except ValueError:
            return None
    if not is_remote(value) or url_problem(value) is not None:
        return None
    return value


def parse_url_lines(text: str) -> list[Listed]:
    """A file of URLs: one a line, blank lines and ``#`` comments skipped."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        url = page_url(line)
        if url is None:
            shown = line if len(line) <= 80 else line[:79] + "…"
            raise InvalidArgumentError(
                f"line {number}: {shown!r} is not an absolute http(s) URL", field="source"
            )
        found.append(Listed(url))
    return found


def read_url_file(path: str) -> list[Listed]:
    """The pages a local file of URLs lists (UTF-8); InputError when it cannot be read."""
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the file of URLs {path!r}: {exc}") from None
    return parse_url_lines(text)


def parse_listing(data: bytes, base: str) -> Listing:
    """A fetched listing: a sitemap (index, urlset, Google News) or an RSS/Atom feed.

    Relative links are resolved against ``base`` (the listing's URL). Raises
    InvalidArgumentError when the bytes are neither.
    """
    data = _gunzip(data)
    root = _xml_root(data)
    if root is not None and root.tag in (
        f"{{{SITEMAP_NS}}}urlset",
        f"{{{SITEMAP_NS}}}sitemapindex",
    ):
        return _parse_sitemap(root, base)
    return Listing(pages=tuple(_parse_feed(data, base)))


def _gunzip(data: bytes) -> bytes:
    # A sitemap.xml.gz is served as a file (no Content-Encoding), so httpx leaves it packed.
    if not data.startswith(_GZIP_MAGIC):
        return data
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_LISTING_BYTES + 1)
    except zlib.error as exc:
        raise InvalidArgumentError(f"bad gzip data: {exc}", field="source") from None
    if len(out) > MAX_LISTING_BYTES:
        raise InvalidArgumentError(
            f"listing is over {MAX_LISTING_BYTES:,} bytes unpacked", field="source"
        )
    return out


def _xml_root(data: bytes) -> Any:
    from lxml import etree

    # No entities, no network, no huge trees: a listing from the web is untrusted.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        return etree.fromstring(data, parser=parser)
    except (etree.XMLSyntaxError, ValueError):
        return None


# -- sitemaps ----------------------------------------------------------------------------


def _parse_sitemap(root: Any, base: str) -> Listing:
    if root.tag == f"{{{SITEMAP_NS}}}sitemapindex":
        children = (_child_text(node, "loc") for node in root.iterfind(f"{{{SITEMAP_NS}}}sitemap"))
        urls = (page_url(loc, base) for loc in children if loc)
        return Listing(sitemaps=tuple(dict.fromkeys(u for u in urls if u)))
    pages = []
    for node in root.iterfind(f"{{{SITEMAP_NS}}}url"):
        url = page_url(_child_text(node, "loc") or "", base)
        if url is None:
            continue
        news = node.find(f"{{{NEWS_NS}}}news")
        date = _iso_or_none(_child_text(news, "publication_date", NEWS_NS))
        pages.append(Listed(url, date, _child_text(news, "title", NEWS_NS)))
    return Listing(pages=tuple(pages))


def _child_text(node: Any, name: str, namespace: str = SITEMAP_NS) -> str | None:
    if node is None:
        return None
    child = node.find(f"{{{namespace}}}{name}")
    text = child.text if child is not None else None
    return printable(text).strip() or None if isinstance(text, str) else None


def _iso_or_none(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return parse_datetime(value).isoformat()
    except InvalidArgumentError:
        return None


# -- feeds -------------------------------------------------------------------------------


def _parse_feed(data: bytes, base: str) -> list[Listed]:
    import feedparser

    # A stream, never bytes: feedparser opens bytes that name a file ("/etc/passwd") as a path.
    try:
        parsed = feedparser.parse(io.BytesIO(data), sanitize_html=False)
    except Exception as exc:  # feedparser's parsers raise what they like on odd bytes
        raise InvalidArgumentError(f"not a feed: {exc}", field="source") from None
    version = parsed.get("version")
    if not version:
        raise InvalidArgumentError(
            "neither a feed (RSS, Atom) nor a sitemap (urlset, sitemapindex)", field="source"
        )
    pages = []
    for entry in parsed.get("entries", []):
        link = entry.get("link")
        url = page_url(link, base) if isinstance(link, str) else None
        if url is not None:
            title = entry.get("title")
            title = printable(title).strip() or None if isinstance(title, str) else None
            pages.append(Listed(url, _feed_date(entry), title))
    return pages


def _feed_date(entry: Any) -> str | None:
    stamp = entry.get("published_parsed") or entry.get("updated_parsed")
    if not isinstance(stamp, time.struct_time):
        return None
    try:
        seconds = calendar.timegm(stamp)  # feedparser gives UTC
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
    except (OverflowError, ValueError):
        return None
