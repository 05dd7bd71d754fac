"""Would "the article's own story first" rank better? An offline measurement (issue 21).

    .venv/bin/python scripts/story_first.py indexes/ecbplus:event_cluster:topic \\
        indexes/basil:triplet_id indexes/reuters:topics90 ...

For each ``INDEX:LABEL_FIELD[:GROUP_FIELD]`` (indexes built by ``scripts/evaluate.sh``):
groups the archive into stories (``regroup_stories``: no labels), ranks every article's
related list (top 30, the default ranking, rules off, as ``recommender evaluate`` does), and
scores two top-10 lists with the evaluation's own metrics: the default ranking's, and the same
30 candidates with those of the article's own story moved first (each side keeping the
ranking's order). Nothing here changes what the engine serves.
"""

from __future__ import annotations

import sys

from recommender import Recommender
from recommender.evaluation import evaluate_rankings, label_sets


def main() -> None:
    print("index\tranking\tMAP@10\tP@1\thard-neg@5")
    for spec in sys.argv[1:]:
        path, label, *group = spec.split(":")
        for name, result in measure(path, label, group[0] if group else None):
            hard = result.hard_negative_rate_at_5
            print(
                f"{path}\t{name}\t{result.map_at_10:.4f}\t{result.p_at_1:.3f}\t"
                + ("" if hard is None else f"{hard:.4f}"),
                flush=True,
            )


def measure(path: str, label: str, group: str | None) -> list[tuple[str, object]]:
    with Recommender.open(path) as rec:
        rec.regroup_stories()
        labels = label_sets(rec.field_values(label))
        groups = rec.field_values(group) if group else None
        story = {a.id: s.id for s in rec.stories() for a in s.articles}
        default: dict[str, list[str]] = {}
        first: dict[str, list[str]] = {}
        for article_id, matches in rec.related_all(k=30, rules=False):
            ids = [m.id for m in matches]
            default[article_id] = ids[:10]
            own = [i for i in ids if story.get(i) == story[article_id]]
            first[article_id] = (own + [i for i in ids if i not in own])[:10]
    return [
        (name, evaluate_rankings(name, rankings, labels, groups=groups, k=10))
        for name, rankings in (("default", default), ("own story first", first))
    ]


if __name__ == "__main__":
    main()
