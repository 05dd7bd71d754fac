"""Reading articles: records (JSONL/CSV/JSON), saved pages (HTML, scraped text), dates.

    records       read_records, FieldMap, article_from_mapping: validated Articles + Rejections
    pages         extract_page: the story of a saved HTML or scraped-text page
    scraped_text  parse_scraped_text: a scraped page without its site chrome
    dateline      lead_date: the date written in a story's first lines
    demo          the bundled demo corpus

The names below are imported from their modules on first use, so importing the package
loads nothing heavy and no module of it imports another through it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recommender.ingest.dateline import lead_date
    from recommender.ingest.demo import demo_articles
    from recommender.ingest.pages import Page, extract_page, page_kind
    from recommender.ingest.records import (
        FieldMap,
        ReadStats,
        article_from_mapping,
        check_article,
        parse_datetime,
        read_records,
    )

__all__ = [
    "FieldMap",
    "Page",
    "ReadStats",
    "article_from_mapping",
    "check_article",
    "demo_articles",
    "extract_page",
    "lead_date",
    "page_kind",
    "parse_datetime",
    "read_records",
]

_HOME = {
    "FieldMap": "recommender.ingest.records",
    "Page": "recommender.ingest.pages",
    "ReadStats": "recommender.ingest.records",
    "article_from_mapping": "recommender.ingest.records",
    "check_article": "recommender.ingest.records",
    "demo_articles": "recommender.ingest.demo",
    "extract_page": "recommender.ingest.pages",
    "lead_date": "recommender.ingest.dateline",
    "page_kind": "recommender.ingest.pages",
    "parse_datetime": "recommender.ingest.records",
    "read_records": "recommender.ingest.records",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
