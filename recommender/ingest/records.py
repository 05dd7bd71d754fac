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

    records     read_records and ReadStats: sources in, Articles and Rejections out
    sources     files, folders, globs, stdin and symlinks, checked before reading
    readers     the JSONL, CSV, JSON array and page readers
    validation  FieldMap, article_from_mapping, check_article: one record to one Article
    dates       parse_datetime, the published_at field's parser
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import BinaryIO

from recommender.errors import InputError, InvalidArgumentError
from recommender.ingest.dates import parse_datetime
from recommender.ingest.pages import PAGE_KINDS
from recommender.ingest.readers import RAW_LIMIT, Entry
from recommender.ingest.sources import Source, check_source
from recommender.ingest.validation import FieldMap, article_from_mapping, check_article, peek_id
from recommender.text import printable
from recommender.types import Article, Rejection

__all__ = [
    "FieldMap",
    "ReadStats",
    "article_from_mapping",
    "check_article",
    "parse_datetime",
    "read_records",
]


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


def read_records(
    sources: Sequence[str | Path],
    *,
    fields: FieldMap = FieldMap(),  # noqa: B008 - frozen: one shared default is safe
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
        for found in check_source(source, page_format, follow_symlinks=follow_symlinks)
    ]
    return _iter_records(checked, fields, stdin, stats if stats is not None else ReadStats())


def _iter_records(
    sources: list[Source], fields: FieldMap, stdin: BinaryIO | None, stats: ReadStats
) -> Iterator[Article | Rejection]:
    first_seen: dict[str, str] = {}
    for source in sources:
        if source.skipped is not None:
            stats.records += 1
            yield _reject(Entry(1, ""), source.name, source.skipped)
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


def _open(source: Source, stdin: BinaryIO | None) -> AbstractContextManager[BinaryIO]:
    if source.path is None:
        # Never close the caller's stdin.
        return nullcontext(stdin if stdin is not None else sys.stdin.buffer)
    return source.path.open("rb")


def _judge(
    entry: Entry, name: str, fields: FieldMap, first_seen: dict[str, str]
) -> Article | Rejection:
    if entry.record is None:
        return _reject(entry, name, entry.reason or "unreadable record")
    try:
        article = article_from_mapping(entry.record, fields=fields)
    except InvalidArgumentError as exc:
        return _reject(entry, name, str(exc), peek_id(entry.record, fields))
    if article.id in first_seen:
        reason = f"duplicate id {article.id!r} (first at {first_seen[article.id]})"
        return _reject(entry, name, reason, article.id)
    first_seen[article.id] = f"{name}:{entry.line}"
    return article


def _reject(entry: Entry, name: str, reason: str, article_id: str | None = None) -> Rejection:
    # Every string here came from outside: make it writable (bad bytes and lone surrogates
    # become U+FFFD), so any rejection can be printed and saved to rejects.jsonl.
    return Rejection(
        printable(name),
        entry.line,
        printable(reason),
        printable(article_id) if article_id is not None else None,
        printable(entry.raw[:RAW_LIMIT]),
    )
