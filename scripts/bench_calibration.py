"""What estimating the lexical weight adds to a build (issue 21: calibration <= 1.3x).

    .venv/bin/python scripts/bench_calibration.py [--corpus ecbplus] [--repeats 2]

Builds the corpus (../shared/data, or RECOMMENDER_DATA) with the defaults, as `recommender
build` does, alternately without and with the estimate (``estimate_weight``), each build in
this one process with the model loaded once beforehand; then times the estimate alone on the
built index. Prints the median build times, their ratio, and the estimate's share.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CORPORA = {
    "ecbplus": Path("ecbplus") / "ecbplus_docs.jsonl",
    "basil": Path("basil") / "basil_articles.jsonl",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", choices=sorted(CORPORA), default="ecbplus")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from recommender import Recommender
    from recommender.embedding.encoders import make_encoder
    from recommender.ingest.records import read_records
    from recommender.ranking.fusion_weight import estimate_fusion_weight
    from recommender.types import Article

    data = Path(os.environ.get("RECOMMENDER_DATA", ROOT.parent / "shared" / "data"))
    source = data / CORPORA[args.corpus]
    if not source.exists():
        sys.exit(f"missing {source} (set RECOMMENDER_DATA to the data directory)")
    articles = [a for a in read_records([source]) if isinstance(a, Article)]
    encoder = make_encoder(None)
    encoder.encode(["warm up"])
    times: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for estimate in (False, True):
                path = Path(tmp) / f"idx-{repeat}-{estimate}"
                started = time.perf_counter()
                Recommender.build(articles, path, encoder=encoder, estimate_weight=estimate).close()
                times[estimate].append(time.perf_counter() - started)
                print(f"build {'with' if estimate else 'without'} the estimate: "
                      f"{times[estimate][-1]:.1f} s", flush=True)  # fmt: skip
        with Recommender.open(path, encoder=encoder) as rec:
            state, config = rec._index.state, rec.ranking
            alone = []
            for _ in range(3):
                started = time.perf_counter()
                found = estimate_fusion_weight(state, config)
                alone.append(time.perf_counter() - started)
    without, with_ = statistics.median(times[False]), statistics.median(times[True])
    estimate = statistics.median(alone)
    print(json.dumps(found.to_dict()))
    print(
        f"{args.corpus}: {len(articles)} articles; build median {without:.1f} s without, "
        f"{with_:.1f} s with the estimate: {with_ / without:.2f}x; the estimate alone "
        f"{estimate:.2f} s ({estimate / without:.1%} of a build)"
    )


if __name__ == "__main__":
    main()
