"""POST /v1/events: impressions and clicks of related items."""

from typing import Annotated, Any

from fastapi import APIRouter, Body

from recommender.serving.schemas import ERRORS, EventsIn, EventsRecorded
from recommender.serving.state import Rec

__all__ = ["router"]

router = APIRouter(tags=["feedback"])


@router.post("/v1/events", response_model=EventsRecorded, responses=ERRORS)
def post_events(rec: Rec, batch: Annotated[EventsIn, Body()]) -> dict[str, Any]:
    """Record impressions and clicks of related items (append-only; no token needed).

    Body: ``{"events": [{"type": "impression"|"click", "article_id", "related_id",
    "position", "bucket"}]}``, at most 1,000 per request; all or none are recorded.
    ``recommender report`` summarises them.
    """
    records = [e.model_dump() for e in batch.events]
    return {"recorded": rec.events.record(records)}
