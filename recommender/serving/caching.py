"""HTTP caching and CORS for the read routes: what lets a CDN, a browser and a widget on
another site use the related lists.

    HTTPCache   a strong ``ETag`` (a hash of the body: it changes exactly when the list
                does) and ``Cache-Control: public, max-age=N, stale-while-revalidate=M`` on
                the related lists; ``If-None-Match`` with that tag is a 304 with no body
    CORS        ``Access-Control-Allow-Origin`` for the allowed origins on the read routes
                and the events route only; a route that writes never gets CORS headers,
                and a preflight for one is not answered

Plain ASGI classes, as the rest of the middleware (:mod:`recommender.serving.middleware`).
Only a related list's body is held (to hash it): a few kilobytes.
"""

import hashlib
import re
from collections.abc import Iterable

from starlette.datastructures import Headers, MutableHeaders

from recommender.serving.middleware import ASGIApp, Message, Receive, Scope, Send

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
    no body to hash, so it carries neither)."""

    def __init__(self, app: ASGIApp, *, max_age: int, stale: int) -> None:
        self.app = app
        if max_age > 0:
            self.cache_control = f"public, max-age={max_age}, stale-while-revalidate={stale}"
        else:  # a cache keeps the list but asks again (a 304 when unchanged) every time
            self.cache_control = "no-cache"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not CACHEABLE.match(scope["path"])
        ):
            await self.app(scope, receive, send)
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
                    await self._answer(scope, start[0], b"".join(body), send)

        await self.app(scope, receive, hold)

    async def _answer(self, scope: Scope, start: Message, body: bytes, send: Send) -> None:
        tag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        headers = MutableHeaders(scope=start)
        headers["ETag"] = tag
        headers["Cache-Control"] = self.cache_control
        if _matches(Headers(scope=scope).get("if-none-match"), tag):
            for name in ("content-length", "content-type"):
                if name in headers:
                    del headers[name]
            start["status"] = 304
            await send(start)
            await send({"type": "http.response.body", "body": b""})
            return
        await send(start)
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
