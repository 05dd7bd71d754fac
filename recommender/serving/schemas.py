"""The request and response schemas of the JSON API, as its OpenAPI schema shows them.

Every string of a JSON body must be valid Unicode (``Text``), so a lone surrogate is a
422 naming its field, never a 500. Response models describe what routes return; the
routes themselves return plain dicts (``Match.to_dict()`` and the like).
"""

import re
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model
from pydantic_core import PydanticCustomError

from recommender.text import is_valid_text

__all__ = [
    "BATCH_SCHEMA",
    "ERRORS",
    "PRIVATE_ERRORS",
    "WRITE_ERRORS",
    "ArticleId",
    "ArticleIn",
    "Bucket",
    "ErrorDetail",
    "ErrorResponse",
    "EventIn",
    "EventsIn",
    "EventsRecorded",
    "Explain",
    "ExplanationOut",
    "Health",
    "IndexInfo",
    "Many",
    "RejectedRecord",
    "RelatedItem",
    "RelatedList",
    "SimilarBase",
    "StoredArticle",
    "Text",
    "WriteReport",
    "similar_query",
]

# -- parameters ----------------------------------------------------------------------------

ArticleId = Annotated[str, Path(description="The article id.")]
Explain = Annotated[
    bool, Query(description="Add each item's explanation: shared names, terms, sentences.")
]
Many = Annotated[list[str] | None, Query(description="Repeatable: ?name=a&name=b matches either.")]
Bucket = Annotated[str | None, Query(description="A named ranking configuration (A/B tests).")]


# -- bodies --------------------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")


def _unicode(value: str) -> str:
    # JSON may escape half a surrogate pair ("\ud800"); such a string cannot be stored,
    # tokenized or sent back, so it is refused here, where the 422 can name the field.
    if is_valid_text(value):
        return value
    bad = _SURROGATE.search(value)
    assert bad is not None  # only a surrogate makes UTF-8 encoding fail
    where = f"lone surrogate U+{ord(bad.group()):04X} at character {bad.start() + 1}"
    raise PydanticCustomError("invalid_unicode", f"invalid Unicode ({where})")


#: A JSON string that is valid Unicode (no lone surrogate).
Text = Annotated[str, AfterValidator(_unicode)]
#: SQLite's INTEGER: the event log stores positions as one.
_MAX_POSITION = 2**63 - 1


class ErrorDetail(BaseModel):
    type: str = Field(description="Machine-readable kind, e.g. ArticleNotFoundError.")
    message: str
    field: str | None = Field(None, description="The offending field or parameter, if any.")
    location: str | None = Field(
        None, alias="in", description="Where the field is: path, query or body."
    )
    details: list[dict[str, Any]] | None = Field(
        None, description="Every problem found, when the request had several."
    )

    model_config = ConfigDict(populate_by_name=True)


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ExplanationOut(BaseModel):
    """Why an item is in the list (``explain=true``), strongest evidence first."""

    terms: list[str] = Field(description="Shared terms, weighted by the index's IDF.")
    people: list[str]
    places: list[str]
    organisations: list[str]
    passages: list[str] | None = Field(
        description="[sentence of the query story, sentence of this item] most alike, or null."
    )
    summary: str = Field(description='A short reason, e.g. "shared people: ...; terms: ...".')


class RelatedItem(BaseModel):
    id: str
    title: str
    url: str | None
    published_at: str | None = Field(description="ISO 8601, or null when the article has none.")
    section: str | None
    score: float = Field(description="Higher is closer; compares items within one list only.")
    explanation: ExplanationOut | None = Field(
        None, description="Only with explain=true; null otherwise."
    )


class RelatedList(BaseModel):
    id: str | None = Field(description="The query article's id; null for POST /v1/similar.")
    related: list[RelatedItem] = Field(description="Best first, never the query article.")
    computed_at: str | None = Field(
        None, description="With fresh=false: when the stored list was computed; null if fresh."
    )
    stale: str | None = Field(
        None,
        description="With fresh=false: why the stored lists were not used (they may differ "
        "from a recompute) and how to recompute them; null otherwise.",
    )
    bucket: str | None = Field(None, description="The ranking bucket that made this list.")


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The event log checks the values (type, blank ids, position >= 1, at most 1,000
    # events) and its messages name them; what it cannot store is refused here.
    type: Text = Field(description="impression or click.")
    article_id: Text | int = Field(description="The article whose related list was shown.")
    related_id: Text | int = Field(description="The related item shown or clicked.")
    position: int = Field(
        le=_MAX_POSITION, description="Its position in the list, 1 for the first."
    )
    bucket: Text | None = Field(None, description="The ranking bucket of the list, if any.")


class EventsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(description="At most 1,000.")


class EventsRecorded(BaseModel):
    recorded: int


class StoredArticle(BaseModel):
    id: str
    title: str
    body: str
    url: str | None
    published_at: str | None
    section: str | None
    tags: list[str]
    language: str | None
    metadata: dict[str, Any]


class ArticleIn(BaseModel):
    """One input record: the CLI's record format (other fields are kept as metadata)."""

    model_config = ConfigDict(extra="allow")

    id: str | int
    body: str = Field(description="May be empty only when title is not.")
    title: str | None = None
    url: str | None = None
    published_at: str | None = Field(None, description="ISO 8601 date or datetime.")
    section: str | None = None
    tags: list[str] | str | None = Field(None, description="A list or a comma-separated string.")
    language: str | None = None


class RejectedRecord(BaseModel):
    source: str
    line: int = Field(description="1-based position of the record in the request's batch.")
    reason: str
    id: str | None
    raw: str | None


class WriteReport(BaseModel):
    added: int
    reembedded: int
    metadata_updated: int
    unchanged: int
    removed: int
    missing: list[str]
    rejected: list[RejectedRecord] = Field(description="Records not written, with reasons.")
    rejects_path: str | None
    total: int = Field(description="Articles in the index after the write.")


class StoryArticle(BaseModel):
    id: str
    title: str
    url: str | None
    published_at: str | None
    section: str | None


class Story(BaseModel):
    """One story of the archive: its articles in time order (undated last)."""

    id: str = Field(description="The story's id: its earliest article's id.")
    title: str
    size: int
    first: str | None
    last: str | None
    sections: list[str]
    articles: list[StoryArticle]


class StoryList(BaseModel):
    stories: list[Story]
    total: int = Field(description="Stories of at least min_size articles.")
    offset: int
    limit: int


class IndexInfo(BaseModel):
    """The manifest with live counts (``recommender info --json``)."""

    model_config = ConfigDict(extra="allow")

    path: str
    format_version: int
    model: dict[str, Any]
    counts: dict[str, int]
    created_at: str
    updated_at: str


class Health(BaseModel):
    status: str


class SimilarBase(BaseModel):
    """The body of POST /v1/similar but for ``k``, whose cap is the app's (``similar_query``)."""

    model_config = ConfigDict(extra="forbid")

    text: Text | None = Field(None, description="A whole story; or give title and/or body.")
    title: Text | None = None
    body: Text | None = None
    published_at: Text | None = Field(
        None, description="The story's date: turns on the time prior."
    )
    section: Text | list[Text] | None = None
    since: Text | None = Field(None, description="On or after this ISO 8601 date.")
    until: Text | None = Field(None, description="Before this date (a date includes that day).")
    language: Text | list[Text] | None = None
    exclude: Text | list[Text] | None = None


def similar_query(max_k: int) -> type[SimilarBase]:
    """The body model of POST /v1/similar with ``k`` capped at ``max_k``."""
    return create_model(
        "SimilarQuery",
        __base__=SimilarBase,
        k=(int, Field(10, ge=1, le=max_k, description=f"How many results (1-{max_k}).")),
    )


# -- OpenAPI extras ------------------------------------------------------------------------

#: PUT /v1/articles takes any JSON and makes bad records rejections, not a 422: its
#: documented body is written out here.
BATCH_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"type": "array", "items": ArticleIn.model_json_schema()},
        {
            "type": "object",
            "properties": {"articles": {"type": "array", "items": ArticleIn.model_json_schema()}},
            "required": ["articles"],
        },
    ]
}

#: The error responses routes document, by who may call them.
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (404, 413, 422, 500, 503)
}
PRIVATE_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong bearer token."},
    403: {"model": ErrorResponse, "description": "Not public, and the server has no token."},
}
#: A related list's answers: the errors, and 304 for an ``If-None-Match`` naming its ETag.
CACHED: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    304: {"description": "Not Modified: the list's ETag is the one in If-None-Match."},
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    401: {"model": ErrorResponse, "description": "Missing or wrong bearer token."},
    403: {"model": ErrorResponse, "description": "The server is read-only."},
}
