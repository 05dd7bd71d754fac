"""Related-by-id latency on a real Milvus server (and Milvus Lite) next to FAISS.

    scripts/with_milvus_server.sh .venv/bin/python scripts/bench_milvus.py \\
        [--source indexes/ecbplus] [--queries 300]

The source index (built with the default FAISS store) is copied into a Milvus
store without the model: its articles and stored vectors are written as
precomputed embeddings and built with ``--store`` set to the server
($RECOMMENDER_MILVUS_URL, which scripts/with_milvus_server.sh sets) and to a
Milvus Lite file. The same article ids are then queried through the public API
(``Recommender.related(id, k=10)``, in-process, after a warm-up) on every store,
interleaved so that machine load hits them alike, and the script prints p50/p99
per store, their ratios to FAISS, and how many lists are identical.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recommender import Recommender  # noqa: E402
from recommender.embedding.encoders import ArticleEmbedder, make_encoder  # noqa: E402
from recommender.embedding.precomputed import write_embeddings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=ROOT / "indexes" / "ecbplus")
    parser.add_argument("--url", default=os.environ.get("RECOMMENDER_MILVUS_URL"))
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--no-lite", action="store_true", help="skip Milvus Lite")
    args = parser.parse_args()
    if not args.url:
        sys.exit("no Milvus server: run under scripts/with_milvus_server.sh or pass --url")
    run(args.source, args.url, args.queries, lite=not args.no_lite)


def run(source: Path, url: str, queries: int, *, lite: bool = True) -> dict[str, Any]:
    """Copy ``source`` into each Milvus store, then time related-by-id on all of them."""
    with tempfile.TemporaryDirectory(prefix="bench-milvus-") as scratch:
        work = Path(scratch)
        stores = {"faiss": source}
        started = time.perf_counter()
        copies = {"milvus-server": url}
        if lite:
            copies["milvus-lite"] = f"milvus://{work / 'lite.db'}"
        builds: dict[str, float] = {}
        embeddings = _export(source, work / "emb")
        articles = _articles(source)
        for name, store in copies.items():
            began = time.perf_counter()
            manifest = json.loads((source / "manifest.json").read_text())
            Recommender.build(
                articles,
                work / name,
                model=manifest["model"]["id"],
                encoder_backend=manifest["model"].get("backend"),
                store=store,
                embeddings=embeddings,
            ).close()
            builds[name] = time.perf_counter() - began
            stores[name] = work / name
            print(f"copied {len(articles)} articles into {name} in {builds[name]:.1f}s", flush=True)
        figures = _measure(stores, [a.id for a in articles], queries)
        figures["build_seconds"] = builds
        figures["articles"] = len(articles)
        figures["source"] = str(source)
        figures["total_seconds"] = round(time.perf_counter() - started, 1)
        _print(figures)
        return figures


def _articles(source: Path) -> list[Any]:
    with Recommender.open(source) as rec:
        return [rec.get(aid) for _, aid in rec._index.state.catalog.all_ids()]


def _export(source: Path, out: Path) -> Path:
    """The source index's stored vectors as precomputed embeddings (no model run)."""
    with Recommender.open(source) as rec:
        state = rec._index.state  # the stored vectors, exactly as FAISS holds them
        pairs = state.catalog.all_ids()
        ids = np.array([i for i, _ in pairs], dtype=np.int64)
        vectors = state.store.get(ids)
        articles = [rec.get(aid) for _, aid in pairs]
        model = rec.manifest["model"]
        encoder = make_encoder(model["id"], backend=model.get("backend"))
        embedder = ArticleEmbedder.from_config(encoder, rec.manifest.get("embedding", {}))
        write_embeddings(articles, vectors, embedder, out)
    return out


def _measure(stores: dict[str, Path], ids: list[str], queries: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    picks = [ids[i] for i in rng.choice(len(ids), size=min(queries, len(ids)), replace=False)]
    opened = {name: Recommender.open(path) for name, path in stores.items()}
    timings: dict[str, list[float]] = {name: [] for name in opened}
    lists: dict[str, list[list[str]]] = {name: [] for name in opened}
    try:
        for rec in opened.values():  # warm-up: caches, connections, first searches
            for aid in picks[:20]:
                rec.related(aid, k=10)
        for aid in picks:
            for name, rec in opened.items():
                began = time.perf_counter()
                matches = rec.related(aid, k=10)
                timings[name].append(time.perf_counter() - began)
                lists[name].append([m.id for m in matches])
    finally:
        for rec in opened.values():
            rec.close()
    out: dict[str, Any] = {"queries": len(picks), "stores": {}}
    base = np.percentile(timings["faiss"], [50, 99]) * 1000
    for name, seconds in timings.items():
        p50, p99 = np.percentile(seconds, [50, 99]) * 1000
        same = sum(a == b for a, b in zip(lists[name], lists["faiss"], strict=True))
        out["stores"][name] = {
            "p50_ms": round(float(p50), 2),
            "p99_ms": round(float(p99), 2),
            "p50_vs_faiss": round(float(p50 / base[0]), 2),
            "p99_vs_faiss": round(float(p99 / base[1]), 2),
            "lists_identical_to_faiss": f"{same}/{len(picks)}",
        }
    return out


def _print(figures: dict[str, Any]) -> None:
    print(
        f"\nrelated-by-id, k=10, {figures['queries']} queries over {figures['articles']} articles "
        f"({figures['source']}), in-process:"
    )
    print(f"{'store':<15}{'p50 ms':>9}{'p99 ms':>9}{'p50 x':>8}{'p99 x':>8}  same lists as FAISS")
    for name, row in figures["stores"].items():
        print(
            f"{name:<15}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}{row['p50_vs_faiss']:>8.2f}"
            f"{row['p99_vs_faiss']:>8.2f}  {row['lists_identical_to_faiss']}"
        )


if __name__ == "__main__":
    main()
