"""The date written in a story's first lines: its parser lives in recommender.ingest.dates.

Kept as a module of its own for its importers (the catalog, the facade).
"""

from __future__ import annotations

from recommender.ingest.dates import LEAD_CHARS, lead_date

__all__ = ["LEAD_CHARS", "lead_date"]
