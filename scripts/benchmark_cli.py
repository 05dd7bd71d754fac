"""Wall time of `recommender related ID --json`, process start included.

    .venv/bin/python scripts/benchmark_cli.py [--index indexes/ecb] [--id 1_10ecb] [--runs 20]

Builds the ecbplus index first if it is missing (needs ../shared/data). The
baseline, measured in the same run, is starting the same interpreter and
importing nothing (`python -c pass`); the ratio says what recommender adds to
a bare Python start. Also times `similar` (which must load the model) for scale,
and related-by-id in-process on an open index (the library and the service).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ECB = ROOT.parent / "shared" / "data" / "ecbplus" / "ecbplus_docs.jsonl"
CLI = [sys.executable, "-m", "recommender"]


def timed(cmd: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append(time.perf_counter() - started)
    return out


def describe(name: str, times: list[float]) -> str:
    times = sorted(times)
    p90 = times[int(0.9 * (len(times) - 1))]
    return f"{name:<34} median {statistics.median(times) * 1000:8.1f} ms   p90 {p90 * 1000:8.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", default=str(ROOT / "indexes" / "ecb"))
    parser.add_argument("--id", default="1_10ecb")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    if not (Path(args.index) / "manifest.json").exists():
        print(f"building {args.index} from {ECB} ...", flush=True)
        subprocess.run([*CLI, "build", str(ECB), "--index", args.index, "--quiet"], check=True)
    bare = timed([sys.executable, "-c", "pass"], args.runs)
    related = timed([*CLI, "related", args.id, "--index", args.index, "--json"], args.runs)
    similar = timed(
        [*CLI, "similar", "--index", args.index, "--text", "actress checks into rehab", "--json"],
        max(3, args.runs // 5),
    )
    print(describe("python -c pass (baseline)", bare))
    print(describe(f"recommender related {args.id}", related))
    print(describe("recommender similar --text", similar))
    ratio = statistics.median(related) / statistics.median(bare)
    print(f"related / bare interpreter start: {ratio:.1f}x")
    print(describe("related, in-process (open index)", in_process(args.index)))


def in_process(index: str) -> list[float]:
    """Every article's related list once, through one open Recommender."""
    sys.path.insert(0, str(ROOT))
    from recommender import Recommender

    with Recommender.open(index) as rec:
        ids = sorted(rec.field_values("title"))
        rec.related(ids[0])  # first-query setup (idf, norms) out of the figures
        out = []
        for article_id in ids:
            started = time.perf_counter()
            rec.related(article_id, k=10)
            out.append(time.perf_counter() - started)
    return out


if __name__ == "__main__":
    main()
