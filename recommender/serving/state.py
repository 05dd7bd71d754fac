"""What :func:`~recommender.serving.app.create_app` keeps on ``app.state``, and the
dependencies that hand it to routes.

    app.state.settings        Settings: the options the app was created with
    app.state.recommender     the Recommender the routes query
    app.state.writer          Writer: the one thread writes run on
    app.state.metrics         Metrics: the app's Prometheus registry
"""

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, TypeVar

from fastapi import Depends, Request
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from recommender.errors import InvalidArgumentError

if TYPE_CHECKING:
    from recommender.recommender import Recommender

__all__ = [
    "ENV_METRICS_DIR",
    "Metrics",
    "MetricsDep",
    "Rec",
    "Settings",
    "SettingsDep",
    "Writer",
    "WriterDep",
    "shared_metrics_dir",
]

#: prometheus_client's multiprocess mode: each worker writes its metrics to files
#: there, and a scrape of any worker reports the sum over all of them.
ENV_METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """The options of :func:`~recommender.serving.app.create_app`."""

    token: str | None
    allow_writes: bool
    public_docs: bool
    public_metrics: bool
    max_body_bytes: int
    max_k: int
    #: Seconds a shared cache may keep a related list, and then serve it stale while it
    #: asks again (``Cache-Control``); 0: ``no-cache`` (always revalidate, 304 if unchanged).
    cache_max_age: int = 60
    cache_stale: int = 600
    #: Origins whose pages may call the read routes and the events route (CORS).
    allow_origins: tuple[str, ...] = ()
    #: Related-list answers kept as bytes for the current index version (0: none).
    list_cache: int = 10_000

    def __post_init__(self) -> None:
        if self.max_k < 1 or self.max_body_bytes < 1:
            raise InvalidArgumentError(
                f"max_k and max_body_bytes must be positive, "
                f"got {self.max_k} and {self.max_body_bytes}"
            )
        if self.list_cache < 0:
            raise InvalidArgumentError(
                f"list_cache must be >= 0, got {self.list_cache}", field="list_cache"
            )
        if self.cache_max_age < 0 or self.cache_stale < 0:
            raise InvalidArgumentError(
                f"cache_max_age must be >= 0, got {self.cache_max_age}", field="cache_max_age"
            )
        for origin in self.allow_origins:
            if origin != "*" and not _is_origin(origin):
                raise InvalidArgumentError(
                    f"allow_origin: {origin!r} is not an origin such as https://example.com",
                    field="allow_origin",
                )


class Writer:
    """The one thread writes run on, so they queue in order here instead of each holding
    a query thread while waiting for the index's writer lock.

    Started by the first write and stopped (after the writes in flight) when the app's
    lifespan ends; a later lifespan of the same app (tests run several) starts a new one.
    """

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    async def run(self, call: Callable[[], T]) -> T:
        """``call()`` on the writer thread, after the writes queued before it."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="recommender-writer")
            pool = self._pool
        return await asyncio.get_running_loop().run_in_executor(pool, call)

    def stop(self) -> None:
        """Wait for the writes in flight, then let the thread go."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


@dataclass(frozen=True)
class Metrics:
    """The app's own Prometheus registry: the article count here, and the request counts
    and latencies of :class:`~recommender.serving.middleware.RequestMetrics`."""

    registry: CollectorRegistry
    articles: Gauge

    @classmethod
    def create(cls) -> "Metrics":
        """A new registry holding the article count."""
        registry = CollectorRegistry(auto_describe=True)
        # "mostrecent": with several workers the scrape reports the count the
        # latest worker to look saw, not a sum or a max over the workers' views.
        articles = Gauge(
            "recommender_articles",
            "Articles in the index.",
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        return cls(registry, articles)

    def scrape(self, *, articles: int) -> bytes:
        """The Prometheus text of /metrics, pooled over every worker when there are several."""
        self.articles.set(articles)
        if not shared_metrics_dir():
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        pooled = CollectorRegistry()
        multiprocess.MultiProcessCollector(pooled)  # type: ignore[no-untyped-call]
        return generate_latest(pooled)


def shared_metrics_dir() -> str | None:
    """The directory through which workers pool their metrics (prometheus_client's)."""
    return os.environ.get(ENV_METRICS_DIR) or None


# -- dependencies --------------------------------------------------------------------------
# async, so that FastAPI calls them on the event loop rather than in its threadpool.


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _recommender(request: Request) -> "Recommender":
    rec: Recommender = request.app.state.recommender
    return rec


async def _writer(request: Request) -> Writer:
    writer: Writer = request.app.state.writer
    return writer


async def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(_settings)]
Rec = Annotated["Recommender", Depends(_recommender)]
WriterDep = Annotated[Writer, Depends(_writer)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]


def _is_origin(value: str) -> bool:
    """Whether ``value`` is a scheme and host (and port), as a browser sends ``Origin``."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value.rstrip("/"))
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.path
