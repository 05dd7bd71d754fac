"""Reading articles: records (JSONL/CSV/JSON), saved pages (HTML, scraped text), dates.

    records        read_records, ReadStats: validated Articles + Rejections from sources
    validation     FieldMap, article_from_mapping, check_article: one record to one Article
    sources        files, folders, globs, stdin and symlinks, checked before reading
    readers        the JSONL, CSV, JSON array and page readers
    pages          extract_page: the story of a saved HTML or scraped-text page
    page           Page: what extraction found in one page
    scraped_text   parse_scraped_text: a scraped page without its site chrome
    scraped_lines  what one line of a scraped page is (chrome, list headers, prose)
    scraped_meta   metadata lines of a scraped page (dates, bylines, tags, breadcrumbs)
    dates          every date parser: parse_datetime, parse_page_date, lead_date
    demo           the bundled demo corpus

The names below are imported from their modules on first use, so importing the package
loads nothing heavy and no module of it imports another through it (recommender.lazy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recommender.lazy import lazy_exports

if TYPE_CHECKING:
    from recommender.ingest.dates import lead_date, parse_datetime
    from recommender.ingest.demo import demo_articles
    from recommender.ingest.pages import Page, extract_page, page_kind
    from recommender.ingest.records import ReadStats, read_records
    from recommender.ingest.validation import FieldMap, article_from_mapping, check_article

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
    "FieldMap": "recommender.ingest.validation",
    "Page": "recommender.ingest.pages",
    "ReadStats": "recommender.ingest.records",
    "article_from_mapping": "recommender.ingest.validation",
    "check_article": "recommender.ingest.validation",
    "demo_articles": "recommender.ingest.demo",
    "extract_page": "recommender.ingest.pages",
    "lead_date": "recommender.ingest.dates",
    "page_kind": "recommender.ingest.pages",
    "parse_datetime": "recommender.ingest.dates",
    "read_records": "recommender.ingest.records",
}

__getattr__ = lazy_exports(__name__, _HOME)
