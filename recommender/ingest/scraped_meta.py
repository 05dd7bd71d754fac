"""Metadata lines of a scraped page: tags, breadcrumbs, dates, bylines and author bios.

Each rule says whether one line is such a line and what it states; the ``stated_*``
functions read the date, tags and section a page states from its classified lines.
Dates themselves are parsed by recommender.ingest.dates.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from recommender.ingest.dates import parse_page_date
from recommender.ingest.scraped_lines import ARTICLE_HEADER_KINDS, CLOSING, Kind, Line

__all__ = [
    "bio",
    "breadcrumb",
    "byline",
    "date_line",
    "mark_author_bios",
    "mark_tag_lists",
    "stated_date",
    "stated_section",
    "stated_tags",
    "tag_line",
]


# -- tags ----------------------------------------------------------------------------------

# Tag links are a word or a name, never a sentence.
_MAX_TAG_WORDS = 4

# "Tags: a, b", "Topics: a; b", "- In:" above a list of tag links ("- Immigration").
_TAG_LABEL = re.compile(
    r"^(?:tags?|topics?|keywords?|filed under|categor(?:y|ies)|subjects?|related topics|in)"
    r"\s*:\s*(?P<rest>.*)$",
    re.I,
)
# The same labels as a whole line without the colon ("Topics", "Related topics").
_TAG_HEADER = re.compile(r"^(?:tags|topics|keywords|filed under|categories|related topics)$", re.I)
_TAG_SEPARATOR = re.compile(r"\s*[,;|•·]\s*")


def tag_line(text: str) -> Line | None:
    """A line of tags ("Tags: a, b") or a tag header ("Topics"), or None."""
    if _TAG_HEADER.match(text):
        return Line(text, Kind.TAG_HEADER)
    match = _TAG_LABEL.match(text)
    if match is None:
        return None
    rest = match.group("rest").strip()
    if not rest:
        return Line(text, Kind.TAG_HEADER)
    tags = tuple(tag for tag in _TAG_SEPARATOR.split(rest) if tag)
    # "Subject: the council met on Tuesday." is prose, not a tag list.
    if any(len(tag.split()) > _MAX_TAG_WORDS or tag.endswith(".") for tag in tags):
        return None
    return Line(text, Kind.TAGS, tags=tags)


def mark_tag_lists(lines: Sequence[Line]) -> list[Line]:
    """Short lines under a tag header ("- In:", "Topics") are the tags themselves."""
    out: list[Line] = []
    in_list = False
    for line in lines:
        if in_list and line.kind is Kind.HEADLINE and line.words <= _MAX_TAG_WORDS:
            line = replace(line, kind=Kind.TAGS, tags=(line.text.strip(" ,;"),))
        else:
            in_list = line.kind is Kind.TAG_HEADER
        out.append(line)
    return out


# -- breadcrumbs -----------------------------------------------------------------------------

# "Current:Home > Scams", "You are here: News > World" (or with the arrows U+203A, U+00BB,
# U+2192), "Home / Sport / Football".
_CRUMB_LABEL = re.compile(r"^(?:current(?: page)?|you are here|location)\s*:\s*", re.I)
_CRUMB_SEPARATOR = re.compile(r"\s*[>\u203a\u00bb\u2192]\s*|\s+/\s+")
_MAX_CRUMB_WORDS = 4
# The root of a breadcrumb, never a section.
_CRUMB_ROOTS = {"home", "homepage", "start", "startseite", "accueil", "inicio", "front page"}


def _crumbs(text: str) -> list[str] | None:
    """The segments of a breadcrumb line, or None if the line is not one."""
    if "«" in text or text.endswith("."):
        return None  # French quotes use », and a breadcrumb is not a sentence
    segments = [s.strip() for s in _CRUMB_SEPARATOR.split(_CRUMB_LABEL.sub("", text))]
    if len(segments) < 2 or not all(segments):
        return None
    first, middle = segments[0], segments[1:-1]
    # The last segment may be the page's title (glued on); the others are short names.
    if not first[0].isupper() or len(first.split()) > 3:
        return None
    if any(len(s.split()) > _MAX_CRUMB_WORDS for s in middle):
        return None
    return segments


def breadcrumb(text: str) -> Line | None:
    """A breadcrumb line ("Home > News > World"), or None."""
    return Line(text, Kind.BREADCRUMB) if _crumbs(text) else None


def stated_section(header: Sequence[Line], title: str) -> str | None:
    """The deepest section a breadcrumb names, with the page title glued to it cut off."""
    crumb = next((line for line in header if line.kind is Kind.BREADCRUMB), None)
    segments = _crumbs(crumb.text) if crumb else None
    found: list[str] = []
    for segment in segments or ():
        # lower(), not casefold(): the index must point into the segment itself.
        at = segment.lower().find(title.lower()) if title else -1
        name = (segment[:at] if at >= 0 else segment).strip(" -|:")
        if name and name.casefold() not in _CRUMB_ROOTS and len(name.split()) <= 3:
            found.append(name)
    return found[-1] if found else None


# -- date lines ------------------------------------------------------------------------------

_DATE_LABEL = re.compile(
    r"\b(?P<label>last updated|first published|last modified|published|updated|posted"
    r"|modified|date"
    # The same in German, French and Spanish, for sites in those languages.
    r"|ver\u00f6ffentlicht|aktualisiert|stand|publi\u00e9|mis \u00e0 jour|publicado|actualizado)"
    r"\b(?:\s+(?:on|at|am|um|le|el))?\s*[:\-\u2013]?\s*",
    re.I,
)
_UPDATE_LABELS = {
    "last updated",
    "updated",
    "last modified",
    "modified",
    "aktualisiert",
    "stand",
    "mis \u00e0 jour",
    "actualizado",
}
# "2 hours ago", "yesterday": a date the page shows relative to when it was scraped.
_RELATIVE_TIME = re.compile(
    r"(?:\d+|an?|one)\s+(?:sec|min|minute|hour|hr|day|week|month)s?\s+ago"
    r"|just now|today|yesterday",
    re.I,
)
_MAX_DATE_REST_WORDS = 6


def date_line(text: str) -> Line | None:
    """A dateline ("Published: 15 April 2025 7:30 AM", "April 15, 2025"), or None."""
    labels = list(_DATE_LABEL.finditer(text))
    if not labels or labels[0].start() != 0:
        iso = parse_page_date(text)
        return Line(text, Kind.DATE, date=iso) if iso else None
    stated: list[Line] = []
    for label, following in zip(labels, [*labels[1:], None], strict=True):
        rest = text[label.end() : following.start() if following else None].strip(" ,;|")
        iso = parse_page_date(rest) if rest else None
        if iso is None and rest and not _vague_time(rest):
            return None  # "Published in 1998, the book ..." is prose
        if iso:
            updated = label.group("label").lower() in _UPDATE_LABELS
            stated.append(Line(text, Kind.DATE, date=iso, updated=updated))
    # "Published ... Updated ...": the publication date, else the update, else a bare label.
    first = next((line for line in stated if not line.updated), None)
    return first or (stated[0] if stated else Line(text, Kind.DATE))


def _vague_time(text: str) -> bool:
    """A time the page states that is no date ("2 hours ago", "7:30 AM ET")."""
    if _RELATIVE_TIME.fullmatch(text):
        return True
    return len(text.split()) <= _MAX_DATE_REST_WORDS and any(c.isdigit() for c in text)


# -- bylines and author blurbs -----------------------------------------------------------------

# "By Jane Doe", "BY JANE DOE AND SAM OKAFOR, Reuters", "Written by ...": never a sentence.
_BYLINE = re.compile(
    r"^(?i:by|written by|words by|story by|text by|posted by|published by|reported by)"
    r"\s+[@A-ZÀ-Þ]"
)
_MAX_BYLINE_WORDS = 12
# "By Monday, officials said ..." opens a sentence; a byline does not end like one.
_SENTENCE_END = re.compile(r"[.!?\u2026]" + CLOSING + "$")
# Wire credits: "Reporting by Anna Berg; Editing by Tom Hale", "Reuters contributed to this
# report."
_CREDIT = re.compile(
    r"^(?:additional )?(?:reporting|writing|editing|research|compiled|produced|graphics)\b"
    r"[^.]{0,100}\bby\b|\bcontributed (?:reporting )?to this (?:report|story|article)\b",
    re.I,
)
_MAX_CREDIT_WORDS = 30
# "Camilo Montoya-Galvez is the immigration reporter at ...": a name (2 to 5 capitalised
# words) opening a sentence about someone's job in journalism.
_NAME = r"(?:[A-ZÀ-Þ][\w'\u2019.-]*|de|da|van|von|der|la|le|del|bin|al)"
_BIO = re.compile(
    rf"^(?P<name>{_NAME}(?:\s+{_NAME}){{1,4}}),?\s+(?:is|was|has been|joined|covers|writes|reports"
    r"|can be reached)\b"
)
_JOURNALISM = re.compile(
    r"\b(?:reporter|correspondent|writer|editor|journalist|columnist|contributor|producer"
    r"|anchor|critic|freelancer?|reached at|covers|writes (?:about|on|for))\b",
    re.I,
)
_MAX_BIO_WORDS = 80


def byline(text: str) -> Line | None:
    """A byline ("By Jane Doe") or a wire credit ("Reporting by ..."), or None."""
    words = len(text.split())
    if _BYLINE.match(text) and words <= _MAX_BYLINE_WORDS and not _SENTENCE_END.search(text):
        return Line(text, Kind.BYLINE)
    if _CREDIT.search(text) and words <= _MAX_CREDIT_WORDS:
        return Line(text, Kind.BYLINE)
    return None


def bio(text: str) -> Line | None:
    """A sentence about a journalist ("Jane Doe is a reporter at ..."), or None."""
    if len(text.split()) <= _MAX_BIO_WORDS and _BIO.match(text) and _JOURNALISM.search(text):
        return Line(text, Kind.BIO)
    return None


# -- what the page states --------------------------------------------------------------------


def mark_author_bios(lines: Sequence[Line]) -> list[Line]:
    """A bio of someone the byline names is the author's blurb, wherever it stands."""
    bylines = " ".join(line.text for line in lines if line.kind in ARTICLE_HEADER_KINDS)
    out: list[Line] = []
    for line in lines:
        match = _BIO.match(line.text) if line.kind is Kind.BIO else None
        if match and match.group("name").casefold() in bylines.casefold():
            line = replace(line, kind=Kind.BYLINE)
        out.append(line)
    return out


def stated_date(lines: Sequence[Line]) -> str | None:
    """The first publication date stated; an update time only when there is no other."""
    dated = [line for line in lines if line.kind is Kind.DATE and line.date]
    first = next((line for line in dated if not line.updated), dated[0] if dated else None)
    return first.date if first else None


def stated_tags(lines: Sequence[Line]) -> tuple[str, ...]:
    """The tags of the tag lines, in order, without repeats."""
    found = (tag.strip() for line in lines if line.kind is Kind.TAGS for tag in line.tags)
    return tuple(dict.fromkeys(tag for tag in found if tag))
