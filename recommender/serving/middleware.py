"""The service's ASGI middleware, outermost first as ``create_app`` stacks them.

    SecurityHeaders     ``security_headers`` on every response; a route's own CSP stays
    RequestMetrics      request counts and latency per route template
    BodyLimit           413 for bodies over the limit, by Content-Length and while reading

Plain ASGI classes rather than ``BaseHTTPMiddleware``: they see every response (the
413s answered before routing included) and never buffer a response body.
"""

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.routing import iter_route_contexts
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.datastructures import MutableHeaders
from starlette.routing import Match

from recommender.serving.errors import error
from recommender.serving.security import security_headers

__all__ = ["BodyLimit", "RequestMetrics", "SecurityHeaders"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class BodyLimit:
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
        response = error(
            413,
            "PayloadTooLarge",
            f"request body is over the limit of {self.max_bytes} bytes",
            where="body",
            # The unread rest of the body would otherwise be taken as the next request.
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


class SecurityHeaders:
    """Adds ``security_headers`` to every response; a route's own CSP (the docs') stays."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in security_headers(headers.get("content-type", "")).items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestMetrics:
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
    path = getattr(scope.get("route"), "path", None)
    if path is None:
        # Answered before routing (a 413): find the route it was meant for. The routes of
        # included routers are reached through FastAPI's route contexts.
        for candidate in iter_route_contexts(getattr(scope.get("app"), "routes", ())):
            if candidate.matches(scope)[0] == Match.FULL:
                path = candidate.path
                break
    return path.replace(":path}", "}") if isinstance(path, str) else "unmatched"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None
