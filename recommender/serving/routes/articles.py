"""GET /v1/articles/{id}, and the writes: PUT /v1/articles, DELETE /v1/articles/{id}.

Writes need ``writable`` (:mod:`recommender.serving.security`) and run on the app's one
writer thread, in the order they arrive.
"""

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from fastapi.exceptions import RequestValidationError

from recommender.errors import ArticleNotFoundError
from recommender.serving.schemas import (
    BATCH_SCHEMA,
    ERRORS,
    WRITE_ERRORS,
    ArticleId,
    StoredArticle,
    WriteReport,
)
from recommender.serving.security import writable
from recommender.serving.state import Rec, WriterDep
from recommender.types import Rejection

__all__ = ["router"]

router = APIRouter()


@router.get(
    "/v1/articles/{article_id:path}",
    response_model=StoredArticle,
    responses=ERRORS,
    tags=["index"],
)
def get_article(rec: Rec, article_id: ArticleId) -> dict[str, Any]:
    """The stored record of one article."""
    # get() reads the catalog as it is; pick up other workers' writes first.
    rec.refresh()
    return rec.get(article_id).to_dict()


@router.put(
    "/v1/articles",
    response_model=WriteReport,
    responses=WRITE_ERRORS,
    dependencies=[Depends(writable)],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": BATCH_SCHEMA}},
        }
    },
    tags=["writes"],
)
async def put_articles(
    rec: Rec, writer: WriterDep, batch: Annotated[Any, Body()]
) -> dict[str, Any]:
    """Add or update a batch of records (the CLI's format and validation).

    The body is a JSON array of records or ``{"articles": [...]}``. Bad records
    are listed in ``rejected`` with reasons; the others land in one transaction,
    visible to the next query and durable once this answers.
    """
    items = _batch_items(batch)
    report = await writer.run(partial(rec.upsert, items))
    return report.to_dict()


@router.delete(
    "/v1/articles/{article_id:path}",
    response_model=WriteReport,
    responses=WRITE_ERRORS,
    dependencies=[Depends(writable)],
    tags=["writes"],
)
async def delete_article(rec: Rec, writer: WriterDep, article_id: ArticleId) -> dict[str, Any]:
    """Delete one article; 404 when it is not in the index."""
    report = await writer.run(partial(rec.remove, [article_id]))
    if report.missing:
        raise ArticleNotFoundError(article_id)
    return report.to_dict()


def _batch_items(batch: Any) -> list[Any]:
    """The records of a PUT body; items that are not objects become rejections."""
    if isinstance(batch, dict) and set(batch) == {"articles"}:
        batch = batch["articles"]
    if not isinstance(batch, list):
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("body",),
                    "msg": 'expected a JSON array of article records or {"articles": [...]}',
                    "input": None,
                }
            ]
        )
    return [
        item
        if isinstance(item, dict)
        else Rejection(
            source="<input>",
            line=position,
            reason=f"record must be a JSON object, got {_json_type(item)}",
            raw=repr(item)[:2000],
        )
        for position, item in enumerate(batch, start=1)
    ]


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    names = {bool: "boolean", str: "string", list: "array", int: "number", float: "number"}
    return names.get(type(value), type(value).__name__)
