"""HTTP caching and CORS for the read routes: what lets a CDN, a browser and a widget on
another site use the related lists, and what answers a repeated list without the app.

    HTTPCache   a strong ``ETag`` (a hash of the body: it changes exactly when the list
                does) and ``Cache-Control: public, max-age=N, stale-while-revalidate=M`` on
                the related lists; ``If-None-Match`` with that tag is a 304 with no body;
                the tagged answers kept as bytes for the index's current version
    CORS        ``Access-Control-Allow-Origin`` for the allowed origins on the read routes
                and the events route only; a route that writes never gets CORS headers,
                and a preflight for one is not answered

Plain ASGI classes, as the rest of the middleware (:mod:`recommender.serving.middleware`).
Only a related list's body is held (to hash and keep it): a few kilobytes.
"""

import hashlib
import re
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING

from starlette.datastructures import Headers, MutableHeaders

from recommender.serving.middleware import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from recommender.recommender import Recommender

__all__ = ["CACHEABLE", "CORS", "CROSS_ORIGIN", "HTTPCache"]

#: The GET routes whose answers may be cached: a related list, by id or by URL.
CACHEABLE = re.compile(r"^/v1/(?:articles/.+/related|related(?:\.html)?)$")
#: (method, path) a page on another origin may call: reads, and the events it reports.
CROSS_ORIGIN = (
    ("GET", re.compile(r"^/v1/(?!events$).*$")),
    ("POST", re.compile(r"^/v1/(?:similar|events)$")),
)


class HTTPCache:
    """ETag, Cache-Control and 304s for :data:`CACHEABLE` GET requests (a HEAD answer has
    no body to hash, so it carries neither), and the answers kept as bytes.

    A related list is a pure function of the request and of the index's version
    (``Recommender.version``: any write by any process, the rules). Most of a served
    request's time is the path around the ranking (routing, validation, serialisation), so
    up to ``max_entries`` answers are kept, tagged, under the version they were computed
    for, keyed by the raw path and query string; a repeated request is answered here,
    before FastAPI sees it, until the version changes, and the first request after a change
    finds them dropped. Measured with ``wrk`` in scripts/bench_http.py (docs/benchmarks.md,
    issue 22). The version is read on the event loop without catching up (a file stat and
    one SQLite pragma): catching up, which may wait for a writer, stays in the route.
    ``max_entries=0`` keeps nothing; the headers and 304s stay.
    """

    def __init__(
        self, app: ASGIApp, *, rec: "Recommender", max_age: int, stale: int, max_entries: int
    ) -> None:
        self.app = app
        self.rec = rec
        self.max_entries = max_entries
        if max_age > 0:
            self.cache_control = f"public, max-age={max_age}, stale-while-revalidate={stale}"
        else:  # a cache keeps the list but asks again (a 304 when unchanged) every time
            self.cache_control = "no-cache"
        self._version: object = None
        #: (path, query string) -> (the answer's start headers, ETag and Cache-Control in, body).
        self._kept: OrderedDict[tuple[str, bytes], tuple[list[tuple[bytes, bytes]], bytes]]
        self._kept = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not CACHEABLE.match(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        version = self._current_version()
        key = (scope["path"], scope["query_string"])
        kept = self._kept.get(key)
        if kept is not None:
            await self._answer(scope, list(kept[0]), kept[1], send)
            return
        start: list[Message] = []  # a 200's start, held until its body is hashed
        body: list[bytes] = []

        async def hold(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                start.append(message)
            elif message["type"] != "http.response.body" or not start:
                await send(message)  # not a 200: passed on as it comes
            else:
                body.append(message.get("body", b""))
                if not message.get("more_body", False):
                    whole = b"".join(body)
                    headers = self._tagged(start[0], whole)
                    self._keep(key, version, headers, whole)
                    await self._answer(scope, list(headers), whole, send)

        await self.app(scope, receive, hold)

    def _current_version(self) -> object:
        """The index's version, dropping what was kept for another; None keeps nothing."""
        if not self.max_entries:
            return None
        try:
            version = self.rec.version()
        except Exception:  # a damaged index, a fake in tests: answers are not kept
            return None
        if version != self._version:
            self._kept.clear()
            self._version = version
        return version

    def _tagged(self, start: Message, body: bytes) -> list[tuple[bytes, bytes]]:
        """The answer's headers with its ETag (a hash of the body) and Cache-Control."""
        headers = MutableHeaders(raw=list(start.get("headers", [])))
        headers["ETag"] = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        headers["Cache-Control"] = self.cache_control
        return headers.raw

    def _keep(
        self,
        key: tuple[str, bytes],
        version: object,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> None:
        if version is None or version != self._version:
            return
        self._kept[key] = (headers, body)
        while len(self._kept) > self.max_entries:
            self._kept.popitem(last=False)

    async def _answer(
        self, scope: Scope, headers: list[tuple[bytes, bytes]], body: bytes, send: Send
    ) -> None:
        """200 with ``body``, or 304 without it when ``If-None-Match`` names its ETag."""
        tagged = MutableHeaders(raw=headers)  # a copy: the middleware outside adds its own
        if _matches(Headers(scope=scope).get("if-none-match"), tagged["etag"]):
            for name in ("content-length", "content-type"):
                if name in tagged:
                    del tagged[name]
            start = {"type": "http.response.start", "status": 304, "headers": tagged.raw}
            await send(start)
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 200, "headers": tagged.raw})
        await send({"type": "http.response.body", "body": body})


def _matches(if_none_match: str | None, tag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``tag`` (weak forms and ``*`` included)."""
    if not if_none_match:
        return False
    named = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in named or tag in named


class CORS:
    """CORS headers for ``origins`` on :data:`CROSS_ORIGIN` requests, and their preflights."""

    def __init__(self, app: ASGIApp, *, origins: Iterable[str]) -> None:
        self.app = app
        self.origins = frozenset(o.rstrip("/") for o in origins)

    def _allowed(self, origin: str | None, method: str, path: str) -> bool:
        if origin is None or ("*" not in self.origins and origin not in self.origins):
            return False
        method = "GET" if method == "HEAD" else method
        return any(m == method and p.match(path) for m, p in CROSS_ORIGIN)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Headers(scope=scope)
        origin = request.get("origin")
        asked = request.get("access-control-request-method")
        if scope["method"] == "OPTIONS" and asked is not None:
            if self._allowed(origin, asked.upper(), scope["path"]):
                await _preflight(origin or "", send)
                return
        elif self._allowed(origin, scope["method"], scope["path"]):

            async def with_cors(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = MutableHeaders(scope=message)
                    headers["Access-Control-Allow-Origin"] = origin or ""
                    headers["Access-Control-Expose-Headers"] = "ETag"
                    headers.add_vary_header("Origin")
                await send(message)

            await self.app(scope, receive, with_cors)
            return
        await self.app(scope, receive, send)


async def _preflight(origin: str, send: Send) -> None:
    headers = [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-methods", b"GET, HEAD, POST"),
        (b"access-control-allow-headers", b"Content-Type, If-None-Match"),
        (b"access-control-max-age", b"600"),
        (b"vary", b"Origin"),
        (b"content-length", b"0"),
    ]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
