"""Turning text into vectors: the Encoder contract, its backends and precomputed vectors.

    encoders      Encoder (the contract), make_encoder (by model id), sentence-transformers,
                  the hashing encoder, ArticleEmbedder (title + body -> one vector)
    onnx          the onnx and onnx-int8 backends (the model without torch)
    precomputed   vectors written by `recommender embed`
    distributed   embedding as a Ray Data pipeline

The names below are imported from their modules on first use, so importing the package
loads nothing heavy and no module of it imports another through it (recommender.lazy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recommender.lazy import lazy_exports

if TYPE_CHECKING:
    from recommender.embedding.encoders import (
        BACKENDS,
        DEFAULT_BACKEND,
        DEFAULT_MODEL,
        ArticleEmbedder,
        Encoder,
        HashingEncoder,
        SentenceTransformerEncoder,
        make_encoder,
    )
    from recommender.embedding.precomputed import PrecomputedEmbeddings

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "DEFAULT_MODEL",
    "ArticleEmbedder",
    "Encoder",
    "HashingEncoder",
    "PrecomputedEmbeddings",
    "SentenceTransformerEncoder",
    "make_encoder",
]

_HOME = {
    "ArticleEmbedder": "recommender.embedding.encoders",
    "BACKENDS": "recommender.embedding.encoders",
    "DEFAULT_BACKEND": "recommender.embedding.encoders",
    "DEFAULT_MODEL": "recommender.embedding.encoders",
    "Encoder": "recommender.embedding.encoders",
    "HashingEncoder": "recommender.embedding.encoders",
    "PrecomputedEmbeddings": "recommender.embedding.precomputed",
    "SentenceTransformerEncoder": "recommender.embedding.encoders",
    "make_encoder": "recommender.embedding.encoders",
}

__getattr__ = lazy_exports(__name__, _HOME)
