"""GET /v1/articles/{id}/story and GET /v1/stories: the archive grouped into stories."""

from typing import Annotated, Any

from fastapi import APIRouter, Query

from recommender.serving.schemas import ERRORS, ArticleId, Story, StoryList
from recommender.serving.state import Rec

__all__ = ["router"]

router = APIRouter(tags=["stories"])


@router.get("/v1/articles/{article_id:path}/story", response_model=Story, responses=ERRORS)
def story(rec: Rec, article_id: ArticleId) -> dict[str, Any]:
    """The story of an indexed article: its thread, in time order (undated articles last)."""
    return rec.story(article_id).to_dict()


@router.get("/v1/stories", response_model=StoryList, responses=ERRORS)
def stories(
    rec: Rec,
    min_size: Annotated[int, Query(ge=1, description="Stories of at least this many.")] = 2,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The stories of the archive, largest first, a page at a time."""
    found = rec.stories(min_size=min_size)
    page = found[offset : offset + limit]
    return {
        "stories": [s.to_dict() for s in page],
        "total": len(found),
        "offset": offset,
        "limit": limit,
    }
