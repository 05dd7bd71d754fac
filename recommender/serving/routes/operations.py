"""GET /healthz, GET /metrics and GET /v1/info.

/metrics has a router of its own because who may call it is the app's choice: it needs
the token unless the app makes it public (``create_app`` adds the guard when it
includes ``metrics_router``). /healthz and /v1/info are always public; they are apart
only to keep the routes in the order the API has always listed them.
"""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from recommender.serving.schemas import ERRORS, Health, IndexInfo
from recommender.serving.state import MetricsDep, Rec

__all__ = ["health_router", "info_router", "metrics_router"]

health_router = APIRouter(tags=["operations"])
metrics_router = APIRouter(tags=["operations"])
info_router = APIRouter(tags=["index"])


@health_router.get("/healthz", response_model=Health)
async def healthz() -> dict[str, str]:
    """Liveness: answers as long as the server's event loop runs."""
    return {"status": "ok"}


@metrics_router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}
    },
)
def metrics(rec: Rec, registry: MetricsDep) -> Response:
    """Prometheus text format: requests and latency per route, article count."""
    rec.refresh()
    return Response(registry.scrape(articles=len(rec)), media_type=CONTENT_TYPE_LATEST)


@info_router.get("/v1/info", response_model=IndexInfo, responses=ERRORS)
def info(rec: Rec) -> dict[str, Any]:
    """The index's manifest (model, embedding, ranking, versions) and live counts."""
    return rec.info().to_dict()
