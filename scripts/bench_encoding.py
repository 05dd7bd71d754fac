"""Encoding throughput and relevance of each encoder backend (torch, onnx, onnx-int8).

    .venv/bin/python scripts/bench_encoding.py --data ../shared/data --articles 2000

Throughput: the first N reuters21578 stories with a non-empty body, encoded
  - by plain ``SentenceTransformer.encode`` of "title\\nbody" (batch 32, input
    order, fp32: the textbook recipe, cut at the model's 256 tokens), the baseline;
  - by each backend through the engine's own path (``ArticleEmbedder``: the
    title+lead passage and up to two more 200-word passages, so more text than
    the baseline reads);
  - by the torch backend in sentence-transformers' own fixed batches of 32 (the
    backends batch longest first under a budget of 8,192 padded tokens), to show
    what that batching is worth on torch.
Every model is loaded and warmed up first; the rounds are interleaved and the
best of ``--repeats`` is kept, which matters on a shared, noisy machine.

Relevance: for each backend, an index of ecbplus built in a temporary directory
with that backend, scored leave-one-out (label event_cluster, group topic) by the
function ``recommender evaluate`` uses: the default hybrid ranking and the dense
side alone (cosine, no time prior).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from recommender import Recommender, read_records  # noqa: E402
from recommender.embedding.encoders import (  # noqa: E402
    BACKENDS,
    ArticleEmbedder,
    SentenceTransformerEncoder,
    make_encoder,
)
from recommender.evaluation import evaluate_index  # noqa: E402

BASELINE = "plain ST.encode"
TORCH_FIXED = "torch, fixed batch 32"


def reuters(data_dir: Path, n: int) -> list[tuple[str, str]]:
    """(title, body) of the first ``n`` reuters21578 stories with a non-empty body."""
    pairs = []
    with open(data_dir / "reuters21578" / "reuters21578_all.jsonl", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if (record.get("body") or "").strip():
                pairs.append((record.get("title") or "", record["body"]))
                if len(pairs) == n:
                    break
    return pairs


def throughput(
    pairs: list[tuple[str, str]], backends: Sequence[str], *, repeats: int = 2
) -> dict[str, dict[str, Any]]:
    """Articles per second of the baseline and of each backend (best of ``repeats``)."""
    plain = [f"{title}\n{body}" for title, body in pairs]
    st = SentenceTransformerEncoder().model
    runs: dict[str, Callable[[list[tuple[str, str]]], object]] = {
        # Calls get a prefix of ``pairs``; the texts are joined outside the timing.
        BASELINE: lambda items: st.encode(plain[: len(items)], batch_size=32),
    }
    for backend in backends:
        runs[backend] = ArticleEmbedder(make_encoder(None, backend)).embed_texts
    if "torch" in backends:
        fixed = SentenceTransformerEncoder(token_budget=None, batch_size=32)
        runs[TORCH_FIXED] = ArticleEmbedder(fixed).embed_texts
    for run in runs.values():  # loads (or exports) every model, warms it up
        run(pairs[:64])
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run(pairs)
            seconds[name].append(time.perf_counter() - started)
    base = len(pairs) / min(seconds[BASELINE])
    return {
        name: {
            "articles_per_s": round(len(pairs) / min(times), 2),
            "ratio": round(len(pairs) / min(times) / base, 3),
            "seconds": [round(t, 2) for t in times],
        }
        for name, times in seconds.items()
    }


def relevance(data_dir: Path, backend: str, workdir: Path) -> dict[str, Any]:
    """ecbplus leave-one-out scores of an index built with ``backend``."""
    source = data_dir / "ecbplus" / "ecbplus_docs.jsonl"
    started = time.perf_counter()
    with Recommender.build(
        read_records([source]), workdir / backend, encoder_backend=backend
    ) as rec:
        build_s = time.perf_counter() - started
        options = {"label_field": "event_cluster", "group_field": "topic"}
        hybrid = evaluate_index(rec, **options)[0]
        dense_only = rec.ranking.with_options(method="dense", time_weight=0.0)
        dense = evaluate_index(rec, ranking=dense_only, **options)[0]
        recorded = rec.manifest["model"].get("backend")
    return {
        "backend_recorded": recorded,
        "build_s": round(build_s, 1),
        "queries": hybrid.queries,
        "map10_hybrid": round(hybrid.map_at_10, 4),
        "map10_dense": round(dense.map_at_10, 4),
        "p1_hybrid": round(hybrid.p_at_1, 4),
        "p1_dense": round(dense.p_at_1, 4),
    }


def run(
    data_dir: Path,
    n: int = 2000,
    *,
    repeats: int = 2,
    backends: Sequence[str] = BACKENDS,
    with_relevance: bool = True,
) -> dict[str, Any]:
    """Throughput and (optionally) ecbplus MAP@10 of every backend, in one run."""
    pairs = reuters(data_dir, n)
    result: dict[str, Any] = {
        "articles": len(pairs),
        "cpus": len(os.sched_getaffinity(0)),
        "throughput": throughput(pairs, backends, repeats=repeats),
    }
    if with_relevance:
        with tempfile.TemporaryDirectory(prefix="bench-encoding-") as tmp:
            result["ecbplus"] = {b: relevance(data_dir, b, Path(tmp)) for b in backends}
    return result


def _print(result: dict[str, Any]) -> None:
    print(
        f"throughput: {result['articles']} reuters articles, {result['cpus']} CPUs (best of runs)"
    )
    print(f"{'method':<28} {'articles/s':>10} {'x plain ST':>10}  seconds per run")
    for name, row in result["throughput"].items():
        label = name if name in (BASELINE, TORCH_FIXED) else f"{name} (ArticleEmbedder)"
        print(f"{label:<28} {row['articles_per_s']:>10.1f} {row['ratio']:>10.2f}  {row['seconds']}")
    if "ecbplus" in result:
        print("\necbplus leave-one-out MAP@10 (index built with each backend)")
        print(f"{'backend':<12} {'hybrid':>8} {'dense':>8} {'P@1 hyb':>8} {'build s':>8}")
        for name, row in result["ecbplus"].items():
            print(
                f"{name:<12} {row['map10_hybrid']:>8.4f} {row['map10_dense']:>8.4f} "
                f"{row['p1_hybrid']:>8.3f} {row['build_s']:>8.1f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("RECOMMENDER_DATA", ROOT.parent / "shared" / "data")),
        help="the shared data directory (reuters21578/ and ecbplus/)",
    )
    parser.add_argument("--articles", type=int, default=2000, help="reuters articles to encode")
    parser.add_argument("--repeats", type=int, default=2, help="timed rounds (best one kept)")
    parser.add_argument(
        "--backends", default=",".join(BACKENDS), help="comma-separated, default all"
    )
    parser.add_argument("--no-relevance", action="store_true", help="skip the ecbplus MAP@10")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    result = run(
        args.data,
        args.articles,
        repeats=args.repeats,
        backends=[b.strip() for b in args.backends.split(",") if b.strip()],
        with_relevance=not args.no_relevance,
    )
    _print(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
