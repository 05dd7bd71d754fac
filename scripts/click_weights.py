"""Weights learned from simulated readers' clicks, checked against the labels (issue 21).

    .venv/bin/python scripts/click_weights.py --index indexes/ecbplus \
        --label-field event_cluster [--group-field topic] [--views 20] [--seed 0] [--keep DIR]

No real click log exists for these corpora, so readers are simulated from the labels: half
the articles (drawn with ``--seed``) are read, each ``--views`` times; a reader examines
position p of the served list (the index's default ranking, as served) with probability
1 / p ** 0.7 and clicks an examined item with probability 0.6 when it has the article's label
and 0.05 when not. The clicks go through the real path (``EventLog.record`` on a copy of the
index, then ``Recommender.click_weights``), and the same clicks are also fitted without the
position correction. Each set of weights then ranks the *other* half's lists, scored against
the labels (MAP@10, and hard-neg@5 with ``--group-field``): learned on one half, judged on
the other, so a weight that only fits the clicked articles shows as a loss. ``--keep DIR``
leaves the copy with its simulated events at DIR (``recommender report --weights --index
DIR`` then prints what the README shows).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from recommender import Recommender
from recommender.evaluation import eligible_queries, evaluate_rankings, label_sets
from recommender.ranking.click_weights import fit_click_model, relative_weights, shown_clicks
from recommender.ranking.scoring import RankingConfig

RELEVANT, OTHER = 0.6, 0.05


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--label-field", required=True)
    parser.add_argument("--group-field", default=None)
    parser.add_argument("--views", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="Keep the copy and its events here (new).")
    args = parser.parse_args()
    if args.keep is not None and args.keep.exists():
        parser.error(f"--keep {str(args.keep)!r} exists; give a new directory")
    work = Path(tempfile.mkdtemp(prefix="click-weights-"))
    copy = args.keep or work / "index"
    try:
        shutil.copytree(args.index, copy, ignore=shutil.ignore_patterns("events*"))
        with Recommender.open(copy) as rec:
            run(rec, args.label_field, args.group_field, args.views, args.seed)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(rec: Recommender, label_field: str, group_field: str | None, views: int, seed: int) -> None:
    values = rec.field_values(label_field)
    labels = label_sets(values)
    rng = np.random.default_rng(seed)
    queries = sorted(eligible_queries(labels))
    read = set(rng.permutation(queries)[: len(queries) // 2].tolist())
    judged = [q for q in queries if q not in read]
    cells = [
        (a, m.id, n)
        for a, matches in rec.related_all(k=10, ids=sorted(read), rules=False)
        for n, m in enumerate(matches, start=1)
    ]
    positions = np.array([p for _, _, p in cells])
    relevant = np.array([bool(labels[a] & labels[r]) for a, r, _ in cells])
    chance = np.where(relevant, RELEVANT, OTHER) / positions**0.7
    clicks = rng.binomial(views, chance)
    _record(rec, cells, clicks, views)
    found = rec.click_weights(seed=seed)
    print(f"read {len(read)} articles x {views} views: {found.impressions} impressions, "
          f"{found.clicks} clicks; held-out log-likelihood {found.held_out}")  # fmt: skip
    print(f"learned (position bias corrected): {found.learned}; better: {found.better}"
          f"{'; ' + found.reason if found.reason else ''}")  # fmt: skip
    print("examined by position:", " ".join(f"{e:.2f}" for e in found.examination[:10]))
    naive = _naive(rec)
    print(f"learned without the correction: {naive}")
    groups = rec.field_values(group_field) if group_field else None
    configs = {"current": rec.ranking, "learned": _with(rec.ranking, found.learned or {}),
               "learned, no correction": _with(rec.ranking, naive)}  # fmt: skip
    for name, config in configs.items():
        lists = rec.related_all(k=10, ids=judged, ranking=config, rules=False)
        rankings = {a: [m.id for m in matches] for a, matches in lists}
        result = evaluate_rankings(name, rankings, labels, groups=groups, k=10)
        print(f"{name:<24} on the other {len(judged)}: {result.to_dict()}")


def _record(
    rec: Recommender, cells: list[tuple[str, str, int]], clicks: np.ndarray, views: int
) -> None:
    events = [
        {"type": "impression", "article_id": a, "related_id": r, "position": p}
        for a, r, p in cells
        for _ in range(views)
    ] + [
        {"type": "click", "article_id": a, "related_id": r, "position": p}
        for (a, r, p), c in zip(cells, clicks.tolist(), strict=True)
        for _ in range(int(c))
    ]
    for start in range(0, len(events), 1_000):
        rec.events.record(events[start : start + 1_000])


def _naive(rec: Recommender) -> dict[str, float]:
    """The same clicks, read from the log as ``click_weights`` reads them, fitted without the
    position correction."""
    with rec._index.reading() as state:
        data, _ = shown_clicks(state, rec.ranking, rec.events.shown())
    return relative_weights(fit_click_model(data, position_bias=False).weights) or {}


def _with(config: RankingConfig, weights: dict[str, float]) -> RankingConfig:
    return replace(config, **weights)


if __name__ == "__main__":
    main()
