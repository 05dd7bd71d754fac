"""The file readers: JSONL, CSV, a JSON array and one saved page, each as Entries.

A reader turns bytes into entries (a mapping to validate, the reason it is unreadable, or a
blank line) and never raises for one bad record; only a file that cannot be read as its
format at all (a JSON file that is no array, an unusable CSV header) raises InputError.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, BinaryIO

from recommender.errors import InputError
from recommender.ingest.pages import MAX_PAGE_BYTES, extract_page
from recommender.text import is_valid_text

__all__ = ["RAW_LIMIT", "READERS", "Entry", "Reader", "read_jsonl", "read_page"]

#: How much of a rejected record's text a Rejection keeps.
RAW_LIMIT = 2000
_BOM = b"\xef\xbb\xbf"
# Article bodies in one CSV cell often exceed the csv module's 128 KiB default; 64 MiB still
# stops a stray unclosed quote from swallowing a multi-gigabyte file into one field.
_CSV_FIELD_LIMIT = 64 * 1024 * 1024
_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_WS = re.compile(r"[ \t\n\r]*")
_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}


@dataclass(frozen=True)
class Entry:
    """One record as a reader found it: a mapping to validate, why it is unreadable, or blank."""

    line: int
    raw: str
    record: Mapping[str, Any] | None = None
    reason: str | None = None
    blank: bool = False


Reader = Callable[[BinaryIO, str], Iterator[Entry]]


def _invalid_utf8(raw: str) -> str | None:
    # Readers decode with surrogateescape: each undecodable byte became one U+DC80..U+DCFF.
    bad = _SURROGATE.search(raw) if not is_valid_text(raw) else None
    if bad is None:
        return None
    offset = len(raw[: bad.start()].encode("utf-8", "surrogateescape")) + 1
    return f"invalid UTF-8 at byte {offset}"


def _object_entry(value: object, line: int, raw: str) -> Entry:
    if not isinstance(value, dict):
        kind = _JSON_TYPES.get(type(value), "number")
        return Entry(line, raw, reason=f"expected a JSON object, got {kind}")
    return Entry(line, raw, record=value)


# --- JSONL -------------------------------------------------------------------------------


def read_jsonl(stream: BinaryIO, name: str) -> Iterator[Entry]:
    # Bytes, not text: one bad byte must cost one line, and U+2028 must not split a line.
    for number, chunk in enumerate(stream, start=1):
        if number == 1:
            chunk = chunk.removeprefix(_BOM)
        chunk = chunk.rstrip(b"\r\n")
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"invalid UTF-8 at byte {exc.start + 1}"
            yield Entry(number, chunk.decode("utf-8", "replace"), reason=reason)
            continue
        yield _jsonl_entry(text, number) if text.strip() else Entry(number, "", blank=True)


def _jsonl_entry(text: str, line: int) -> Entry:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return Entry(line, text, reason=f"invalid JSON: {exc.msg} at column {exc.colno}")
    except RecursionError:
        return Entry(line, text, reason="invalid JSON: nested too deeply")
    except ValueError:  # an integer of more digits than Python will convert
        return Entry(line, text, reason="invalid JSON: number too large")
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


def _read_csv(stream: BinaryIO, name: str) -> Iterator[Entry]:
    if csv.field_size_limit() < _CSV_FIELD_LIMIT:
        csv.field_size_limit(_CSV_FIELD_LIMIT)
    # surrogateescape keeps bad bytes as markers, so one bad row is rejected, not the file.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    rows = _csv_rows(_LineTracker(iter(text)))
    for first in rows:
        if not first.blank:
            break
        yield Entry(first.line, "", blank=True)
    else:
        return
    header = _csv_header(first, name)
    for row in rows:
        yield Entry(row.line, "", blank=True) if row.blank else _csv_entry(row, header)


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


def _csv_entry(row: _CsvRow, header: list[str]) -> Entry:
    problem = row.error or _invalid_utf8(row.raw)
    if problem is None and len(row.cells) != len(header):
        problem = f"expected {len(header)} fields as in the header, got {len(row.cells)}"
    if problem:
        return Entry(row.line, row.raw, reason=problem)
    return Entry(row.line, row.raw, record=dict(zip(header, row.cells, strict=True)))


# --- JSON array --------------------------------------------------------------------------


def _read_json_array(stream: BinaryIO, name: str) -> Iterator[Entry]:
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
        yield Entry(exc.lineno, _line_around(text, exc.pos), reason=reason + "; rest not read")
    except RecursionError:
        yield Entry(1, text[:RAW_LIMIT], reason="invalid JSON: nested too deeply; rest not read")


def _json_array_items(text: str, pos: int) -> Iterator[Entry]:
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
        yield Entry(line, raw, reason=problem) if problem else _object_entry(value, line, raw)
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


def read_page(stream: BinaryIO, name: str, *, kind: str, article_id: str) -> Iterator[Entry]:
    """One page, one record: its canonical URL as id when it has one, else ``article_id``."""
    data = stream.read(MAX_PAGE_BYTES + 1)
    try:
        page = extract_page(data, kind)
    except InputError as exc:
        yield Entry(1, "", reason=str(exc))
        return
    except Exception as exc:  # a page that breaks the extractor is one rejection, not the end
        # Not the message: parsers quote the input, and the file may not be a page at all.
        yield Entry(1, "", reason=f"cannot extract the page ({type(exc).__name__})")
        return
    record = page.to_record(page.url or article_id)
    raw = json.dumps(record, ensure_ascii=False)
    problem = page.problem()
    if problem is not None:
        yield Entry(1, raw, reason=f"{kind} page: {problem}")
        return
    yield Entry(1, raw, record=record)


#: The reader of each record file extension (pages go by pages.page_kind).
READERS: dict[str, Reader] = {
    ".csv": _read_csv,
    ".json": _read_json_array,
    ".json-lines": read_jsonl,
    ".jsonl": read_jsonl,
    ".ndjson": read_jsonl,
}
