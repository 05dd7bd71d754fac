"""Precomputed embeddings: Parquet files that ``build``/``add`` read instead of encoding.

A directory written by ``recommender embed`` (or :func:`write_embeddings`)::

    embeddings/
      embeddings.json     model id, backend, dimension, embedding settings, count
      part-*.parquet      one row per article: id, content_hash, vector (float32 x dimension)

Each row carries the hash of the text it was computed from
(:attr:`Article.content_hash`): an article whose title or body changed since
is embedded again rather than indexed under a stale vector. Vectors made with
another model, backend or passage settings are refused, as opening an index
with another model is.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recommender.embedding.encoders import LEGACY_BACKEND, ArticleEmbedder
from recommender.errors import InputError, ModelMismatchError
from recommender.types import Article

__all__ = ["INFO", "PrecomputedEmbeddings", "embedding_info", "write_embeddings"]

INFO = "embeddings.json"
FORMAT_VERSION = 1


def embedding_info(
    embedder: ArticleEmbedder, count: int, *, dimension: int | None = None
) -> dict[str, Any]:
    """What ``embeddings.json`` records: everything a vector depends on besides the text.

    ``dimension``, when known, spares loading the model to ask it.
    """
    encoder = embedder.encoder
    return {
        "format_version": FORMAT_VERSION,
        "model": {
            "id": encoder.model_id,
            "backend": getattr(encoder, "backend", LEGACY_BACKEND),
            "dimension": dimension if dimension is not None else encoder.dimension,
        },
        "embedding": embedder.config(),
        "count": count,
    }


def _arrow_table(ids: Sequence[str], hashes: Sequence[str], vectors: np.ndarray) -> Any:
    import pyarrow as pa

    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel(), pa.float32())
    return pa.table(
        {
            "id": pa.array(list(ids), pa.string()),
            "content_hash": pa.array(list(hashes), pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]),
        }
    )


def write_embeddings(
    articles: Sequence[Article], vectors: np.ndarray, embedder: ArticleEmbedder, output: Path
) -> None:
    """Write one Parquet part and ``embeddings.json`` to ``output`` (replaced whole)."""
    import pyarrow.parquet as pq

    def fill(tmp: Path) -> None:
        table = _arrow_table([a.id for a in articles], [a.content_hash for a in articles], vectors)
        pq.write_table(table, tmp / "part-00000.parquet")

    info = embedding_info(embedder, len(articles), dimension=int(vectors.shape[1]))
    publish_directory(output, fill, info)


def publish_directory(output: Path, fill: Callable[[Path], None], info: dict[str, Any]) -> None:
    """Fill a temporary directory beside ``output``, then swap it in (a killed run leaves none)."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{secrets.token_hex(4)}.tmp")
    tmp.mkdir()
    try:
        fill(tmp)
        (tmp / INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", "utf-8")
        if output.exists():
            if not (output / INFO).is_file():
                raise InputError(
                    f"refusing to replace {str(output)!r}: it is not an embeddings directory"
                )
            old = output.with_name(f".{output.name}.{secrets.token_hex(4)}.old")
            os.replace(output, old)
            os.replace(tmp, output)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class PrecomputedEmbeddings:
    """Vectors by article id, read from an embeddings directory."""

    info: dict[str, Any]
    rows: dict[str, int]
    hashes: list[str]
    vectors: np.ndarray
    #: How many articles were served from the files, and how many had to be embedded.
    used: int = 0
    embedded: int = 0
    _stale: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> PrecomputedEmbeddings:
        """Read a directory written by ``recommender embed``."""
        root = Path(path)
        try:
            info = json.loads((root / INFO).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(
                f"{str(root)!r} is not an embeddings directory (no readable {INFO}); "
                f"write one with 'recommender embed'"
            ) from exc
        try:
            import pyarrow.parquet as pq

            table = pq.read_table(
                sorted(str(p) for p in root.glob("*.parquet")),
                columns=["id", "content_hash", "vector"],
            )
        except ImportError:
            raise InputError(
                "reading embeddings needs pyarrow: pip install -c constraints.txt -e '.[ray]'"
            ) from None
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the Parquet files in {str(root)!r}: {exc}") from exc
        dimension = int(info["model"]["dimension"])
        column = table.column("vector").combine_chunks()
        vectors = np.asarray(column.flatten(), dtype=np.float32).reshape(-1, dimension)
        ids = [str(i) for i in table.column("id").to_pylist()]
        rows = {aid: row for row, aid in enumerate(ids)}
        return cls(info, rows, table.column("content_hash").to_pylist(), vectors)

    def check(self, embedder: ArticleEmbedder, where: str) -> None:
        """Refuse vectors made with another model, backend or embedding settings."""
        mine = embedding_info(embedder, 0)
        theirs = self.info
        for key in ("id", "backend", "dimension"):
            if mine["model"][key] != theirs["model"].get(key):
                raise ModelMismatchError(
                    f"the embeddings were made with model {theirs['model'].get('id')!r} "
                    f"({theirs['model'].get('backend')} backend, "
                    f"{theirs['model'].get('dimension')}-d); {where} uses "
                    f"{mine['model']['id']!r} ({mine['model']['backend']} backend, "
                    f"{mine['model']['dimension']}-d)"
                )
        if mine["embedding"] != theirs.get("embedding"):
            raise ModelMismatchError(
                f"the embeddings were made with settings {theirs.get('embedding')}; "
                f"{where} embeds with {mine['embedding']}"
            )

    def vectors_for(
        self, articles: Sequence[Article], embed: Callable[[Sequence[Article]], np.ndarray]
    ) -> np.ndarray:
        """The stored vector of each article; ``embed`` for those absent or stale."""
        out = np.empty((len(articles), self.vectors.shape[1]), dtype=np.float32)
        missing: list[int] = []
        for position, article in enumerate(articles):
            row = self.rows.get(article.id)
            if row is None or self.hashes[row] != article.content_hash:
                missing.append(position)
                if row is not None:
                    self._stale.append(article.id)
                continue
            out[position] = self.vectors[row]
        if missing:
            out[missing] = embed([articles[p] for p in missing])
        self.used += len(articles) - len(missing)
        self.embedded += len(missing)
        return out

    def summary(self) -> str:
        stale = f" ({len(self._stale)} stale: the text changed)" if self._stale else ""
        return (
            f"{self.used} vector(s) from precomputed embeddings, "
            f"{self.embedded} embedded here{stale}"
        )
