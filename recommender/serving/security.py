"""Who may call what, and the headers every response carries.

    security_headers(type)    the CSP (by content type) and the other headers of a response
    writable                  the dependency of PUT and DELETE: writes on, and the token if set
    Private(what, option)     the dependency of /docs and /metrics when they are not public

The token is compared in constant time; a missing or wrong one is a 401 with
``WWW-Authenticate: Bearer``. Whether the docs and /metrics are public is fixed when
the app is made (``create_app`` adds ``Private`` to their routers or not), so the
OpenAPI schema shows the token only where it is asked for.
"""

import hmac
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from recommender.serving.state import SettingsDep

__all__ = [
    "API_CSP",
    "DOCS_CSP",
    "PAGE_CSP",
    "REFERRER_POLICY",
    "Private",
    "security_headers",
    "writable",
]

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


def security_headers(content_type: str) -> dict[str, str]:
    """The headers every response carries; the CSP depends on what the response is."""
    page = content_type.split(";")[0].strip().lower() == "text/html"
    return {
        "Content-Security-Policy": PAGE_CSP if page else API_CSP,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": REFERRER_POLICY,
    }


_bearer = HTTPBearer(auto_error=False, description="The server's write token.")
_Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def writable(settings: SettingsDep, credentials: _Credentials) -> None:
    """403 when the server is read-only; 401 without the token, when it has one."""
    if not settings.allow_writes:
        raise HTTPException(403, "this server is read-only; writes are turned off")
    if settings.token is not None:
        _require_token(credentials, settings.token)


class Private:
    """The dependency of routes that need the token because they were not made public.

    ``what`` and ``option`` name them and the ``recommender serve`` option that makes
    them public, for the 403 of a server that has no token.
    """

    def __init__(self, what: str, option: str) -> None:
        self.what = what
        self.option = option

    async def __call__(self, settings: SettingsDep, credentials: _Credentials) -> None:
        if settings.token is None:
            raise HTTPException(
                403,
                f"{self.what} is not public on this server and it has no token: "
                f"start it with {self.option}, or with a token",
            )
        _require_token(credentials, settings.token)


def _require_token(credentials: HTTPAuthorizationCredentials | None, token: str) -> None:
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8")):
        raise HTTPException(
            401,
            "a valid bearer token is required: Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
