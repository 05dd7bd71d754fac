"""Every date ingest reads, parsed in one place.

    parse_datetime(value)     a record's ``published_at``: strict ISO 8601 -> aware datetime
    optional_datetime(value)  ``published_at`` as records and library callers give it
    parse_page_date(text)     a date as a scraped page prints it -> ISO 8601 text, or None
    lead_date(title, body)    the first full date written in a story's lead, or None
    written_year(title, body) the latest year a story writes anywhere, or None

Three parsers because the inputs differ: a field whose documented forms are a contract,
a page line whose parse also decides whether the line is a date line (and so whether it
stays out of the story), and free text searched for a date. Standard library only, by
choice: ``dateutil.parser.isoparse`` accepts more than the documented forms (``20240501``,
``2024-05``, week dates, any date-time separator, ``24:00``) and ``datetime.fromisoformat``
differs between Python versions, so the field keeps its regex; ``dateutil.parser.parse``
fills missing parts from today ("April 2025" is April 5), reads ``04.05.2025`` month first
and takes any word order, so page lines keep fixed formats; and no library searches text
for full dates only (``dateparser``'s ``search_dates`` reads "Thursday, March 14, 2013" as
this year's March 14, and takes a quarter of a second to import).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

from recommender.errors import InvalidArgumentError

__all__ = [
    "LEAD_CHARS",
    "lead_date",
    "optional_datetime",
    "parse_datetime",
    "parse_page_date",
    "written_year",
]

# Same singleton as timezone.utc; datetime.UTC would need Python 3.11.
_UTC = timezone(timedelta(0))


def _midnight_utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=_UTC)


def _day_or_none(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


# --- the published_at field ------------------------------------------------------------

_ISO_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?([Zz]|[+-]\d{2}(?::?\d{2})?)?)?",
    re.ASCII,
)


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


def optional_datetime(value: object) -> datetime | None:
    """A record's ``published_at``: a string as :func:`parse_datetime` reads it, a date or
    datetime (naive means UTC), or None for none or a blank string."""
    # Library callers may hand over date objects rather than strings.
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=_UTC)
    if isinstance(value, date):
        return _midnight_utc(value)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise _bad_date(value)
    return parse_datetime(value)


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


# --- dates as pages print them -----------------------------------------------------------

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
_UTC_NAME = re.compile(r"\b(?:utc|gmt|z)\b")
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


def parse_page_date(text: str) -> str | None:
    """An ISO 8601 date, or date and time, for a date as pages write it; None if it is not.

    ISO forms, "April 15, 2025", "15 April 2025 7:30 AM", "Tue Apr. 15th, 2025 at 7:30 p.m.
    EDT", "15.04.2025, 07:30", and 04/15/2025 or 15/04/2025 when only one reading is a day.
    A time keeps its numeric offset (UTC and GMT become ``Z``); named zones are dropped.
    """
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
    clock = _valid_clock(int(hour), int(minute), int(second or 0), True) if hour else None
    if hour and clock is None:
        return None  # "2025-04-15 25:00" is no timestamp
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
        return f"{sign}{hours}:{minutes}", _UTC_NAME.sub(" ", _OFFSET.sub(" ", text))
    zone = "Z" if _UTC_NAME.search(text) else None
    return zone, _NAMED_ZONE.sub(" ", _UTC_NAME.sub(" ", text))


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


def _zone(text: str) -> str:
    if text in ("z", "utc", "gmt"):
        return "Z"
    digits = text[1:].replace(":", "")
    return f"{text[0]}{digits[:2]}:{digits[2:]}"


def _iso(day: date, clock: _Clock | None, zone: str | None) -> str:
    if clock is None:
        return day.isoformat()  # a zone without a time says nothing
    return datetime(day.year, day.month, day.day, *clock).isoformat() + (zone or "")


# --- the date written in a story's lead ----------------------------------------------------
#
# Wire copy, archives and scraped text often arrive without a publication date, yet their
# first lines usually state it: a dateline ("Thursday, March 14, 2013"), a "Posted:
# 03/14/2013" stamp, an ISO date. The time prior (coverage of one story clusters in time)
# can then work for those articles too. Only the first LEAD_CHARS characters are read, and
# only full dates with a year count: a bare "March 3" or "Tuesday" says nothing about the
# year, and a date deep in the body is more often background ("the 2008 crash") than the
# story's own. Slashed dates are read month first (US style) unless the first number
# cannot be a month.

#: How much of title + body is searched for a date.
LEAD_CHARS = 400
_MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_MONTH_NUMBERS = {name[:3]: number for number, name in enumerate(_MONTHS, 1)}
_MONTH = r"(?P<month>jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
_LEAD_PATTERNS = (
    # March 14, 2013 / Mar. 14 2013
    re.compile(rf"\b{_MONTH}\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?,?\s+{_YEAR}\b", re.IGNORECASE),
    # 14 March 2013
    re.compile(rf"\b(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+{_MONTH},?\s+{_YEAR}\b", re.IGNORECASE),
    # 2013-03-14
    re.compile(r"\b(?P<year>(?:19|20)\d\d)-(?P<month>\d\d)-(?P<day>\d\d)(?!\d)"),
    # 03/14/2013, 03 / 14 / 2013, 12/16/08
    re.compile(r"\b(?P<month>\d{1,2})\s*/\s*(?P<day>\d{1,2})\s*/\s*(?P<year>(?:19|20)?\d\d)\b"),
)


def lead_date(title: str, body: str, *, now: datetime | None = None) -> datetime | None:
    """The first full date written in the article's lead (UTC midnight), or None."""
    lead = f"{title}\n{body}"[:LEAD_CHARS]
    latest = (now or datetime.now(timezone.utc)).year + 1
    found: list[tuple[int, datetime]] = []
    for pattern in _LEAD_PATTERNS:
        for match in pattern.finditer(lead):
            day = _lead_match_date(match)
            if day is not None and 1900 <= day.year <= latest:
                found.append((match.start(), day))
                break  # the first of each form is enough: the earliest one wins
    return min(found, key=lambda item: item[0])[1] if found else None


def _lead_match_date(match: re.Match[str]) -> datetime | None:
    month_text, day, year = match["month"], int(match["day"]), int(match["year"])
    if len(match["year"]) == 2:
        year += 2000
    if month_text.isdigit():
        month = int(month_text)
        if month > 12 >= day:  # 14/03/2013: day first
            month, day = day, month
    else:
        # The patterns ignore case the Unicode way, so "\u017fep" (long s) matched "sep": casefold
        # maps it back, and a prefix that still names no month is no date.
        number = _MONTH_NUMBERS.get(month_text[:3].casefold())
        if number is None:
            return None
        month = number
    found = _day_or_none(year, month, day)
    return _midnight_utc(found) if found is not None else None


# A year as a story writes it: four digits standing alone, not part of a word or a longer
# number, an amount ("$2010", "2,010", "2010.5") or a percentage; "1990-2010" gives both.
_WRITTEN_YEAR = re.compile(r"(?<![\w$£€.,])(?:19|20)\d\d(?![\w%]|[.,]\d)")


def written_year(title: str, body: str, *, now: datetime | None = None) -> int | None:
    """The latest year (1900 to next year) the story writes anywhere, or None.

    A news story writes the years of its background and, nearly always, its own: the latest
    one is its year. It tells an undated story's year apart from a same-topic story years
    away (ecbplus: the same event's articles agree on it 70% of the time where both write
    one, two different events on one topic 3%; docs/relevance.md). Counts that look like
    years ("2000 troops") and plans ("by 2030", beyond next year) are the noise it carries.
    """
    latest = (now or datetime.now(timezone.utc)).year + 1
    years = [int(y) for y in _WRITTEN_YEAR.findall(f"{title}\n{body}")]
    found = [y for y in years if y <= latest]
    return max(found) if found else None
