"""A query as callers give it, checked: k, ids, a story's text and its dates.

Every way in (library, CLI, service) passes through these checks, so a bad value
is refused with the same message wherever it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recommender.errors import InvalidArgumentError
from recommender.filters import DateLike, Filters, timestamp
from recommender.index.state import dated_years
from recommender.ingest.dates import lead_date, written_year
from recommender.text import checked_text
from recommender.types import Article

__all__ = [
    "TextQuery",
    "check_fresh",
    "check_k",
    "check_page",
    "text_query",
]


@dataclass(frozen=True)
class TextQuery:
    """A story that need not be in the index, as ``similar`` ranks it."""

    title: str
    body: str
    #: Epoch seconds for the time prior (NaN: unknown).
    when: float
    #: The stated date, which editorial rules read (NaN: none).
    stated: float
    section: str | None
    #: The year for the time prior's year scale: ``when``'s, else the latest year the
    #: story writes (NaN: neither).
    year: float = float("nan")


def check_k(k: int) -> None:
    """Raise :class:`InvalidArgumentError` unless ``k`` is a positive integer."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidArgumentError(f"k must be a positive integer, got {k!r}")


def check_page(offset: int, limit: int) -> None:
    """Refuse a page that does not start at an integer >= 0 or holds not 1-1000 items."""
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidArgumentError(f"offset must be an integer >= 0, got {offset!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise InvalidArgumentError(f"limit must be an integer in 1-1000, got {limit!r}")


def check_fresh(fresh: bool, filters: Filters) -> None:
    """Refuse filters on a query answered from stored lists (they are unfiltered)."""
    if not fresh and (filters.restricts or filters.exclude):
        raise InvalidArgumentError(
            "fresh=False answers from stored, unfiltered lists; drop the filters "
            "(section, since, until, language, exclude) or ask for a fresh list"
        )


def text_query(
    text: str | None,
    title: str | None,
    body: str | None,
    article: Article | None,
    published_at: DateLike | None,
    lead_dates: bool,
) -> TextQuery:
    """The story of a ``similar`` query (``text``, ``title``/``body`` or an ``article``),
    checked, with its dates and, for an ``article``, its section.

    The stated date is ``published_at`` or the article's own; the time prior also
    takes, with ``lead_dates``, a date written in the lead of an undated story.
    """
    title, body = _story(text=text, title=title, body=body, article=article)
    when = timestamp(published_at, "published_at")
    if article is not None and article.published_at is not None:
        when = article.published_at.timestamp()
    stated = float("nan") if when is None else when
    if when is None and lead_dates:
        lead = lead_date(title, body)
        when = lead.timestamp() if lead else None
    section = article.section if article is not None else None
    time = float("nan") if when is None else when
    return TextQuery(title, body, time, stated, section, _year(time, title, body))


def _year(time: float, title: str, body: str) -> float:
    """A query's year for the time prior's year scale, as an indexed article's is read."""
    written = written_year(title, body)
    return float(dated_years(np.array([time]), np.array([written], dtype=np.float64))[0])


def _story(
    *, text: str | None, title: str | None, body: str | None, article: Article | None
) -> tuple[str, str]:
    """The (title, body) of a story given as ``text``, ``title``/``body`` or an ``article``."""
    if article is not None:
        return article.title, article.body
    if text is not None and (title is not None or body is not None):
        raise InvalidArgumentError("give either text or title/body, not both", field="text")
    title, body = (title or "").strip(), (text if text is not None else body or "").strip()
    checked_text(title, field="title")
    checked_text(body, field="text" if text is not None else "body")
    if not title and not body:
        raise InvalidArgumentError(
            "give text, or a title and/or body that is not empty", field="text"
        )
    return title, body
