"""What explanations cost and how often they name something, on a built index.

    .venv/bin/python scripts/bench_explain.py [--index indexes/ecbplus] [--queries 200] [-k 10]

For the first N articles (catalog order): time related(k) without and with
explain=True in one run (the ratio is the figure to read), and count the
matches whose explanation names shared people/places/organisations, shared
terms, a passage pair, or only the fallback reason. Build the index first:

    .venv/bin/recommender build ../shared/data/ecbplus/ecbplus_docs.jsonl --index indexes/ecbplus
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

from recommender import Recommender


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="indexes/ecbplus")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()
    with Recommender.open(args.index) as rec:
        ids = list(rec.field_values("title"))[: args.queries]
        rec.related(ids[0], k=args.k, explain=True)  # warm: imports, first reads
        timings = {}
        for explain in (False, True):
            started = time.perf_counter()
            lists = [rec.related(aid, k=args.k, explain=explain) for aid in ids]
            timings[explain] = (time.perf_counter() - started) / len(ids)
        counts: Counter[str] = Counter()
        for matches in lists:
            for m in matches:
                why = m.explanation
                assert why is not None
                counts["matches"] += 1
                counts["names"] += bool(why.people or why.places or why.organisations)
                counts["terms"] += bool(why.terms)
                counts["passages"] += why.passages is not None
                counts["names or terms"] += bool(
                    why.people or why.places or why.organisations or why.terms
                )
    plain, explained = timings[False], timings[True]
    print(f"index {args.index}: {len(ids)} queries, k={args.k}")
    print(f"related            {plain * 1000:8.2f} ms/query")
    print(f"related --explain  {explained * 1000:8.2f} ms/query  ({explained / plain:.1f}x)")
    total = counts["matches"]
    for key in ("names", "terms", "names or terms", "passages"):
        print(f"matches with {key:<15} {counts[key]:5d} / {total} ({counts[key] / total:.1%})")


if __name__ == "__main__":
    main()
