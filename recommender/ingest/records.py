"""Readers that turn JSONL, CSV and JSON files, and saved pages, into validated Articles.

Bad records never stop a read: each becomes a Rejection that says where it was and why,
so one malformed line in a million does not cost the other 999,999. Only inputs that
cannot be read at all (missing file, unknown format, unusable CSV header) raise InputError.

Saved pages (HTML, scraped text; see recommender.ingest.pages) are one record each: a folder or
a glob expands to its pages, and a page without story text is a Rejection like any other.

Everything read from outside passes one gate, :func:`article_from_mapping`: every key and
string of a record, at any depth, must be valid Unicode (recommender.text), and a ``url``
that is not http(s) or a site path is dropped into ``metadata["url_rejected"]``
(recommender.urls). Rejections themselves only ever hold writable text.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from functools import partial
from os import PathLike
from pathlib import Path
from typing import Any, BinaryIO

from recommender.errors import InputError, InvalidArgumentError
from recommender.ingest.pages import (
    HTML_SUFFIXES,
    MAX_PAGE_BYTES,
    PAGE_KINDS,
    TEXT_SUFFIXES,
    extract_page,
    page_kind,
)
from recommender.text import checked_text, is_valid_text, printable
from recommender.types import Article, Rejection
from recommender.urls import safe_url, url_problem

__all__ = [
    "FieldMap",
    "ReadStats",
    "article_from_mapping",
    "check_article",
    "parse_datetime",
    "read_records",
]

# Same singleton as timezone.utc; datetime.UTC would need Python 3.11.
_UTC = timezone(timedelta(0))
_STDIN = "-"
_STDIN_NAME = "<stdin>"
_BOM = b"\xef\xbb\xbf"
_RAW_LIMIT = 2000
# Article bodies in one CSV cell often exceed the csv module's 128 KiB default; 64 MiB still
# stops a stray unclosed quote from swallowing a multi-gigabyte file into one field.
_CSV_FIELD_LIMIT = 64 * 1024 * 1024
_SURROGATE = re.compile("[\ud800-\udfff]")
# Deeper metadata is a generated or hostile record, and would reach the recursion limits of
# json.dumps and SQLite's JSON functions far from here.
_MAX_NESTING = 100
# Python refuses str() of integers over 4,300 digits; this is about 3,000.
_MAX_INT_BITS = 10_000
_SKIPPED_LINK = "symlink to outside the folder: not followed; pass --follow-symlinks to read it"
_JSON_WS = re.compile(r"[ \t\n\r]*")
_ISO_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?([Zz]|[+-]\d{2}(?::?\d{2})?)?)?",
    re.ASCII,
)
_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}


@dataclass(frozen=True)
class FieldMap:
    """Which source field holds each Article attribute, e.g. ``FieldMap(body="text")``."""

    id: str = "id"
    body: str = "body"
    title: str = "title"
    url: str = "url"
    published_at: str = "published_at"
    section: str = "section"
    tags: str = "tags"
    language: str = "language"


# --- dates ------------------------------------------------------------------------------


def parse_datetime(value: str) -> datetime:
    """Parse an ISO 8601 date or datetime into a timezone-aware datetime.

    Accepts ``2024-05-01`` (midnight UTC), ``2024-05-01T10:00:00`` or with a space, optional
    fractional seconds, and ``Z`` or ``+02:00`` offsets. Naive values are read as UTC.
    The accepted forms are the same on every Python version, unlike ``fromisoformat``.
    """
    match = _ISO_DATETIME.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise _bad_date(value)
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        y, mo, d, h, mi, s = (int(part or 0) for part in (year, month, day, hour, minute, second))
        parsed = datetime(y, mo, d, h, mi, s, micros, tzinfo=_parse_offset(offset))
        # 0001-01-01T00:00+01:00 is before the first UTC datetime: every later comparison
        # and timestamp would overflow.
        parsed.astimezone(_UTC)
    except (ValueError, OverflowError):
        raise _bad_date(value) from None
    return parsed


def _parse_offset(offset: str | None) -> timezone:
    if offset is None or offset in "Zz":
        return _UTC
    digits = offset[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if minutes >= 60:
        raise ValueError(offset)
    delta = timedelta(hours=hours, minutes=minutes)
    # timezone() itself rejects offsets of 24 hours or more.
    return timezone(-delta if offset.startswith("-") else delta)


def _bad_date(value: object) -> InvalidArgumentError:
    shown = repr(value)
    shown = shown if len(shown) <= 100 else shown[:99] + "…"
    return InvalidArgumentError(
        f"unparseable date {shown}; expected ISO 8601 such as 2024-05-01 or 2024-05-01T10:00:00Z",
        field="published_at",
    )


# --- one record --------------------------------------------------------------------------


def article_from_mapping(record: Mapping[str, Any], *, fields: FieldMap = FieldMap()) -> Article:
    """Validate one record and build its Article.

    Fields not named by ``fields`` go to ``metadata``; a nested ``metadata`` object is merged
    into it, so the output of ``Article.to_dict()`` reads back as the same Article.
    Every key and string, at any depth, must be valid Unicode. A ``url`` that is neither
    http(s) nor a path on the site is not kept as the URL: it goes to
    ``metadata["url_rejected"]`` as ``{"value": ..., "reason": ...}`` (see recommender.urls).
    Raises InvalidArgumentError with a short reason such as ``missing id`` or ``empty body``.
    """
    if not isinstance(record, Mapping):
        raise InvalidArgumentError(f"record must be a mapping, got {type(record).__name__}")
    _check_values(record)
    title = _optional_text(record, fields.title, "title") or ""
    article_id = _require_id(record, fields)
    body = _require_body(record, fields, has_title=bool(title))
    url = _optional_text(record, fields.url, "url")
    metadata = _metadata(record, fields)
    problem = url_problem(url) if url is not None else None
    if problem is not None:
        # Policy: keep the record, drop the URL, keep what was given where it can be fixed.
        metadata["url_rejected"] = {"value": record[fields.url], "reason": problem}
    return Article(
        id=article_id,
        body=body,
        title=title,
        url=safe_url(url),
        published_at=_optional_date(record.get(fields.published_at)),
        section=_optional_text(record, fields.section, "section"),
        tags=_tags(record, fields.tags),
        language=_optional_text(record, fields.language, "language"),
        metadata=metadata,
    )


def check_article(article: Article) -> Article:
    """Return an Article built in code (not read from a record) once its text passed the gate.

    The same check as for records (every string valid Unicode, JSON-writable values), so a
    library caller's Article cannot carry what a file could not.
    """
    _check_values(article.to_dict())
    return article


def _check_values(record: Mapping[str, Any]) -> None:
    """The gate for outside text: every key and string of ``record`` must be valid Unicode.

    Also refuses what cannot be written back as JSON: nesting over ``_MAX_NESTING`` levels,
    NaN and infinities (JSON has none; the HTTP service could not return the article), and
    integers too long to print. Iterative, so no record can exhaust the stack.
    """
    pending: list[tuple[object, str, int]] = [(record, "", 0)]
    while pending:
        value, field, depth = pending.pop()
        if isinstance(value, str):
            checked_text(value, field=field)
        elif isinstance(value, Mapping):
            _check_depth(depth, field)
            for key, item in value.items():
                name = field or _field_name(key)
                if isinstance(key, str):
                    checked_text(key, field=f"{name} (a key)" if field else "field name")
                pending.append((item, name, depth + 1))
        elif isinstance(value, (list, tuple)):
            _check_depth(depth, field)
            pending.extend((item, field, depth + 1) for item in value)
        elif isinstance(value, float) and not math.isfinite(value):
            raise InvalidArgumentError(
                f"{field}: {value} is not a JSON number (JSON has no NaN or Infinity)", field=field
            )
        elif isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
            raise InvalidArgumentError(f"{field}: integer too large", field=field)


def _check_depth(depth: int, field: str) -> None:
    if depth > _MAX_NESTING:
        raise InvalidArgumentError(
            f"{field}: nested more than {_MAX_NESTING} levels deep", field=field
        )


def _field_name(key: object) -> str:
    name = printable(key) if isinstance(key, str) else repr(key)
    return name if len(name) <= 60 else name[:59] + "…"


def _label(name: str, source: str) -> str:
    # Name the source column too when it differs, so "missing id" is findable in the file.
    return name if name == source else f"{name} (field {source!r})"


def _require_id(record: Mapping[str, Any], fields: FieldMap) -> str:
    value = record.get(fields.id)
    label = _label("id", fields.id)
    if value is None:
        raise InvalidArgumentError(f"missing {label}")
    # bool is an int subclass, but True as an id is always a mistake.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{label} must be a string or integer, got {_type(value)}")
    if not value.strip():
        raise InvalidArgumentError(f"empty {label}")
    return value.strip()


def _require_body(record: Mapping[str, Any], fields: FieldMap, *, has_title: bool) -> str:
    value = record.get(fields.body)
    label = _label("body", fields.body)
    if value is None:
        raise InvalidArgumentError(f"missing {label}")
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{label} must be a string, got {_type(value)}")
    # A headline-only brief (empty body, real title) is still a story worth
    # indexing; with neither there is nothing to embed.
    if not value.strip() and not has_title:
        raise InvalidArgumentError(f"empty {label}")
    return value.strip()


def _optional_text(record: Mapping[str, Any], source: str, name: str) -> str | None:
    value = record.get(source)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{_label(name, source)} must be a string, got {_type(value)}")
    return value.strip() or None


def _optional_date(value: object) -> datetime | None:
    # Library callers may hand over date objects rather than strings.
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=_UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=_UTC)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise _bad_date(value)
    return parse_datetime(value)


def _tags(record: Mapping[str, Any], source: str) -> tuple[str, ...]:
    value = record.get(source)
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    elif not isinstance(value, (list, tuple)):
        raise InvalidArgumentError(
            f"{_label('tags', source)} must be a list of strings or a comma-separated string,"
            f" got {_type(value)}"
        )
    bad = next((item for item in value if not isinstance(item, str)), None)
    if bad is not None:
        raise InvalidArgumentError(f"{_label('tags', source)} must hold strings, got {_type(bad)}")
    # dict.fromkeys dedupes while keeping first-seen order.
    return tuple(dict.fromkeys(tag.strip() for tag in value if tag.strip()))


def _metadata(record: Mapping[str, Any], fields: FieldMap) -> dict[str, Any]:
    mapped = set(vars(fields).values())
    extra = {key: value for key, value in record.items() if key not in mapped}
    nested = extra.pop("metadata", None)
    if isinstance(nested, Mapping):
        return {**nested, **extra}
    if nested is not None:
        extra["metadata"] = nested
    return extra


def _type(value: object) -> str:
    return type(value).__name__


# --- files -------------------------------------------------------------------------------


@dataclass
class ReadStats:
    """What :func:`read_records` read besides the items it yields; final once they are read.

    ``records + blank_lines`` is every line of a JSONL file, every row of a CSV file after
    its header, every element of a JSON array, and one per page.
    """

    #: Articles and Rejections yielded.
    records: int = 0
    #: Blank JSONL lines and empty CSV rows (",,,"), skipped: they hold no record.
    blank_lines: int = 0


@dataclass(frozen=True)
class _Entry:
    """One record as a reader found it: a mapping to validate, why it is unreadable, or blank."""

    line: int
    raw: str
    record: Mapping[str, Any] | None = None
    reason: str | None = None
    blank: bool = False


_Reader = Callable[[BinaryIO, str], Iterator[_Entry]]


@dataclass(frozen=True)
class _Source:
    name: str
    path: Path | None  # None means stdin
    reader: _Reader
    #: A saved page: its record uses the standard field names whatever the field map says.
    page: bool = False
    #: Why this path is reported and not read (a symlink out of the folder given).
    skipped: str | None = None


def read_records(
    sources: Sequence[str | Path],
    *,
    fields: FieldMap = FieldMap(),
    stdin: BinaryIO | None = None,
    page_format: str | None = None,
    follow_symlinks: bool = False,
    stats: ReadStats | None = None,
) -> Iterator[Article | Rejection]:
    """Yield an Article or a Rejection for every record of ``sources``, in input order.

    The format follows the extension: ``.jsonl``/``.ndjson``/``.json-lines`` (one object a
    line), ``.csv`` (header row), ``.json`` (an array of objects), ``.html``/``.htm``/``.xhtml``
    (a saved page) and ``.txt`` (a scraped text page); ``"-"`` is JSONL on ``stdin`` (default
    ``sys.stdin.buffer``). A folder stands for the pages in it (recursively), a glob pattern for
    the files it matches. ``page_format`` (``html`` or ``text``) reads every file as that kind
    of page whatever its extension, and a folder's files with that kind's extensions. A page's
    id is its canonical URL, else its path (relative to the folder it was found in).

    In a folder or a glob, a symlink whose target is outside the folder (the glob's fixed
    leading folder) is not followed but yields a Rejection, unless ``follow_symlinks``; a
    symlinked folder inside it is not read twice. Files named directly are always read.

    Blank lines are skipped and counted in ``stats`` (see :class:`ReadStats`), so its counts
    add up to the input. Ids must be unique across all sources: later duplicates are
    rejected. Every source is checked before anything is yielded, so a mistyped path raises
    InputError at once rather than after a long read. A lone path is taken as a list of one.
    """
    if isinstance(sources, (str, PathLike)):
        sources = [sources]
    if page_format is not None and page_format not in PAGE_KINDS:
        raise InvalidArgumentError(
            f"unknown page format {page_format!r}; expected one of {', '.join(PAGE_KINDS)}",
            field="format",
        )
    checked = [
        found
        for source in sources
        for found in _check_source(source, page_format, follow_symlinks=follow_symlinks)
    ]
    return _iter_records(checked, fields, stdin, stats if stats is not None else ReadStats())


def _check_source(
    source: str | Path, page_format: str | None, *, follow_symlinks: bool
) -> list[_Source]:
    text = str(source)
    if text == _STDIN:
        return [_Source(_STDIN_NAME, None, _read_jsonl)]
    path = Path(source)
    if not path.exists() and glob.has_magic(text):
        return _glob_sources(text, page_format, follow_symlinks=follow_symlinks)
    if path.is_dir():
        return _folder_pages(path, page_format, follow_symlinks=follow_symlinks)
    kind = page_format or page_kind(path.name)
    if kind is not None:
        return [_page_source(path, kind, article_id=text)]
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise InputError(
            f"unsupported input format {text!r}; expected one of"
            f" {', '.join(sorted([*_READERS, *HTML_SUFFIXES, *TEXT_SUFFIXES]))}, a folder of"
            " pages, or '-' for JSONL on stdin"
        )
    _check_readable(path)
    return [_Source(text, path, reader)]


def _glob_sources(pattern: str, page_format: str | None, *, follow_symlinks: bool) -> list[_Source]:
    matches = sorted(glob.glob(pattern, recursive=True))
    if not matches:
        raise InputError(f"no files match {pattern!r}")
    # The folder a glob is about is its leading part without wildcards: site/ for site/*/*.html.
    parts = Path(pattern).parts
    fixed = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    root = os.path.realpath(Path(*parts[:fixed]) if fixed else Path("."))
    # "**" follows symlinked folders, round a loop up to the system's limit: a file reached
    # through one is read once, at its own place (or with follow_symlinks, first time seen).
    direct: list[tuple[str, str | None]] = []
    linked: list[tuple[str, str | None]] = []
    for match in matches:
        link = _linked_folder(match, fixed)
        (direct if link is None else linked).append((match, link))
    linked.sort(key=lambda pair: (pair[0].count(os.sep), pair[0]))  # the shortest way first
    seen = {os.path.realpath(match) for match, _ in direct}
    reported: set[str] = set()
    found: list[_Source] = []
    for match, link in [*direct, *linked]:
        if follow_symlinks:
            if link is not None and os.path.realpath(match) in seen:
                continue
            seen.add(os.path.realpath(match))
        elif link is not None or not _within(match, root) or _is_folder_link(match):
            out = link or match
            if not _within(out, root) and out not in reported:
                reported.add(out)
                found.append(_skipped(Path(out)))
            continue
        found.extend(_check_source(match, page_format, follow_symlinks=follow_symlinks))
    return found


def _is_folder_link(path: str) -> bool:
    return os.path.islink(path) and os.path.isdir(path)


def _linked_folder(match: str, fixed: int) -> str | None:
    """The first symlinked folder between a glob's fixed folder and ``match``, or None."""
    parts = Path(match).parts
    for end in range(fixed + 1, len(parts)):
        folder = os.path.join(*parts[:end])
        if os.path.islink(folder):
            return folder
    return None


def _folder_pages(folder: Path, page_format: str | None, *, follow_symlinks: bool) -> list[_Source]:
    found: list[tuple[Path, _Source]] = []
    for path, followed in _walk(folder, follow_symlinks=follow_symlinks):
        kind = page_kind(path.name)
        if page_format not in (None, kind):
            kind = None
        if not followed:
            # Reported only when it would have been read: a page, or a folder of them.
            if kind is not None or path.is_dir():
                found.append((path, _skipped(path)))
        elif kind is not None:
            article_id = path.relative_to(folder).as_posix()
            found.append((path, _page_source(path, kind, article_id=article_id)))
    if not found:
        wanted_suffixes = " or ".join(
            ", ".join(HTML_SUFFIXES if k == "html" else TEXT_SUFFIXES)
            for k in ([page_format] if page_format else PAGE_KINDS)
        )
        raise InputError(f"folder {str(folder)!r} holds no pages ({wanted_suffixes})")
    return [source for _, source in sorted(found, key=lambda pair: pair[0])]


def _walk(folder: Path, *, follow_symlinks: bool) -> Iterator[tuple[Path, bool]]:
    """Files under ``folder`` as (path, True), and symlinks out of it as (path, False).

    A symlink whose target is outside ``folder`` is followed only with ``follow_symlinks``
    (then each real folder is read once, so link loops end); a symlinked folder whose target
    is inside is not entered, since its files are read at their own place.
    """
    root = os.path.realpath(folder)
    seen = {root}
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as listing:
                entries = list(listing)
        except OSError:
            continue  # unreadable subfolder: as rglob did, read what can be listed
        for entry in entries:
            path = Path(entry.path)
            link = entry.is_symlink()
            if link and not follow_symlinks and not _within(path, root):
                yield path, False
            elif _is_dir(entry):
                real = os.path.realpath(path)
                if (follow_symlinks or not link) and real not in seen:
                    seen.add(real)
                    pending.append(path)
            elif _is_file(entry):
                yield path, True


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def _within(path: str | Path, root: str) -> bool:
    real = os.path.realpath(path)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def _skipped(path: Path) -> _Source:
    # Nothing of the target is read or shown: it may be any file on the machine.
    return _Source(str(path), path, _read_nothing, skipped=_SKIPPED_LINK)


def _read_nothing(stream: BinaryIO, name: str) -> Iterator[_Entry]:
    return iter(())


def _page_source(path: Path, kind: str, *, article_id: str) -> _Source:
    _check_readable(path)
    reader = partial(_read_page, kind=kind, article_id=article_id)
    return _Source(str(path), path, reader, page=True)


def _check_readable(path: Path) -> None:
    try:
        path.open("rb").close()
    except OSError as exc:
        raise InputError(f"cannot open input {str(path)!r}: {exc.strerror or exc}") from exc


def _iter_records(
    sources: list[_Source], fields: FieldMap, stdin: BinaryIO | None, stats: ReadStats
) -> Iterator[Article | Rejection]:
    first_seen: dict[str, str] = {}
    for source in sources:
        if source.skipped is not None:
            stats.records += 1
            yield _reject(_Entry(1, ""), source.name, source.skipped)
            continue
        source_fields = FieldMap() if source.page else fields
        try:
            with _open(source, stdin) as stream:
                for entry in source.reader(stream, source.name):
                    if entry.blank:
                        stats.blank_lines += 1
                        continue
                    stats.records += 1
                    yield _judge(entry, source.name, source_fields, first_seen)
        except OSError as exc:
            raise InputError(f"cannot read input {source.name!r}: {exc}") from exc


def _open(source: _Source, stdin: BinaryIO | None) -> AbstractContextManager[BinaryIO]:
    if source.path is None:
        # Never close the caller's stdin.
        return nullcontext(stdin if stdin is not None else sys.stdin.buffer)
    return source.path.open("rb")


def _judge(
    entry: _Entry, name: str, fields: FieldMap, first_seen: dict[str, str]
) -> Article | Rejection:
    if entry.record is None:
        return _reject(entry, name, entry.reason or "unreadable record")
    try:
        article = article_from_mapping(entry.record, fields=fields)
    except InvalidArgumentError as exc:
        return _reject(entry, name, str(exc), _peek_id(entry.record, fields))
    if article.id in first_seen:
        reason = f"duplicate id {article.id!r} (first at {first_seen[article.id]})"
        return _reject(entry, name, reason, article.id)
    first_seen[article.id] = f"{name}:{entry.line}"
    return article


def _reject(entry: _Entry, name: str, reason: str, article_id: str | None = None) -> Rejection:
    # Every string here came from outside: make it writable (bad bytes and lone surrogates
    # become U+FFFD), so any rejection can be printed and saved to rejects.jsonl.
    return Rejection(
        printable(name),
        entry.line,
        printable(reason),
        printable(article_id) if article_id is not None else None,
        printable(entry.raw[:_RAW_LIMIT]),
    )


def _peek_id(record: Mapping[str, Any], fields: FieldMap) -> str | None:
    try:
        return _require_id(record, fields)
    except (InvalidArgumentError, ValueError):
        return None


def _invalid_utf8(raw: str) -> str | None:
    # Readers decode with surrogateescape: each undecodable byte became one U+DC80..U+DCFF.
    bad = _SURROGATE.search(raw) if not is_valid_text(raw) else None
    if bad is None:
        return None
    offset = len(raw[: bad.start()].encode("utf-8", "surrogateescape")) + 1
    return f"invalid UTF-8 at byte {offset}"


def _object_entry(value: object, line: int, raw: str) -> _Entry:
    if not isinstance(value, dict):
        kind = _JSON_TYPES.get(type(value), "number")
        return _Entry(line, raw, reason=f"expected a JSON object, got {kind}")
    return _Entry(line, raw, record=value)


# --- JSONL -------------------------------------------------------------------------------


def _read_jsonl(stream: BinaryIO, name: str) -> Iterator[_Entry]:
    # Bytes, not text: one bad byte must cost one line, and U+2028 must not split a line.
    for number, chunk in enumerate(stream, start=1):
        if number == 1:
            chunk = chunk.removeprefix(_BOM)
        chunk = chunk.rstrip(b"\r\n")
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"invalid UTF-8 at byte {exc.start + 1}"
            yield _Entry(number, chunk.decode("utf-8", "replace"), reason=reason)
            continue
        yield _jsonl_entry(text, number) if text.strip() else _Entry(number, "", blank=True)


def _jsonl_entry(text: str, line: int) -> _Entry:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return _Entry(line, text, reason=f"invalid JSON: {exc.msg} at column {exc.colno}")
    except RecursionError:
        return _Entry(line, text, reason="invalid JSON: nested too deeply")
    except ValueError:  # an integer of more digits than Python will convert
        return _Entry(line, text, reason="invalid JSON: number too large")
    return _object_entry(value, line, text)


# --- CSV ---------------------------------------------------------------------------------


class _LineTracker:
    """Feeds csv.reader line by line, remembering which lines the current row used."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self._count = 0
        self._taken: list[str] = []

    def __iter__(self) -> _LineTracker:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self._count += 1
        self._taken.append(line)
        return line

    def take(self) -> tuple[int, str]:
        """Start line and text of the row just parsed; resets for the next row."""
        start = self._count - len(self._taken) + 1
        text = "".join(self._taken).rstrip("\r\n")
        self._taken = []
        return start, text


@dataclass(frozen=True)
class _CsvRow:
    line: int
    raw: str
    cells: list[str]
    error: str | None = None
    blank: bool = False


def _read_csv(stream: BinaryIO, name: str) -> Iterator[_Entry]:
    if csv.field_size_limit() < _CSV_FIELD_LIMIT:
        csv.field_size_limit(_CSV_FIELD_LIMIT)
    # surrogateescape keeps bad bytes as markers, so one bad row is rejected, not the file.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    rows = _csv_rows(_LineTracker(iter(text)))
    for first in rows:
        if not first.blank:
            break
        yield _Entry(first.line, "", blank=True)
    else:
        return
    header = _csv_header(first, name)
    for row in rows:
        yield _Entry(row.line, "", blank=True) if row.blank else _csv_entry(row, header)


def _csv_rows(lines: _LineTracker) -> Iterator[_CsvRow]:
    reader = csv.reader(lines)
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield _CsvRow(*lines.take(), [], f"invalid CSV: {exc}")
            continue
        row = _CsvRow(*lines.take(), cells)
        # Spreadsheets pad exports with empty rows like ",,,": treat them as blank lines.
        yield row if any(cell.strip() for cell in cells) else replace(row, blank=True)


def _csv_header(row: _CsvRow, name: str) -> list[str]:
    problem = row.error or _invalid_utf8(row.raw)
    if problem:
        raise InputError(f"cannot read the CSV header of {name!r}: {problem}")
    header = [cell.strip() for cell in row.cells]
    duplicate = next((col for i, col in enumerate(header) if col in header[:i]), None)
    if duplicate is not None:
        raise InputError(f"duplicate column {duplicate!r} in the CSV header of {name!r}")
    return header


def _csv_entry(row: _CsvRow, header: list[str]) -> _Entry:
    problem = row.error or _invalid_utf8(row.raw)
    if problem is None and len(row.cells) != len(header):
        problem = f"expected {len(header)} fields as in the header, got {len(row.cells)}"
    if problem:
        return _Entry(row.line, row.raw, reason=problem)
    return _Entry(row.line, row.raw, record=dict(zip(header, row.cells, strict=True)))


# --- JSON array --------------------------------------------------------------------------


def _read_json_array(stream: BinaryIO, name: str) -> Iterator[_Entry]:
    # An array must be read whole; JSONL is the format for inputs larger than memory.
    text = stream.read().decode("utf-8-sig", "surrogateescape")
    start = _skip_ws(text, 0)
    if not text.startswith("[", start):
        raise InputError(f"{name!r} is not a JSON array of objects; expected '[' at the start")
    try:
        yield from _json_array_items(text, start + 1)
    except json.JSONDecodeError as exc:
        # Past a syntax error the element boundaries are unknown, so stop reading this file.
        reason = f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        yield _Entry(exc.lineno, _line_around(text, exc.pos), reason=reason + "; rest not read")
    except RecursionError:
        yield _Entry(1, text[:_RAW_LIMIT], reason="invalid JSON: nested too deeply; rest not read")


def _json_array_items(text: str, pos: int) -> Iterator[_Entry]:
    decoder = json.JSONDecoder()
    line, counted = 1, 0
    pos = _skip_ws(text, pos)
    while not text.startswith("]", pos):
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            raise
        except ValueError:  # an integer of more digits than Python will convert
            raise json.JSONDecodeError("number too large", text, pos) from None
        line, counted = line + text.count("\n", counted, pos), pos
        raw = text[pos:end]
        problem = _invalid_utf8(raw)
        yield _Entry(line, raw, reason=problem) if problem else _object_entry(value, line, raw)
        pos = _skip_ws(text, end)
        if text.startswith(",", pos):
            pos = _skip_ws(text, pos + 1)
        elif not text.startswith("]", pos):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
    end = _skip_ws(text, pos + 1)
    if end < len(text):
        raise json.JSONDecodeError("Extra data", text, end)


def _skip_ws(text: str, pos: int) -> int:
    match = _JSON_WS.match(text, pos)
    return match.end() if match else pos


def _line_around(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return text[start : end if end >= 0 else len(text)]


# --- saved pages ---------------------------------------------------------------------------


def _read_page(stream: BinaryIO, name: str, *, kind: str, article_id: str) -> Iterator[_Entry]:
    """One page, one record: its canonical URL as id when it has one, else ``article_id``."""
    data = stream.read(MAX_PAGE_BYTES + 1)
    try:
        page = extract_page(data, kind)
    except InputError as exc:
        yield _Entry(1, "", reason=str(exc))
        return
    except Exception as exc:  # a page that breaks the extractor is one rejection, not the end
        # Not the message: parsers quote the input, and the file may not be a page at all.
        yield _Entry(1, "", reason=f"cannot extract the page ({type(exc).__name__})")
        return
    record = page.to_record(page.url or article_id)
    raw = json.dumps(record, ensure_ascii=False)
    problem = page.problem()
    if problem is not None:
        yield _Entry(1, raw, reason=f"{kind} page: {problem}")
        return
    yield _Entry(1, raw, record=record)


_READERS: dict[str, _Reader] = {
    ".csv": _read_csv,
    ".json": _read_json_array,
    ".json-lines": _read_jsonl,
    ".jsonl": _read_jsonl,
    ".ndjson": _read_jsonl,
}
