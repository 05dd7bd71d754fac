"""Every error leaves as ``{"error": {"type", "message", "field", "in"}}``.

    STATUS / status_of(exc)     library errors -> HTTP statuses, in one table
    add_error_handlers(app)     library errors, validation errors, HTTP errors, the rest
    error(status, kind, msg)    one error response (the 413 of the body limit uses it too)
    invalid(where, field, msg)  a validation error that names its field, for checks in routes
    JSONResponse                the app's JSON renderer: never fails on text that is not
                                valid Unicode

Validation errors are reshaped so that ``field`` names the parameter as the client
wrote it (``section.1``, not pydantic's ``section.list[...].1``) and ``message`` is
the most telling of the problems found; ``details`` lists every one of them.
"""

import json
import logging
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi import responses as fastapi_responses
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

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
from recommender.serving.security import security_headers
from recommender.text import printable

__all__ = [
    "STATUS",
    "JSONResponse",
    "add_error_handlers",
    "error",
    "invalid",
    "status_of",
]

# The service logs under one name, whichever of its modules writes.
_log = logging.getLogger("recommender.serving.app")

# Most specific class first: the first isinstance match wins.
STATUS: list[tuple[type[RecommenderError], int]] = [
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


class JSONResponse(fastapi_responses.JSONResponse):
    """JSON that can always be sent: a lone surrogate anywhere in it is sent as U+FFFD.

    Inputs are checked for them, but an error message may still quote what the client
    sent (an unknown key, a record's raw text), and a response must never fail for that.
    """

    def render(self, content: Any) -> bytes:
        text = json.dumps(
            content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
        )
        return printable(text).encode("utf-8")


def error(
    status: int,
    kind: str,
    message: str,
    *,
    field: str | None = None,
    where: str | None = None,
    details: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The error response: ``kind`` is the machine-readable type, ``where`` the field's place."""
    body: dict[str, Any] = {"type": kind, "message": message, "field": field, "in": where}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def status_of(exc: RecommenderError) -> int:
    """The HTTP status of a library error (``STATUS``)."""
    return next(status for cls, status in STATUS if isinstance(exc, cls))


def invalid(where: str, field: str, message: str, value: object) -> RequestValidationError:
    """A 422 about ``field`` of the request's ``where`` (path, query, body)."""
    return RequestValidationError(
        [{"type": "value_error", "loc": (where, field), "msg": message, "input": value}]
    )


def add_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` in the one JSON shape."""
    app.add_exception_handler(RecommenderError, _on_library_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)


async def _on_library_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RecommenderError)
    status = status_of(exc)
    if status >= 500:
        _log.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
    headers = {"Retry-After": _RETRY_AFTER_S} if status == 503 else None
    field, where = _located(request, getattr(exc, "field", None))
    return error(status, type(exc).__name__, str(exc), field=field, where=where, headers=headers)


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
    return error(
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
        return error(422, "ValidationError", message, where="body")
    kind = HTTPStatus(exc.status_code).phrase.replace(" ", "")
    return error(exc.status_code, kind, str(exc.detail), headers=exc.headers)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # Starlette logs the traceback after this; the client gets no internals. This handler
    # runs outside every middleware (Starlette's ServerErrorMiddleware), hence the headers.
    return error(
        500, "InternalError", "internal server error", headers=security_headers("application/json")
    )
