"""What ranking the own story first costs a related-by-id query (issues 21 and 23), or any
other ranking option (``--compare year_weight=0,0.5``: the time prior's year scale).

    PYTHONPATH=. .venv/bin/python scripts/bench_story_first.py \\
        [--index /tmp/scale/scale-100000] [--queries 400] [--work DIR] [--compare KEY=OFF,ON]

``--index``: an index to copy (``scripts/bench_scale.py --sizes 100000 --keep DIR`` writes a
100k-article one); the copy's stories are grouped first if it has none (timed). Then the
same random articles' related lists (k=10, in-process, the compiled loops loaded) are
ranked by score alone (``story_first=False``) and as served (own story first: the top 30
ranked, two reads of the stored stories), or with the option ``--compare`` names off and on
(values as JSON), the two in alternating order per query so that the machine's drift falls on
both alike. Printed: each side's p50/p90/p99 in ms, the ratio of medians (on / off) and the
median of the paired differences.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from recommender import Recommender


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, default=Path("/tmp/scale/scale-100000"))
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--compare", default="story_first=false,true", help="KEY=OFF,ON")
    args = parser.parse_args()
    key, _, values = args.compare.partition("=")
    off, on = (json.loads(v) for v in values.split(","))
    work = Path(tempfile.mkdtemp(prefix="bench-story-first-", dir=args.work))
    try:
        print(json.dumps(run(args.index, args.queries, work, key, off, on), indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(
    source: Path, queries: int, work: Path, key: str, off: object, on: object
) -> dict[str, object]:
    path = work / "index"
    shutil.copytree(source, path)
    figures: dict[str, object] = {"index": str(source)}
    with Recommender.open(path) as rec:
        if rec.info().stories is None:
            start = time.perf_counter()
            rec.regroup_stories()
            figures["regroup_s"] = round(time.perf_counter() - start, 1)
        ids = sorted(a for _, a in rec._index.state.catalog.all_ids())
        chosen = random.Random(7).sample(ids, min(queries, len(ids)))
        names = (f"{key}={json.dumps(off)}", f"{key}={json.dumps(on)}")
        sides = {
            names[0]: rec.ranking.with_options(**{key: off}),
            names[1]: rec.ranking.with_options(**{key: on}),
        }
        rec.warm_up()
        for article_id in chosen[:20]:  # uncounted: caches, compiled loops
            for config in sides.values():
                rec.related(article_id, ranking=config)
        times: dict[str, list[float]] = {name: [] for name in sides}
        for n, article_id in enumerate(chosen):
            order = list(sides.items()) if n % 2 == 0 else list(sides.items())[::-1]
            for name, config in order:
                start = time.perf_counter()
                rec.related(article_id, ranking=config)
                times[name].append((time.perf_counter() - start) * 1000)
    for name, values in times.items():
        cuts = statistics.quantiles(values, n=100)
        figures[name] = {
            "p50_ms": round(statistics.median(values), 2),
            "p90_ms": round(cuts[89], 2),
            "p99_ms": round(cuts[98], 2),
        }
    off_ms, on_ms = (times[name] for name in names)
    figures["median_ratio"] = round(statistics.median(on_ms) / statistics.median(off_ms), 3)
    figures["paired_median_difference_ms"] = round(
        statistics.median(a - b for a, b in zip(on_ms, off_ms, strict=True)), 2
    )
    figures["queries"] = len(chosen)
    return figures


if __name__ == "__main__":
    main()
