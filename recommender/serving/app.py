"""The HTTP query service: a FastAPI app around one :class:`Recommender`.

    create_app(rec, token=...)   the app factory; the caller owns ``rec``
    app_from_env()               the factory ``recommender serve`` gives uvicorn: each
                                 worker process opens its own Recommender

Routes hold no ranking, filtering or storage logic: they validate, make one
Recommender call and shape the answer. Every error leaves as
``{"error": {"type", "message", "field", "in"}}``; library errors are mapped to
statuses in one table (``_STATUS``). Queries are plain ``def`` routes, so FastAPI
runs them in its threadpool and the event loop never waits on FAISS or the model;
writes go through one dedicated thread, which keeps them in order without tying
up the threads that serve queries.

Hardening, in one place each: every response carries the security headers of
``_security_headers`` (a strict CSP for the HTML pages, ``default-src 'none'`` for
everything else); JSON is rendered by ``_JSONResponse``, which cannot fail on text
that is not valid Unicode; every string of a JSON body must be valid Unicode
(``_Text``), so a lone surrogate is a 422 naming its field, never a 500; the docs
and ``/metrics`` need the bearer token unless the app is told they are public.
"""

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from http import HTTPStatus
from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import Body, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model
from pydantic_core import PydanticCustomError
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.routing import Match as RouteMatch

from recommender.errors import (
    ArticleNotFoundError,
    EncoderError,
    IndexDirectoryError,
    IndexLockedError,
    InputError,
    InvalidArgumentError,
    ModelMismatchError,
    RecommenderError,
    RejectedRecordsError,
    StoreError,
)
from recommender.filters import Filters
from recommender.ingest.records import parse_datetime
from recommender.text import is_valid_text, printable
from recommender.types import Rejection

if TYPE_CHECKING:
    from recommender.recommender import Recommender

__all__ = [
    "API_CSP",
    "DOCS_CSP",
    "ENV_INDEX",
    "ENV_METRICS_DIR",
    "ENV_PUBLIC_DOCS",
    "ENV_PUBLIC_METRICS",
    "ENV_READ_ONLY",
    "ENV_TOKEN",
    "MAX_BODY_BYTES",
    "MAX_K",
    "PAGE_CSP",
    "REFERRER_POLICY",
    "app_from_env",
    "create_app",
    "is_loopback",
    "read_token_file",
    "serve",
]

#: Environment variables ``recommender serve`` hands to its worker processes.
ENV_INDEX = "RECOMMENDER_INDEX"
ENV_TOKEN = "RECOMMENDER_API_TOKEN"
ENV_READ_ONLY = "RECOMMENDER_READ_ONLY"
#: "1" or "0": whether /docs, /redoc and /openapi.json (DOCS), /metrics (METRICS) answer
#: without the token. ``serve`` always sets both; unset means public (as ``create_app``).
ENV_PUBLIC_DOCS = "RECOMMENDER_PUBLIC_DOCS"
ENV_PUBLIC_METRICS = "RECOMMENDER_PUBLIC_METRICS"
#: prometheus_client's multiprocess mode: each worker writes its metrics to files
#: there, and a scrape of any worker reports the sum over all of them.
ENV_METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_K = 100

#: The web pages: their own script and stylesheet, nothing inline, nothing from elsewhere.
PAGE_CSP = (
    "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
    "object-src 'none'"
)
#: Everything that is not a page (JSON, /metrics, static files): nothing may run or load.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
#: /docs and /redoc: FastAPI's pages load Swagger UI and ReDoc from the jsDelivr CDN (so
#: they need the network), and both style themselves inline; Swagger UI's one inline
#: script is allowed by its hash (added per response), ReDoc's search runs in a blob: worker.
DOCS_CSP = (
    "default-src 'none'; script-src https://cdn.jsdelivr.net; "
    "style-src https://cdn.jsdelivr.net https://fonts.googleapis.com 'unsafe-inline'; "
    "font-src https://fonts.gstatic.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "connect-src 'self'; worker-src blob:; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'; object-src 'none'"
)
#: No Referer leaves the pages: nothing here reads it, and page addresses hold article
#: ids and search words that other sites have no need to see.
REFERRER_POLICY = "no-referrer"

_log = logging.getLogger("recommender.serving.app")
T = TypeVar("T")
ArticleId = Annotated[str, Path(description="The article id.")]
Explain = Annotated[
    bool, Query(description="Add each item's explanation: shared names, terms, sentences.")
]
Many = Annotated[list[str] | None, Query(description="Repeatable: ?name=a&name=b matches either.")]

# Most specific class first: the first isinstance match wins.
_STATUS: list[tuple[type[RecommenderError], int]] = [
    (InvalidArgumentError, 422),
    (RejectedRecordsError, 422),
    (ArticleNotFoundError, 404),
    (InputError, 400),
    # Another writer held the index past the lock timeout: worth a retry.
    (IndexLockedError, 503),
    # The served path was rebuilt with another model: this process cannot answer
    # for it until it is restarted with a matching model.
    (ModelMismatchError, 409),
    # Missing or damaged index directory, a model that cannot load: server-side faults.
    (IndexDirectoryError, 500),
    (EncoderError, 500),
    # The vector engine (a Milvus server) is down or overloaded: worth a retry.
    (StoreError, 503),
    (RecommenderError, 500),
]
_RETRY_AFTER_S = "5"
#: Seconds in-flight requests get to finish after SIGTERM before workers stop.
_GRACEFUL_SHUTDOWN_S = 30
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


# -- schemas -------------------------------------------------------------------------------

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
_Text = Annotated[str, AfterValidator(_unicode)]
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
    type: _Text = Field(description="impression or click.")
    article_id: _Text | int = Field(description="The article whose related list was shown.")
    related_id: _Text | int = Field(description="The related item shown or clicked.")
    position: int = Field(
        le=_MAX_POSITION, description="Its position in the list, 1 for the first."
    )
    bucket: _Text | None = Field(None, description="The ranking bucket of the list, if any.")


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


class _SimilarBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: _Text | None = Field(None, description="A whole story; or give title and/or body.")
    title: _Text | None = None
    body: _Text | None = None
    published_at: _Text | None = Field(
        None, description="The story's date: turns on the time prior."
    )
    section: _Text | list[_Text] | None = None
    since: _Text | None = Field(None, description="On or after this ISO 8601 date.")
    until: _Text | None = Field(None, description="Before this date (a date includes that day).")
    language: _Text | list[_Text] | None = None
    exclude: _Text | list[_Text] | None = None


_BATCH_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"type": "array", "items": ArticleIn.model_json_schema()},
        {
            "type": "object",
            "properties": {"articles": {"type": "array", "items": ArticleIn.model_json_schema()}},
            "required": ["articles"],
        },
    ]
}

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (404, 413, 422, 500, 503)
}
_PRIVATE_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong bearer token."},
    403: {"model": ErrorResponse, "description": "Not public, and the server has no token."},
}
_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    401: {"model": ErrorResponse, "description": "Missing or wrong bearer token."},
    403: {"model": ErrorResponse, "description": "The server is read-only."},
}


# Routes are closures over the app's settings: their annotations must be evaluated
# where they are defined, so this module does not use postponed annotations.

# -- the app -------------------------------------------------------------------------------


def create_app(
    rec: "Recommender",
    *,
    token: str | None,
    allow_writes: bool = True,
    public_docs: bool = True,
    public_metrics: bool = True,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_k: int = MAX_K,
) -> FastAPI:
    """The HTTP API over ``rec``, which the caller keeps open for the app's lifetime.

    Writes (PUT, DELETE) need ``Authorization: Bearer <token>`` when ``token`` is
    set; with ``token=None`` they are open, which ``recommender serve`` allows only
    on a loopback address. ``allow_writes=False`` makes them answer 403.

    ``public_docs=False`` puts /docs, /redoc and /openapi.json behind the same
    token, and ``public_metrics=False`` does so for /metrics; without a token they
    then answer 403. ``recommender serve`` makes them public only on a loopback address.
    """
    return _build(
        rec,
        token=token,
        allow_writes=allow_writes,
        public_docs=public_docs,
        public_metrics=public_metrics,
        max_body_bytes=max_body_bytes,
        max_k=max_k,
        owns_rec=False,
    )


def app_from_env() -> FastAPI:
    """The app ``recommender serve`` runs in each worker, configured by environment.

    ``RECOMMENDER_INDEX`` names the index; ``RECOMMENDER_API_TOKEN`` the write token;
    ``RECOMMENDER_READ_ONLY=1`` turns writes off; ``RECOMMENDER_PUBLIC_DOCS=0`` and
    ``RECOMMENDER_PUBLIC_METRICS=0`` put the docs and /metrics behind the token (unset:
    public, as :func:`create_app`). The Recommender is opened here,
    in the worker, answers one warm-up query (:meth:`Recommender.warm_up`) before
    the worker accepts requests, and is closed when the server shuts down.
    """
    from recommender.recommender import Recommender

    index = os.environ.get(ENV_INDEX)
    if not index:
        raise InvalidArgumentError(f"{ENV_INDEX} must name the index directory to serve")
    rec = Recommender.open(index)
    try:
        rec.warm_up()  # before uvicorn accepts: the first request pays for nothing
    except RecommenderError as exc:  # a store that is down now may be up for requests
        _log.warning("warm-up query failed: %s", exc)
    return _build(
        rec,
        token=os.environ.get(ENV_TOKEN) or None,
        allow_writes=not _env_flag(ENV_READ_ONLY, default=False),
        public_docs=_env_flag(ENV_PUBLIC_DOCS, default=True),
        public_metrics=_env_flag(ENV_PUBLIC_METRICS, default=True),
        max_body_bytes=MAX_BODY_BYTES,
        max_k=MAX_K,
        owns_rec=True,
    )


def _env_flag(name: str, *, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    if value:
        raise InvalidArgumentError(f"{name} must be 1 or 0, got {value!r}")
    return default


def _build(
    rec: "Recommender",
    *,
    token: str | None,
    allow_writes: bool,
    public_docs: bool,
    public_metrics: bool,
    max_body_bytes: int,
    max_k: int,
    owns_rec: bool,
) -> FastAPI:
    if max_k < 1 or max_body_bytes < 1:
        raise InvalidArgumentError(
            f"max_k and max_body_bytes must be positive, got {max_k} and {max_body_bytes}"
        )
    writer = _Writer()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            writer.stop()
            if _shared_metrics_dir():
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
            if owns_rec:
                rec.close()

    app = FastAPI(
        title="recommender",
        summary="Related articles for news sites.",
        version=_version(),
        lifespan=lifespan,
        # Served by _add_docs() below, behind the token when they are not public.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        default_response_class=_JSONResponse,
    )
    _add_error_handlers(app)
    registry = CollectorRegistry(auto_describe=True)
    # "mostrecent": with several workers the scrape reports the count the
    # latest worker to look saw, not a sum or a max over the workers' views.
    articles = Gauge(
        "recommender_articles",
        "Articles in the index.",
        registry=registry,
        multiprocess_mode="livemostrecent",
    )
    # Starlette adds middleware outside-in in reverse order: metrics sees every
    # response, the 413s of the body limit included.
    app.add_middleware(_BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(_Metrics, registry=registry)
    # Outermost: the headers reach every response, the 413s and the metrics' included.
    app.add_middleware(_SecurityHeaders)

    bearer = HTTPBearer(auto_error=False, description="The server's write token.")
    Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]  # noqa: N806

    async def writable(credentials: Credentials) -> None:
        if not allow_writes:
            raise HTTPException(403, "this server is read-only; writes are turned off")
        if token is not None:
            _require_token(credentials, token)

    def private(what: str, option: str) -> list[Any]:
        """The dependencies of a route that needs the token unless ``option`` says public."""

        async def check(credentials: Credentials) -> None:
            if token is None:
                raise HTTPException(
                    403,
                    f"{what} is not public on this server and it has no token: "
                    f"start it with {option}, or with a token",
                )
            _require_token(credentials, token)

        return [Depends(check)]

    docs_guard = [] if public_docs else private("the API documentation", "--public-docs")
    metrics_guard = [] if public_metrics else private("/metrics", "--public-metrics")
    _add_docs(app, dependencies=docs_guard)

    # Parameter types that carry this app's cap on k, for validation and the schema.
    K = Annotated[int, Query(ge=1, le=max_k, description=f"How many results (1-{max_k}).")]  # noqa: N806
    SimilarQuery = create_model(  # noqa: N806
        "SimilarQuery",
        __base__=_SimilarBase,
        k=(int, Field(10, ge=1, le=max_k, description=f"How many results (1-{max_k}).")),
    )

    @app.get("/healthz", response_model=Health, tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Liveness: answers as long as the server's event loop runs."""
        return {"status": "ok"}

    @app.get(
        "/metrics",
        response_class=Response,
        dependencies=metrics_guard,
        responses={
            200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}},
            **({} if public_metrics else _PRIVATE_ERRORS),
        },
        tags=["operations"],
    )
    def metrics() -> Response:
        """Prometheus text format: requests and latency per route, article count."""
        rec.refresh()
        articles.set(len(rec))
        return Response(generate_latest(_scraped(registry)), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/info", response_model=IndexInfo, responses=_ERRORS, tags=["index"])
    def info() -> dict[str, Any]:
        """The index's manifest (model, embedding, ranking, versions) and live counts."""
        return rec.info()

    @app.get(
        "/v1/articles/{article_id:path}/related",
        response_model=RelatedList,
        responses=_ERRORS,
        tags=["queries"],
    )
    def related(
        article_id: ArticleId,
        k: K = 10,
        section: Many = None,
        since: Annotated[str | None, Query(description="On or after this ISO 8601 date.")] = None,
        until: Annotated[
            str | None, Query(description="Before this date (a date: all of it).")
        ] = None,
        language: Many = None,
        exclude: Many = None,
        explain: Explain = False,
        fresh: Annotated[
            bool,
            Query(description="false: answer from the stored list (a lookup) when usable."),
        ] = True,
        bucket: Annotated[
            str | None, Query(description="A named ranking configuration (A/B tests).")
        ] = None,
    ) -> dict[str, Any]:
        """The related list of an indexed article, best first, never the article itself.

        ``section``, ``language`` and ``exclude`` repeat (``?section=a&section=b``: any of them).
        """
        _check_dates("query", since=since, until=until)
        matches = rec.related(
            article_id,
            k=k,
            section=section,
            since=since,
            until=until,
            language=language,
            exclude=exclude or (),
            explain=explain,
            fresh=fresh,
            bucket=bucket,
        )
        computed_at = stale = None
        if not fresh and bucket is None:
            stored = rec.stored_list(article_id)
            if stored is not None and [m.id for m in stored[1][:k]] == [m.id for m in matches]:
                computed_at = stored[0]
            status = rec.stored_lists_status()
            if status is not None and status["stale"]:
                stale = f"{status['stale']}; recompute with: {status['recompute']}"
        return {
            "id": article_id,
            "related": [m.to_dict() for m in matches],
            "computed_at": computed_at,
            "stale": stale,
            "bucket": bucket,
        }

    @app.post("/v1/similar", response_model=RelatedList, responses=_ERRORS, tags=["queries"])
    def similar(
        query: Annotated[SimilarQuery, Body()],  # type: ignore[valid-type]
        explain: Explain = False,
        bucket: Annotated[
            str | None, Query(description="A named ranking configuration (A/B tests).")
        ] = None,
    ) -> dict[str, Any]:
        """Related articles for a story not in the index: ``text``, or ``title``/``body``."""
        options: dict[str, Any] = query.model_dump()  # type: ignore[attr-defined]
        _check_similar(options)
        matches = rec.similar(
            text=options["text"],
            title=options["title"],
            body=options["body"],
            published_at=options["published_at"],
            k=options["k"],
            section=options["section"],
            since=options["since"],
            until=options["until"],
            language=options["language"],
            exclude=options["exclude"] or (),
            explain=explain,
            bucket=bucket,
        )
        return {"id": None, "related": [m.to_dict() for m in matches], "bucket": bucket}

    @app.post(
        "/v1/events",
        response_model=EventsRecorded,
        responses=_ERRORS,
        tags=["feedback"],
    )
    def post_events(batch: Annotated[EventsIn, Body()]) -> dict[str, Any]:
        """Record impressions and clicks of related items (append-only; no token needed).

        Body: ``{"events": [{"type": "impression"|"click", "article_id", "related_id",
        "position", "bucket"}]}``, at most 1,000 per request; all or none are recorded.
        ``recommender report`` summarises them.
        """
        records = [e.model_dump() for e in batch.events]
        return {"recorded": rec.events.record(records)}

    @app.get(
        "/v1/articles/{article_id:path}",
        response_model=StoredArticle,
        responses=_ERRORS,
        tags=["index"],
    )
    def get_article(article_id: ArticleId) -> dict[str, Any]:
        """The stored record of one article."""
        # get() reads the catalog as it is; pick up other workers' writes first.
        rec.refresh()
        return rec.get(article_id).to_dict()

    @app.put(
        "/v1/articles",
        response_model=WriteReport,
        responses=_WRITE_ERRORS,
        dependencies=[Depends(writable)],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _BATCH_SCHEMA}},
            }
        },
        tags=["writes"],
    )
    async def put_articles(batch: Annotated[Any, Body()]) -> dict[str, Any]:
        """Add or update a batch of records (the CLI's format and validation).

        The body is a JSON array of records or ``{"articles": [...]}``. Bad records
        are listed in ``rejected`` with reasons; the others land in one transaction,
        visible to the next query and durable once this answers.
        """
        items = _batch_items(batch)
        report = await writer.run(partial(rec.upsert, items))
        return report.to_dict()

    @app.delete(
        "/v1/articles/{article_id:path}",
        response_model=WriteReport,
        responses=_WRITE_ERRORS,
        dependencies=[Depends(writable)],
        tags=["writes"],
    )
    async def delete_article(article_id: ArticleId) -> dict[str, Any]:
        """Delete one article; 404 when it is not in the index."""
        report = await writer.run(partial(rec.remove, [article_id]))
        if report.missing:
            raise ArticleNotFoundError(article_id)
        return report.to_dict()

    from recommender.serving.web import add_web_ui

    # The HTML pages for people (browse, a story's Related list, paste a story): read-only
    # queries like the JSON ones, so the token and --read-only leave them as they are.
    add_web_ui(app, rec, status_of=_status_of, max_k=max_k, docs=public_docs)
    return app


class _Writer:
    """The one thread writes run on, so they queue in order here instead of each holding
    a query thread while waiting for the index's writer lock.

    Started by the first write and stopped (after the writes in flight) when the app's
    lifespan ends; a later lifespan of the same app (tests run several) starts a new one.
    """

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    async def run(self, call: Callable[[], T]) -> T:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="recommender-writer")
            pool = self._pool
        return await asyncio.get_running_loop().run_in_executor(pool, call)

    def stop(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


def _require_token(credentials: HTTPAuthorizationCredentials | None, token: str) -> None:
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8")):
        raise HTTPException(
            401,
            "a valid bearer token is required: Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )


def _add_docs(app: FastAPI, *, dependencies: list[Any]) -> None:
    """/openapi.json, /docs and /redoc, FastAPI's own pages with a CSP that lets them run."""

    def root(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    @app.get("/openapi.json", include_in_schema=False, dependencies=dependencies)
    def openapi(request: Request) -> Response:
        schema = app.openapi()
        if root(request):  # behind a proxy's path prefix, as FastAPI's own route does
            schema = {**schema, "servers": [{"url": root(request)}]}
        return _JSONResponse(schema)

    @app.get("/docs", include_in_schema=False, dependencies=dependencies)
    def swagger(request: Request) -> Response:
        page = get_swagger_ui_html(
            openapi_url=root(request) + "/openapi.json",
            title=f"{app.title} - API",
            # No badge from validator.swagger.io: the schema stays on this server.
            swagger_ui_parameters={"validatorUrl": None},
        )
        return _with_docs_csp(page)

    @app.get("/redoc", include_in_schema=False, dependencies=dependencies)
    def redoc(request: Request) -> Response:
        page = get_redoc_html(openapi_url=root(request) + "/openapi.json", title=app.title)
        return _with_docs_csp(page)


_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def _with_docs_csp(page: HTMLResponse) -> HTMLResponse:
    """``page`` with DOCS_CSP, its inline scripts allowed by their SHA-256 hashes."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode("ascii") + "'"
        for script in _INLINE_SCRIPT.findall(page.body)
    ]
    policy = DOCS_CSP.replace(
        "script-src https://cdn.jsdelivr.net",
        " ".join(["script-src https://cdn.jsdelivr.net", *hashes]),
    )
    page.headers["Content-Security-Policy"] = policy
    return page


# -- running it ---------------------------------------------------------------------------


def serve(
    index: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    token: str | None = None,
    read_only: bool = False,
    public_docs: bool | None = None,
    public_metrics: bool | None = None,
    access_log: bool = True,
) -> None:
    """Run the service with uvicorn until SIGTERM or Ctrl-C (``recommender serve``).

    Refuses, before binding, to accept unauthenticated writes on a non-loopback
    address. ``public_docs`` and ``public_metrics`` (see :func:`create_app`) default
    to whether ``host`` is a loopback address. Settings reach the workers through the
    environment, so each worker process opens the index itself (see :func:`app_from_env`).
    """
    from recommender.index.layout import IndexLayout

    if token is None and not read_only and not is_loopback(host):
        raise InvalidArgumentError(
            f"refusing to serve writes on {host!r} without a token: set {ENV_TOKEN}, "
            "pass --token-file, add --read-only, or bind a loopback address such as 127.0.0.1"
        )
    # Fail here with a one-line error rather than in every worker.
    manifest = IndexLayout(index).read_manifest()
    url = str(manifest.get("store_options", {}).get("url", ""))
    if workers > 1 and url.endswith(".db"):
        raise InvalidArgumentError(
            f"--workers {workers}: the index's vectors are in Milvus Lite ({url}), which serves "
            "one process; use --workers 1, or build the index on a Milvus server"
        )
    os.environ[ENV_INDEX] = str(FilePath(index).resolve())
    os.environ[ENV_READ_ONLY] = "1" if read_only else "0"
    # Anyone who can reach a loopback address is on this machine already.
    local = is_loopback(host)
    docs = local if public_docs is None else public_docs
    metrics = local if public_metrics is None else public_metrics
    os.environ[ENV_PUBLIC_DOCS] = "1" if docs else "0"
    os.environ[ENV_PUBLIC_METRICS] = "1" if metrics else "0"
    private = [name for name, public in (("the docs", docs), ("/metrics", metrics)) if not public]
    if private and token is None:
        _log.warning(
            "%s answer 403: they need a token and there is none (--public-docs and "
            "--public-metrics make them public)",
            " and ".join(private),
        )
    if token is None:
        os.environ.pop(ENV_TOKEN, None)
        if not read_only:
            _log.warning("writes need no token: anyone who can reach %s:%s may write", host, port)
    else:
        os.environ[ENV_TOKEN] = token

    from recommender.serving import _uvicorn

    config = _uvicorn.TcpConfig(
        "recommender.serving.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        server_header=False,
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
    )
    if workers == 1 or _shared_metrics_dir():
        _uvicorn.run(config)
        return
    # Several workers: without a shared directory each scrape would show the
    # counters of whichever worker answered, and they would seem to reset.
    with tempfile.TemporaryDirectory(prefix="recommender-metrics-") as metrics_dir:
        os.environ[ENV_METRICS_DIR] = metrics_dir
        try:
            _uvicorn.run(config)
        finally:
            del os.environ[ENV_METRICS_DIR]


def _shared_metrics_dir() -> str | None:
    """The directory through which workers pool their metrics (prometheus_client's)."""
    return os.environ.get(ENV_METRICS_DIR) or None


def _scraped(registry: CollectorRegistry) -> CollectorRegistry:
    """What /metrics shows: this app's metrics, pooled over every worker when there are several."""
    if not _shared_metrics_dir():
        return registry
    from prometheus_client import multiprocess

    pooled = CollectorRegistry()
    multiprocess.MultiProcessCollector(pooled)  # type: ignore[no-untyped-call]
    return pooled


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (127.0.0.0/8, ::1) or ``localhost``."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def read_token_file(path: str | os.PathLike[str]) -> str:
    """The write token stored in ``path`` (surrounding whitespace ignored)."""
    try:
        token = FilePath(path).read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgumentError(f"cannot read --token-file {str(path)!r}: {exc}") from None
    if not token:
        raise InvalidArgumentError(f"--token-file {str(path)!r} is empty")
    return token


# -- input checks that name the field ------------------------------------------------------


def _invalid(where: str, field: str, message: str, value: object) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": (where, field), "msg": message, "input": value}]
    )


def _check_dates(where: str, *, since: str | None, until: str | None) -> None:
    """The library's own date rules, run one field at a time so the error can name it."""
    try:
        Filters.make(since=since)
    except InvalidArgumentError as exc:
        raise _invalid(where, "since", str(exc), since) from None
    try:
        Filters.make(until=until)
    except InvalidArgumentError as exc:
        raise _invalid(where, "until", str(exc), until) from None
    try:
        Filters.make(since=since, until=until)
    except InvalidArgumentError as exc:
        raise _invalid(where, "until", str(exc), until) from None


def _check_similar(options: Mapping[str, Any]) -> None:
    _check_dates("body", since=options["since"], until=options["until"])
    if options["published_at"]:
        try:
            parse_datetime(options["published_at"])
        except InvalidArgumentError as exc:
            raise _invalid("body", "published_at", str(exc), options["published_at"]) from None
    text, title, body = options["text"], options["title"], options["body"]
    if text is not None and (title is not None or body is not None):
        raise _invalid("body", "text", "give either text or title/body, not both", text)
    if not any((v or "").strip() for v in (text, title, body)):
        raise _invalid("body", "text", "give text, or a title and/or body that is not empty", text)


def _batch_items(batch: Any) -> list[Any]:
    """The records of a PUT body; items that are not objects become rejections."""
    if isinstance(batch, dict) and set(batch) == {"articles"}:
        batch = batch["articles"]
    if not isinstance(batch, list):
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("body",),
                    "msg": 'expected a JSON array of article records or {"articles": [...]}',
                    "input": None,
                }
            ]
        )
    return [
        item
        if isinstance(item, dict)
        else Rejection(
            source="<input>",
            line=position,
            reason=f"record must be a JSON object, got {_json_type(item)}",
            raw=repr(item)[:2000],
        )
        for position, item in enumerate(batch, start=1)
    ]


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    names = {bool: "boolean", str: "string", list: "array", int: "number", float: "number"}
    return names.get(type(value), type(value).__name__)


# -- errors --------------------------------------------------------------------------------


class _JSONResponse(JSONResponse):
    """JSON that can always be sent: a lone surrogate anywhere in it is sent as U+FFFD.

    Inputs are checked for them, but an error message may still quote what the client
    sent (an unknown key, a record's raw text), and a response must never fail for that.
    """

    def render(self, content: Any) -> bytes:
        text = json.dumps(
            content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
        )
        return printable(text).encode("utf-8")


def _error(
    status: int,
    kind: str,
    message: str,
    *,
    field: str | None = None,
    where: str | None = None,
    details: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"type": kind, "message": message, "field": field, "in": where}
    if details is not None:
        body["details"] = details
    return _JSONResponse({"error": body}, status_code=status, headers=headers)


def _status_of(exc: RecommenderError) -> int:
    return next(status for cls, status in _STATUS if isinstance(exc, cls))


async def _on_library_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RecommenderError)
    status = _status_of(exc)
    if status >= 500:
        _log.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
    headers = {"Retry-After": _RETRY_AFTER_S} if status == 503 else None
    field, where = _located(request, getattr(exc, "field", None))
    return _error(status, type(exc).__name__, str(exc), field=field, where=where, headers=headers)


def _located(request: Request, field: str | None) -> tuple[str | None, str | None]:
    """The request's name for a field the library named, and where in the request it is."""
    if field is None:
        return None, None
    # The library says "id" for the article id, which the routes take as a path parameter.
    if field == "id" and "article_id" in request.path_params:
        return "article_id", "path"
    if field in request.path_params:
        return field, "path"
    if field in request.query_params:
        return field, "query"
    return field, "body" if request.method in ("POST", "PUT") else None


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    details = [_detail(err) for err in errors]
    # Each member of a union (str | list[str]) reports its own error: the one that got past
    # the type check says more ("section.1: invalid Unicode", not "should be a string").
    telling = [
        d
        for d, e in zip(details, errors, strict=True)
        if not str(e.get("type", "")).endswith("_type")
    ]
    first = (telling or details or [{"field": None, "in": None, "message": "invalid request"}])[0]
    message = str(first["message"])
    # Library messages often start with the field's name already.
    if first["field"] and not message.startswith(f"{first['field']}:"):
        message = f"{first['field']}: {message}"
    return _error(
        422,
        "ValidationError",
        message,
        field=first["field"],
        where=first["in"],
        details=details,
    )


#: What pydantic puts in an error's loc for the member of a union that failed: "str",
#: "list[...]", "function-after[...]"; never one of this API's field names.
_UNION_TAG = re.compile(r"str|int|float|bool|[a-z-]+\[.*\]")


def _detail(err: Mapping[str, Any]) -> dict[str, Any]:
    loc = [str(part) for part in err.get("loc", ())]
    where = loc[0] if loc and loc[0] in ("path", "query", "body", "header") else None
    parts = loc[1:] if where else loc
    # The last part of an unknown field's loc is the client's own key: kept as given.
    named = parts[-1:] if err.get("type") == "extra_forbidden" else []
    parts = [p for p in parts[: len(parts) - len(named)] if not _UNION_TAG.fullmatch(p)] + named
    message = str(err.get("msg", "invalid value"))
    if err.get("type") == "json_invalid":
        # The loc of a JSON syntax error is a character offset, not a field.
        position = parts[0] if parts else "?"
        reason = (err.get("ctx") or {}).get("error", message)
        return {
            "field": None,
            "in": "body",
            "message": f"invalid JSON at character {position}: {reason}",
        }
    if not parts and where == "body":
        if err.get("type") == "missing":
            message = "a JSON request body is required"
        elif err.get("type") in ("model_attributes_type", "dict_type"):
            message = "the request body must be a JSON object"
    return {"field": ".".join(parts) or None, "in": where, "message": message}


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        # FastAPI's "error parsing the body" for bytes that are not UTF-8: bad JSON, a 422.
        message = (
            f"the request body is not UTF-8: {exc.__cause__.reason} at byte {exc.__cause__.start}"
        )
        return _error(422, "ValidationError", message, where="body")
    kind = HTTPStatus(exc.status_code).phrase.replace(" ", "")
    return _error(exc.status_code, kind, str(exc.detail), headers=exc.headers)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # Starlette logs the traceback after this; the client gets no internals. This handler
    # runs outside every middleware (Starlette's ServerErrorMiddleware), hence the headers.
    return _error(
        500, "InternalError", "internal server error", headers=_security_headers("application/json")
    )


def _add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RecommenderError, _on_library_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)


# -- middleware ----------------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _BodyLimit:
    """413 for bodies over ``max_bytes``: by Content-Length, and counted while reading."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._too_large(scope, receive, send)
            return
        # Read the whole body here (FastAPI would anyway) so a chunked body that
        # runs past the limit is refused before the app sees any of it.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = _error(
            413,
            "PayloadTooLarge",
            f"request body is over the limit of {self.max_bytes} bytes",
            where="body",
            # The unread rest of the body would otherwise be taken as the next request.
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _security_headers(content_type: str) -> dict[str, str]:
    """The headers every response carries; the CSP depends on what the response is."""
    page = content_type.split(";")[0].strip().lower() == "text/html"
    return {
        "Content-Security-Policy": PAGE_CSP if page else API_CSP,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": REFERRER_POLICY,
    }


class _SecurityHeaders:
    """Adds ``_security_headers`` to every response; a route's own CSP (the docs') stays."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _security_headers(headers.get("content-type", "")).items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _Metrics:
    """Request counts and latency per route template, into the app's own registry."""

    def __init__(self, app: ASGIApp, *, registry: CollectorRegistry) -> None:
        self.app = app
        labels = ("route", "method")
        self.requests = Counter(
            "recommender_http_requests",
            "HTTP requests answered, by route template, method and status.",
            (*labels, "status"),
            registry=registry,
        )
        self.latency = Histogram(
            "recommender_http_request_duration_seconds",
            "Time from request start to the end of the response, by route template.",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = _route_template(scope)
            method = scope["method"]
            self.requests.labels(route, method, str(status)).inc()
            self.latency.labels(route, method).observe(time.perf_counter() - started)


def _route_template(scope: Scope) -> str:
    """The matched route's path template; never the raw path (unbounded label values)."""
    route = scope.get("route")
    if route is None:
        # Answered before routing (a 413): find the route it was meant for.
        app = scope.get("app")
        for candidate in getattr(app, "routes", ()):
            if candidate.matches(scope)[0] == RouteMatch.FULL:
                route = candidate
                break
    path = getattr(route, "path", None)
    return path.replace(":path}", "}") if isinstance(path, str) else "unmatched"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("recommender")
    except metadata.PackageNotFoundError:
        return "0"
