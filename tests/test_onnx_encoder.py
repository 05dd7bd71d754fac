"""Encoder backends: torch, onnx, onnx-int8; the manifest records which one built an index.

The fast tests need no model; those marked slow export the packaged model to
ONNX once (into a temporary cache) and compare it with sentence-transformers.
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from recommender import Article, EncoderError, Recommender
from recommender.cli import build as build_command
from recommender.cli import main
from recommender.embedding.encoders import (
    BACKENDS,
    DEFAULT_BACKEND,
    HashingEncoder,
    SentenceTransformerEncoder,
    make_encoder,
    token_batches,
)
from recommender.embedding.onnx import OnnxEncoder, _ensure_entry, cache_root

# -- backend choice (fast) ---------------------------------------------------------------


def test_backends_and_default() -> None:
    assert BACKENDS == ("torch", "onnx", "onnx-int8")
    assert DEFAULT_BACKEND in BACKENDS
    assert make_encoder().backend == DEFAULT_BACKEND  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("backend", "kind"),
    [("torch", SentenceTransformerEncoder), ("onnx", OnnxEncoder), ("onnx-int8", OnnxEncoder)],
)
def test_make_encoder_backends_load_nothing(backend: str, kind: type) -> None:
    encoder = make_encoder("all-MiniLM-L6-v2", backend=backend)
    assert isinstance(encoder, kind)
    assert encoder.backend == backend  # type: ignore[attr-defined]
    assert encoder.model_id == "sentence-transformers/all-MiniLM-L6-v2"


def test_unknown_backend_names_the_value_and_the_choices() -> None:
    with pytest.raises(EncoderError) as caught:
        make_encoder(None, backend="tensorrt")
    message = str(caught.value)
    assert "'tensorrt'" in message
    assert all(name in message for name in BACKENDS)


def test_hashing_encoder_has_no_backends() -> None:
    for backend in (None, *BACKENDS):
        encoder = make_encoder("hashing:64", backend=backend)
        assert isinstance(encoder, HashingEncoder)
        assert encoder.backend == "hashing"


def test_bad_batching_settings_are_refused() -> None:
    with pytest.raises(EncoderError, match="token_budget"):
        OnnxEncoder(token_budget=0)


def test_cli_choices_match_the_library() -> None:
    option = next(p for p in build_command.params if p.name == "encoder_backend")
    assert tuple(option.type.choices) == BACKENDS  # type: ignore[attr-defined]
    assert f"[default: {DEFAULT_BACKEND}]" in (option.help or "")


def test_cli_rejects_an_unknown_backend(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "a", "body": "text"}) + "\n")
    result = CliRunner().invoke(
        main, ["build", str(src), "--index", str(tmp_path / "i"), "--encoder-backend", "gpu"]
    )
    assert result.exit_code == 2
    assert "gpu" in result.output


# -- batching (fast) ----------------------------------------------------------------------


def test_token_batches_respect_the_budget_and_cover_every_row() -> None:
    lengths = np.array([5, 256, 3, 40, 256, 2, 100, 7] * 20)
    order = np.argsort(-lengths, kind="stable")
    batches = list(token_batches(order, lengths, 600, 16))
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    for rows in batches:
        width = lengths[rows].max()
        assert len(rows) == 1 or len(rows) * width <= 600
        assert len(rows) <= 16
    # Short rows share big batches, long ones small ones: little padding.
    assert len(batches[0]) == 2 and max(len(rows) for rows in batches) == 16


# -- the manifest records the backend, and queries use it (fast) --------------------------


@pytest.fixture
def built(tmp_path: Path, corpus: list[Article], encoder: HashingEncoder) -> Path:
    path = tmp_path / "idx"
    Recommender.build(corpus, path, encoder=encoder).close()
    return path


def _set_backend(index: Path, backend: str | None) -> None:
    manifest_path = index / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    if backend is None:
        manifest["model"].pop("backend", None)
    else:
        manifest["model"]["backend"] = backend
    manifest_path.write_text(json.dumps(manifest))


def _model(index: Path) -> dict[str, Any]:
    model: dict[str, Any] = json.loads((index / "manifest.json").read_text())["model"]
    return model


def test_manifest_records_the_encoders_backend(built: Path) -> None:
    assert _model(built)["backend"] == "hashing"


def test_build_with_a_backend_and_a_hashing_model(tmp_path: Path, corpus: list[Article]) -> None:
    path = tmp_path / "idx"
    with Recommender.build(corpus, path, model="hashing:64", encoder_backend="onnx") as rec:
        assert rec.manifest["model"]["backend"] == "hashing"


def test_build_refuses_an_unknown_backend(tmp_path: Path, corpus: list[Article]) -> None:
    with pytest.raises(EncoderError, match="'bogus'"):
        Recommender.build(corpus, tmp_path / "idx", encoder_backend="bogus")
    assert not (tmp_path / "idx" / "manifest.json").exists()


class _Calls:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    def __call__(self, model: str | None = None, backend: str | None = None) -> HashingEncoder:
        self.seen.append((str(model), backend))
        return HashingEncoder(256)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> _Calls:
    fake = _Calls()
    monkeypatch.setattr("recommender.index.live.make_encoder", fake)
    return fake


@pytest.mark.parametrize(("recorded", "expected"), [("onnx-int8", "onnx-int8"), (None, "torch")])
def test_queries_and_adds_use_the_recorded_backend(
    built: Path, calls: _Calls, recorded: str | None, expected: str
) -> None:
    # An index from before backends has no "backend" key: it was built with torch.
    _set_backend(built, recorded)
    with Recommender.open(built) as rec:
        rec.similar(text="harbor dockworkers strike", k=2)
        rec.upsert([{"id": "new-1", "title": "Quake", "body": "earthquake rescue teams"}])
    assert calls.seen == [("hashing:256", expected)]


def test_cli_similar_and_add_use_the_recorded_backend(
    built: Path, calls: _Calls, tmp_path: Path
) -> None:
    _set_backend(built, "onnx")
    runner = CliRunner()
    result = runner.invoke(main, ["similar", "--index", str(built), "--text", "port strike"])
    assert result.exit_code == 0, result.output
    src = tmp_path / "more.jsonl"
    src.write_text(json.dumps({"id": "x-1", "body": "rubble rescue aftershock"}) + "\n")
    result = runner.invoke(main, ["add", str(src), "--index", str(built), "--quiet"])
    assert result.exit_code == 0, result.output
    assert calls.seen == [("hashing:256", "onnx"), ("hashing:256", "onnx")]


def test_queries_by_id_import_neither_torch_nor_onnxruntime(built: Path) -> None:
    _set_backend(built, "onnx-int8")
    code = (
        "import sys; from recommender import Recommender\n"
        f"rec = Recommender.open({str(built)!r})\n"
        "print(sorted(m.id for m in rec.related('port-0', k=3))); rec.info()\n"
        "from recommender.embedding.encoders import make_encoder\n"
        "make_encoder(None, 'onnx-int8'); make_encoder(None, 'torch')\n"
        "heavy = ('torch', 'onnxruntime', 'onnx', 'sentence_transformers', 'tokenizers')\n"
        "print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # An index that says onnx-int8 but holds hashing vectors: tests/test_no_model_load.py
    # queries one the real model built (slow).
    assert out.stdout.splitlines() == ["['port-1', 'port-2', 'port-3']", "[]"]


def test_info_shows_the_backend(built: Path) -> None:
    result = CliRunner().invoke(main, ["info", "--index", str(built)])
    assert result.exit_code == 0, result.output
    assert "hashing backend" in result.output


# -- the cache (fast, with a stand-in export) ---------------------------------------------


def test_cache_dir_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RECOMMENDER_CACHE_DIR", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.delenv("RECOMMENDER_CACHE_DIR")
    assert cache_root() == Path.home() / ".cache" / "recommender"


def _slow_build(log: str, tmp: Path) -> None:
    with open(log, "a") as handle:
        handle.write("built\n")
    time.sleep(0.5)  # long enough for the other process to find the lock taken
    (tmp / "model.onnx").write_bytes(b"graph")
    (tmp / "meta.json").write_text("{}")


def _ensure(root: str, log: str) -> None:
    from functools import partial

    _ensure_entry(Path(root), "entry", partial(_slow_build, log))


def test_two_processes_export_once(tmp_path: Path) -> None:
    log = tmp_path / "log"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_ensure, args=(str(tmp_path), str(log))) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    assert log.read_text() == "built\n"
    assert (tmp_path / "entry" / "model.onnx").read_bytes() == b"graph"
    # No temporary directory is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry", "entry.lock", "log"]


def test_a_failed_export_leaves_no_entry(tmp_path: Path) -> None:
    def failing(tmp: Path) -> None:
        (tmp / "model.onnx").write_bytes(b"half")
        raise EncoderError("export failed")

    with pytest.raises(EncoderError):
        _ensure_entry(tmp_path, "entry", failing)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry.lock"]


# -- the real model (slow) ----------------------------------------------------------------

LONG = " ".join(
    f"Sentence {n} of a long report on the port strike, the talks and the union's demands."
    for n in range(60)
)
TEXTS = [
    "Port workers strike",
    LONG,  # far past the model's 256 tokens
    "",
    "Zürich: Café-Besitzer protestieren gegen neue Gebühren; 東京の株価は下落した — naïve ✓",
    "The central bank raised interest rates by a quarter point on Tuesday, citing inflation.",
    "Rescue teams searched the rubble after a magnitude 6.1 earthquake struck the province.",
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("onnx-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECOMMENDER_CACHE_DIR", str(path))
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield path


@pytest.fixture(scope="module")
def torch_vectors() -> np.ndarray:
    return SentenceTransformerEncoder().encode(TEXTS)


@pytest.fixture(scope="module")
def fp32(cache: Path) -> OnnxEncoder:
    encoder = OnnxEncoder()
    encoder.encode(["warm up"])
    return encoder


@pytest.fixture(scope="module")
def int8(cache: Path, fp32: OnnxEncoder) -> OnnxEncoder:
    encoder = OnnxEncoder(quantize=True)
    encoder.encode(["warm up"])
    return encoder


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


@pytest.mark.slow
def test_onnx_reproduces_the_torch_model(fp32: OnnxEncoder, torch_vectors: np.ndarray) -> None:
    vectors = fp32.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert _cosines(vectors, torch_vectors).min() > 0.9999
    assert fp32.dimension == 384 and fp32.max_seq_length == 256


@pytest.mark.slow
def test_int8_stays_close_to_fp32(fp32: OnnxEncoder, int8: OnnxEncoder) -> None:
    cosines = _cosines(int8.encode(TEXTS), fp32.encode(TEXTS))
    text_rows = [i for i, text in enumerate(TEXTS) if text]
    assert cosines[text_rows].min() >= 0.99, cosines
    # [CLS][SEP] alone is the input int8 approximates worst (~0.97-0.98); the engine
    # never embeds it (an article needs a title or a body).
    assert cosines[TEXTS.index("")] >= 0.95, cosines


@pytest.mark.slow
def test_length_sorted_batches_keep_the_input_order(cache: Path) -> None:
    # A small budget forces many batches of different widths.
    encoder = OnnxEncoder(token_budget=300, max_batch=3)
    texts = [TEXTS[i % len(TEXTS)] + " " + "word " * (i * 7 % 50) for i in range(20)]
    together = encoder.encode(texts)
    alone = np.vstack([encoder.encode([text]) for text in texts])
    assert _cosines(together, alone).min() > 0.9999


@pytest.mark.slow
def test_the_cache_is_reused(cache: Path, fp32: OnnxEncoder, int8: OnnxEncoder) -> None:
    assert fp32.exported and int8.exported  # the fixtures' encoders filled the empty cache
    graph = int8.path / "model.onnx"
    before = graph.stat().st_mtime_ns
    again = OnnxEncoder(quantize=True)
    again.encode(["again"])
    assert not again.exported
    assert again.path == int8.path and graph.stat().st_mtime_ns == before
    assert int8.path.parent == cache / "onnx"
    assert len([p for p in (cache / "onnx").iterdir() if p.is_dir()]) == 2  # fp32 and int8


@pytest.mark.slow
def test_an_int8_index_queries_with_int8(
    cache: Path, int8: OnnxEncoder, tmp_path: Path, corpus: list[Article]
) -> None:
    path = tmp_path / "idx"
    Recommender.build(corpus, path, encoder_backend="onnx-int8").close()
    assert _model(path)["backend"] == "onnx-int8"
    with Recommender.open(path) as rec:
        top = rec.similar(text="Dockworkers walk out at the harbour over wages", k=3)
        assert isinstance(rec.encoder, OnnxEncoder) and rec.encoder.backend == "onnx-int8"
        assert not rec.encoder.exported  # the cached graph, not a new export
    assert all(m.id.startswith("port-") for m in top), top


@pytest.mark.slow
def test_torch_token_budget_batching_gives_the_same_vectors(torch_vectors: np.ndarray) -> None:
    fixed = SentenceTransformerEncoder(token_budget=None, batch_size=32).encode(TEXTS)
    assert _cosines(fixed, torch_vectors).min() > 0.9999
    small = SentenceTransformerEncoder(token_budget=300, max_batch=2).encode(TEXTS)
    assert _cosines(small, torch_vectors).min() > 0.9999
