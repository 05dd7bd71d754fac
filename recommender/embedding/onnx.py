"""A sentence-transformers model run by onnxruntime: the ``onnx`` and ``onnx-int8`` backends.

The model is exported once (the whole sentence-transformers pipeline: transformer,
pooling and normalisation as the model's own modules define them, traced with
torch's exporter), optionally quantised to int8, and cached on disk. After that,
encoding needs neither torch nor sentence-transformers: the model's fast
tokenizer (saved next to the graph) and an onnxruntime session do the work.

Cache layout, under ``$RECOMMENDER_CACHE_DIR`` (default ``~/.cache/recommender``)::

    onnx/<model>-<backend>-<key>/   key: hash of the model's files, the backend and the recipe
        model.onnx                  the graph (fp32, or with int8 weights)
        tokenizer.json              the model's fast tokenizer
        meta.json                   written last: dimension, max_seq_length, inputs, ...
    onnx/<model>-<backend>-<key>.lock

An entry is built in a temporary directory and renamed into place, so a reader
sees a whole entry or none; the lock file makes a second process that needs the
same entry wait for the first one's export instead of repeating it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock
import numpy as np

from recommender.embedding.models import (
    DEFAULT_MODEL,
    canonical_model_id,
    default_model_path,
    quiet_transformers,
    token_batches,
)
from recommender.errors import EncoderError

__all__ = ["OnnxEncoder", "cache_root"]

#: Part of every cache key: bump it when the export recipe changes, so that old
#: entries are never reused for a different graph.
_RECIPE = "1"
_META = "meta.json"
_GRAPH = "model.onnx"
_TOKENIZER = "tokenizer.json"
#: Modules whose forward the exporter traces correctly; others (e.g. custom code)
#: are refused with a clear error rather than exported wrongly.
_EXPORTABLE = {"Transformer", "Pooling", "Normalize", "Dense"}
_LOCK_TIMEOUT_S = 900.0
#: Texts checked through the exported graph against the torch model before an
#: entry is published: empty, short, past the model window, non-ASCII.
_CHECK_TEXTS = (
    "",
    "Port workers strike",
    "Zürich: Café-Besitzer protestieren; 東京の株価は下落した — naïve résumé ✓",
    " ".join(["The central bank raised interest rates again on Tuesday."] * 60),
)


def cache_root() -> Path:
    """``$RECOMMENDER_CACHE_DIR``, else ``~/.cache/recommender``."""
    configured = os.environ.get("RECOMMENDER_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "recommender"


class OnnxEncoder:
    """A sentence-transformers model run by onnxruntime; ``quantize`` gives int8 weights.

    Created cheaply; the first :meth:`encode` (or :attr:`dimension`) loads the
    cached graph, exporting it first when the cache has none (torch is needed
    only then). Texts are tokenised with the model's fast tokenizer, cut at its
    ``max_seq_length``, sorted by length and batched under a token budget, so
    that batches carry little padding; rows come back in input order.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        quantize: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
        threads: int | None = None,
        token_budget: int = 8192,
        max_batch: int = 128,
    ) -> None:
        if token_budget < 1 or max_batch < 1:
            raise EncoderError(
                f"token_budget and max_batch must be >= 1, got {token_budget} and {max_batch}"
            )
        self.model_id = canonical_model_id(model)
        self.backend = "onnx-int8" if quantize else "onnx"
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.threads = threads
        self.token_budget = token_budget
        self.max_batch = max_batch
        #: True once this encoder exported its graph (False: it came from the cache).
        self.exported = False
        self._runtime: _Runtime | None = None
        # Concurrent first queries (the service's threads) must load the graph once.
        self._loading = threading.Lock()

    @property
    def dimension(self) -> int:
        return self._loaded().dimension

    @property
    def max_seq_length(self) -> int:
        return self._loaded().max_seq_length

    @property
    def path(self) -> Path:
        """The cache entry the graph is loaded from (loads it)."""
        return self._loaded().entry

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return a ``(len(texts), dimension)`` float32 array of unit-length rows."""
        return self._loaded().encode(texts, budget=self.token_budget, max_batch=self.max_batch)

    def _loaded(self) -> _Runtime:
        if self._runtime is None:
            with self._loading:
                if self._runtime is None:
                    self._runtime = self._load()
        return self._runtime

    def _load(self) -> _Runtime:
        source = _model_dir(self.model_id)
        root = (self.cache_dir or cache_root()) / "onnx"
        fp32 = _entry_name(self.model_id, "onnx", source)
        built: list[str] = []

        def export_fp32(tmp: Path) -> None:
            _export(source, tmp, threads=self.threads)
            built.append("onnx")

        entry = _ensure_entry(root, fp32, export_fp32)
        if self.backend == "onnx-int8":
            fp32_entry = entry

            def quantize(tmp: Path) -> None:
                _quantize(fp32_entry, tmp, threads=self.threads)
                built.append("onnx-int8")

            entry = _ensure_entry(root, _entry_name(self.model_id, self.backend, source), quantize)
        self.exported = self.backend in built
        return _Runtime.open(entry, threads=self.threads)

    def __repr__(self) -> str:
        return f"OnnxEncoder({self.model_id!r}, backend={self.backend!r})"


# -- running the graph -------------------------------------------------------------------


@dataclass
class _Runtime:
    entry: Path
    session: Any
    tokenizer: Any
    inputs: tuple[str, ...]
    output: str
    dimension: int
    max_seq_length: int
    lower_case: bool

    @classmethod
    def open(cls, entry: Path, *, threads: int | None) -> _Runtime:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - hard dependencies
            raise EncoderError(f"the onnx backends need onnxruntime and tokenizers: {exc}") from exc
        meta = json.loads((entry / _META).read_text(encoding="utf-8"))
        tokenizer = Tokenizer.from_file(str(entry / _TOKENIZER))
        # Each batch is padded here to its own longest row, not by the tokenizer.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=int(meta["max_seq_length"]))
        try:
            session = ort.InferenceSession(
                str(entry / _GRAPH),
                _session_options(ort, threads),
                providers=["CPUExecutionProvider"],
            )
        except Exception as exc:
            raise EncoderError(f"cannot load ONNX model {str(entry / _GRAPH)!r}: {exc}") from exc
        graph_inputs = {i.name for i in session.get_inputs()}
        return cls(
            entry=entry,
            session=session,
            tokenizer=tokenizer,
            inputs=tuple(name for name in meta["inputs"] if name in graph_inputs),
            output=session.get_outputs()[0].name,
            dimension=int(meta["dimension"]),
            max_seq_length=int(meta["max_seq_length"]),
            lower_case=bool(meta.get("lower_case", False)),
        )

    def encode(
        self, texts: Sequence[str], *, budget: int = 8192, max_batch: int = 128
    ) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        # sentence-transformers strips (and, for some models, lowercases) before tokenising.
        cleaned = [t.strip().lower() if self.lower_case else t.strip() for t in texts]
        encodings = self.tokenizer.encode_batch(cleaned)
        lengths = np.array([len(e.ids) for e in encodings], dtype=np.int64)
        order = np.argsort(-lengths, kind="stable")
        for rows in token_batches(order, lengths, budget, max_batch):
            feed = self._feed([encodings[i] for i in rows], int(lengths[rows[0]]))
            out[rows] = self.session.run([self.output], feed)[0]
        return _unit_rows(out)

    def _feed(self, encodings: list[Any], width: int) -> dict[str, np.ndarray]:
        columns = {
            "input_ids": np.zeros((len(encodings), width), dtype=np.int64),
            "attention_mask": np.zeros((len(encodings), width), dtype=np.int64),
            "token_type_ids": np.zeros((len(encodings), width), dtype=np.int64),
        }
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            columns["input_ids"][row, :n] = enc.ids
            columns["attention_mask"][row, :n] = 1
            columns["token_type_ids"][row, :n] = enc.type_ids
        return {name: columns[name] for name in self.inputs}


def _session_options(ort: Any, threads: int | None) -> Any:
    options = ort.SessionOptions()
    # One intra-op thread per CPU this process may run on. onnxruntime's own
    # default counts the machine's physical cores, which is too many in a
    # container or under taskset (threads then wait on each other), and more
    # threads than cores only adds contention to the matrix products.
    options.intra_op_num_threads = threads or _available_cpus()
    # The graph is a single chain of operators: parallelism lives inside them.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


def _available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: np.ndarray = (vectors / norms).astype(np.float32)
    return out


# -- the cache ------------------------------------------------------------------------


def _model_dir(model_id: str) -> Path:
    """The local directory of a sentence-transformers model (the hub cache for a hub name)."""
    if model_id == DEFAULT_MODEL:
        return Path(default_model_path())
    local = Path(model_id).expanduser()
    if local.is_dir():
        return local.resolve()
    repo = model_id if "/" in model_id else f"sentence-transformers/{model_id}"
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo))
    except Exception as exc:
        raise EncoderError(f"cannot find embedding model {model_id!r}: {exc}") from exc


_DIGESTS: dict[tuple[Any, ...], str] = {}


def _source_digest(model_dir: Path) -> str:
    """A hash of the model's files (names and bytes), memoised per process by size and mtime."""
    files = sorted(
        p
        for p in model_dir.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(model_dir).parts)
        # Hub repositories ship other runtimes' exports; they are not our source.
        and p.relative_to(model_dir).parts[0] not in ("onnx", "openvino")
    )
    stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    if stamp not in _DIGESTS:
        digest = hashlib.sha256()
        for path in files:
            digest.update(path.relative_to(model_dir).as_posix().encode() + b"\0")
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        _DIGESTS[stamp] = digest.hexdigest()
    return _DIGESTS[stamp]


def _entry_name(model_id: str, backend: str, model_dir: Path) -> str:
    key = hashlib.sha256(f"{_source_digest(model_dir)}|{backend}|{_RECIPE}".encode()).hexdigest()
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id.rsplit("/", 1)[-1])[:60]
    return f"{readable}-{backend}-{key[:16]}"


def _ensure_entry(root: Path, name: str, build: Callable[[Path], None]) -> Path:
    """The complete cache entry ``root/name``, built by ``build(tmp_dir)`` if missing."""
    entry = root / name
    if (entry / _META).is_file():
        return entry
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EncoderError(f"cannot create the model cache {str(root)!r}: {exc}") from exc
    with _file_lock(root / f"{name}.lock"):
        # Another process may have finished the export while this one waited.
        if (entry / _META).is_file():
            return entry
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
        try:
            build(tmp)
            tmp.chmod(0o755)  # mkdtemp's 0700 would hide the entry from other users
            if entry.exists():  # an incomplete entry left by hand; ours is complete
                shutil.rmtree(entry)
            os.replace(tmp, entry)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return entry


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    lock = filelock.FileLock(path, preserve_lock_file=True)
    try:
        lock.acquire(timeout=_LOCK_TIMEOUT_S, poll_interval=0.2)
    except filelock.Timeout:
        raise EncoderError(
            f"another process has held {str(path)!r} for {_LOCK_TIMEOUT_S:g}s "
            f"while exporting the model; remove the lock file if it is stale"
        ) from None
    try:
        yield
    finally:
        lock.release()


# -- export and quantisation ---------------------------------------------------------------


def _export(model_dir: Path, tmp: Path, *, threads: int | None) -> None:
    """Export the sentence-transformers pipeline at ``model_dir`` into ``tmp`` (fp32)."""
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - hard dependencies
        raise EncoderError(
            f"exporting to ONNX needs torch and sentence-transformers: {exc}"
        ) from exc
    quiet_transformers()
    st = _load_for_export(SentenceTransformer, model_dir)
    kinds = [type(module).__name__ for module in st]
    unsupported = [kind for kind in kinds if kind not in _EXPORTABLE]
    if unsupported or not kinds or kinds[0] != "Transformer":
        raise EncoderError(
            f"cannot export model {str(model_dir)!r} to ONNX: modules {kinds}; the onnx "
            f"backends support {sorted(_EXPORTABLE)}, Transformer first; "
            f"use --encoder-backend torch"
        )
    tokenizer = st.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise EncoderError(f"the onnx backends need a fast tokenizer; {str(model_dir)!r} has none")
    inputs = [
        n
        for n in tokenizer.model_input_names
        if n in ("input_ids", "attention_mask", "token_type_ids")
    ]
    # Two rows of different lengths, so that the traced graph handles padding.
    sample = tokenizer(
        ["a b", "a longer second sample sentence"], padding=True, return_tensors="pt"
    )
    raw = tmp / "raw.onnx"
    with torch.no_grad(), _quiet_warnings():
        torch.onnx.export(
            _pipeline(st, inputs),
            tuple(sample[name] for name in inputs),
            str(raw),
            dynamo=False,  # the tracing exporter: offline, and handles these models whole
            input_names=inputs,
            output_names=["sentence_embedding"],
            dynamic_axes={
                **{name: {0: "batch", 1: "sequence"} for name in inputs},
                "sentence_embedding": {0: "batch"},
            },
            opset_version=17,
        )
    tokenizer.backend_tokenizer.save(str(tmp / _TOKENIZER))
    meta: dict[str, Any] = {
        "source": str(model_dir),
        "backend": "onnx",
        "recipe": _RECIPE,
        "modules": kinds,
        "dimension": int(
            (getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension)()
        ),
        "max_seq_length": int(st.max_seq_length),
        "lower_case": bool(getattr(st[0], "do_lower_case", False)),
        "inputs": inputs,
        "fused": True,
    }
    _write_meta(tmp, meta)
    expected = st.encode(list(_CHECK_TEXTS), normalize_embeddings=True, convert_to_numpy=True)
    # Fused attention and layer-norm kernels are faster on CPU, and quantise
    # better; the fusion is pattern matching, so it is kept only when the fused
    # graph gives the model's vectors.
    if (
        not _fuse(raw, tmp / _GRAPH, st[0].auto_model.config)
        or _agreement(tmp, expected, threads) < 0.9999
    ):
        shutil.copyfile(raw, tmp / _GRAPH)
        _write_meta(tmp, {**meta, "fused": False})
        if (worst := _agreement(tmp, expected, threads)) < 0.9999:
            raise EncoderError(
                f"the ONNX export of {str(model_dir)!r} does not reproduce the model "
                f"(cosine {worst:.5f}); use --encoder-backend torch"
            )
    raw.unlink()


def _load_for_export(st_class: Any, model_dir: Path) -> Any:
    # Eager attention traces to the MatMul/Softmax pattern that onnxruntime's
    # fusion recognises; the default (SDPA) traces to one it does not.
    try:
        return st_class(str(model_dir), device="cpu", model_kwargs={"attn_implementation": "eager"})
    except Exception:
        try:
            return st_class(str(model_dir), device="cpu")
        except Exception as exc:
            raise EncoderError(f"cannot load embedding model {str(model_dir)!r}: {exc}") from exc


def _pipeline(st: Any, inputs: list[str]) -> Any:
    """The model's own modules as one ``torch.nn.Module`` taking positional tensors."""
    import torch

    class Pipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.st = st

        def forward(self, *tensors: Any) -> Any:
            return self.st(dict(zip(inputs, tensors, strict=True)))["sentence_embedding"]

    return Pipeline().eval()


def _fuse(raw: Path, out: Path, config: Any) -> bool:
    """Write onnxruntime's fused transformer graph of ``raw`` to ``out``; False if not possible."""
    if getattr(config, "model_type", None) not in ("bert", "roberta", "xlm-roberta"):
        return False
    try:
        from onnxruntime.transformers import optimizer

        fused = optimizer.optimize_model(
            str(raw),
            model_type="bert",
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
        )
        fused.save_model_to_file(str(out))
    except Exception:
        return False
    return True


def _quantize(fp32_entry: Path, tmp: Path, *, threads: int | None) -> None:
    """Dynamic int8 quantisation of the fp32 entry's graph into ``tmp``."""
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:  # pragma: no cover - hard dependencies
        raise EncoderError(f"int8 quantisation needs onnx and onnxruntime: {exc}") from exc
    with _quiet_warnings():
        quantize_dynamic(
            fp32_entry / _GRAPH,
            tmp / _GRAPH,
            weight_type=QuantType.QInt8,
            # One scale per output channel: with one per tensor, outlier columns of
            # MiniLM's weights cost ~0.05 cosine against fp32; per channel ~0.006.
            per_channel=True,
            # Fused operators have no ONNX shape inference; their outputs are float.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    shutil.copyfile(fp32_entry / _TOKENIZER, tmp / _TOKENIZER)
    meta = json.loads((fp32_entry / _META).read_text(encoding="utf-8"))
    _write_meta(tmp, {**meta, "backend": "onnx-int8", "quantization": "dynamic int8, per channel"})
    reference = _Runtime.open(fp32_entry, threads=threads).encode(_CHECK_TEXTS)
    if (worst := _agreement(tmp, reference, threads)) < 0.97:
        raise EncoderError(
            f"int8 quantisation of {str(fp32_entry)!r} changes the vectors too much "
            f"(cosine {worst:.4f}); use --encoder-backend onnx"
        )


def _agreement(entry: Path, expected: np.ndarray, threads: int | None) -> float:
    """The lowest cosine between ``entry``'s vectors of the check texts and ``expected``."""
    got = _Runtime.open(entry, threads=threads).encode(_CHECK_TEXTS)
    return float(np.min(np.sum(got * expected, axis=1)))


def _write_meta(directory: Path, meta: dict[str, Any]) -> None:
    (directory / _META).write_text(json.dumps(meta, indent=2), encoding="utf-8")


@contextlib.contextmanager
def _quiet_warnings() -> Iterator[None]:
    # The exporter's tracer warnings and the quantiser's pre-processing advice are
    # about cases these graphs do not have; the agreement checks are the real test.
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)
