"""The archive grouped into stories, from the ranking's own scores and no tuned constant.

Every article's related list by content alone (the default ranking without its time prior,
editorial rules off) gives scored pairs; a pair's score is the higher of its two directions.
The archive's own two-class model of those pairs (the EM of
:mod:`recommender.ranking.calibration`: one story or not, seen through the score and,
independently, the date gap) gives each pair its log-odds of being one story, so that a
gap implausibly long for one story on this archive counts against it. Articles are merged by
average link: two groups join when the mean log-odds over all their pairs is above even (a
pair in neither list counts as a pair scoring 0, gap unknown), best pair first. No threshold
is set by hand (docs/relevance.md, issue 23).

Deterministic: the same index gives the same stories; a story's id is its earliest
article's id (undated articles after dated ones, ties by id).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from recommender.ranking.calibration import story_log_odds

__all__ = ["Grouping", "bcubed", "group"]

#: Candidates per article whose scores are read (the pairs a story can grow through).
NEIGHBOURS = 20


@dataclass(frozen=True)
class Grouping:
    """Every article's story (article id -> story id), and the cut that made them."""

    story_of: Mapping[str, str]
    #: The score at which a pair with no known gap is as likely one story as not.
    cut: float

    @cached_property
    def members(self) -> dict[str, list[str]]:
        """Story id -> its article ids (derived once from ``story_of``)."""
        out: dict[str, list[str]] = defaultdict(list)
        for article_id, story in self.story_of.items():
            out[story].append(article_id)
        return dict(out)


def group(
    ids: Iterable[str],
    pairs: Mapping[tuple[str, str], float],
    gaps: Mapping[tuple[str, str], float],
    order: Mapping[str, tuple[float, str]],
) -> Grouping:
    """Stories of ``ids`` from scored ``pairs`` (keys sorted) and their date ``gaps`` (days,
    NaN: unknown); ``order`` ranks articles within a story (earliest first) for its id."""
    keys = sorted(pairs)
    scores = np.array([pairs[k] for k in keys], dtype=np.float64)
    days = np.array([gaps.get(k, np.nan) for k in keys], dtype=np.float64)
    odds, unpaired, cut = story_log_odds(scores, days)
    log_odds = dict(zip(keys, odds.tolist(), strict=True))
    parent = {article_id: article_id for article_id in ids}
    members = {article_id: [article_id] for article_id in parent}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for (a, b), value in sorted(log_odds.items(), key=lambda item: (-item[1], item[0])):
        if value < 0:
            break
        ra, rb = root(a), root(b)
        if ra == rb:
            continue
        left, right = members[ra], members[rb]
        total = sum(
            log_odds.get((x, y) if x < y else (y, x), unpaired) for x in left for y in right
        )
        if total >= 0:
            parent[rb] = ra
            members[ra] = left + right
            del members[rb]
    story_of: dict[str, str] = {}
    for story in members.values():
        first = min(story, key=lambda article_id: order[article_id])
        story_of.update((article_id, first) for article_id in story)
    return Grouping(story_of, cut)


def bcubed(
    found: Mapping[str, str], labels: Mapping[str, str | None]
) -> tuple[float, float, float]:
    """B-cubed precision, recall and F1 of a grouping against gold labels (per article)."""
    stories: dict[str, set[str]] = defaultdict(set)
    gold: dict[str | None, set[str]] = defaultdict(set)
    for article_id, story in found.items():
        stories[story].add(article_id)
        gold[labels.get(article_id)].add(article_id)
    precision = recall = 0.0
    for article_id, story in found.items():
        both = len(stories[story] & gold[labels.get(article_id)])
        precision += both / len(stories[story])
        recall += both / len(gold[labels.get(article_id)])
    n = max(len(found), 1)
    p, r = precision / n, recall / n
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)
