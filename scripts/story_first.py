"""The article's own story first, against the ranking by score alone (issues 21 and 23).

    .venv/bin/python scripts/story_first.py indexes/ecbplus:event_cluster:topic \\
        indexes/basil:triplet_id indexes/reuters:topics90 ...

For each ``INDEX:LABEL_FIELD[:GROUP_FIELD]`` (indexes built by ``scripts/evaluate.sh``, whose
builds group the stories: no labels): every article's related list (top 10, rules off, as
``recommender evaluate`` ranks) twice in one run, by score alone (``story_first=False``) and
as served (the own story first among the top 30, ``ranking/own_story.py``), scored with the
evaluation's own metrics. A third row checks the served lists against the reordering done
here by hand from the score-ranked top 30 and the stored stories: "agree" must be 1.0000.
"""

from __future__ import annotations

import sys

from recommender import Recommender
from recommender.evaluation import EvaluationResult, evaluate_rankings, label_sets
from recommender.ranking.own_story import STORY_DEPTH


def main() -> None:
    print("index\tranking\tMAP@10\tP@1\thard-neg@5")
    for spec in sys.argv[1:]:
        path, label, *group = spec.split(":")
        results, agree = measure(path, label, group[0] if group else None)
        for name, result in results:
            hard = result.hard_negative_rate_at_5
            print(
                f"{path}\t{name}\t{result.map_at_10:.4f}\t{result.p_at_1:.3f}\t"
                + ("" if hard is None else f"{hard:.4f}"),
                flush=True,
            )
        print(f"{path}\tagree (served = by hand)\t{agree:.4f}", flush=True)


def measure(
    path: str, label: str, group: str | None
) -> tuple[list[tuple[str, EvaluationResult]], float]:
    with Recommender.open(path) as rec:
        labels = label_sets(rec.field_values(label))
        groups = rec.field_values(group) if group else None
        story = {a.id: s.id for s in rec.stories() for a in s.articles}
        by_score = rec.ranking.with_options(story_first=False)
        plain: dict[str, list[str]] = {}
        by_hand: dict[str, list[str]] = {}
        for article_id, matches in rec.related_all(k=STORY_DEPTH, ranking=by_score, rules=False):
            ids = [m.id for m in matches]
            plain[article_id] = ids[:10]
            own = [i for i in ids if story.get(i) == story[article_id]]
            by_hand[article_id] = (own + [i for i in ids if i not in own])[:10]
        served = {a: [m.id for m in ms] for a, ms in rec.related_all(k=10, rules=False)}
    agree = sum(served[a] == by_hand[a] for a in served) / max(len(served), 1)
    results = [
        (name, evaluate_rankings(name, rankings, labels, groups=groups, k=10))
        for name, rankings in (("by score", plain), ("own story first (served)", served))
    ]
    return results, agree


if __name__ == "__main__":
    main()
