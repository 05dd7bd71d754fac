"""Related-by-id time of one checkout of recommender against another, on the same index.

    .venv/bin/python scripts/compare_related.py OTHER_CHECKOUT INDEX [--queries 300]

Runs this checkout and OTHER_CHECKOUT (e.g. ``git worktree add --detach ../old af4c4ef``)
alternately, twice each, in fresh processes on the same index: for each, the mean time of
``related(id, k=10)`` over the same random ids of the index's ``s<n>`` articles (as
scripts/bench_scale.py writes them), best of 3 passes after one warm-up pass. On a shared,
noisy machine only the ratio of the two is meaningful.

``--other-index`` gives OTHER_CHECKOUT its own copy of the index (the same articles and
files), e.g. one whose manifest keeps an earlier default ranking, so that a change of
code and of defaults is measured together.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
from recommender import Recommender
rec = Recommender.open(sys.argv[2])
rng = np.random.default_rng(1)
picks = [f"s{i}" for i in rng.choice(len(rec), size=int(sys.argv[3]), replace=False)]
for a in picks:
    rec.related(a)
def one_pass():
    started = time.perf_counter()
    for a in picks:
        rec.related(a)
    return time.perf_counter() - started
best = min(one_pass() for _ in range(3))
print(1000 * best / len(picks))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\\n\\n")[0])
    parser.add_argument("other", type=Path)
    parser.add_argument("index", type=Path)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--other-index", type=Path, default=None)
    args = parser.parse_args()
    indexes = {"other": args.other_index or args.index, "this": args.index}
    times: dict[str, list[float]] = {"other": [], "this": []}
    for _ in range(2):
        for name, root in (("other", args.other.resolve()), ("this", ROOT)):
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, str(root), str(indexes[name]), str(args.queries)],
                check=True,
                capture_output=True,
                text=True,
            )
            times[name].append(float(out.stdout.strip().splitlines()[-1]))
    for name, values in times.items():
        print(f"{name:>5}: " + " / ".join(f"{v:.2f} ms" for v in values))
    ratio = sum(times["this"]) / sum(times["other"])
    print(f"this / other: {ratio:.2f}")


if __name__ == "__main__":
    main()
