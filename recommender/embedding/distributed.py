"""Distributed embedding: the encoder as a Ray Data pipeline, Parquet out.

Articles are read and validated here (rejects are reported as ``build`` reports
them), handed to Ray Data as blocks, and embedded by a pool of actors that
each load the model once (:class:`EmbedActor`); the vectors go to Parquet in
the format :mod:`recommender.embedding.precomputed` reads. The same call runs on this
machine (Ray starts a local cluster) or on a Ray cluster (``address``), where
actors may be GPU workers (``gpus_per_actor``).

On a small machine give actors fractional CPUs: with every core reserved by an
actor, Ray has none left to schedule the tasks that read and write blocks, and
the pipeline stalls.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recommender.embedding.encoders import ARTICLE_BATCH, ArticleEmbedder, make_encoder
from recommender.embedding.precomputed import _arrow_table, embedding_info, publish_directory
from recommender.errors import InvalidArgumentError
from recommender.types import Article

__all__ = ["EmbedActor", "EmbedReport", "embed_with_ray"]


@dataclass(frozen=True)
class EmbedReport:
    """What :func:`embed_with_ray` wrote."""

    articles: int
    output: str
    files: int
    seconds: float


class EmbedActor:
    """One Ray actor: holds the model; each row it gets is one group of articles to embed.

    A row holds the ids, titles, bodies and text hashes of :data:`ARTICLE_BATCH`
    consecutive input articles, embedded in one model call as an in-process
    build embeds them (the int8 backend's vectors depend on their batch-mates).
    """

    def __init__(self, model: str, backend: str | None, embedding: dict[str, Any]) -> None:
        encoder = make_encoder(model, backend=backend)
        self.embedder = ArticleEmbedder.from_config(encoder, embedding)

    def __call__(self, rows: Any) -> Any:
        import pyarrow as pa

        tables = []
        for group in rows.to_pylist():
            pairs = list(zip(group["titles"], group["bodies"], strict=True))
            vectors = self.embedder.embed_texts(pairs)
            tables.append(_arrow_table(group["ids"], group["hashes"], vectors))
        return pa.concat_tables(tables)


def embed_with_ray(
    articles: Sequence[Article],
    output: str | os.PathLike[str],
    *,
    model: str | None = None,
    backend: str | None = None,
    address: str | None = None,
    actors: int = 2,
    cpus_per_actor: float = 0.5,
    gpus_per_actor: float = 0.0,
    quiet: bool = False,
) -> EmbedReport:
    """Embed ``articles`` with ``actors`` Ray actors and write Parquet to ``output``.

    ``address`` is a Ray cluster (``ray://head:10001`` or ``auto``); without it
    a local Ray instance runs for the call. ``output`` is replaced whole once
    every vector is written. ``quiet`` keeps Ray's progress logs out of stderr.
    """
    import time

    if actors < 1 or cpus_per_actor <= 0 or gpus_per_actor < 0:
        raise InvalidArgumentError(
            f"need actors >= 1, cpus_per_actor > 0 and gpus_per_actor >= 0; "
            f"got {actors}, {cpus_per_actor}, {gpus_per_actor}"
        )
    ray = _ray()
    started = time.monotonic()
    # The settings of an in-process build: the actors embed exactly as it would.
    embedder = ArticleEmbedder(make_encoder(model, backend=backend))
    info = embedding_info(embedder, len(articles))
    records = [
        {
            "ids": [a.id for a in group],
            "titles": [a.title for a in group],
            "bodies": [a.body for a in group],
            "hashes": [a.content_hash for a in group],
        }
        for group in (
            articles[s : s + ARTICLE_BATCH] for s in range(0, len(articles), ARTICLE_BATCH)
        )
    ]
    owned = not ray.is_initialized()
    if quiet:
        logging.getLogger("ray").setLevel(logging.WARNING)
        ray.data.DataContext.get_current().enable_progress_bars = False
    if owned:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING if quiet else logging.INFO,
        )
    files: list[str] = []
    try:

        def fill(tmp: Path) -> None:
            if not records:
                return
            # Rows are groups of ARTICLE_BATCH articles: one block per group up to a few
            # per actor keeps every actor busy; Ray sizes large inputs itself.
            blocks = min(len(records), actors * 4) if len(records) < 10_000 else None
            dataset = ray.data.from_items(records, override_num_blocks=blocks)
            resources: dict[str, float] = {"num_cpus": cpus_per_actor}
            if gpus_per_actor:
                resources["num_gpus"] = gpus_per_actor
            vectors = dataset.map_batches(
                EmbedActor,
                fn_constructor_kwargs={
                    "model": info["model"]["id"],
                    "backend": backend,
                    "embedding": info["embedding"],
                },
                batch_size=1,
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=actors),
                **resources,
            )
            vectors.write_parquet(str(tmp))
            files.extend(p.name for p in tmp.glob("*.parquet"))

        publish_directory(Path(output), fill, info)
    finally:
        if owned:
            ray.shutdown()
    return EmbedReport(len(articles), str(output), len(files), time.monotonic() - started)


def _ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise InvalidArgumentError(
            "distributed embedding needs Ray: pip install -c constraints.txt -e '.[ray]'"
        ) from None
    return ray
