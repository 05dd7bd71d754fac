"""Saved web pages and scraped text as articles: what a site has instead of clean JSONL.

    Page                      what extraction found in one page
    extract_html(data)        a saved HTML page: trafilatura for the story, the page's own
                              metadata (JSON-LD, OpenGraph, meta tags) for date, section, tags
    extract_text(data)        a scraped plain-text page (rules in recommender.ingest.scraped_text)
    extract_page(data, kind)  either, from bytes: decoded by BOM, declared or detected charset
    page_kind(path)           "html", "text" or None, by extension

Extraction keeps the story and drops the site around it — menus, footers, share
widgets, comments, cookie banners, lists of other headlines — because that noise,
embedded with the story, pulls the Related list toward whatever else the site
published that day. trafilatura does the main-text work (it is maintained,
benchmarked and handles far more templates than rules we would write); the
metadata is read here because pages state it precisely (a full publication
time, the section) where a generic extractor keeps less.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from recommender.errors import InputError
from recommender.ingest.page import MIN_BODY_WORDS, Page
from recommender.text import printable
from recommender.urls import safe_url

__all__ = [
    "HTML_SUFFIXES",
    "MAX_PAGE_BYTES",
    "MIN_BODY_WORDS",
    "PAGE_KINDS",
    "TEXT_SUFFIXES",
    "Page",
    "decode_page",
    "extract_html",
    "extract_page",
    "extract_text",
    "page_kind",
]

#: Pages larger than this are rejected unread: a saved news page is well under 1 MiB,
#: and a bigger file is a dump or an archive that extraction would spend minutes on.
MAX_PAGE_BYTES = 5 * 1024 * 1024
HTML_SUFFIXES = (".html", ".htm", ".xhtml")
TEXT_SUFFIXES = (".txt",)
PAGE_KINDS = ("html", "text")


def page_kind(name: str) -> str | None:
    """``"html"`` or ``"text"`` for a page file name, None for anything else."""
    lowered = name.lower()
    if lowered.endswith(HTML_SUFFIXES):
        return "html"
    if lowered.endswith(TEXT_SUFFIXES):
        return "text"
    return None


def extract_page(data: bytes, kind: str) -> Page:
    """Extract one page of ``kind`` (``html`` or ``text``) from its bytes, in any encoding.

    Every string of the result is valid Unicode. Raises InputError for an unknown kind, a
    page over ``MAX_PAGE_BYTES`` and a binary file (NUL bytes once decoded).
    """
    if kind not in PAGE_KINDS:
        raise InputError(f"unknown page format {kind!r}; expected one of {', '.join(PAGE_KINDS)}")
    if len(data) > MAX_PAGE_BYTES:
        raise InputError(
            f"page is {len(data):,} bytes, over the limit of {MAX_PAGE_BYTES:,}; "
            "is it really one article?"
        )
    text = decode_page(data, html=kind == "html")
    if "\x00" in text:
        # Text in any encoding decodes without NULs (UTF-16 has a BOM, or is not read as
        # such): this is an image, an archive, a database file... not a page.
        raise InputError("binary file (NUL bytes), not a page")
    page = extract_html(text) if kind == "html" else extract_text(text)
    return _printable_page(page)


def _printable_page(page: Page) -> Page:
    # The page's JSON-LD may hold "\ud800" escapes; a page is worth keeping despite them.
    return Page(
        title=printable(page.title),
        body=printable(page.body),
        published_at=_printable_or_none(page.published_at),
        url=safe_url(printable(page.url)) if page.url is not None else None,
        language=_printable_or_none(page.language),
        section=_printable_or_none(page.section),
        tags=tuple(printable(tag) for tag in page.tags),
    )


def _printable_or_none(value: str | None) -> str | None:
    return printable(value) if value is not None else None


# -- decoding -----------------------------------------------------------------------------

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# <meta charset="x">, <meta http-equiv="Content-Type" content="text/html; charset=x">,
# <?xml version="1.0" encoding="x"?>: where pages declare their encoding.
_UNSAFE_CODECS = {"utf-7", "unicode-escape", "raw-unicode-escape", "punycode", "idna"}
_DECLARED = re.compile(rb"""(?:charset|encoding)\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)


def decode_page(data: bytes, *, html: bool = True) -> str:
    """Text of a page: by its BOM, else its declared charset, else UTF-8, else detected."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, "replace")
    declared = _declared_charset(data) if html else None
    if declared is not None:
        try:
            return printable(data.decode(declared))
        except (UnicodeError, LookupError):
            pass  # a wrong declaration is common; fall through to UTF-8 and detection
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    results = from_bytes(data)
    best = results.best()
    encoding = best.encoding if best is not None else "cp1252"
    # Several single-byte code pages often fit equally well; the web's default for
    # pages that declare nothing is windows-1252, so it wins a tie.
    if best is not None and any(
        r.encoding == "cp1252" and r.chaos == best.chaos and r.coherence == best.coherence
        for r in results
    ):
        encoding = "cp1252"
    try:
        return printable(data.decode(encoding, "replace"))
    except (UnicodeError, LookupError):
        return data.decode("cp1252", "replace")


def _declared_charset(data: bytes) -> str | None:
    match = _DECLARED.search(data[:4096])
    if match is None:
        return None
    name = match.group(1).decode("ascii", "replace")
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        return None
    # Codecs that turn ASCII into any character (escape sequences, UTF-7's "+2AA-") are
    # never a web page's encoding: browsers refuse them, and so does this reader.
    return None if codec in _UNSAFE_CODECS else codec


# -- text pages ---------------------------------------------------------------------------


def extract_text(text: str) -> Page:
    """A scraped plain-text page: site chrome, bylines and lists of other headlines removed."""
    from recommender.ingest.scraped_text import parse_scraped_text

    return parse_scraped_text(text)


# -- HTML pages ---------------------------------------------------------------------------


def extract_html(html: str) -> Page:
    """A saved HTML page: the story's text, title, date, URL, language, section and tags."""
    import trafilatura
    from lxml import html as lxml_html

    # lxml refuses decoded text that still declares an encoding (XHTML's <?xml ...?>).
    html = re.sub(r"\A\s*<\?xml[^>]*\?>", "", html)
    try:
        tree = lxml_html.document_fromstring(html)
    except (ValueError, lxml_html.etree.ParserError):
        return Page()
    meta = _Metadata.read(tree)
    doc = trafilatura.bare_extraction(
        tree,
        with_metadata=True,
        include_comments=False,
        include_tables=False,
        include_images=False,
        include_links=False,
        favor_precision=True,
        # No guessing from the whole page: a "(c) 2026" footer is not a publication date.
        date_extraction_params={"extensive_search": False, "original_date": True},
    )
    title = meta.title or _clean(getattr(doc, "title", None) or "")
    body = _body(getattr(doc, "text", None) or "", title)
    return Page(
        title=title,
        body=body,
        published_at=meta.published_at or getattr(doc, "date", None) or None,
        url=meta.url or safe_url(getattr(doc, "url", None)),
        language=meta.language,
        section=meta.section or _first(getattr(doc, "categories", None)),
        tags=meta.tags or tuple(getattr(doc, "tags", None) or ()),
    )


def _body(text: str, title: str) -> str:
    """Paragraphs separated by blank lines, without the headline repeated on top."""
    paragraphs = [_clean(line) for line in text.splitlines()]
    paragraphs = [p for p in paragraphs if p]
    # The headline (with a kicker above it) repeated at the top of the text: cut it.
    head = [p.casefold() for p in paragraphs[:3]]
    if title and title.casefold() in head:
        paragraphs = paragraphs[head.index(title.casefold()) + 1 :]
    if paragraphs and _BYLINE.match(paragraphs[0]):
        paragraphs = paragraphs[1:]
    return "\n\n".join(paragraphs)


# "By Jane Doe", "Von Jonas Brettschneider": a short byline line right under the headline.
_BYLINE = re.compile(r"^(?:by|von|par|por|di|door)\s+\S+(?:\s+\S+){0,4}$", re.IGNORECASE)


def _clean(text: str) -> str:
    return " ".join(text.split())


def _first(values: Any) -> str | None:
    for value in values or ():
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


@dataclass
class _Metadata:
    """What the page states about itself: JSON-LD first, then OpenGraph and meta tags."""

    title: str = ""
    published_at: str | None = None
    url: str | None = None
    language: str | None = None
    section: str | None = None
    tags: tuple[str, ...] = ()

    @classmethod
    def read(cls, tree: Any) -> _Metadata:
        ld = _news_json_ld(tree)
        metas = _meta_tags(tree)
        return cls(
            title=_clean(_text(ld.get("headline")) or metas.get("og:title", [""])[0]),
            published_at=_text(ld.get("datePublished"))
            or _one(metas, "article:published_time", "og:published_time", "pubdate", "date")
            or _time_element(tree),
            # The first safe one: a "javascript:" canonical link must not become the id.
            url=safe_url(_canonical(tree))
            or safe_url(_text(ld.get("url")))
            or safe_url(_one(metas, "og:url")),
            language=_language(tree, ld, metas),
            section=_text(ld.get("articleSection"))
            or _one(metas, "article:section", "section", "category"),
            tags=_tags(ld, metas),
        )


def _text(value: Any) -> str | None:
    """A JSON-LD value as one string (first of a list, ``@id``/``name`` of an object)."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("name") or value.get("@id")
    if isinstance(value, (str, int, float)) and str(value).strip():
        return _clean(str(value))
    return None


_NEWS_TYPES = {
    "newsarticle",
    "article",
    "reportagenewsarticle",
    "blogposting",
    "analysisnewsarticle",
}


def _news_json_ld(tree: Any) -> dict[str, Any]:
    """The page's JSON-LD article object (NewsArticle and kin), or {}."""
    for script in tree.xpath('//script[@type="application/ld+json"]'):
        try:
            data = json.loads(script.text_content() or "")
        except (json.JSONDecodeError, RecursionError):
            continue  # broken JSON-LD is common; the other sources still apply
        for item in _json_ld_items(data):
            kinds = item.get("@type")
            kinds = kinds if isinstance(kinds, list) else [kinds]
            if any(isinstance(k, str) and k.lower() in _NEWS_TYPES for k in kinds):
                return item
    return {}


def _json_ld_items(data: Any) -> Iterator[dict[str, Any]]:
    if isinstance(data, list):
        for item in data:
            yield from _json_ld_items(item)
    elif isinstance(data, dict):
        yield data
        yield from _json_ld_items(data.get("@graph"))


def _meta_tags(tree: Any) -> dict[str, list[str]]:
    """``<meta property|name|itemprop=... content=...>`` by lower-cased key, in page order."""
    out: dict[str, list[str]] = {}
    for meta in tree.xpath("//meta[@content]"):
        key = meta.get("property") or meta.get("name") or meta.get("itemprop")
        content = _clean(meta.get("content") or "")
        if key and content:
            out.setdefault(key.strip().lower(), []).append(content)
    return out


def _one(metas: dict[str, list[str]], *keys: str) -> str | None:
    for key in keys:
        if metas.get(key):
            return metas[key][0]
    return None


def _time_element(tree: Any) -> str | None:
    for element in tree.xpath("//article//time[@datetime] | //time[@pubdate][@datetime]"):
        value = _clean(element.get("datetime") or "")
        if value:
            return value
    return None


def _canonical(tree: Any) -> str | None:
    for link in tree.xpath("//link[@href][@rel]"):
        if "canonical" in (link.get("rel") or "").lower().split():
            return _clean(link.get("href")) or None
    return None


def _language(tree: Any, ld: dict[str, Any], metas: dict[str, list[str]]) -> str | None:
    value = (
        tree.get("lang")
        or tree.get("{http://www.w3.org/XML/1998/namespace}lang")
        or tree.get("xml:lang")
        or _text(ld.get("inLanguage"))
        or _one(metas, "og:locale", "content-language", "language")
    )
    for http_equiv in tree.xpath("//meta[@http-equiv][@content]"):
        if not value and http_equiv.get("http-equiv").lower() == "content-language":
            value = http_equiv.get("content")
    if not value:
        return None
    # "en_US", "en-us", "EN" -> "en": the filters compare primary language subtags.
    primary = re.split(r"[-_,\s]", value.strip())[0].lower()
    return primary or None


def _tags(ld: dict[str, Any], metas: dict[str, list[str]]) -> tuple[str, ...]:
    found: list[str] = list(metas.get("article:tag", []))
    keywords = ld.get("keywords")
    if isinstance(keywords, str):
        found += keywords.split(",")
    elif isinstance(keywords, list):
        found += [k for k in keywords if isinstance(k, str)]
    if not found:
        found = [k for value in metas.get("keywords", []) for k in value.split(",")]
    tags = (_clean(t) for t in found)
    return tuple(dict.fromkeys(t for t in tags if t))
