"""One extracted page: what the HTML and scraped-text extractors find, as a value."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["MIN_BODY_WORDS", "Page"]

#: A page whose story text is shorter than this is rejected: what remains of a page
#: without a story (a menu item, a copyright line) is a few words, and a real story,
#: even a brief, is a sentence or more.
MIN_BODY_WORDS = 10


@dataclass(frozen=True)
class Page:
    """What extraction found in one page; empty strings and None where it found nothing."""

    title: str = ""
    body: str = ""
    #: ISO 8601 as the page gave it (date or date and time); parsed when it becomes an Article.
    published_at: str | None = None
    url: str | None = None
    language: str | None = None
    section: str | None = None
    tags: tuple[str, ...] = ()

    def problem(self) -> str | None:
        """Why this page cannot be indexed (no story text), or None."""
        words = len(self.body.split())
        if words >= MIN_BODY_WORDS:
            return None
        # No title or text quoted: the file may be anything with a page's extension.
        return f"no story text found: {words} words, fewer than {MIN_BODY_WORDS}"

    def to_record(self, article_id: str) -> dict[str, Any]:
        """The page as an input record (the JSONL format ``build`` reads)."""
        record: dict[str, Any] = {"id": article_id}
        for name, value in asdict(self).items():
            if value not in (None, "", ()):
                record[name] = list(value) if isinstance(value, tuple) else value
        return record
