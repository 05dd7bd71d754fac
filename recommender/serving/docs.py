"""/openapi.json, /docs and /redoc: FastAPI's own pages, with a CSP that lets them run.

``create_app`` turns FastAPI's built-in docs routes off and includes this router
instead, with :class:`~recommender.serving.security.Private` when they are not public.
"""

import base64
import hashlib
import re

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from recommender.serving.errors import JSONResponse
from recommender.serving.security import DOCS_CSP

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.get("/openapi.json")
def openapi(request: Request) -> Response:
    schema = request.app.openapi()
    if _root(request):  # behind a proxy's path prefix, as FastAPI's own route does
        schema = {**schema, "servers": [{"url": _root(request)}]}
    return JSONResponse(schema)


@router.get("/docs")
def swagger(request: Request) -> Response:
    page = get_swagger_ui_html(
        openapi_url=_root(request) + "/openapi.json",
        title=f"{request.app.title} - API",
        # No badge from validator.swagger.io: the schema stays on this server.
        swagger_ui_parameters={"validatorUrl": None},
    )
    return _with_docs_csp(page)


@router.get("/redoc")
def redoc(request: Request) -> Response:
    page = get_redoc_html(openapi_url=_root(request) + "/openapi.json", title=request.app.title)
    return _with_docs_csp(page)


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


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
