"""recommender: related-article recommendations for news sites.

    from recommender import Recommender
    rec = Recommender.open("indexes/news")
    rec.related("article-id", k=10)

Heavy modules are imported on first use of the names that need them, so
importing the package (and ``recommender --help``) stays instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recommender.errors import (
    ArticleNotFoundError,
    EncoderError,
    IndexDirectoryError,
    IndexFormatError,
    IndexLockedError,
    IndexNotFoundError,
    InputError,
    InvalidArgumentError,
    ModelMismatchError,
    RecommenderError,
    RejectedRecordsError,
    StoreError,
)
from recommender.lazy import lazy_exports
from recommender.types import (
    Article,
    ArticleListing,
    ArticleSummary,
    Explanation,
    Match,
    Rejection,
    UpdateReport,
)

if TYPE_CHECKING:
    from recommender.embedding.encoders import Encoder, SentenceTransformerEncoder
    from recommender.ingest.records import FieldMap, read_records
    from recommender.ranking.scoring import RankingConfig
    from recommender.recommender import Recommender

__all__ = [
    "Article",
    "ArticleListing",
    "ArticleNotFoundError",
    "ArticleSummary",
    "Encoder",
    "EncoderError",
    "Explanation",
    "FieldMap",
    "IndexDirectoryError",
    "IndexFormatError",
    "IndexLockedError",
    "IndexNotFoundError",
    "InputError",
    "InvalidArgumentError",
    "Match",
    "ModelMismatchError",
    "RankingConfig",
    "Recommender",
    "RecommenderError",
    "RejectedRecordsError",
    "Rejection",
    "SentenceTransformerEncoder",
    "StoreError",
    "UpdateReport",
    "read_records",
]

_LAZY = {
    "Recommender": "recommender.recommender",
    "Encoder": "recommender.embedding.encoders",
    "SentenceTransformerEncoder": "recommender.embedding.encoders",
    "FieldMap": "recommender.ingest.records",
    "RankingConfig": "recommender.ranking.scoring",
    "read_records": "recommender.ingest.records",
}


__getattr__ = lazy_exports(__name__, _LAZY)
