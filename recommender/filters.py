"""Query filters, validated once at the library edge."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from recommender.errors import InvalidArgumentError
from recommender.ingest.dates import parse_datetime
from recommender.text import checked_text

__all__ = ["DateLike", "Filters", "timestamp"]

DateLike = str | date | datetime
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Filters:
    """Restrictions on which articles may appear in a related list.

    Sections and languages match case-insensitively; several values are an OR.
    ``since``/``until`` are epoch seconds, ``since`` inclusive and ``until``
    exclusive; articles without a date never pass a date filter.
    """

    sections: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    since: float | None = None
    until: float | None = None
    exclude: tuple[str, ...] = ()

    @classmethod
    def make(
        cls,
        *,
        section: str | Iterable[str] | None = None,
        language: str | Iterable[str] | None = None,
        since: DateLike | None = None,
        until: DateLike | None = None,
        exclude: str | Iterable[str] = (),
    ) -> Filters:
        """Build filters from user values; a date-only ``until`` covers that whole day."""
        start = _timestamp(since, "since", end_of_day=False)
        end = _timestamp(until, "until", end_of_day=True)
        if start is not None and end is not None and end <= start:
            raise InvalidArgumentError(
                f"until ({until!s}) must be after since ({since!s})", field="until"
            )
        return cls(
            sections=_strings(section, "section"),
            languages=_strings(language, "language"),
            since=start,
            until=end,
            exclude=_strings(exclude, "exclude"),
        )

    @property
    def restricts(self) -> bool:
        """Whether any filter other than ``exclude`` is set."""
        return bool(
            self.sections or self.languages or self.since is not None or self.until is not None
        )


def _strings(value: str | Iterable[str] | None, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    texts = (checked_text(str(v), field=field) for v in value)
    return tuple(dict.fromkeys(t for t in texts if t.strip()))


def timestamp(value: DateLike | None, field: str) -> float | None:
    """Epoch seconds of a date given by a caller (None for none); a bad one names ``field``."""
    return _timestamp(value, field, end_of_day=False)


def _timestamp(value: DateLike | None, name: str, *, end_of_day: bool) -> float | None:
    if value is None or value == "":
        return None
    whole_day = isinstance(value, date) and not isinstance(value, datetime)
    if isinstance(value, str):
        whole_day = bool(_DATE_ONLY.match(value.strip()))
        try:
            moment = parse_datetime(value)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"{name}: {exc}", field=name) from None
    elif isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    else:
        raise InvalidArgumentError(
            f"{name} must be an ISO 8601 date or datetime, got {value!r}", field=name
        )
    if whole_day and end_of_day:
        moment += timedelta(days=1)
    return moment.timestamp()
