"""GET /v1/articles/{id}/related and POST /v1/similar.

Their ``k`` is capped by the app (``create_app(max_k=...)``), and the cap is part of
their OpenAPI schema, so each app builds this router with :func:`router`; everything
else about them is declared here at module level.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel

from recommender.serving.schemas import (
    CACHED,
    ERRORS,
    ArticleId,
    Bucket,
    Explain,
    Many,
    RelatedList,
    similar_query,
)
from recommender.serving.state import Rec

if TYPE_CHECKING:
    from recommender.recommender import Recommender

__all__ = ["router"]

_Since = Annotated[str | None, Query(description="On or after this ISO 8601 date.")]
_Until = Annotated[str | None, Query(description="Before this date (a date: all of it).")]
_Url = Annotated[
    str, Query(description="The page's URL (canonical: scheme, case, tracking do not matter).")
]
_ExcludeStory = Annotated[
    bool, Query(description="true: nothing from the article's own story (background only).")
]
_Fresh = Annotated[
    bool, Query(description="false: answer from the stored list (a lookup) when usable.")
]


def router(*, max_k: int) -> APIRouter:
    """The query routes, their ``k`` from 1 to ``max_k``."""
    queries = APIRouter(tags=["queries"])
    K = Annotated[int, Query(ge=1, le=max_k, description=f"How many results (1-{max_k}).")]  # noqa: N806
    SimilarQuery = similar_query(max_k)  # noqa: N806

    def list_options(
        k: K = 10,
        section: Many = None,
        since: _Since = None,
        until: _Until = None,
        language: Many = None,
        exclude: Many = None,
        explain: Explain = False,
        fresh: _Fresh = True,
        bucket: Bucket = None,
        exclude_story: _ExcludeStory = False,
    ) -> _Options:
        """The query options both related-list routes take (one declaration, one schema)."""
        return _Options(
            k, section, since, until, language, exclude, explain, fresh, bucket, exclude_story
        )

    Options = Annotated[_Options, Depends(list_options)]  # noqa: N806

    @queries.get(
        "/v1/articles/{article_id:path}/related", response_model=RelatedList, responses=CACHED
    )
    def related(rec: Rec, article_id: ArticleId, options: Options) -> dict[str, Any]:
        """The related list of an indexed article, best first, never the article itself.

        ``section``, ``language`` and ``exclude`` repeat (``?section=a&section=b``: any of them).
        """
        return _related(rec, article_id, options)

    @queries.get("/v1/related", response_model=RelatedList, responses=CACHED)
    def related_at_url(rec: Rec, url: _Url, options: Options) -> dict[str, Any]:
        """The related list of the indexed article at ``url``: the page's own (canonical) URL.

        Compared canonically: scheme, host case, a trailing slash, the fragment and tracking
        parameters (``utm_*``, ``fbclid``...) do not matter; an article stored with a site
        path (``/2026/story``) matches any host. 404 when no article has the URL.
        """
        return _related(rec, rec.article_at(url), options)

    @queries.post("/v1/similar", response_model=RelatedList, responses=ERRORS)
    def similar(
        rec: Rec,
        query: Annotated[SimilarQuery, Body()],  # type: ignore[valid-type]
        explain: Explain = False,
        bucket: Bucket = None,
    ) -> dict[str, Any]:
        """Related articles for a story not in the index: ``text``, or ``title``/``body``."""
        return _similar(rec, query, explain=explain, bucket=bucket)

    return queries


@dataclass(frozen=True)
class _Options:
    k: int
    section: list[str] | None
    since: str | None
    until: str | None
    language: list[str] | None
    exclude: list[str] | None
    explain: bool
    fresh: bool
    bucket: str | None
    exclude_story: bool


def _related(rec: "Recommender", article_id: str, options: _Options) -> dict[str, Any]:
    o = options
    matches = rec.related(
        article_id,
        k=o.k,
        section=o.section,
        since=o.since,
        until=o.until,
        language=o.language,
        exclude=o.exclude or (),
        explain=o.explain,
        fresh=o.fresh,
        bucket=o.bucket,
        exclude_story=o.exclude_story,
    )
    computed_at, stale = None, None
    if not o.fresh and o.bucket is None:
        standing = rec.stored_standing(article_id, matches, k=o.k)
        computed_at = standing.computed_at
        if standing.stale is not None:
            stale = f"{standing.stale}; recompute with: {standing.recompute}"
    return {
        "id": article_id,
        "related": [m.to_dict() for m in matches],
        "computed_at": computed_at,
        "stale": stale,
        "bucket": o.bucket,
    }


def _similar(
    rec: "Recommender", query: BaseModel, *, explain: bool, bucket: str | None
) -> dict[str, Any]:
    options = query.model_dump()
    matches = rec.similar(
        text=options["text"],
        title=options["title"],
        body=options["body"],
        published_at=options["published_at"],
        k=options["k"],
        section=options["section"],
        since=options["since"],
        until=options["until"],
        language=options["language"],
        exclude=options["exclude"] or (),
        explain=explain,
        bucket=bucket,
    )
    return {"id": None, "related": [m.to_dict() for m in matches], "bucket": bucket}
