"""One record in, one Article out: the field map and the gate every record passes.

Every key and string of a record, at any depth, must be valid Unicode (recommender.text),
and a ``url`` that is not http(s) or a site path is dropped into
``metadata["url_rejected"]`` (recommender.urls).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from recommender.errors import InvalidArgumentError
from recommender.ingest.dates import optional_datetime
from recommender.text import checked_text, printable
from recommender.types import Article
from recommender.urls import safe_url, url_problem

__all__ = ["FieldMap", "article_from_mapping", "check_article", "peek_id"]

# Deeper metadata is a generated or hostile record, and would reach the recursion limits of
# json.dumps and SQLite's JSON functions far from here.
_MAX_NESTING = 100
# Python refuses str() of integers over 4,300 digits; this is about 3,000.
_MAX_INT_BITS = 10_000


@dataclass(frozen=True)
class FieldMap:
    """Which source field holds each Article attribute, e.g. ``FieldMap(body="text")``."""

    id: str = "id"
    body: str = "body"
    title: str = "title"
    url: str = "url"
    published_at: str = "published_at"
    section: str = "section"
    tags: str = "tags"
    language: str = "language"


def article_from_mapping(record: Mapping[str, Any], *, fields: FieldMap = FieldMap()) -> Article:
    """Validate one record and build its Article.

    Fields not named by ``fields`` go to ``metadata``; a nested ``metadata`` object is merged
    into it, so the output of ``Article.to_dict()`` reads back as the same Article.
    Every key and string, at any depth, must be valid Unicode. A ``url`` that is neither
    http(s) nor a path on the site is not kept as the URL: it goes to
    ``metadata["url_rejected"]`` as ``{"value": ..., "reason": ...}`` (see recommender.urls).
    Raises InvalidArgumentError with a short reason such as ``missing id`` or ``empty body``.
    """
    if not isinstance(record, Mapping):
        raise InvalidArgumentError(f"record must be a mapping, got {type(record).__name__}")
    _check_values(record)
    title = _optional_text(record, fields.title, "title") or ""
    article_id = _require_id(record, fields)
    body = _require_body(record, fields, has_title=bool(title))
    url = _optional_text(record, fields.url, "url")
    metadata = _metadata(record, fields)
    problem = url_problem(url) if url is not None else None
    if problem is not None:
        # Policy: keep the record, drop the URL, keep what was given where it can be fixed.
        metadata["url_rejected"] = {"value": record[fields.url], "reason": problem}
    return Article(
        id=article_id,
        body=body,
        title=title,
        url=safe_url(url),
        published_at=optional_datetime(record.get(fields.published_at)),
        section=_optional_text(record, fields.section, "section"),
        tags=_tags(record, fields.tags),
        language=_optional_text(record, fields.language, "language"),
        metadata=metadata,
    )


def check_article(article: Article) -> Article:
    """Return an Article built in code (not read from a record) once its text passed the gate.

    The same check as for records (every string valid Unicode, JSON-writable values), so a
    library caller's Article cannot carry what a file could not.
    """
    _check_values(article.to_dict())
    return article


def _check_values(record: Mapping[str, Any]) -> None:
    """The gate for outside text: every key and string of ``record`` must be valid Unicode.

    Also refuses what cannot be written back as JSON: nesting over ``_MAX_NESTING`` levels,
    NaN and infinities (JSON has none; the HTTP service could not return the article), and
    integers too long to print. Iterative, so no record can exhaust the stack.
    """
    pending: list[tuple[object, str, int]] = [(record, "", 0)]
    while pending:
        value, field, depth = pending.pop()
        if isinstance(value, str):
            checked_text(value, field=field)
        elif isinstance(value, Mapping):
            _check_depth(depth, field)
            for key, item in value.items():
                name = field or _field_name(key)
                if isinstance(key, str):
                    checked_text(key, field=f"{name} (a key)" if field else "field name")
                pending.append((item, name, depth + 1))
        elif isinstance(value, (list, tuple)):
            _check_depth(depth, field)
            pending.extend((item, field, depth + 1) for item in value)
        elif isinstance(value, float) and not math.isfinite(value):
            raise InvalidArgumentError(
                f"{field}: {value} is not a JSON number (JSON has no NaN or Infinity)", field=field
            )
        elif isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
            raise InvalidArgumentError(f"{field}: integer too large", field=field)


def _check_depth(depth: int, field: str) -> None:
    if depth > _MAX_NESTING:
        raise InvalidArgumentError(
            f"{field}: nested more than {_MAX_NESTING} levels deep", field=field
        )


def _field_name(key: object) -> str:
    name = printable(key) if isinstance(key, str) else repr(key)
    return name if len(name) <= 60 else name[:59] + "…"


def _label(name: str, source: str) -> str:
    # Name the source column too when it differs, so "missing id" is findable in the file.
    return name if name == source else f"{name} (field {source!r})"


def _require_id(record: Mapping[str, Any], fields: FieldMap) -> str:
    value = record.get(fields.id)
    label = _label("id", fields.id)
    if value is None:
        raise InvalidArgumentError(f"missing {label}")
    # bool is an int subclass, but True as an id is always a mistake.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{label} must be a string or integer, got {_type(value)}")
    if not value.strip():
        raise InvalidArgumentError(f"empty {label}")
    return value.strip()


def _require_body(record: Mapping[str, Any], fields: FieldMap, *, has_title: bool) -> str:
    value = record.get(fields.body)
    label = _label("body", fields.body)
    if value is None:
        raise InvalidArgumentError(f"missing {label}")
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{label} must be a string, got {_type(value)}")
    # A headline-only brief (empty body, real title) is still a story worth
    # indexing; with neither there is nothing to embed.
    if not value.strip() and not has_title:
        raise InvalidArgumentError(f"empty {label}")
    return value.strip()


def _optional_text(record: Mapping[str, Any], source: str, name: str) -> str | None:
    value = record.get(source)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{_label(name, source)} must be a string, got {_type(value)}")
    return value.strip() or None


def _tags(record: Mapping[str, Any], source: str) -> tuple[str, ...]:
    value = record.get(source)
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    elif not isinstance(value, (list, tuple)):
        raise InvalidArgumentError(
            f"{_label('tags', source)} must be a list of strings or a comma-separated string,"
            f" got {_type(value)}"
        )
    bad = next((item for item in value if not isinstance(item, str)), None)
    if bad is not None:
        raise InvalidArgumentError(f"{_label('tags', source)} must hold strings, got {_type(bad)}")
    # dict.fromkeys dedupes while keeping first-seen order.
    return tuple(dict.fromkeys(tag.strip() for tag in value if tag.strip()))


def _metadata(record: Mapping[str, Any], fields: FieldMap) -> dict[str, Any]:
    mapped = set(vars(fields).values())
    extra = {key: value for key, value in record.items() if key not in mapped}
    nested = extra.pop("metadata", None)
    if isinstance(nested, Mapping):
        return {**nested, **extra}
    if nested is not None:
        extra["metadata"] = nested
    return extra


def _type(value: object) -> str:
    return type(value).__name__


def peek_id(record: Mapping[str, Any], fields: FieldMap) -> str | None:
    """The id of a record that failed validation, to name it in the rejection; None if unusable."""
    try:
        return _require_id(record, fields)
    except (InvalidArgumentError, ValueError):
        return None
