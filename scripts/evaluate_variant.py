"""Ranking variants scored with the per-article pool statistics recomputed under each.

    .venv/bin/python scripts/evaluate_variant.py --index indexes/ecbplus \\
        --label-field event_cluster --group-field topic \\
        '{}' '{"candidates": 100}' '{"candidates": 50}'

``scripts/ablation.py`` scores variants against the statistics stored when the
index was built (each article's score mean and spread over its own candidate
pool), which is right for choices that leave the pool alone. A variant that
changes the pool itself (``candidates``, ``candidate_terms``,
``max_query_terms``) changes those statistics too, so here each variant runs on
a private copy of the index whose statistics are recomputed with it first; the
index given is only read. Each VARIANT is a JSON object of RankingConfig
options; ``{}`` is the index's own ranking.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recommender import Recommender
from recommender.evaluation import evaluate_index
from recommender.index.state import compute_pool_stats
from recommender.ranking.scoring import RankingConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--label-field", required=True)
    parser.add_argument("--group-field")
    parser.add_argument("variants", nargs="+", metavar="VARIANT")
    args = parser.parse_args()
    options = []
    for text in args.variants:
        try:
            option = json.loads(text)
        except json.JSONDecodeError as error:
            parser.error(f"VARIANT {text!r} is not JSON: {error}")
        if not isinstance(option, dict):
            parser.error(f"VARIANT {text!r} must be a JSON object, e.g. '{{\"candidates\": 100}}'")
        unknown = sorted(set(option) - set(RankingConfig().to_dict()))
        if unknown:
            valid = ", ".join(sorted(RankingConfig().to_dict()))
            parser.error(f"unknown ranking option(s) {unknown} in {text!r}; valid: {valid}")
        options.append(option)
    if not (args.index / "manifest.json").is_file():
        parser.error(f"no index at {str(args.index)!r}")
    tail = " hard-neg@5" if args.group_field else ""
    print(f"{'variant':<40} {'P@1':>6} {'MAP@10':>7} {'nDCG@10':>7}{tail}")
    for option in options:
        with tempfile.TemporaryDirectory(prefix="variant-") as tmp:
            copy = Path(tmp) / "index"
            shutil.copytree(args.index, copy)
            with Recommender.open(copy) as rec:
                config = rec.ranking.with_options(**option)
                state = rec._index.state
                ids = np.array([i for i, _ in state.catalog.all_ids()], dtype=np.int64)
                compute_pool_stats(state.store, state.lexical, state.catalog, ids, config=config)
            with Recommender.open(copy) as rec:
                result = evaluate_index(
                    rec, label_field=args.label_field, group_field=args.group_field, ranking=config
                )[0]
        hard = result.hard_negative_rate_at_5
        extra = f" {hard:10.4f}" if hard is not None else ""
        print(
            f"{json.dumps(option):<40} {result.p_at_1:6.3f} {result.map_at_10:7.4f} "
            f"{result.ndcg_at_10:7.4f}{extra}",
            flush=True,
        )


if __name__ == "__main__":
    main()
