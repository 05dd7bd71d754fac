"""Where records come from: files, folders and globs of pages, stdin, and symlinks.

Every source is checked (exists, readable, a known format) before anything is read. In a
folder or a glob, a symlink out of it is reported, not followed, unless asked.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

from recommender.errors import InputError
from recommender.ingest.pages import HTML_SUFFIXES, PAGE_KINDS, TEXT_SUFFIXES, page_kind
from recommender.ingest.readers import READERS, Entry, Reader, read_jsonl, read_page

__all__ = ["SKIPPED_LINK", "Source", "check_source"]

_STDIN = "-"
_STDIN_NAME = "<stdin>"
#: The rejection reason of a symlink out of the folder or glob given.
SKIPPED_LINK = "symlink to outside the folder: not followed; pass --follow-symlinks to read it"


@dataclass(frozen=True)
class Source:
    """One input to read: a record file, a page, stdin, or a symlink reported and not read."""

    name: str
    path: Path | None  # None means stdin
    reader: Reader
    #: A saved page: its record uses the standard field names whatever the field map says.
    page: bool = False
    #: Why this path is reported and not read (a symlink out of the folder given).
    skipped: str | None = None


def check_source(
    source: str | Path, page_format: str | None, *, follow_symlinks: bool
) -> list[Source]:
    """What one path names, checked: itself, its folder's pages or its glob's matches.

    Raises InputError for a missing or unreadable file, an unknown format, a glob that
    matches nothing and a folder without pages.
    """
    text = str(source)
    if text == _STDIN:
        return [Source(_STDIN_NAME, None, read_jsonl)]
    path = Path(source)
    if not path.exists() and glob.has_magic(text):
        return _glob_sources(text, page_format, follow_symlinks=follow_symlinks)
    if path.is_dir():
        return _folder_pages(path, page_format, follow_symlinks=follow_symlinks)
    kind = page_format or page_kind(path.name)
    if kind is not None:
        return [_page_source(path, kind, article_id=text)]
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise InputError(
            f"unsupported input format {text!r}; expected one of"
            f" {', '.join(sorted([*READERS, *HTML_SUFFIXES, *TEXT_SUFFIXES]))}, a folder of"
            " pages, or '-' for JSONL on stdin"
        )
    _check_readable(path)
    return [Source(text, path, reader)]


def _glob_sources(pattern: str, page_format: str | None, *, follow_symlinks: bool) -> list[Source]:
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
    found: list[Source] = []
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
        found.extend(check_source(match, page_format, follow_symlinks=follow_symlinks))
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


def _folder_pages(folder: Path, page_format: str | None, *, follow_symlinks: bool) -> list[Source]:
    found: list[tuple[Path, Source]] = []
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


def _skipped(path: Path) -> Source:
    # Nothing of the target is read or shown: it may be any file on the machine.
    return Source(str(path), path, _read_nothing, skipped=SKIPPED_LINK)


def _read_nothing(stream: BinaryIO, name: str) -> Iterator[Entry]:
    return iter(())


def _page_source(path: Path, kind: str, *, article_id: str) -> Source:
    _check_readable(path)
    reader = partial(read_page, kind=kind, article_id=article_id)
    return Source(str(path), path, reader, page=True)


def _check_readable(path: Path) -> None:
    try:
        path.open("rb").close()
    except OSError as exc:
        raise InputError(f"cannot open input {str(path)!r}: {exc.strerror or exc}") from exc
