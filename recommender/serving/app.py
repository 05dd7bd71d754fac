"""The HTTP query service: a FastAPI app around one :class:`Recommender`.

    create_app(rec, token=...)   the app factory; the caller owns ``rec``
    app_from_env()               the factory ``recommender serve`` gives uvicorn: each
                                 worker process opens its own Recommender
    serve(index, ...)            ``recommender serve``: uvicorn, its workers and settings

The factory makes the app and wires its parts, which live in their own modules (see
:mod:`recommender.serving`): the routers of ``routes/`` and ``docs``, the error
handlers of ``errors``, the middleware, and the state the routes read (``state``).

Hardening, in one place each: every response carries the security headers of
``security_headers`` (a strict CSP for the HTML pages, ``default-src 'none'`` for
everything else); JSON is rendered by ``errors.JSONResponse``, which cannot fail on text
that is not valid Unicode; every string of a JSON body must be valid Unicode
(``schemas.Text``), so a lone surrogate is a 422 naming its field, never a 500; the docs
and ``/metrics`` need the bearer token unless the app is told they are public.
"""

import ipaddress
import logging
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI

from recommender.errors import InvalidArgumentError, RecommenderError
from recommender.serving import docs
from recommender.serving.caching import CORS, HTTPCache
from recommender.serving.errors import JSONResponse, add_error_handlers, status_of
from recommender.serving.middleware import BodyLimit, RequestMetrics, SecurityHeaders
from recommender.serving.routes import articles, events, operations, queries, stories, widget
from recommender.serving.schemas import PRIVATE_ERRORS
from recommender.serving.security import (
    API_CSP,
    DOCS_CSP,
    PAGE_CSP,
    REFERRER_POLICY,
    Private,
)
from recommender.serving.state import ENV_METRICS_DIR, Metrics, Settings, Writer, shared_metrics_dir

if TYPE_CHECKING:
    from recommender.recommender import Recommender

__all__ = [
    "API_CSP",
    "DOCS_CSP",
    "ENV_ALLOW_ORIGINS",
    "ENV_CACHE_MAX_AGE",
    "ENV_INDEX",
    "ENV_LIST_CACHE",
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
#: Seconds of ``Cache-Control: max-age`` on related lists; origins allowed by CORS (spaces).
ENV_CACHE_MAX_AGE = "RECOMMENDER_CACHE_MAX_AGE"
ENV_ALLOW_ORIGINS = "RECOMMENDER_ALLOW_ORIGINS"
#: How many related-list answers each worker keeps for the index's current version.
ENV_LIST_CACHE = "RECOMMENDER_LIST_CACHE"
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_K = 100

_log = logging.getLogger("recommender.serving.app")
#: Seconds in-flight requests get to finish after SIGTERM before workers stop.
_GRACEFUL_SHUTDOWN_S = 30


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
    cache_max_age: int = 60,
    allow_origins: tuple[str, ...] = (),
    list_cache: int = 10_000,
) -> FastAPI:
    """The HTTP API over ``rec``, which the caller keeps open for the app's lifetime.

    Writes (PUT, DELETE) need ``Authorization: Bearer <token>`` when ``token`` is
    set; with ``token=None`` they are open, which ``recommender serve`` allows only
    on a loopback address. ``allow_writes=False`` makes them answer 403.

    ``public_docs=False`` puts /docs, /redoc and /openapi.json behind the same
    token, and ``public_metrics=False`` does so for /metrics; without a token they
    then answer 403. ``recommender serve`` makes them public only on a loopback address.

    Related lists carry an ``ETag`` and ``Cache-Control: public, max-age=cache_max_age``
    (304 for a matching ``If-None-Match``); ``allow_origins`` may call the read routes and
    the events route from their pages (CORS; :mod:`recommender.serving.caching`). The
    answers of up to ``list_cache`` related lists are kept for the index's current version
    (:class:`recommender.serving.caching.HTTPCache`; 0 keeps none).
    """
    settings = Settings(
        token=token,
        allow_writes=allow_writes,
        public_docs=public_docs,
        public_metrics=public_metrics,
        max_body_bytes=max_body_bytes,
        max_k=max_k,
        cache_max_age=cache_max_age,
        cache_stale=10 * cache_max_age,
        allow_origins=allow_origins,
        list_cache=list_cache,
    )
    return _build(rec, settings, owns_rec=False)


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
    settings = Settings(
        token=os.environ.get(ENV_TOKEN) or None,
        allow_writes=not _env_flag(ENV_READ_ONLY, default=False),
        public_docs=_env_flag(ENV_PUBLIC_DOCS, default=True),
        public_metrics=_env_flag(ENV_PUBLIC_METRICS, default=True),
        max_body_bytes=MAX_BODY_BYTES,
        max_k=MAX_K,
        cache_max_age=_env_int(ENV_CACHE_MAX_AGE, default=60),
        cache_stale=10 * _env_int(ENV_CACHE_MAX_AGE, default=60),
        allow_origins=tuple(o for o in os.environ.get(ENV_ALLOW_ORIGINS, "").split() if o),
        list_cache=_env_int(ENV_LIST_CACHE, default=10_000),
    )
    rec = Recommender.open(index)
    try:
        rec.warm_up()  # before uvicorn accepts: the first request pays for nothing
    except RecommenderError as exc:  # a store that is down now may be up for requests
        _log.warning("warm-up query failed: %s", exc)
    return _build(rec, settings, owns_rec=True)


def _env_int(name: str, *, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit():
        raise InvalidArgumentError(f"{name} must be a whole number of seconds, got {value!r}")
    return int(value)


def _env_flag(name: str, *, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    if value:
        raise InvalidArgumentError(f"{name} must be 1 or 0, got {value!r}")
    return default


def _build(rec: "Recommender", settings: Settings, *, owns_rec: bool) -> FastAPI:
    app = FastAPI(
        title="recommender",
        summary="Related articles for news sites.",
        version=_version(),
        lifespan=_lifespan,
        # Served by the docs router below, behind the token when they are not public.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        default_response_class=JSONResponse,
    )
    metrics = Metrics.create()
    # What the routes and the lifespan read (recommender.serving.state).
    app.state.settings = settings
    app.state.recommender = rec
    app.state.owns_recommender = owns_rec
    app.state.writer = Writer()
    app.state.metrics = metrics
    add_error_handlers(app)
    # Starlette adds middleware outside-in in reverse order: metrics sees every
    # response, the 413s of the body limit and the 304s included; CORS answers preflights
    # and adds its headers to the 304s too.
    app.add_middleware(
        HTTPCache,
        rec=rec,
        max_age=settings.cache_max_age,
        stale=settings.cache_stale,
        max_entries=settings.list_cache,
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetrics, registry=metrics.registry)
    if settings.allow_origins:
        app.add_middleware(CORS, origins=settings.allow_origins)
    # Outermost: the headers reach every response, the 413s and the metrics' included.
    app.add_middleware(SecurityHeaders)

    # In this order: it is the order of the OpenAPI schema, and the related route
    # must come before GET /v1/articles/{article_id:path}, which would match it too.
    docs_guard = _unless(settings.public_docs, Private("the API documentation", "--public-docs"))
    metrics_guard = _unless(settings.public_metrics, Private("/metrics", "--public-metrics"))
    app.include_router(docs.router, dependencies=docs_guard)
    app.include_router(operations.health_router)
    app.include_router(
        operations.metrics_router,
        dependencies=metrics_guard,
        responses={} if settings.public_metrics else PRIVATE_ERRORS,
    )
    app.include_router(operations.info_router)
    app.include_router(queries.router(max_k=settings.max_k))
    app.include_router(widget.router)
    app.include_router(stories.router)
    app.include_router(events.router)
    app.include_router(articles.router)

    from recommender.serving.web import add_web_ui

    # The HTML pages for people (browse, a story's Related list, paste a story): read-only
    # queries like the JSON ones, so the token and --read-only leave them as they are.
    add_web_ui(app, rec, status_of=status_of, max_k=settings.max_k, docs=settings.public_docs)
    return app


def _unless(public: bool, guard: Private) -> list[Any]:
    """The dependencies of a router that needs the token unless it is ``public``."""
    return [] if public else [Depends(guard)]


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    try:
        yield
    finally:
        app.state.writer.stop()
        if shared_metrics_dir():
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
        if app.state.owns_recommender:
            app.state.recommender.close()


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("recommender")
    except metadata.PackageNotFoundError:
        return "0"


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
    cache_max_age: int = 60,
    allow_origins: tuple[str, ...] = (),
    list_cache: int = 10_000,
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
    # Checked here, once, rather than in every worker.
    Settings(
        token=None,
        allow_writes=False,
        public_docs=True,
        public_metrics=True,
        max_body_bytes=1,
        max_k=1,
        cache_max_age=cache_max_age,
        allow_origins=allow_origins,
        list_cache=list_cache,
    )
    os.environ[ENV_INDEX] = str(FilePath(index).resolve())
    os.environ[ENV_CACHE_MAX_AGE] = str(cache_max_age)
    os.environ[ENV_ALLOW_ORIGINS] = " ".join(allow_origins)
    os.environ[ENV_LIST_CACHE] = str(list_cache)
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
    if workers == 1 or shared_metrics_dir():
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
