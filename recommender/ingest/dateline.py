"""The date a story was written, read from its first lines when the record carries none.

Wire copy, archives and scraped text often arrive without a publication date,
yet their first lines usually state it: a dateline ("Thursday, March 14,
2013"), a "Posted: 03/14/2013" stamp, an ISO date. The time prior (coverage
of one story clusters in time) can then work for those articles too.

Only the first ``LEAD_CHARS`` characters are read, and only full dates with a
year count: a bare "March 3" or "Tuesday" says nothing about the year, and a
date deep in the body is more often background ("the 2008 crash") than the
story's own. Slashed dates are read month first (US style) unless the first
number cannot be a month.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

__all__ = ["LEAD_CHARS", "lead_date"]

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
_PATTERNS = (
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
    for pattern in _PATTERNS:
        for match in pattern.finditer(lead):
            day = _date(match)
            if day is not None and 1900 <= day.year <= latest:
                found.append((match.start(), day))
                break  # the first of each form is enough: the earliest one wins
    return min(found, key=lambda item: item[0])[1] if found else None


def _date(match: re.Match[str]) -> datetime | None:
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
    try:
        return datetime(year, month, day, tzinfo=timezone.utc)
    except ValueError:
        return None
