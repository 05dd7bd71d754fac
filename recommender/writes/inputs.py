"""What a write takes in: articles checked one by one, rejects recorded, vectors supplied.

Builds and upserts accept articles, mappings and the rejections a reader already
made; each bad item becomes a :class:`~recommender.types.Rejection` (never an
exception in the middle of a batch) and the run's rejections are written to
``rejects.jsonl``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from typing import Any

from recommender.embedding.encoders import ArticleEmbedder
from recommender.embedding.precomputed import PrecomputedEmbeddings
from recommender.errors import InvalidArgumentError, RejectedRecordsError
from recommender.index import layout as storage
from recommender.ingest.records import article_from_mapping, check_article
from recommender.text import printable
from recommender.types import Article, Rejection

__all__ = [
    "ArticleInput",
    "batched",
    "open_precomputed",
    "raise_if_rejected",
    "split",
    "validated",
    "write_rejects",
]

#: What builds and upserts take: articles, mappings read into articles, or rejections.
ArticleInput = Article | Mapping[str, Any] | Rejection


def validated(items: Iterable[ArticleInput]) -> Iterator[Article | Rejection]:
    """Turn mappings into articles and reject repeated ids (the first one wins)."""
    seen: dict[str, int] = {}
    for position, item in enumerate(items, start=1):
        if isinstance(item, Mapping):
            try:
                item = article_from_mapping(item)
            except InvalidArgumentError as exc:
                raw = printable(json.dumps(item, default=str, ensure_ascii=False)[:2000])
                reason = printable(str(exc))
                yield Rejection(source="<input>", line=position, reason=reason, raw=raw)
                continue
        if isinstance(item, Article):
            try:
                check_article(item)
            except InvalidArgumentError as exc:
                reason = printable(str(exc))
                yield Rejection("<input>", position, reason, printable(item.id))
                continue
            if item.id in seen:
                reason = f"duplicate id {item.id!r} (first at item {seen[item.id]})"
                yield Rejection(source="<input>", line=position, reason=reason, id=item.id)
                continue
            seen[item.id] = position
        yield item


def split(items: Iterable[Article | Rejection], rejected: list[Rejection]) -> Iterator[Article]:
    """The articles of ``items``; their rejections are appended to ``rejected``."""
    for item in items:
        if isinstance(item, Rejection):
            rejected.append(item)
        else:
            yield item


def batched(items: Iterable[Article], size: int) -> Iterator[list[Article]]:
    """``items`` in lists of ``size`` (the last may be shorter)."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def raise_if_rejected(layout: storage.IndexLayout, rejected: list[Rejection]) -> None:
    """With any rejection, record them all and raise :class:`RejectedRecordsError`."""
    if rejected:
        layout.check_writable_target()
        with layout.writer_lock():
            write_rejects(layout, rejected)
        raise RejectedRecordsError(rejected, str(layout.rejects_path))


def write_rejects(layout: storage.IndexLayout, rejected: list[Rejection]) -> None:
    """Replace rejects.jsonl with this run's rejections (removed when there are none)."""
    if not rejected:
        layout.rejects_path.unlink(missing_ok=True)
        return
    # ASCII with escapes: any rejected input can be written, lone surrogates included,
    # and its raw text reads back exactly as it came in.
    storage.write_lines_atomic(
        layout.rejects_path, (json.dumps(r.to_dict(), ensure_ascii=True) for r in rejected)
    )


def open_precomputed(
    path: str | os.PathLike[str] | None, embedder: ArticleEmbedder, where: str
) -> PrecomputedEmbeddings | None:
    """The embeddings directory at ``path`` (None for none), checked against ``embedder``."""
    if path is None:
        return None
    pre = PrecomputedEmbeddings.open(path)
    pre.check(embedder, where)
    return pre
