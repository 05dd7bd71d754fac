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
from dataclasses import replace

from recommender.ingest.page import Page
from recommender.ingest.scraped_lines import (
    ARTICLE_HEADER_KINDS,
    LONG_LINE_WORDS,
    Kind,
    Line,
    list_header,
    prose_or_headline,
    sentence_chrome,
    short_chrome,
    split_lines,
)
from recommender.ingest.scraped_meta import (
    bio,
    breadcrumb,
    byline,
    date_line,
    mark_author_bios,
    mark_tag_lists,
    stated_date,
    stated_section,
    stated_tags,
    tag_line,
)

__all__ = ["parse_scraped_text"]


# A lone paragraph this long opens a story even with no second paragraph after it (a brief).
_LONG_PARAGRAPH_WORDS = 25
# "Related" boxes inside a story hold a few links; a longer list is the page's tail.
_MAX_BOX_ITEMS = 5

# The kinds kept in the body: prose, sub-headings, and author-like sentences that more story
# follows (a story about a journalist, not the page's author blurb).
_STORY_KINDS = {Kind.PARAGRAPH, Kind.HEADLINE, Kind.BIO}
# What a "By Jane Doe | April 15, 2025 | 3 min read" line may be made of.
_META_KINDS = {Kind.DATE, Kind.BYLINE, Kind.CHROME}


def parse_scraped_text(text: str) -> Page:
    """The story of a scraped plain-text news page: title, body, date, section and tags.

    The body is the story's paragraphs separated by blank lines, or empty when the page has
    no story (only chrome and headlines); the caller decides what to do with such a page.
    """
    lines = [_classify(line, bulleted) for line, bulleted in split_lines(text)]
    lines = mark_author_bios(mark_tag_lists(lines))
    start = _story_start(lines)
    if start is None:
        return Page(
            title=_storyless_title(lines), published_at=stated_date(lines), tags=stated_tags(lines)
        )
    lines = _drop_inline_boxes(lines, start)
    region_end = _region_end(lines, start)
    end = _bio_start(lines, start, region_end)
    title = _title(lines[:start])
    return Page(
        title=title,
        body=_body(lines[start:end], title),
        published_at=stated_date(lines[:region_end]),
        section=stated_section(lines[:start], title),
        tags=stated_tags(lines[:region_end]),
    )


# -- classifying one line -----------------------------------------------------------------

# "By Jane Doe | April 15, 2025 | 3 min read": metadata set side by side on one line.
_PART_SEPARATOR = re.compile(r"\s+[|·•]\s+|\s+/\s+")
_MAX_META_LINE_WORDS = 25


def _classify(text: str, bulleted: bool = False) -> Line:
    """What one line of the page is."""
    line = _classify_composite(text) or _classify_single(text)
    return replace(line, bulleted=bulleted)


def _classify_composite(text: str) -> Line | None:
    """A line of side-by-side metadata (byline, date, reading time), as one date line."""
    parts = _PART_SEPARATOR.split(text)
    if len(parts) < 2 or len(text.split()) > _MAX_META_LINE_WORDS:
        return None
    lines = [_classify_single(part) for part in parts]
    if not all(line.kind in _META_KINDS for line in lines):
        return None
    dated = [line for line in lines if line.kind is Kind.DATE]
    if not dated:
        return Line(text, Kind.BYLINE)
    best = next((line for line in dated if line.date and not line.updated), dated[0])
    return replace(best, text=text)


def _classify_single(text: str) -> Line:
    for rule in _RULES:
        line = rule(text)
        if line is not None:
            return line
    return prose_or_headline(text)


# In this order: long chrome patterns first (a cookie banner is a sentence), then the
# labelled lines, then the short UI lines; whatever is left is prose or a headline.
_RULES: tuple[Callable[[str], Line | None], ...] = (
    sentence_chrome,
    tag_line,
    list_header,
    breadcrumb,
    date_line,
    byline,
    bio,
    short_chrome,
)


# -- layout: where the story starts and ends -------------------------------------------------


def _story_start(lines: Sequence[Line]) -> int | None:
    """The first story paragraph: prose that more prose follows, or one long paragraph."""
    in_list = False
    for i, line in enumerate(lines):
        if line.kind is Kind.LIST_HEADER:
            in_list = True
        elif line.kind in ARTICLE_HEADER_KINDS:
            in_list = False  # a byline or date line: this is the article's own header
        elif line.prose and (
            _story_continues(lines, i) or (line.words >= _LONG_PARAGRAPH_WORDS and not in_list)
        ):
            return i
    return None


def _prose_follows(lines: Sequence[Line], i: int) -> bool:
    """Whether the next line, skipping chrome (adverts sit between paragraphs), is prose."""
    after = _next_significant(lines, i)
    return after is not None and lines[after].prose


def _story_continues(lines: Sequence[Line], i: int) -> bool:
    """Prose follows, or a sub-heading and then two paragraphs (a teaser list alternates
    headline and sentence, so one paragraph after a headline proves nothing)."""
    after = _next_significant(lines, i)
    if after is None:
        return False
    if lines[after].prose:
        return True
    heading = lines[after].kind is Kind.HEADLINE and not lines[after].bulleted
    resumed = _next_significant(lines, after) if heading else None
    return resumed is not None and lines[resumed].prose and _prose_follows(lines, resumed)


def _next_significant(lines: Sequence[Line], i: int) -> int | None:
    return next((j for j in range(i + 1, len(lines)) if lines[j].kind is not Kind.CHROME), None)


def _drop_inline_boxes(lines: Sequence[Line], start: int) -> list[Line]:
    """A "Related" box of a few links inside the story, with story after it, is chrome."""
    out = list(lines)
    i = start
    while i < len(out):
        end = _inline_box_end(out, i) if out[i].kind is Kind.LIST_HEADER else None
        if end is None:
            i += 1
            continue
        out[i:end] = [replace(line, kind=Kind.CHROME) for line in out[i:end]]
        i = end
    return out


def _inline_box_end(lines: Sequence[Line], header: int) -> int | None:
    """Where the story resumes after the list under ``header``; None if it does not."""
    j, items = header + 1, 0
    while j < len(lines) and not lines[j].prose and lines[j].kind in _STORY_KINDS | {Kind.CHROME}:
        items += lines[j].kind is not Kind.CHROME
        j += 1
    # The story resumes only if two paragraphs follow: one could be a teaser.
    resumes = j < len(lines) and lines[j].prose and _prose_follows(lines, j)
    return j if resumes and 1 <= items <= _MAX_BOX_ITEMS else None


def _region_end(lines: Sequence[Line], start: int) -> int:
    """The first list of other headlines or the comments after the story starts."""
    tails = (Kind.LIST_HEADER, Kind.COMMENTS)
    return next((i for i in range(start, len(lines)) if lines[i].kind in tails), len(lines))


def _bio_start(lines: Sequence[Line], start: int, end: int) -> int:
    """Where the author blurb closes the story; a bio-like line that story follows stays."""
    for i in range(start, end):
        if lines[i].kind is Kind.BIO and not _story_follows(lines[i + 1 : end]):
            return i
    return end


def _story_follows(lines: Sequence[Line]) -> bool:
    """Two paragraphs in a row (co-authors' bios, one after the other, are not story)."""
    return any(
        line.kind is Kind.PARAGRAPH and not line.bulleted and _prose_follows(lines, i)
        for i, line in enumerate(lines)
    )


# -- assembling the page -------------------------------------------------------------------


def _body(lines: Sequence[Line], title: str) -> str:
    kept = [
        line
        for line in lines
        if line.kind in _STORY_KINDS and line.text.casefold() != title.casefold()
    ]
    return "\n\n".join(line.text for line in _trim_trailing_headlines(kept))


def _trim_trailing_headlines(lines: Sequence[Line]) -> Sequence[Line]:
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
            and last.words < LONG_LINE_WORDS
            and all(line.kind is Kind.HEADLINE for line in lines[end - 3 : end - 1])
        )
        if last.kind is not Kind.HEADLINE and not inside_run:
            break
        end -= 1
    return lines[:end]


# Headlines run to five words or more; a shorter line above the story is more often the
# site's name or a section label, so it is the title only when no longer line is there.
_HEADLINE_WORDS = 5
_MIN_TITLE_WORDS = 3


def _title(header: Sequence[Line]) -> str:
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
    after_list = bool(marks) and header[marks[-1]].kind is Kind.LIST_HEADER
    title = _title_after_list(zone) if after_list else _first_headline(zone)
    # "Title - Site" and "Title" both there: the clean one is the shorter prefix.
    shorter = [t for t in _headlines(zone) if t != title and title.startswith(t)]
    return min(shorter, key=len) if shorter else title


_TITLE_FENCES = {Kind.BREADCRUMB, Kind.LIST_HEADER}


def _headlines(lines: Sequence[Line], min_words: int = _MIN_TITLE_WORDS) -> list[str]:
    return [
        line.text
        for line in lines
        if line.kind is Kind.HEADLINE and not line.bulleted and line.words >= min_words
    ]


def _first_headline(zone: Sequence[Line]) -> str:
    full = _headlines(zone, _HEADLINE_WORDS)
    if full:
        return full[0]
    short = _headlines(zone) or _headlines(zone, 1)
    return short[-1] if short else ""


def _title_after_list(zone: Sequence[Line]) -> str:
    signal = next((i for i, line in enumerate(zone) if line.kind in ARTICLE_HEADER_KINDS), None)
    candidates = _headlines(zone[:signal]) or _headlines(zone) or _headlines(zone, 1)
    return candidates[-1] if candidates else ""


def _storyless_title(lines: Sequence[Line]) -> str:
    """For a page without a story, the first headline above any list (for messages)."""
    for line in lines:
        if line.kind is Kind.LIST_HEADER:
            break
        if line.kind is Kind.HEADLINE and not line.bulleted and line.words >= _MIN_TITLE_WORDS:
            return line.text
    return ""
