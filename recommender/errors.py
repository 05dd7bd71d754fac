"""The one exception hierarchy of recommender.

    RecommenderError                 catch this to handle anything the engine raises on purpose
    ├── InvalidArgumentError         a caller passed a bad value (k, a filter date, an option)
    ├── ArticleNotFoundError         an article id is not in the index
    ├── IndexDirectoryError          (base for problems with an index directory)
    │   ├── IndexNotFoundError       no index at that path
    │   ├── IndexFormatError         the directory is damaged, foreign or of an unknown format
    │   ├── ModelMismatchError       the index was built with another model or dimension
    │   └── IndexLockedError         another writer holds the index
    ├── RejectedRecordsError         --strict and some input records were rejected
    ├── InputError                   an input file cannot be read at all
    ├── EncoderError                 the embedding model cannot be loaded or run
    └── StoreError                   the vector engine (a Milvus server) cannot be reached or
                                     refused a request; retry later

The CLI maps every RecommenderError to a one-line message and a non-zero exit
code; the HTTP service maps them to 4xx/5xx JSON errors. Nothing else should
define exceptions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from recommender.types import Rejection

__all__ = [
    "ArticleNotFoundError",
    "EncoderError",
    "IndexDirectoryError",
    "IndexFormatError",
    "IndexLockedError",
    "IndexNotFoundError",
    "InputError",
    "InvalidArgumentError",
    "ModelMismatchError",
    "RecommenderError",
    "RejectedRecordsError",
    "StoreError",
]


class RecommenderError(Exception):
    """Base of every error recommender raises on purpose."""

    exit_code = 1


class InvalidArgumentError(RecommenderError, ValueError):
    """A caller passed a value the engine cannot use; the message names it.

    ``field`` names the offending input (``"id"``, ``"text"``, ``"url"``...) when one is known,
    so the edges can point at it (a 422's ``loc``) without validating the value again.
    """

    exit_code = 2

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ArticleNotFoundError(RecommenderError, KeyError):
    """The article id (or, with ``url``, no article with that URL) is not in the index."""

    exit_code = 3

    def __init__(self, article_id: str, *, url: str | None = None) -> None:
        super().__init__(article_id)
        self.article_id = article_id
        self.url = url
        #: The request field that named the missing article: "url" for a URL lookup.
        self.field = "url" if url is not None else None

    def __str__(self) -> str:
        if self.url is not None:
            return f"no indexed article has the URL {self.url!r}"
        return f"article {self.article_id!r} is not in the index"


class IndexDirectoryError(RecommenderError):
    """Base for problems with an index directory."""

    exit_code = 4


class IndexNotFoundError(IndexDirectoryError):
    """No index exists at the given path."""


class IndexFormatError(IndexDirectoryError):
    """The index directory is damaged, not ours, or written by an unknown format version."""


class ModelMismatchError(IndexDirectoryError):
    """The index was built with a different model or dimension than the one requested."""


class IndexLockedError(IndexDirectoryError):
    """Another process is writing to the index and did not finish in time."""


class RejectedRecordsError(RecommenderError):
    """Raised in strict mode when any input record is rejected; nothing is published."""

    exit_code = 5

    def __init__(self, rejections: list[Rejection], rejects_path: str | None = None) -> None:
        self.rejections = rejections
        self.rejects_path = rejects_path
        first = rejections[0] if rejections else None
        msg = f"{len(rejections)} record(s) rejected in strict mode; nothing was published"
        if first is not None:
            msg += f" (first: {first})"
        super().__init__(msg)


class InputError(RecommenderError):
    """An input file cannot be opened or read at all (as opposed to one bad record)."""

    exit_code = 6


class EncoderError(RecommenderError):
    """The embedding model cannot be loaded or run."""

    exit_code = 7


class StoreError(RecommenderError):
    """The vector engine outside the index directory (Milvus) failed or cannot be reached.

    Catch it to retry: the index itself is intact, the engine was unavailable.
    """

    exit_code = 8
