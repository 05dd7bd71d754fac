"""Performance at archive scale, every figure in one run on one machine.

    .venv/bin/python scripts/benchmark.py [--sections encoding,scale,build,milvus] [--json out.json]
    scripts/with_milvus_server.sh .venv/bin/python scripts/benchmark.py --sections milvus

Sections (each prints its table as it finishes; ratios are always between
figures measured in this run, since the machine's absolute speed varies):

1. ``encoding`` (scripts/bench_encoding.py): articles/s of each encoder backend
   through the engine's embedding path against plain ``SentenceTransformer.encode``
   (batch 32, unsorted, fp32) on 2,000 reuters21578 stories, and ecbplus
   MAP@10 per backend (quality drift).
2. ``scale`` (scripts/bench_scale.py): related-by-id p50/p99 in-process at 10k,
   100k and 1M articles (synthetic archives grown from real embeddings and term
   counts), recall@10 of the vector search against exact search, ``related
   --all`` time at 100k, and the peak RSS of a process serving the 1M index.
3. ``build`` (scripts/bench_build.py): build time and peak RSS for the full
   reuters21578 corpus (21,578 stories), and the same corpus and model through
   txtai (``pip install -c constraints.txt -e '.[bench]'``): build time,
   per-query latency, ratios.
4. ``milvus`` (scripts/bench_milvus.py): related-by-id p50/p99 on a real Milvus
   server and on Milvus Lite next to FAISS, over the same index (``--milvus-source``,
   default indexes/ecbplus) copied into each store without the model, and how many
   lists are identical. Needs a server: run under scripts/with_milvus_server.sh
   (which sets RECOMMENDER_MILVUS_URL); without one the section is skipped.

Needs ../shared/data (or RECOMMENDER_DATA) and, for ``scale``, indexes/reuters
(``scripts/evaluate.sh reuters``). The full run takes over an hour on 2 cores.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("encoding", "scale", "build", "milvus")


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    try:
        model = [
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
        info["cpu"] = model[0] if model else None
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        info["memory_gib"] = round(int(mem) / 2**20, 1)
    except OSError:
        pass
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--data", default=os.environ.get("RECOMMENDER_DATA", "../shared/data"))
    parser.add_argument("--source", type=Path, default=ROOT / "indexes" / "reuters")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--encoding-articles", type=int, default=2000)
    parser.add_argument("--build-limit", type=int, default=None, help="first N reuters stories")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--milvus-source", type=Path, default=ROOT / "indexes" / "ecbplus")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    wanted = [s for s in args.sections.split(",") if s]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        sys.exit(f"unknown section {unknown[0]!r}; expected some of {list(SECTIONS)}")
    data = Path(args.data)
    figures: dict[str, Any] = {"machine": machine()}
    print(json.dumps(figures["machine"]), flush=True)
    if "encoding" in wanted:
        print("\n== 1. encoding throughput and quality", flush=True)
        figures["encoding"] = _module("bench_encoding").run(data, n=args.encoding_articles)
    if "scale" in wanted:
        print("\n== 2-3. related-by-id at scale, related --all", flush=True)
        sizes = [int(s) for s in args.sizes.split(",")]
        figures["scale"] = _module("bench_scale").run(
            args.source, sizes, {s for s in sizes if s == 100_000}, args.queries, rss=True
        )
    if "build" in wanted:
        print("\n== 4-5. full reuters21578 build; side by side with txtai", flush=True)
        figures["build"] = _module("bench_build").run(
            data, limit=args.build_limit, queries=args.queries
        )
    if "milvus" in wanted:
        print("\n== 6. related-by-id on a Milvus server and Milvus Lite next to FAISS", flush=True)
        url = os.environ.get("RECOMMENDER_MILVUS_URL")
        if url:
            figures["milvus"] = _module("bench_milvus").run(args.milvus_source, url, args.queries)
        else:
            print("skipped: no Milvus server (run under scripts/with_milvus_server.sh)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
