"""Memory of `recommender serve` workers: is the index shared, or copied per worker?

    .venv/bin/python scripts/bench_memory.py [--articles 21578] [--workers 1,2,4]

Builds an index of the reuters21578 stories (../shared/data, or RECOMMENDER_DATA)
with 384-d stand-in vectors from the hashing encoder: the index has the shape
and size of an all-MiniLM-L6-v2 one (and the real stories' term counts) without
an hour of encoding, and no worker loads a model, so what is measured is the
index. Then, for each worker count, serves it, sends related-by-id queries over
fresh connections until every worker has answered (each query scans every
vector and every term count, so all pages are touched), and reports each
worker's RSS (memory it touches) and PSS (its fair share of pages it shares).
A worker holding a private copy has PSS ~ RSS; mapped snapshots make PSS fall
as workers are added.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
_spec = importlib.util.spec_from_file_location("bench_service", ROOT / "scripts/bench_service.py")
assert _spec and _spec.loader
bench_service = importlib.util.module_from_spec(_spec)
sys.modules["bench_service"] = bench_service  # its dataclasses look themselves up there
_spec.loader.exec_module(bench_service)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=21_578)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--data", default=os.environ.get("RECOMMENDER_DATA", "../shared/data"))
    args = parser.parse_args()
    source = Path(args.data) / "reuters21578" / "reuters21578_all.jsonl"
    if not source.is_file():
        sys.exit(f"{source} not found: set RECOMMENDER_DATA or --data")
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        index = Path(tmp) / "index"
        ids = _build(source, index, args.articles)
        sizes = {p.name: p.stat().st_size for p in index.glob("gen-*/*") if p.is_file()}
        snapshot = sum(v for k, v in sizes.items() if k.startswith(("vectors.", "lexical.")))
        print(f"index: {len(ids)} articles; snapshot files {snapshot / 2**20:.0f} MiB")
        print(f"{'workers':>7} {'RSS/worker MiB':>15} {'PSS/worker MiB':>15} {'sum PSS MiB':>12}")
        for workers in (int(w) for w in args.workers.split(",")):
            _measure(index, ids, workers)


def _build(source: Path, index: Path, limit: int) -> list[str]:
    from recommender import Article, Recommender
    from recommender.embedding.encoders import HashingEncoder

    articles = []
    with source.open() as handle:
        for line in handle:
            record = json.loads(line)
            if record.get("title") or record.get("body"):
                articles.append(
                    Article(
                        id=str(record["newid"]),
                        title=record.get("title") or "",
                        body=record.get("body") or "",
                    )
                )
            if len(articles) >= limit:
                break
    started = time.perf_counter()
    with Recommender.build(articles, index, encoder=HashingEncoder(384)) as rec:
        count = len(rec)
    print(f"built {count} articles in {time.perf_counter() - started:.0f} s (hashing:384 vectors)")
    return [a.id for a in articles]


def _measure(index: Path, ids: list[str], workers: int) -> None:
    port = bench_service._free_port()
    server = bench_service._start_server(index, port, workers, "memory-bench-token")
    base = f"http://{bench_service.HOST}:{port}"
    try:
        bench_service._wait_ready(base, server)
        # Fresh connections: the kernel spreads them over the workers. The
        # printed RSS range shows whether every worker has touched the index.
        for n in range(12 * workers):
            response = httpx.get(f"{base}/v1/articles/{ids[n * 97 % len(ids)]}/related", timeout=60)
            response.raise_for_status()
        rows = [m for m in bench_service._memory(server.pid) if m[1] == "worker"]
        if not rows:  # one worker: the server process itself serves
            rows = bench_service._memory(server.pid)
        rss = [r[3] / 1024 for r in rows]
        pss = [r[2] / 1024 for r in rows]
        print(
            f"{workers:>7} {min(rss):>7.0f}-{max(rss):<7.0f} {min(pss):>7.0f}-{max(pss):<7.0f}"
            f" {sum(pss):>12.0f}",
            flush=True,
        )
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
