"""Each ranking choice on and off, leave-one-out, on one built index.

    .venv/bin/python scripts/ablation.py --index indexes/ecb \\
        --label-field event_cluster --group-field topic [--variants "lexical weight"]

Prints one row per variant of the index's stored ranking (RankingConfig), all
measured in the same run on the same articles, then variants of the lexical
side alone (rebuilt in memory from the stored articles; the index is only read).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recommender import Recommender
from recommender.evaluation import (
    EvaluationResult,
    eligible_queries,
    evaluate_index,
    evaluate_rankings,
    label_sets,
)
from recommender.index.catalog import lexical_text
from recommender.lexical.index import LexicalIndex
from recommender.ranking.calibration import calibrate_time
from recommender.ranking.ranker import Ranker
from recommender.ranking.scoring import RankingConfig

VARIANTS: dict[str, dict[str, object]] = {
    "default": {},
    "dense side only": {"method": "dense", "time_weight": 0.0},
    "lexical side only": {"method": "lexical", "time_weight": 0.0},
    "fusion: query-side z only": {"fusion": "query-z"},
    "fusion: reciprocal rank (k=60)": {"fusion": "rrf"},
    "fusion: raw cosine sum": {"fusion": "sum"},
    "lexical weight 0.25": {"lexical_weight": 0.25},
    "lexical weight 0.5": {"lexical_weight": 0.5},
    "lexical weight 0.75": {"lexical_weight": 0.75},
    "lexical weight 1 (equal in pool units: not estimated)": {"lexical_weight": 1.0},
    "lexical weight 1.5": {"lexical_weight": 1.5},
    "own story first off (by score alone)": {"story_first": False},
    "time prior off": {"time_weight": 0.0},
    "lead dates off (undated articles stay undated)": {"lead_dates": False},
    "year scale off (day scale only)": {"year_weight": 0.0},
    "year scale 0.25 of the prior's weight": {"year_weight": 0.25},
    "year scale 1 (the prior's full weight)": {"year_weight": 1.0},
    "time prior weight 2": {"time_weight": 2.0},
    "time prior weight 4": {"time_weight": 4.0},
    "time prior weight 4, own story first off": {"time_weight": 4.0, "story_first": False},
    "time prior scale 3 days": {"time_scale_days": 3.0},
    "time prior scale 14 days": {"time_scale_days": 14.0},
    "near-duplicates collapsed at 0.97": {"dedupe_threshold": 0.97},
    "near-duplicates collapsed at 0.99": {"dedupe_threshold": 0.99},
    "diversity (MMR) 0.15": {"diversity": 0.15},
    "diversity (MMR) 0.3": {"diversity": 0.3},
    "neighbour feedback: 3 docs, weight 0.5": {"feedback_docs": 3},
    "candidates 50 per side": {"candidates": 50},
    "candidates 100 per side": {"candidates": 100},
    "lexical candidates through every query term": {"candidate_terms": None},
    "lexical candidates through the 16 heaviest terms": {"candidate_terms": 16},
}
LEXICAL_VARIANTS: dict[str, dict[str, object]] = {
    "lexical default (bigrams, numbers, entities x1.5, min df 2)": {},
    "lexical without bigrams and whole numbers": {"bigrams": False},
    "lexical without entity boost": {"entity_boost": 1.0},
    "lexical entity boost x3": {"entity_boost": 3.0},
    "lexical with single-article terms (min df 1)": {"min_df": 1},
}


def variants(rec: Recommender, index: Path) -> list[tuple[str, RankingConfig]]:
    """Each variant's configuration; the estimated time prior (build --calibrate) last."""
    out = [(name, rec.ranking.with_options(**options)) for name, options in VARIANTS.items()]
    found = calibrate_time(rec._index.state, Ranker(index / "rules.json"), rec.ranking)
    if found.curve is None:
        out.append((f"time prior estimated: none ({found.reason})", rec.ranking))
    else:
        config = replace(rec.ranking, time_curve=found.curve)
        out.append(("time prior estimated from the archive (calibrate)", config))
        clipped = tuple((d, max(v, 0.0)) for d, v in found.curve)
        out.append(
            ("time prior estimated, no penalty for far gaps", replace(config, time_curve=clipped))
        )
    return out


def row(name: str, result: EvaluationResult) -> str:
    hard = result.hard_negative_rate_at_5
    tail = f" {hard:8.4f}" if hard is not None else ""
    return f"{name:<62} {result.p_at_1:6.3f} {result.map_at_10:7.4f} {result.ndcg_at_10:7.4f}{tail}"


def lexical_variant(
    rec: Recommender,
    name: str,
    options: dict[str, object],
    labels: dict[str, frozenset[str]],
    groups: dict[str, str | None] | None,
) -> EvaluationResult:
    ids = list(labels)
    articles = [rec.get(aid) for aid in ids]
    lexical = LexicalIndex(**options)  # type: ignore[arg-type]
    lexical.add(np.arange(len(ids)), [lexical_text(a.title, a.body) for a in articles])
    queries = eligible_queries(labels)
    position = {aid: n for n, aid in enumerate(ids)}
    rankings = {}
    for start in range(0, len(queries), 256):
        chunk = queries[start : start + 256]
        rows = np.array([position[q] for q in chunk])
        scores = lexical.scores(lexical.stored_counts(rows))
        scores[np.arange(len(chunk)), rows] = -np.inf
        top = np.argsort(-scores, axis=1)[:, :10]
        rankings.update({q: [ids[j] for j in top[n]] for n, q in enumerate(chunk)})
    return evaluate_rankings(name, rankings, labels, groups=groups)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", required=True)
    parser.add_argument("--label-field", required=True)
    parser.add_argument("--group-field")
    parser.add_argument(
        "--variants", help="Only the variants whose name contains this (no lexical-side rows)."
    )
    args = parser.parse_args()
    rec = Recommender.open(args.index)
    header = f"{'variant':<62} {'P@1':>6} {'MAP@10':>7} {'nDCG@10':>7}"
    print(header + (" hard-neg@5" if args.group_field else ""))
    for name, config in variants(rec, Path(args.index)):
        if args.variants and args.variants not in name and name != "default":
            continue
        result = evaluate_index(
            rec, label_field=args.label_field, group_field=args.group_field, ranking=config
        )[0]
        print(row(name, result), flush=True)
    if args.variants:
        return
    labels = label_sets(rec.field_values(args.label_field))
    groups = rec.field_values(args.group_field) if args.group_field else None
    for name, options in LEXICAL_VARIANTS.items():
        print(row(name, lexical_variant(rec, name, options, labels, groups)), flush=True)


if __name__ == "__main__":
    main()
