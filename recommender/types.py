"""Value types that flow through the engine: records in, matches out."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "Article",
    "ArticleListing",
    "ArticleSummary",
    "Explanation",
    "IndexInfo",
    "Match",
    "Rejection",
    "StoredList",
    "StoredListsStatus",
    "StoredStanding",
    "StoryThread",
    "UpdateReport",
]


@dataclass(frozen=True)
class Article:
    """One news article as the engine stores it.

    ``published_at`` is always timezone-aware (naive inputs are read as UTC),
    so articles from different sources compare without surprises.
    """

    id: str
    body: str
    title: str = ""
    url: str | None = None
    published_at: datetime | None = None
    section: str | None = None
    tags: tuple[str, ...] = ()
    language: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        """Hash of the text that is embedded: equal hashes never need re-encoding."""
        return _sha256(json.dumps([self.title, self.body]))

    @property
    def record_hash(self) -> str:
        """Hash of every stored field: equal hashes mean nothing to update at all."""
        return _sha256(json.dumps(self.to_dict(), sort_keys=True, default=str))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, in the same field names the readers accept."""
        return {
            "id": self.id,
            "title": self.title,
            "body": self.body,
            "url": self.url,
            "published_at": self.published_at.isoformat() if self.published_at else None,
            "section": self.section,
            "tags": list(self.tags),
            "language": self.language,
            "metadata": dict(self.metadata),
        }


@dataclass(frozen=True)
class Explanation:
    """Why a match is in a related list, one field per kind of evidence, strongest first.

    ``terms`` are shared terms weighted as the lexical ranking weighs them (by
    IDF); ``people``, ``places`` and ``organisations`` are names both stories
    mention; ``passages`` is (sentence of the query story, sentence of the
    match) with the most telling words in common, or None.
    """

    terms: tuple[str, ...] = ()
    people: tuple[str, ...] = ()
    places: tuple[str, ...] = ()
    organisations: tuple[str, ...] = ()
    passages: tuple[str, str] | None = None

    def summary(self) -> str:
        """A short reason for people, e.g. "shared people: Lindsay Lohan; terms: rehab"."""
        parts = [
            f"{label}: {', '.join(values[:3])}"
            for label, values in (
                ("people", self.people),
                ("places", self.places),
                ("organisations", self.organisations),
                ("terms", self.terms[:5]),
            )
            if values
        ]
        if parts:
            return "shared " + "; ".join(parts)
        # A dense-only match can share no names and no weighted term: say so, never "".
        return "close in meaning; no shared names or telling terms"

    def to_dict(self) -> dict[str, Any]:
        return {
            "terms": list(self.terms),
            "people": list(self.people),
            "places": list(self.places),
            "organisations": list(self.organisations),
            "passages": list(self.passages) if self.passages else None,
            "summary": self.summary(),
        }


@dataclass(frozen=True)
class Match:
    """One entry of a related list, best first; ``score`` is higher for closer matches.

    ``explanation`` is set only when the query asked for one (``explain=True``).
    """

    id: str
    score: float
    title: str
    url: str | None
    published_at: str | None
    section: str | None
    explanation: Explanation | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {f: getattr(self, f) for f in _MATCH_FIELDS}
        data["explanation"] = self.explanation.to_dict() if self.explanation else None
        return data


_MATCH_FIELDS = ("id", "score", "title", "url", "published_at", "section")


@dataclass(frozen=True)
class StoredStanding:
    """How an answer asked of the stored lists (``fresh=False``) stands.

    ``computed_at`` is when the stored list it returned was computed (None: the answer was
    computed fresh); ``stale`` says why the stored lists may differ from a recompute (None
    while they do not), and ``recompute`` how to bring them up to date.
    """

    computed_at: str | None = None
    stale: str | None = None
    recompute: str | None = None


@dataclass(frozen=True)
class StoredListsStatus:
    """How an index's stored related lists stand (``Recommender.stored_lists_status``).

    ``usable`` is False when queries are not answered from them: ``stale`` (a reason) when
    they may differ from a recompute, or ``rules_changed`` when the index's editorial rules
    are not the ones they were computed with. ``recompute`` is the command that refreshes them.
    """

    k: int
    usable: bool
    stale: str | None
    rules_changed: bool
    recompute: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StoredList:
    """One article's stored related list and when it was computed (``Recommender.stored_list``)."""

    computed_at: str
    matches: list[Match]


@dataclass(frozen=True)
class IndexInfo:
    """An index's manifest with its live counts (``Recommender.info``, ``recommender info``).

    ``to_dict`` is the manifest's keys followed by ``path``, ``counts``, ``search``,
    ``stored_lists`` and ``stories``: what ``recommender info --json`` and ``GET /v1/info`` print.
    """

    path: str
    manifest: Mapping[str, Any]
    #: ``articles`` in the catalog and ``vectors`` in the vector store.
    counts: Mapping[str, int]
    #: How the vector store searches (kind, metric, lists and nprobe of an IVF index...).
    search: Mapping[str, Any]
    stored_lists: StoredListsStatus | None
    #: How the stories were grouped (``grouped_at``, ``articles`` then, ``pending`` to
    #: place, ``span_days``: the longest date span of one story, None: unbounded), None when
    #: none are grouped.
    stories: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.manifest)
        data["path"] = self.path
        data["counts"] = dict(self.counts)
        data["search"] = dict(self.search)
        data["stored_lists"] = self.stored_lists.to_dict() if self.stored_lists else None
        data["stories"] = dict(self.stories) if self.stories is not None else None
        return data


@dataclass(frozen=True)
class ArticleSummary:
    """One indexed article as a list of articles shows it (no body)."""

    id: str
    title: str
    url: str | None
    published_at: str | None
    section: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ArticleListing:
    """One page of indexed articles, newest first, and how many matched in all."""

    articles: tuple[ArticleSummary, ...]
    total: int
    offset: int
    limit: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "articles": [a.to_dict() for a in self.articles],
            "total": self.total,
            "offset": self.offset,
            "limit": self.limit,
        }


@dataclass(frozen=True)
class StoryThread:
    """One story of the archive: its stable id (its founding article's) and articles in time
    order (undated ones last); ``title`` is the earliest article's."""

    id: str
    articles: tuple[ArticleSummary, ...]

    @property
    def title(self) -> str:
        return self.articles[0].title if self.articles else ""

    @property
    def first(self) -> str | None:
        dated = [a.published_at for a in self.articles if a.published_at]
        return min(dated) if dated else None

    @property
    def last(self) -> str | None:
        dated = [a.published_at for a in self.articles if a.published_at]
        return max(dated) if dated else None

    @property
    def sections(self) -> tuple[str, ...]:
        return tuple(sorted({a.section for a in self.articles if a.section}))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "size": len(self.articles),
            "first": self.first,
            "last": self.last,
            "sections": list(self.sections),
            "articles": [a.to_dict() for a in self.articles],
        }


@dataclass(frozen=True)
class Rejection:
    """A record that was not indexed, with where it came from and why."""

    source: str
    line: int
    reason: str
    id: str | None = None
    raw: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}"
        return f"{where}: {self.reason}" + (f" (id {self.id!r})" if self.id else "")


@dataclass(frozen=True)
class UpdateReport:
    """What a build, add or remove did to an index."""

    added: int = 0
    reembedded: int = 0
    metadata_updated: int = 0
    unchanged: int = 0
    removed: int = 0
    missing: tuple[str, ...] = ()
    rejected: tuple[Rejection, ...] = ()
    rejects_path: str | None = None
    total: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rejected"] = [r.to_dict() for r in self.rejected]
        data["missing"] = list(self.missing)
        return data


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
