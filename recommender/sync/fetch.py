"""The HTTP side of sync: polite, conditional, bounded fetches.

    Fetcher.get(url, validators)   one GET: If-None-Match/If-Modified-Since from the last
                                   run, retries with backoff, the per-host delay, a size cap
    Fetcher.allowed(url)           robots.txt, read once per host and run (protego)
    Fetched                        status, body, new validators, or the reason it failed

A failure is a value (``Fetched.problem``), never an exception: one hanging or broken
server must not stop a run over a whole site.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

if TYPE_CHECKING:
    from protego import Protego

__all__ = ["USER_AGENT", "Fetched", "Fetcher", "Validators", "origin"]


def _version() -> str:
    try:
        return metadata.version("recommender")
    except metadata.PackageNotFoundError:
        return "0"


#: Names the crawler as robots.txt rules address it (the project publishes no URL to cite).
USER_AGENT = f"recommender-sync/{_version()} (related-article indexer)"
#: The token robots.txt groups match (the product name of USER_AGENT).
ROBOTS_TOKEN = "recommender-sync"
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A Retry-After or Crawl-delay longer than this is capped: one host must not stall a run.
_MAX_WAIT = 60.0


@dataclass(frozen=True)
class Validators:
    """What the server said identifies the version it sent (for a conditional GET)."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class Fetched:
    """One answer: ``status`` 0 when no HTTP answer came (``problem`` says why)."""

    url: str
    status: int = 0
    content: bytes = b""
    validators: Validators = field(default_factory=Validators)
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.problem is None

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def gone(self) -> bool:
        return self.status in (404, 410)


class Fetcher:
    """An HTTP client for one run: per-host delay, robots.txt cache, retries.

    ``backoff`` is the first retry's wait in seconds (doubled each retry); ``transport``
    and ``sleep`` are for tests.
    """

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        delay: float = 1.0,
        retries: int = 2,
        backoff: float = 0.5,
        user_agent: str = USER_AGENT,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": user_agent},
            follow_redirects=True,
            max_redirects=5,
            transport=transport,
        )
        self._delay = delay
        self._retries = retries
        self._backoff = backoff
        self._sleep = sleep
        self._last: dict[str, float] = {}
        self._host_delay: dict[str, float] = {}
        self._robots: dict[str, Protego | None] = {}
        #: Hosts whose robots.txt could not be read (5xx, no answer): nothing is fetched there.
        self.robots_problems: dict[str, str] = {}

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, url: str, validators: Validators | None = None, *, limit: int) -> Fetched:
        """GET ``url`` (conditional when ``validators`` are given), at most ``limit`` bytes."""
        headers = _conditional_headers(validators)
        attempt = 0
        while True:
            answer, retry_after = self._once(url, headers, limit)
            if retry_after is None or attempt >= self._retries:
                return answer
            self._sleep(max(self._backoff * 2**attempt, min(retry_after, _MAX_WAIT)))
            attempt += 1

    def _once(self, url: str, headers: dict[str, str], limit: int) -> tuple[Fetched, float | None]:
        """The answer, and None or (worth a retry) the least wait the server asked for."""
        self._wait_turn(url)
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                return _read(url, response, limit), _retry_after(response)
        except httpx.ReadTimeout:
            # Not retried: a server that accepted and then hung tends to hang again, and
            # each retry would stall the run for a whole timeout.
            return Fetched(url, problem="timeout"), None
        except httpx.TimeoutException:
            return Fetched(url, problem="timeout (connect)"), 0.0
        except httpx.TransportError as exc:
            return Fetched(url, problem=_describe(exc)), 0.0
        except httpx.HTTPError as exc:  # too many redirects, a bad URL
            return Fetched(url, problem=_describe(exc)), None
        finally:
            self._last[origin(url)] = time.monotonic()

    def _wait_turn(self, url: str) -> None:
        host = origin(url)
        last = self._last.get(host)
        if last is None:
            return
        wait = last + self._host_delay.get(host, self._delay) - time.monotonic()
        if wait > 0:
            self._sleep(wait)

    def allowed(self, url: str) -> bool:
        """Whether robots.txt lets this crawler fetch ``url`` (read once per host)."""
        host = origin(url)
        if host not in self._robots:
            self._robots[host] = self._read_robots(url)
        rules = self._robots[host]
        if rules is None:
            return host not in self.robots_problems
        return bool(rules.can_fetch(url, ROBOTS_TOKEN))

    def _read_robots(self, url: str) -> Protego | None:
        from protego import Protego

        host = origin(url)
        answer = self.get(f"{host}/robots.txt", limit=512 * 1024)
        if answer.ok:
            rules = Protego.parse(answer.content.decode("utf-8", "replace"))
            crawl_delay = rules.crawl_delay(ROBOTS_TOKEN)
            if crawl_delay:
                self._host_delay[host] = max(self._delay, min(float(crawl_delay), _MAX_WAIT))
            return rules
        if 400 <= answer.status < 500:
            return None  # RFC 9309: no robots.txt (404, 403...) allows everything
        # RFC 9309: an unreachable robots.txt (5xx, no answer) means "disallow all".
        self.robots_problems[host] = f"robots.txt unavailable ({answer.problem})"
        return None


def _read(url: str, response: httpx.Response, limit: int) -> Fetched:
    final = str(response.url)
    validators = Validators(response.headers.get("ETag"), response.headers.get("Last-Modified"))
    if response.status_code != 200:
        problem = None if response.status_code == 304 else f"HTTP {response.status_code}"
        return Fetched(final, response.status_code, b"", validators, problem)
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            return Fetched(final, 200, b"", Validators(), f"over {limit:,} bytes")
        chunks.append(chunk)
    return Fetched(final, 200, b"".join(chunks), validators)


def _conditional_headers(validators: Validators | None) -> dict[str, str]:
    headers = {}
    if validators is not None and validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators is not None and validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    return headers


def _retry_after(response: httpx.Response) -> float | None:
    """None when the answer is final, else the seconds its Retry-After asks (0 if none)."""
    if response.status_code not in _RETRY_STATUSES:
        return None
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, when.timestamp() - time.time())


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: what robots.txt and the delay apply to."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def _describe(exc: httpx.HTTPError) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text else name
