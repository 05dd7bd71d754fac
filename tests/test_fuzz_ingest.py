"""Property-based tests of every input path: records (JSONL, CSV, JSON), pages, URLs, dates.

Whatever a file holds, reading it never raises (only InputError, for a whole file that
cannot be read: a bad CSV header, a JSON file that is not an array), every record becomes an
Article or a Rejection, the counts add up to the input, and everything that comes out can
be written as UTF-8 JSON. extract_page raises only InputError, for a binary file.

The "ci" profile (tests/conftest.py) runs a bounded, repeatable number of examples;
HYPOTHESIS_PROFILE=long runs many more.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender import Recommender
from recommender.embedding.encoders import HashingEncoder
from recommender.errors import InputError, InvalidArgumentError, RecommenderError
from recommender.ingest.dates import lead_date
from recommender.ingest.pages import MAX_PAGE_BYTES, Page, extract_page
from recommender.ingest.records import ReadStats, article_from_mapping, parse_datetime, read_records
from recommender.text import is_valid_text
from recommender.types import Article, Rejection

# -- strategies: text and JSON values -----------------------------------------------------

#: Any code point, lone surrogates (U+D800..U+DFFF) and NUL included.
ANY_CHAR = st.characters(exclude_categories=())
TRICKY = [
    "",
    " ",
    "\x00",
    "\ud800",
    "\udcff",
    "\ufeff",
    "\u2028",
    "\r\n",
    "\t",
    "é",
    "🙂",
    "\U0010ffff",
    '"',
    ",",
    "\\",
    "\u017fep 3, 2013",  # long s: a Unicode case-insensitive "sep"
    "2024-05-01",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
]
any_text = st.one_of(
    st.text(ANY_CHAR, max_size=40),
    st.sampled_from(TRICKY),
    # Huge values: a body of tens of kilobytes.
    st.builds(
        lambda piece, n: piece * n,
        st.sampled_from(["word ", "é", "\ud800"]),
        st.integers(1, 20_000),
    ),
)
json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(),  # NaN and infinities too: json.dumps writes them, json.loads reads them
    any_text,
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)

URL_PREFIXES = [
    "http://",
    "https://",
    "HTTPS://",
    "//",
    "/",
    "javascript:",
    "JaVaScRiPt:",
    " javascript:",
    "\tjavascript:",
    "\x01javascript:",
    "java\tscript:",
    "java\nscript:",
    "data:text/html,",
    "vbscript:",
    "file:",
    "&#106;avascript:",
    "javascript&#58;",
    "\\\\evil.example",
    "/\\evil.example",
    "http:",
    "http:/",
    "https:///",
    "ftp://",
    "\uff4aavascript:",  # fullwidth j
]
url_text = st.one_of(
    st.builds(
        lambda prefix, rest: prefix + rest,
        st.sampled_from(URL_PREFIXES),
        st.one_of(
            st.sampled_from(["example.com/a", "example.com", "bücher.de/a b?q=1#f", "[::1]/x"]),
            st.sampled_from(["alert(1)", "", "[::1", "x:y@h", ":80", "@/"]),
            any_text,
        ),
    ),
    any_text,
)
date_text = st.one_of(
    st.sampled_from(TRICKY),
    st.builds(
        "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}{}".format,
        st.integers(0, 9999),
        st.integers(0, 13),
        st.integers(0, 32),
        st.integers(0, 25),
        st.integers(0, 61),
        st.sampled_from(["", "Z", "+01:00", "-23:59", "+24:00", "+0530", "-00"]),
    ),
    any_text,
)
FIELDS = ["id", "body", "title", "url", "published_at", "section", "tags", "language"]
#: Any record: any JSON value in any field, most of them rejected.
wild_record = st.builds(
    lambda fixed, extra: {**extra, **fixed},
    st.fixed_dictionaries(
        {},
        optional={
            "id": st.one_of(any_text, st.integers(), json_value),
            "body": st.one_of(any_text, json_value),
            "title": st.one_of(any_text, json_value),
            "url": st.one_of(url_text, json_value),
            "published_at": st.one_of(date_text, json_value),
            "section": st.one_of(any_text, json_value),
            "tags": st.one_of(st.lists(any_text, max_size=4), any_text, json_value),
            "language": st.one_of(any_text, json_value),
            "metadata": json_value,
        },
    ),
    st.dictionaries(any_text, json_value, max_size=3),
)
#: Text without lone surrogates (NUL, controls, any script included): records that pass.
valid_text = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=30),
    st.sampled_from([t for t in TRICKY if "\ud800" not in t and "\udcff" not in t]),
)
valid_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), valid_text),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(valid_text, inner, max_size=3),
    max_leaves=8,
)
#: A record that is mostly valid, so that articles come out and reach the index.
plausible_record = st.builds(
    lambda fixed, extra: {**extra, **fixed},
    st.fixed_dictionaries(
        {
            "id": st.one_of(
                valid_text, st.integers(), st.text("ab12 ", min_size=1, max_size=6).map(str.strip)
            ),
            "body": st.lists(valid_text, min_size=1, max_size=12).map(" ".join),
        },
        optional={
            "title": valid_text,
            "url": st.one_of(url_text.filter(is_valid_text), st.none()),
            "published_at": st.one_of(
                st.sampled_from(["2024-05-01", "2026-03-14T08:30:00+01:00", "", "0001-01-01"]),
                st.datetimes(timezones=st.timezones()).map(datetime.isoformat),
                date_text,
            ),
            "section": valid_text,
            "tags": st.one_of(st.lists(valid_text, max_size=3), valid_text),
            "language": valid_text,
            "metadata": valid_value,
        },
    ),
    st.dictionaries(valid_text, valid_value, max_size=3),
)
any_record = st.one_of(plausible_record, plausible_record, wild_record)


# -- strategies: files ---------------------------------------------------------------------


def jsonl_line(value: object) -> bytes:
    # ensure_ascii: lone surrogates survive as "\ud800" escapes, as other writers produce them.
    return json.dumps(value, ensure_ascii=True).encode("ascii")


jsonl_lines = st.lists(
    st.one_of(
        any_record.map(jsonl_line),
        any_record.map(jsonl_line),
        any_record.map(jsonl_line),
        any_record.map(jsonl_line),
        json_value.map(jsonl_line),
        st.sampled_from([b"", b"  ", b"\t", b"\r", b"\xef\xbb\xbf", b"{", b"[1,", b"1" * 5000]),
        # Raw bytes: invalid UTF-8, surrogates encoded as UTF-8, control characters.
        st.binary(max_size=60).map(lambda raw: raw.replace(b"\n", b"")),
        st.text(ANY_CHAR, max_size=30).map(
            lambda text: text.encode("utf-8", "surrogatepass").replace(b"\n", b"")
        ),
    ),
    max_size=12,
)


@st.composite
def jsonl_files(draw: st.DrawFn) -> bytes:
    data = b"\n".join(draw(jsonl_lines))
    return data + b"\n" if draw(st.booleans()) else data


def jsonl_line_count(data: bytes) -> int:
    """Lines as a JSONL reader sees them: split on b"\\n" only."""
    if not data:
        return 0
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


csv_cell = st.one_of(any_text, st.sampled_from(["", ",", '"', "\n", "\r\n", "a,b", '"q"', "x\ny"]))


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, int]:
    """A CSV file as csv.writer writes it, and how many rows follow its header."""
    # A header of blank cells would be a blank line (skipped and counted), not a header.
    extra = draw(st.lists(st.text(ANY_CHAR, min_size=1, max_size=8).filter(str.strip), max_size=3))
    header = draw(st.permutations(FIELDS[: draw(st.integers(0, len(FIELDS)))]))
    header = [*header, *extra] or ["id"]
    rows = draw(
        st.lists(
            st.one_of(
                st.lists(csv_cell, min_size=len(header), max_size=len(header)),
                st.lists(csv_cell, max_size=len(header) + 1),  # wrong width, empty rows
            ),
            max_size=8,
        )
    )
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    # Lone surrogates become bytes that are not UTF-8: that row (or the header) is rejected.
    return out.getvalue().encode("utf-8", "surrogatepass"), len(rows)


json_arrays = st.lists(st.one_of(any_record, any_record, json_value), max_size=8)


# -- strategies: pages ---------------------------------------------------------------------

TAGS = ["p", "div", "article", "h1", "title", "span", "time", "script", "a", "main", "li"]
ENCODINGS = ["utf-8", "latin-1", "cp1252", "utf-16", "shift_jis", "utf-32", "gb18030", "utf-7"]
CHARSETS = [
    "utf-8",
    "windows-1252",
    "shift_jis",
    "utf-16",
    "utf-7",
    "unicode_escape",
    "raw_unicode_escape",
    "base64",
    "rot13",
    "hex",
    "idna",
    "x-user-defined",
    "undefined",
    "bogus",
]
attr_value = st.one_of(any_text, url_text, st.sampled_from(CHARSETS))
element = st.builds(
    lambda tag, attrs, text: (
        f"<{tag}" + "".join(f' {name}="{value}"' for name, value in attrs) + f">{text}</{tag}>"
    ),
    st.sampled_from(TAGS),
    st.lists(
        st.tuples(
            st.sampled_from(["class", "lang", "datetime", "href", "content", "id"]), attr_value
        ),
        max_size=2,
    ),
    any_text,
)
head_element = st.one_of(
    st.sampled_from(CHARSETS).map(lambda name: f'<meta charset="{name}">'),
    st.sampled_from(CHARSETS).map(
        lambda name: f'<meta http-equiv="Content-Type" content="text/html; charset={name}">'
    ),
    url_text.map(lambda url: f'<link rel="canonical" href="{url}">'),
    url_text.map(lambda url: f'<meta property="og:url" content="{url}">'),
    st.tuples(any_text, url_text, date_text).map(
        lambda v: (
            '<script type="application/ld+json">'
            + json.dumps(
                {"@type": "NewsArticle", "headline": v[0], "url": v[1], "datePublished": v[2]}
            )
            + "</script>"
        )
    ),
    st.sampled_from(
        ['<?xml version="1.0" encoding="utf-7"?>', "<!DOCTYPE html>", "<html lang=\ud800>"]
    ),
)
html_text = st.builds(
    lambda head, body: (
        "<html><head>" + "".join(head) + "</head><body>" + "".join(body) + "</body></html>"
    ),
    st.lists(head_element, max_size=4),
    st.lists(st.one_of(element, any_text), max_size=8),
)
SCRAPED_LINES = [
    "Home > News > World",
    "Share",
    "Published: March 14, 2013",
    "Date: 2026-03-14T08:30:00+01:00",
    "Tags: a, b, c",
    "- In: - Immigration - Panama",
    "By Jane Doe",
    "Jane Doe is a reporter at the Example Times.",
    "Related",
    "Most read",
    "Accept cookies",
    "The council voted on Tuesday to approve the new budget for the harbour district.",
]
scraped_text = st.lists(
    st.one_of(st.sampled_from(SCRAPED_LINES), any_text, st.sampled_from(["", "- ", "• "])),
    max_size=15,
).map("\n".join)


def encode(text: str, encoding: str) -> bytes:
    try:
        return text.encode(encoding, "surrogatepass")
    except (UnicodeEncodeError, LookupError):
        return text.encode(encoding, "replace")


page_bytes = st.one_of(
    st.tuples(st.one_of(html_text, scraped_text), st.sampled_from(ENCODINGS)).map(
        lambda pair: encode(*pair)
    ),
    st.binary(max_size=300),
    st.tuples(
        st.sampled_from([codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE]),
        st.binary(max_size=100),
    ).map(lambda pair: pair[0] + pair[1]),
)


# -- helpers -------------------------------------------------------------------------------


def strings(value: object) -> Iterator[str]:
    """Every string in a JSON-like value, keys included."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)


def check_writable(item: Article | Rejection) -> None:
    """Every string is valid Unicode, and the item serialises as strict UTF-8 JSON."""
    data = item.to_dict()
    assert all(is_valid_text(text) for text in strings(data)), data
    json.dumps(data, ensure_ascii=False, allow_nan=False).encode("utf-8")
    str(item).encode("utf-8")
    if isinstance(item, Rejection):
        assert item.reason
    else:
        assert item.id and item.id == item.id.strip()
        assert item.body or item.title
        assert item.url is None or _kept_url(item.url)


def read_all(path: Path, **options: Any) -> tuple[list[Article | Rejection], ReadStats] | None:
    """All items of ``path`` (checked), or None when the file as a whole is unreadable."""
    stats = ReadStats()
    try:
        items = list(read_records([path], stats=stats, **options))
    except InputError:
        return None
    for item in items:
        assert isinstance(item, (Article, Rejection))
        check_writable(item)
    assert stats.records == len(items)
    return items, stats


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


# Browsers drop leading/trailing C0 controls and spaces and delete tabs and newlines before
# they read the scheme; case does not matter.
_BROWSER_STRIP = re.compile(r"^[\x00-\x20]+|[\x00-\x20]+$")
_BROWSER_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def browser_scheme(url: str) -> str | None:
    cleaned = re.sub(r"[\t\n\r]", "", _BROWSER_STRIP.sub("", url))
    match = _BROWSER_SCHEME.match(cleaned)
    return match.group(1).casefold() if match else None


def _kept_url(url: str) -> bool:
    if url.startswith("/"):
        relative_ok = not url.startswith("//") or len(url) > 2
        return relative_ok and browser_scheme(url) is None
    return url.startswith(("http://", "https://")) and browser_scheme(url) in ("http", "https")


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    # One folder for all examples of a test: tmp_path is per test, not per example.
    with tempfile.TemporaryDirectory(prefix="fuzz-ingest-") as name:
        yield Path(name)


# -- 1 and 2: readers never raise, and the counts add up ---------------------------------


@given(data=jsonl_files())
def test_jsonl_never_raises_and_counts_add_up(folder: Path, data: bytes) -> None:
    read = read_all(write(folder, "in.jsonl", data))
    assert read is not None  # JSONL has no whole-file problems
    _, stats = read
    assert stats.records + stats.blank_lines == jsonl_line_count(data)


@given(file=csv_files())
def test_csv_never_raises_and_counts_add_up(folder: Path, file: tuple[bytes, int]) -> None:
    data, rows = file
    read = read_all(write(folder, "in.csv", data))
    if read is not None:  # None: a header that is not UTF-8, or with a repeated column
        _, stats = read
        assert stats.records + stats.blank_lines == rows


@given(items=json_arrays)
def test_json_array_never_raises_and_counts_add_up(folder: Path, items: list[Any]) -> None:
    read = read_all(write(folder, "in.json", json.dumps(items, ensure_ascii=True).encode()))
    assert read is not None
    _, stats = read
    assert (stats.records, stats.blank_lines) == (len(items), 0)


@pytest.mark.parametrize("name", ["in.jsonl", "in.csv", "in.json"])
@given(data=st.one_of(st.binary(max_size=400), jsonl_files()))
def test_any_bytes_in_any_record_format(folder: Path, name: str, data: bytes) -> None:
    read_all(write(folder, name, data))


@given(record=any_record)
def test_any_record_is_an_article_or_a_reason(record: dict[str, Any]) -> None:
    try:
        article = article_from_mapping(record)
    except InvalidArgumentError as exc:
        assert str(exc)
        return
    check_writable(article)
    assert article_from_mapping(article.to_dict()) == article


# -- 3: an index built from any file opens with the count the report gave ------------------


@settings(max_examples=25)
@given(data=jsonl_files())
def test_build_from_any_jsonl_file(data: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="fuzz-build-") as name:
        root = Path(name)
        stats = ReadStats()
        items = list(read_records([write(root, "in.jsonl", data)], stats=stats))
        encoder = HashingEncoder(256)
        try:
            rec = Recommender.build(items, root / "idx", encoder=encoder)
        except RecommenderError:
            return  # a whole-input problem, said in one line (none is expected for JSONL)
        with rec:
            assert rec.report is not None
            added = rec.report.added
            assert added + len(rec.report.rejected) == stats.records
        with Recommender.open(root / "idx", encoder=encoder) as reopened:
            assert reopened.info().counts["articles"] == added


# -- 4: URLs -------------------------------------------------------------------------------


@given(url=url_text)
def test_url_is_http_https_or_a_site_path_never_another_scheme(url: str) -> None:
    try:
        article = article_from_mapping({"id": "a", "body": "text", "url": url})
    except InvalidArgumentError:
        assert not is_valid_text(url)
        return
    if article.url is None:
        if url.strip():
            assert article.metadata["url_rejected"]["value"] == url
            assert article.metadata["url_rejected"]["reason"]
        return
    assert _kept_url(article.url), article.url
    assert "url_rejected" not in article.metadata


# -- pages ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["html", "text"])
@given(data=page_bytes)
def test_extract_page_handles_any_bytes(kind: str, data: bytes) -> None:
    try:
        page = extract_page(data, kind)
    except InputError as exc:
        assert "binary" in str(exc) or len(data) > MAX_PAGE_BYTES
        return
    assert isinstance(page, Page)
    fields = [page.title, page.body, page.published_at, page.url, page.language, page.section]
    assert all(is_valid_text(text) for text in [*fields, *page.tags] if text is not None)
    assert page.url is None or _kept_url(page.url)


@settings(max_examples=50)
@given(pages=st.lists(st.tuples(st.sampled_from([".html", ".txt"]), page_bytes), max_size=3))
def test_folder_of_any_pages(pages: list[tuple[str, bytes]]) -> None:
    with tempfile.TemporaryDirectory(prefix="fuzz-pages-") as name:
        root = Path(name)
        for n, (suffix, data) in enumerate(pages):
            write(root, f"page{n}{suffix}", data)
        read = read_all(root)
        if not pages:
            assert read is None  # a folder without pages is an input error
            return
        assert read is not None
        _, stats = read
        assert (stats.records, stats.blank_lines) == (len(pages), 0)


# -- dates ---------------------------------------------------------------------------------


@given(text=date_text)
def test_parse_datetime_gives_an_aware_utc_comparable_datetime_or_a_reason(text: str) -> None:
    try:
        parsed = parse_datetime(text)
    except InvalidArgumentError as exc:
        assert str(exc).startswith("unparseable date")
        return
    assert parsed.tzinfo is not None
    parsed.timestamp()


@given(title=any_text, body=st.one_of(any_text, scraped_text))
def test_lead_date_reads_any_text(title: str, body: str) -> None:
    found = lead_date(title, body)
    assert found is None or isinstance(found, datetime)
