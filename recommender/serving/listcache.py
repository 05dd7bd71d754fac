"""The answers of the related-list routes kept as bytes, for the index as it is now.

A related list is a pure function of the request and of the index's version
(``Recommender.version``: any write by any process, the rules). Most of a served request's
time is the request path around the ranking (routing, validation, serialisation), so the
answer of each list asked for is kept, serialised, and a later identical request (same path
and query string) is answered here, before FastAPI sees it, for as long as the version is
unchanged; the first request after any change finds the cache emptied. Measured with ``wrk``
in scripts/bench_http.py (figures in docs/benchmarks.md, issue 22).

Keyed by the raw path and query string, so ``?k=5&explain=true`` and ``?explain=true&k=5``
are two entries; only 200 answers of GET requests are kept, at most ``max_entries`` of them
(the oldest go first). The version is read on the event loop without catching up (a file
stat and one SQLite pragma): catching up, which may wait for a writer, stays in the route.
"""

from collections import OrderedDict
from typing import TYPE_CHECKING

from recommender.serving.caching import CACHEABLE
from recommender.serving.middleware import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from recommender.recommender import Recommender

__all__ = ["ListCache"]


class ListCache:
    """Plain ASGI: answers repeated related-list requests from bytes kept for this version."""

    def __init__(self, app: ASGIApp, *, rec: "Recommender", max_entries: int) -> None:
        self.app = app
        self.rec = rec
        self.max_entries = max_entries
        self._version: object = None
        self._answers: OrderedDict[tuple[str, bytes], tuple[list[tuple[bytes, bytes]], bytes]]
        self._answers = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not CACHEABLE.match(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        try:
            version = self.rec.version()
        except Exception:  # a damaged index, a fake in tests: the route answers, uncached
            await self.app(scope, receive, send)
            return
        if version != self._version:
            self._answers.clear()
            self._version = version
        key = (scope["path"], scope["query_string"])
        kept = self._answers.get(key)
        if kept is not None:
            headers, body = kept
            # A copy: the middleware outside adds its headers to the list it is given.
            start = {"type": "http.response.start", "status": 200, "headers": list(headers)}
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, self._keeper(key, version, send))

    def _keeper(self, key: tuple[str, bytes], version: object, send: Send) -> Send:
        """``send``, keeping a 200 answer under ``version`` on the way."""
        start: list[Message] = []
        body: list[bytes] = []

        async def keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.append(message)
            elif message["type"] == "http.response.body" and start[0]["status"] == 200:
                body.append(message.get("body", b""))
                if not message.get("more_body", False) and version == self._version:
                    self._store(key, list(start[0].get("headers", [])), b"".join(body))
            await send(message)

        return keep

    def _store(
        self, key: tuple[str, bytes], headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        self._answers[key] = (headers, body)
        while len(self._answers) > self.max_entries:
            self._answers.popitem(last=False)
