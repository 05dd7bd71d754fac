"""Scraped plain-text news pages: the story, without the site around it.

Text scraped or copied from a news page keeps one line per block of the page: the story's
paragraphs, but also the breadcrumb, share buttons, the date line, the byline and author
blurb, tag links, cookie and newsletter banners and lists of the site's other headlines.
Left in, that noise pulls the page's embedding toward whatever else the site published that
day, so :func:`parse_scraped_text` keeps the story only.

The approach is to classify each line, then read the page's layout from the classes:

1. every line gets one kind: breadcrumb, date, tags, list header ("Related", "Most read"),
   comments header, byline, author bio, chrome (UI words, share widgets, banners, credits),
   paragraph (it reads as prose) or headline (a short line that does not);
2. the story starts at the first prose paragraph that more prose follows (a lone sentence
   among headlines is a teaser, not a story); the title is the first headline-length line
   above it and below the breadcrumb (below a list of other stories there: the last one
   before the byline or date);
3. the story ends at the first list of other headlines, at the comments, or at an author
   bio that no more story follows (a bio of someone the byline names goes wherever it is);
   headline-like lines left trailing at its end are a list of other headlines without a
   header, but a short sentence is the story's last paragraph;
4. between those only paragraphs (and sub-headings) are kept; date lines give
   ``published_at``, tag lines ``tags`` and the breadcrumb ``section``.

Every rule is about how news pages are laid out, none about one site. Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import Enum

from recommender.ingest.page import Page

__all__ = ["parse_scraped_text"]


class _Kind(Enum):
    BREADCRUMB = "breadcrumb"
    DATE = "date"
    TAGS = "tags"
    TAG_HEADER = "tag header"
    LIST_HEADER = "list header"
    COMMENTS = "comments"
    BYLINE = "byline"
    BIO = "bio"
    CHROME = "chrome"
    PARAGRAPH = "paragraph"
    HEADLINE = "headline"


@dataclass(frozen=True)
class _Line:
    """One logical line of the page and what it is."""

    text: str
    kind: _Kind
    bulleted: bool = False
    #: The ISO 8601 date a date line states, and whether it is an update time.
    date: str | None = None
    updated: bool = False
    tags: tuple[str, ...] = ()

    @property
    def words(self) -> int:
        return len(self.text.split())

    @property
    def prose(self) -> bool:
        """Prose not set as a list item (lists are other headlines); a bio-like sentence
        may be the story's own ("X is a journalist who was detained ...")."""
        return self.kind in (_Kind.PARAGRAPH, _Kind.BIO) and not self.bulleted


# A headline rarely runs past this many words; a line this long is prose even unpunctuated.
_LONG_LINE_WORDS = 25
# A lone paragraph this long opens a story even with no second paragraph after it (a brief).
_LONG_PARAGRAPH_WORDS = 25
# "Related" boxes inside a story hold a few links; a longer list is the page's tail.
_MAX_BOX_ITEMS = 5
# Tag links are a word or a name, never a sentence.
_MAX_TAG_WORDS = 4

# The kinds kept in the body: prose, sub-headings, and author-like sentences that more story
# follows (a story about a journalist, not the page's author blurb).
_STORY_KINDS = {_Kind.PARAGRAPH, _Kind.HEADLINE, _Kind.BIO}
# Lines that belong to an article's own header: after them a list above the story is over.
_ARTICLE_HEADER_KINDS = {_Kind.BREADCRUMB, _Kind.BYLINE, _Kind.DATE}
# What a "By Jane Doe | April 15, 2025 | 3 min read" line may be made of.
_META_KINDS = {_Kind.DATE, _Kind.BYLINE, _Kind.CHROME}


def parse_scraped_text(text: str) -> Page:
    """The story of a scraped plain-text news page: title, body, date, section and tags.

    The body is the story's paragraphs separated by blank lines, or empty when the page has
    no story (only chrome and headlines); the caller decides what to do with such a page.
    """
    lines = [_classify(line, bulleted) for line, bulleted in _split(text)]
    lines = _mark_author_bios(_mark_tag_lists(lines))
    start = _story_start(lines)
    if start is None:
        return Page(
            title=_storyless_title(lines), published_at=_published_at(lines), tags=_tags(lines)
        )
    lines = _drop_inline_boxes(lines, start)
    region_end = _region_end(lines, start)
    end = _bio_start(lines, start, region_end)
    title = _title(lines[:start])
    return Page(
        title=title,
        body=_body(lines[start:end], title),
        published_at=_published_at(lines[:region_end]),
        section=_section(lines[:start], title),
        tags=_tags(lines[:region_end]),
    )


# -- splitting ----------------------------------------------------------------------------

# List markers: "- item", "• item", "1. item", "2) item".
_BULLET = re.compile(r"^(?:[-*•·▪►‣◦]|\d{1,2}[.)])\s+")
# Characters scrapers leave in text that are not text: zero-width spaces, BOMs, soft hyphens.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
# A line ending like this closes its sentence or introduces the next line.
_ENDS_CLAUSE = re.compile(r"[.!?:;\u2026\"\u201d\u2019)]$")
# Only a line this long can be the first half of a hard-wrapped paragraph (a short one is a
# headline or a button), and only a word in lower case ("the", not "iPhone") continues it.
_WRAP_MIN_WORDS = 6
_WRAP_MIN_CHARS = 50
_LOWER_WORD = re.compile(r"[a-z\u00df-\u00ff]+\b")


def _split(text: str) -> list[tuple[str, bool]]:
    """Non-empty lines, whitespace collapsed, list markers off (and noted), wraps rejoined."""
    out: list[tuple[str, bool]] = []
    joinable = False
    for raw in text.translate(_INVISIBLE).splitlines():
        line = " ".join(raw.split())
        marker = _BULLET.match(line)
        if marker:
            line = line[marker.end() :]
        if not line:
            joinable = False  # a blank line ends a paragraph
            continue
        # Text dumps wrap paragraphs at a fixed width: a line that starts in lower case
        # after one that did not finish its sentence is the same paragraph.
        if joinable and not marker and _LOWER_WORD.match(line):
            previous, previous_bulleted = out[-1]
            out[-1] = (f"{previous} {line}", previous_bulleted)
        else:
            out.append((line, marker is not None))
        last = out[-1][0]
        joinable = (
            len(last.split()) >= _WRAP_MIN_WORDS
            and len(last) >= _WRAP_MIN_CHARS
            and not _ENDS_CLAUSE.search(last)
        )
    return out


# -- classifying one line -----------------------------------------------------------------

# "By Jane Doe | April 15, 2025 | 3 min read": metadata set side by side on one line.
_PART_SEPARATOR = re.compile(r"\s+[|·•]\s+|\s+/\s+")
_MAX_META_LINE_WORDS = 25


def _classify(text: str, bulleted: bool = False) -> _Line:
    """What one line of the page is."""
    line = _classify_composite(text) or _classify_single(text)
    return replace(line, bulleted=bulleted)


def _classify_composite(text: str) -> _Line | None:
    """A line of side-by-side metadata (byline, date, reading time), as one date line."""
    parts = _PART_SEPARATOR.split(text)
    if len(parts) < 2 or len(text.split()) > _MAX_META_LINE_WORDS:
        return None
    lines = [_classify_single(part) for part in parts]
    if not all(line.kind in _META_KINDS for line in lines):
        return None
    dated = [line for line in lines if line.kind is _Kind.DATE]
    if not dated:
        return _Line(text, _Kind.BYLINE)
    best = next((line for line in dated if line.date and not line.updated), dated[0])
    return replace(best, text=text)


def _classify_single(text: str) -> _Line:
    for rule in _RULES:
        line = rule(text)
        if line is not None:
            return line
    return _prose_or_headline(text)


# -- chrome that reads like a sentence: banners, promos, credits ----------------------------

_CHROME_PATTERNS = [
    # Cookie consent banners: long sentences, but about the site, never the story.
    re.compile(
        r"\b(?:we|this (?:site|website)|our (?:site|website)) uses? cookies\b"
        r"|\bcookies? (?:policy|settings|preferences|consent|notice)\b"
        r"|\baccept (?:all )?cookies\b|\bby continuing to (?:browse|use)\b"
        r"|^we value your privacy\b|\bwe and our (?:\d+ )?(?:partners|vendors)\b",
        re.I,
    ),
    # Newsletter and subscription calls to action.
    re.compile(
        r"^(?:sign up|subscribe|get|receive|join)\b.*\bnewsletters?\b|\bto your inbox\b"
        r"|\bin your inbox\b|^enter your e-?mail|\balready a (?:subscriber|member)\b"
        r"|^subscribe (?:now|today|for|to continue)\b|^support (?:our|independent) journalism"
        r"|^become a (?:member|subscriber)\b"
        r"|\bis (?:only )?(?:available )?(?:for|to) subscribers\b",
        re.I,
    ),
    # Inline promos of another story: "READ MORE: ...", "Related: ...", "Watch: ...".
    re.compile(
        r"^(?:read more|read also|also read|see also|related(?: story| article| coverage)?"
        r"|recommended|read next|more|watch|listen|click here)\s*[:|\u203a\u00bb>]\s*\S",
        re.I,
    ),
    # Photo credits and captions' credit lines.
    re.compile(
        r"^(?:photo|image|picture|video|caption|credit|illustration|file photo)s?"
        r"(?: credits?| by)?\s*[:|]",
        re.I,
    ),
    # Footers.
    re.compile(r"^(?:©|\(c\)\s|copyright\b)|\ball rights reserved\b", re.I),
    # "Follow us on X", "Contact Jane at jane@example.com": how to reach the site, not news.
    re.compile(
        r"^(?:follow|contact|e-?mail|reach)\b.{0,80}"
        r"(?:@|\btwitter\b|\bx\.com\b|\binstagram\b|\bbluesky\b|\bthreads\b|\bfacebook\b)",
        re.I,
    ),
    # A bare link.
    re.compile(r"^(?:https?://|www\.)\S+$", re.I),
]
# A photo credit inside a caption ("... (AP Photo/Jane Doe)") marks the caption as chrome.
_PHOTO_CREDIT = re.compile(
    r"\b(?:getty images|ap photo|afp via getty|reuters/|shutterstock|istock)\b", re.I
)
_MAX_CAPTION_WORDS = 40
# Closing quotes and brackets that may follow a sentence's last punctuation mark.
_CLOSING = r"[\"'\u201d\u2019)\]]*"


def _sentence_chrome(text: str) -> _Line | None:
    """Banners, promos, credits and footers, however long the line is."""
    if any(pattern.search(text) for pattern in _CHROME_PATTERNS):
        return _Line(text, _Kind.CHROME)
    if _PHOTO_CREDIT.search(text) and len(text.split()) <= _MAX_CAPTION_WORDS:
        return _Line(text, _Kind.CHROME)
    return None


# -- tags -----------------------------------------------------------------------------------

# "Tags: a, b", "Topics: a; b", "- In:" above a list of tag links ("- Immigration").
_TAG_LABEL = re.compile(
    r"^(?:tags?|topics?|keywords?|filed under|categor(?:y|ies)|subjects?|related topics|in)"
    r"\s*:\s*(?P<rest>.*)$",
    re.I,
)
# The same labels as a whole line without the colon ("Topics", "Related topics").
_TAG_HEADER = re.compile(r"^(?:tags|topics|keywords|filed under|categories|related topics)$", re.I)
_TAG_SEPARATOR = re.compile(r"\s*[,;|•·]\s*")


def _tag_line(text: str) -> _Line | None:
    if _TAG_HEADER.match(text):
        return _Line(text, _Kind.TAG_HEADER)
    match = _TAG_LABEL.match(text)
    if match is None:
        return None
    rest = match.group("rest").strip()
    if not rest:
        return _Line(text, _Kind.TAG_HEADER)
    tags = tuple(tag for tag in _TAG_SEPARATOR.split(rest) if tag)
    # "Subject: the council met on Tuesday." is prose, not a tag list.
    if any(len(tag.split()) > _MAX_TAG_WORDS or tag.endswith(".") for tag in tags):
        return None
    return _Line(text, _Kind.TAGS, tags=tags)


def _mark_tag_lists(lines: Sequence[_Line]) -> list[_Line]:
    """Short lines under a tag header ("- In:", "Topics") are the tags themselves."""
    out: list[_Line] = []
    in_list = False
    for line in lines:
        if in_list and line.kind is _Kind.HEADLINE and line.words <= _MAX_TAG_WORDS:
            line = replace(line, kind=_Kind.TAGS, tags=(line.text.strip(" ,;"),))
        else:
            in_list = line.kind is _Kind.TAG_HEADER
        out.append(line)
    return out


# -- headers of what follows the story: other headlines, comments ---------------------------


def _header_key(text: str) -> str:
    """A header line as compared: lower case, no counts, arrows or trailing colon."""
    key = text.casefold().replace("\u2019", "'")
    key = re.sub(r"[(\[]?\b\d[\d.,]*[km]?\b[)\]]?", " ", key)
    key = re.sub(r"[^\w\s'&-]", " ", key)
    return " ".join(key.split())


# Headers of lists of the site's other stories. Everything under them is the page's tail.
_LIST_HEADER = re.compile(
    r"related(?: (?:stories|articles|news|coverage|content|links|posts|reading|videos))?"
    r"|recommended(?: (?:for you|stories|articles|reading|videos))?"
    r"|recommendations?(?: for you)?|rankings?"
    r"|most (?:read|popular|viewed|shared|watched|commented|emailed)"
    r"(?: (?:stories|articles|news|today|this week|now|on \S+(?: \S+)?))?"
    r"|trending(?: (?:now|stories|news|topics|today))?"
    r"|popular(?: (?:now|stories|today|articles|on \S+(?: \S+)?))?"
    r"|top (?:stories|news|headlines|videos)|latest(?: (?:news|stories|headlines|videos))?"
    r"|more (?:stories|news|headlines|articles|videos)(?: (?:from|on|in|about)(?: \S+){1,3})?"
    r"|more (?:from|on|in|like this)(?: \S+){0,4}"
    r"|(?:what to )?read (?:next|this next)|up next|next up|watch next|also read"
    r"|you (?:may|might) (?:also )?(?:like|enjoy|be interested in)"
    r"|don't miss|see also|editor'?s'? picks?|around the web|from our partners"
    r"|in other news|(?:elsewhere|also) on \S+(?: \S+){0,2}"
    r"|(?:sponsored|promoted|partner) (?:content|stories|links)"
    # Not other headlines, but what follows it is no more story than they are.
    r"|about the authors?"
)
# Where reader comments begin ("Comments", "12 Comments", "Leave a reply").
_COMMENTS_HEADER = re.compile(
    r"comments?|reader comments|(?:leave|add|post) a (?:comment|reply)|discussion"
    r"|join the (?:conversation|discussion)|(?:show|view|read) (?:all )?comments"
    r"|comment on this (?:story|article)"
)


def _list_header(text: str) -> _Line | None:
    key = _header_key(text)
    if _COMMENTS_HEADER.fullmatch(key):
        return _Line(text, _Kind.COMMENTS)
    if _LIST_HEADER.fullmatch(key):
        return _Line(text, _Kind.LIST_HEADER)
    return None


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


def _breadcrumb(text: str) -> _Line | None:
    return _Line(text, _Kind.BREADCRUMB) if _crumbs(text) else None


def _section(header: Sequence[_Line], title: str) -> str | None:
    """The deepest section a breadcrumb names, with the page title glued to it cut off."""
    crumb = next((line for line in header if line.kind is _Kind.BREADCRUMB), None)
    segments = _crumbs(crumb.text) if crumb else None
    found: list[str] = []
    for segment in segments or ():
        # lower(), not casefold(): the index must point into the segment itself.
        at = segment.lower().find(title.lower()) if title else -1
        name = (segment[:at] if at >= 0 else segment).strip(" -|:")
        if name and name.casefold() not in _CRUMB_ROOTS and len(name.split()) <= 3:
            found.append(name)
    return found[-1] if found else None


# -- dates -----------------------------------------------------------------------------------

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


def _date_line(text: str) -> _Line | None:
    """A dateline ("Published: 15 April 2025 7:30 AM", "April 15, 2025"), or None."""
    labels = list(_DATE_LABEL.finditer(text))
    if not labels or labels[0].start() != 0:
        iso = _parse_date(text)
        return _Line(text, _Kind.DATE, date=iso) if iso else None
    stated: list[_Line] = []
    for label, following in zip(labels, [*labels[1:], None], strict=True):
        rest = text[label.end() : following.start() if following else None].strip(" ,;|")
        iso = _parse_date(rest) if rest else None
        if iso is None and rest and not _vague_time(rest):
            return None  # "Published in 1998, the book ..." is prose
        if iso:
            updated = label.group("label").lower() in _UPDATE_LABELS
            stated.append(_Line(text, _Kind.DATE, date=iso, updated=updated))
    # "Published ... Updated ...": the publication date, else the update, else a bare label.
    first = next((line for line in stated if not line.updated), None)
    return first or (stated[0] if stated else _Line(text, _Kind.DATE))


def _vague_time(text: str) -> bool:
    """A time the page states that is no date ("2 hours ago", "7:30 AM ET")."""
    if _RELATIVE_TIME.fullmatch(text):
        return True
    return len(text.split()) <= _MAX_DATE_REST_WORDS and any(c.isdigit() for c in text)


# ISO dates as machines write them: 2025-04-15, 2025-04-15 07:30:54, 2025-04-15T07:30:54Z.
_ISO_DATE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ]+(\d{1,2}):(\d{2})(?::(\d{2}))?(?:[.,]\d+)?)?\s*(Z|[+-]\d{2}:?\d{2}|UTC|GMT)?",
    re.I,
)
_WEEKDAY = re.compile(
    r"\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday"
    r"|mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)\b\.?"
)
# Numeric offsets are kept; UTC and GMT are +00:00. Named zones like EDT are dropped, not
# converted: abbreviations are ambiguous (IST, CST) and a wrong zone is worse than none.
_UTC = re.compile(r"\b(?:utc|gmt|z)\b")
_OFFSET = re.compile(r"(?:(?<=\s)|(?<=utc)|(?<=gmt)|(?<=\d\d))([+-])(\d{2}):?(\d{2})(?!\d)")
_NAMED_ZONE = re.compile(
    r"\b(?:et|ct|mt|pt|est|edt|cst|cdt|mst|mdt|pst|pdt|bst|ist|cet|cest|eet|eest|wet|west"
    r"|aest|aedt|jst|hkt|sgt|msk)\b"
)
_TIME_12H = re.compile(r"\b(\d{1,2})(?:[:.](\d{2}))?(?::(\d{2}))?\s*([ap])\.?\s?m\b\.?")
_TIME_24H = re.compile(r"\b(\d{1,2}):(\d{2})(?::(\d{2}))?\b")
_DAY_FORMATS = ("%B %d %Y", "%b %d %Y", "%d %B %Y", "%d %b %Y", "%Y/%m/%d", "%d.%m.%Y")
_SLASHED = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
_MAX_DATE_CHARS = 60

_Clock = tuple[int, int, int]


def _parse_date(text: str) -> str | None:
    """An ISO 8601 date, or date and time, for a date as pages write it; None if it is not."""
    text = text.strip(" ,.;|()")
    if not text or len(text) > _MAX_DATE_CHARS:
        return None
    return _parse_iso(text) or _parse_written(text)


def _parse_iso(text: str) -> str | None:
    match = _ISO_DATE.search(text)
    if match is None:
        return None
    rest = text[: match.start()] + text[match.end() :]
    if any(c.isdigit() for c in rest) or len(rest.split()) > 2:
        return None  # another number beside it: not a plain timestamp
    year, month, day, hour, minute, second, zone = match.groups()
    try:
        when = date(int(year), int(month), int(day))
    except ValueError:
        return None
    clock = (int(hour), int(minute), int(second or 0)) if hour else None
    return _iso(when, clock, _zone(zone.casefold()) if zone else None)


def _parse_written(text: str) -> str | None:
    """ "April 15, 2025", "15 April 2025 7:30 AM", "Tue Apr. 15th, 2025 at 7:30 p.m. EDT"."""
    text = _WEEKDAY.sub(" ", text.casefold())
    zone, text = _take_zone(text)
    clock, text = _take_clock(text)
    text = re.sub(r"(\d)(?:st|nd|rd|th)\b", r"\1", text)
    text = re.sub(r"\b(?:at|on|of|the|um|uhr|h)\b|[,|]", " ", text)
    text = re.sub(r"\bsept\b", "sep", text)
    text = re.sub(r"\b([a-z]{3,9})\.", r"\1", text)  # "Apr." -> "apr"
    day = _parse_day(" ".join(text.split()))
    return _iso(day, clock, zone) if day else None


def _take_zone(text: str) -> tuple[str | None, str]:
    offset = _OFFSET.search(text)
    if offset:
        sign, hours, minutes = offset.groups()
        return f"{sign}{hours}:{minutes}", _UTC.sub(" ", _OFFSET.sub(" ", text))
    zone = "Z" if _UTC.search(text) else None
    return zone, _NAMED_ZONE.sub(" ", _UTC.sub(" ", text))


def _take_clock(text: str) -> tuple[_Clock | None, str]:
    match = _TIME_12H.search(text)
    if match:
        hour, minute, second, half = match.groups()
        hour_24 = int(hour) % 12 + (12 if half == "p" else 0)
        clock = _valid_clock(hour_24, int(minute or 0), int(second or 0), int(hour) <= 12)
    else:
        match = _TIME_24H.search(text)
        if match is None:
            return None, text
        hour, minute, second = match.groups()
        clock = _valid_clock(int(hour), int(minute), int(second or 0), True)
    return clock, text[: match.start()] + " " + text[match.end() :]


def _valid_clock(hour: int, minute: int, second: int, ok: bool) -> _Clock | None:
    valid = ok and hour < 24 and minute < 60 and second < 60
    return (hour, minute, second) if valid else None


def _parse_day(text: str) -> date | None:
    for fmt in _DAY_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    slashed = _SLASHED.fullmatch(text)
    if slashed is None:
        return None
    # 04/15/2025 is US order and 15/04/2025 European; 04/05/2025 could be either, so no date.
    first, second, year = (int(n) for n in slashed.groups())
    readings = {_day_or_none(year, m, d) for m, d in ((first, second), (second, first))}
    readings.discard(None)
    return readings.pop() if len(readings) == 1 else None


def _day_or_none(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _zone(text: str) -> str:
    if text in ("z", "utc", "gmt"):
        return "Z"
    digits = text[1:].replace(":", "")
    return f"{text[0]}{digits[:2]}:{digits[2:]}"


def _iso(day: date, clock: _Clock | None, zone: str | None) -> str:
    if clock is None:
        return day.isoformat()  # a zone without a time says nothing
    return datetime(day.year, day.month, day.day, *clock).isoformat() + (zone or "")


# -- bylines and author blurbs -----------------------------------------------------------------

# "By Jane Doe", "BY JANE DOE AND SAM OKAFOR, Reuters", "Written by ...": never a sentence.
_BYLINE = re.compile(
    r"^(?i:by|written by|words by|story by|text by|posted by|published by|reported by)"
    r"\s+[@A-ZÀ-Þ]"
)
_MAX_BYLINE_WORDS = 12
# "By Monday, officials said ..." opens a sentence; a byline does not end like one.
_SENTENCE_END = re.compile(r"[.!?\u2026]" + _CLOSING + "$")
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


def _byline(text: str) -> _Line | None:
    words = len(text.split())
    if _BYLINE.match(text) and words <= _MAX_BYLINE_WORDS and not _SENTENCE_END.search(text):
        return _Line(text, _Kind.BYLINE)
    if _CREDIT.search(text) and words <= _MAX_CREDIT_WORDS:
        return _Line(text, _Kind.BYLINE)
    return None


def _bio(text: str) -> _Line | None:
    if len(text.split()) <= _MAX_BIO_WORDS and _BIO.match(text) and _JOURNALISM.search(text):
        return _Line(text, _Kind.BIO)
    return None


# -- short UI lines ------------------------------------------------------------------------------

# Words that make up buttons and share bars; a short line of nothing else is chrome.
# (A word list reads better as one string than as eighty quoted words.)
_UI_WORDS = frozenset(
    """view views share shares shared print email e-mail mail facebook twitter x linkedin
    whatsapp reddit pinterest telegram flipboard threads bluesky instagram youtube tiktok
    messenger sms copy link save saved bookmark tweet pin like likes follow subscribe menu
    search home close login logout register gift listen watch play pause video videos
    photos gallery audio transcript more less next previous prev back top accept reject
    agree ok okay dismiss expand collapse loading advertisement sponsored newsletter
    newsletters account settings donate feedback corrections comment comments""".split()  # noqa: SIM905
)
_UI_PHRASES = frozenset(
    (
        "sign in",
        "log in",
        "sign up",
        "log out",
        "sign out",
        "read more",
        "continue reading",
        "keep reading",
        "show more",
        "load more",
        "see more",
        "see all",
        "view all",
        "skip to content",
        "skip to main content",
        "skip to navigation",
        "back to top",
        "listen to this article",
        "copy link",
        "link copied",
        "manage preferences",
        "got it",
        "i agree",
        "my account",
        "toggle navigation",
        "open menu",
        "close menu",
        "show caption",
        "hide caption",
        "enlarge this image",
        "next article",
        "previous article",
        "font size",
        "text size",
        "share this",
        "share this article",
        "share this story",
        "email this",
        "support us",
        "report an error",
        "report a typo",
        "ad feedback",
        "close ad",
        "report ad",
        "story continues below",
        "article continues below",
        "scroll to continue",
        "click to expand",
        "opens in new window",
        "gift article",
        "follow us",
        "please wait",
    )
)
_MAX_UI_WORDS = 6
# Share and reaction widgets: a few words ending in a count ("TwitterveryGood! (3918)").
_WIDGET_COUNT = re.compile(r"[(\[]\s*\d[\d.,]*\s*[km]?\s*[)\]]$", re.I)
_MAX_WIDGET_WORDS = 4
_COUNTER = re.compile(r"^\d[\d.,]*[km]?\s+(?:shares?|likes?|views?|reactions?|reads?)$", re.I)
_READING_TIME = re.compile(r"^\d+\s*-?\s*(?:mins?|minutes?)(?:\s+(?:read|listen|watch))?$", re.I)
# "Advertisement", "Story continues below advertisement", "Sponsored".
_ADVERT = re.compile(r"\b(?:advertisement|advertising|sponsored)\b|^ads?$", re.I)


def _short_chrome(text: str) -> _Line | None:
    """Buttons, share bars, counters, reading times and advert slots."""
    words = len(text.split())
    if not any(char.isalpha() for char in text):
        return _Line(text, _Kind.CHROME)  # separators, counters, "•••" (dates come earlier)
    if words > _MAX_UI_WORDS:
        return None
    key = _header_key(text)
    tokens = re.findall(r"[\w'-]+", key)
    ui = key in _UI_PHRASES or (bool(tokens) and all(t in _UI_WORDS for t in tokens))
    widget = words <= _MAX_WIDGET_WORDS and _WIDGET_COUNT.search(text) is not None
    if ui or widget or _COUNTER.match(text) or _READING_TIME.match(text) or _ADVERT.search(text):
        return _Line(text, _Kind.CHROME)
    return None


# -- prose or headline -----------------------------------------------------------------------------

# A full stop (not an ellipsis) at the end, maybe inside closing quotes or brackets.
_PERIOD_END = re.compile(r"(?<!\.)\." + _CLOSING + "$")
# "?", "!" or an ellipsis: headlines end like this too ("Could X pave the way?").
_OTHER_END = re.compile(r"(?:[!?\u2026]|\.\.\.)" + _CLOSING + "$")
# A sentence boundary inside the line: a headline is one sentence, prose often more.
_INNER_SENTENCE = re.compile(
    r"[a-z0-9)\"\u201d\u2019][.!?]" + _CLOSING + r"\s+[\"\u201c\u2018]?[A-Z]"
)
_MIN_SENTENCE_WORDS = 3
_MIN_COLON_PROSE_WORDS = 6


def _prose_or_headline(text: str) -> _Line:
    words = len(text.split())
    if _PERIOD_END.search(text):
        prose = words >= _MIN_SENTENCE_WORDS
    elif _OTHER_END.search(text):
        prose = words >= _LONG_LINE_WORDS or _INNER_SENTENCE.search(text) is not None
    elif text.endswith(":"):
        prose = words >= _MIN_COLON_PROSE_WORDS  # 'Mayorkas said:' before a quote
    else:
        prose = words >= _LONG_LINE_WORDS
    return _Line(text, _Kind.PARAGRAPH if prose else _Kind.HEADLINE)


# In this order: long chrome patterns first (a cookie banner is a sentence), then the
# labelled lines, then the short UI lines; whatever is left is prose or a headline.
_RULES: tuple[Callable[[str], _Line | None], ...] = (
    _sentence_chrome,
    _tag_line,
    _list_header,
    _breadcrumb,
    _date_line,
    _byline,
    _bio,
    _short_chrome,
)


# -- layout: where the story starts and ends -------------------------------------------------


def _story_start(lines: Sequence[_Line]) -> int | None:
    """The first story paragraph: prose that more prose follows, or one long paragraph."""
    in_list = False
    for i, line in enumerate(lines):
        if line.kind is _Kind.LIST_HEADER:
            in_list = True
        elif line.kind in _ARTICLE_HEADER_KINDS:
            in_list = False  # a byline or date line: this is the article's own header
        elif line.prose and (
            _story_continues(lines, i) or (line.words >= _LONG_PARAGRAPH_WORDS and not in_list)
        ):
            return i
    return None


def _prose_follows(lines: Sequence[_Line], i: int) -> bool:
    """Whether the next line, skipping chrome (adverts sit between paragraphs), is prose."""
    after = _next_significant(lines, i)
    return after is not None and lines[after].prose


def _story_continues(lines: Sequence[_Line], i: int) -> bool:
    """Prose follows, or a sub-heading and then two paragraphs (a teaser list alternates
    headline and sentence, so one paragraph after a headline proves nothing)."""
    after = _next_significant(lines, i)
    if after is None:
        return False
    if lines[after].prose:
        return True
    heading = lines[after].kind is _Kind.HEADLINE and not lines[after].bulleted
    resumed = _next_significant(lines, after) if heading else None
    return resumed is not None and lines[resumed].prose and _prose_follows(lines, resumed)


def _next_significant(lines: Sequence[_Line], i: int) -> int | None:
    return next((j for j in range(i + 1, len(lines)) if lines[j].kind is not _Kind.CHROME), None)


def _drop_inline_boxes(lines: Sequence[_Line], start: int) -> list[_Line]:
    """A "Related" box of a few links inside the story, with story after it, is chrome."""
    out = list(lines)
    i = start
    while i < len(out):
        end = _inline_box_end(out, i) if out[i].kind is _Kind.LIST_HEADER else None
        if end is None:
            i += 1
            continue
        out[i:end] = [replace(line, kind=_Kind.CHROME) for line in out[i:end]]
        i = end
    return out


def _inline_box_end(lines: Sequence[_Line], header: int) -> int | None:
    """Where the story resumes after the list under ``header``; None if it does not."""
    j, items = header + 1, 0
    while j < len(lines) and not lines[j].prose and lines[j].kind in _STORY_KINDS | {_Kind.CHROME}:
        items += lines[j].kind is not _Kind.CHROME
        j += 1
    # The story resumes only if two paragraphs follow: one could be a teaser.
    resumes = j < len(lines) and lines[j].prose and _prose_follows(lines, j)
    return j if resumes and 1 <= items <= _MAX_BOX_ITEMS else None


def _region_end(lines: Sequence[_Line], start: int) -> int:
    """The first list of other headlines or the comments after the story starts."""
    tails = (_Kind.LIST_HEADER, _Kind.COMMENTS)
    return next((i for i in range(start, len(lines)) if lines[i].kind in tails), len(lines))


def _bio_start(lines: Sequence[_Line], start: int, end: int) -> int:
    """Where the author blurb closes the story; a bio-like line that story follows stays."""
    for i in range(start, end):
        if lines[i].kind is _Kind.BIO and not _story_follows(lines[i + 1 : end]):
            return i
    return end


def _story_follows(lines: Sequence[_Line]) -> bool:
    """Two paragraphs in a row (co-authors' bios, one after the other, are not story)."""
    return any(
        line.kind is _Kind.PARAGRAPH and not line.bulleted and _prose_follows(lines, i)
        for i, line in enumerate(lines)
    )


def _mark_author_bios(lines: Sequence[_Line]) -> list[_Line]:
    """A bio of someone the byline names is the author's blurb, wherever it stands."""
    bylines = " ".join(line.text for line in lines if line.kind in _ARTICLE_HEADER_KINDS)
    out: list[_Line] = []
    for line in lines:
        match = _BIO.match(line.text) if line.kind is _Kind.BIO else None
        if match and match.group("name").casefold() in bylines.casefold():
            line = replace(line, kind=_Kind.BYLINE)
        out.append(line)
    return out


# -- assembling the page -------------------------------------------------------------------


def _body(lines: Sequence[_Line], title: str) -> str:
    kept = [
        line
        for line in lines
        if line.kind in _STORY_KINDS and line.text.casefold() != title.casefold()
    ]
    return "\n\n".join(line.text for line in _trim_trailing_headlines(kept))


def _trim_trailing_headlines(lines: Sequence[_Line]) -> Sequence[_Line]:
    """Without headline-like lines at the end: other stories' headlines, set without a header.

    A story ends on a sentence, so a short line ending in a full stop stays: it is the
    story's closing paragraph, unless it sits inside the run of headlines (a headline before
    it and after it, and another before that), as some headlines end in a full stop.
    """
    end = len(lines)
    while end > 0:
        last = lines[end - 1]
        inside_run = (
            end < len(lines)
            and end >= 3
            and last.words < _LONG_LINE_WORDS
            and all(line.kind is _Kind.HEADLINE for line in lines[end - 3 : end - 1])
        )
        if last.kind is not _Kind.HEADLINE and not inside_run:
            break
        end -= 1
    return lines[:end]


# Headlines run to five words or more; a shorter line above the story is more often the
# site's name or a section label, so it is the title only when no longer line is there.
_HEADLINE_WORDS = 5
_MIN_TITLE_WORDS = 3


def _title(header: Sequence[_Line]) -> str:
    """The story's headline among the lines above the story.

    What stands above a breadcrumb or a list header is the site's own header or other
    stories, so only the lines after the last of those count (all, if none remain). After a
    breadcrumb the headline comes first (a standfirst or a section label may follow it);
    after a list its items come first, so the title is the last headline before the byline.
    """
    marks = [i for i, line in enumerate(header) if line.kind in _TITLE_FENCES]
    zone = header[marks[-1] + 1 :] if marks else header
    if not _headlines(zone):
        zone, marks = header, []
    after_list = bool(marks) and header[marks[-1]].kind is _Kind.LIST_HEADER
    title = _title_after_list(zone) if after_list else _first_headline(zone)
    # "Title - Site" and "Title" both there: the clean one is the shorter prefix.
    shorter = [t for t in _headlines(zone) if t != title and title.startswith(t)]
    return min(shorter, key=len) if shorter else title


_TITLE_FENCES = {_Kind.BREADCRUMB, _Kind.LIST_HEADER}


def _headlines(lines: Sequence[_Line], min_words: int = _MIN_TITLE_WORDS) -> list[str]:
    return [
        line.text
        for line in lines
        if line.kind is _Kind.HEADLINE and not line.bulleted and line.words >= min_words
    ]


def _first_headline(zone: Sequence[_Line]) -> str:
    full = _headlines(zone, _HEADLINE_WORDS)
    if full:
        return full[0]
    short = _headlines(zone) or _headlines(zone, 1)
    return short[-1] if short else ""


def _title_after_list(zone: Sequence[_Line]) -> str:
    signal = next((i for i, line in enumerate(zone) if line.kind in _ARTICLE_HEADER_KINDS), None)
    candidates = _headlines(zone[:signal]) or _headlines(zone) or _headlines(zone, 1)
    return candidates[-1] if candidates else ""


def _storyless_title(lines: Sequence[_Line]) -> str:
    """For a page without a story, the first headline above any list (for messages)."""
    for line in lines:
        if line.kind is _Kind.LIST_HEADER:
            break
        if line.kind is _Kind.HEADLINE and not line.bulleted and line.words >= _MIN_TITLE_WORDS:
            return line.text
    return ""


def _published_at(lines: Sequence[_Line]) -> str | None:
    """The first publication date stated; an update time only when there is no other."""
    dated = [line for line in lines if line.kind is _Kind.DATE and line.date]
    first = next((line for line in dated if not line.updated), dated[0] if dated else None)
    return first.date if first else None


def _tags(lines: Sequence[_Line]) -> tuple[str, ...]:
    found = (tag.strip() for line in lines if line.kind is _Kind.TAGS for tag in line.tags)
    return tuple(dict.fromkeys(tag for tag in found if tag))
