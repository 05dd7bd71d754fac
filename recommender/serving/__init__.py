"""The HTTP service and its web pages.

    app           create_app, app_from_env, serve: the app factory and the server
    routes/       the JSON API's routers: operations, queries, widget, events, articles
    docs          /openapi.json, /docs and /redoc
    schemas       request and response models
    errors        library errors -> statuses, the JSON error shape, validation errors
    security      the token, read-only mode, private docs and /metrics, security headers
    middleware    security headers, the body size limit, request metrics
    caching       ETag, Cache-Control and 304s of the related lists; CORS for the reads
    state         what the app keeps on app.state, and the dependencies that read it
    web           the web UI (HTML pages)
    _uvicorn      the uvicorn glue (workers, graceful shutdown)

The names below are imported from their modules on first use, so importing the package
loads nothing heavy and no module of it imports another through it (recommender.lazy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recommender.lazy import lazy_exports

if TYPE_CHECKING:
    from recommender.serving.app import app_from_env, create_app, serve

__all__ = ["app_from_env", "create_app", "serve"]

_HOME = {
    "app_from_env": "recommender.serving.app",
    "create_app": "recommender.serving.app",
    "serve": "recommender.serving.app",
}

__getattr__ = lazy_exports(__name__, _HOME)
