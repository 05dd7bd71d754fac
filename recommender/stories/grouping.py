"""The archive grouped into stories, from the ranking's own scores and no tuned constant.

Every article's related list by content alone (the default ranking without its time prior,
editorial rules off) gives scored pairs; a pair's score is the higher of its two directions.
The archive's own two-class model of those pairs (:class:`~recommender.ranking.calibration.
StoryModel`: one story or not, seen through the score and, independently, the date gap) gives
each pair its log-odds of being one story, so that a gap implausibly long for one story on this
archive counts against it. Articles are merged by average link: two groups join when the mean
log-odds over all their pairs is above even (a pair in neither list counts as a pair scoring 0,
gap unknown), best pair first, over the pairs again until no two join, and never when the
joined story would span more than the model's ``span_days``. No threshold is set by hand
(docs/relevance.md, issue 23).

Deterministic: the same pairs give the same stories.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from recommender.ranking.calibration import StoryModel, story_model

__all__ = [
    "NEIGHBOURS",
    "Grouping",
    "arrival",
    "bcubed",
    "group",
    "name_stories",
    "pair_arrays",
    "pair_key",
    "pair_scores",
]

#: Candidates per article whose scores are read (the pairs a story can grow through).
NEIGHBOURS = 20

Pair = tuple[int, int]


def pair_key(a: int, b: int) -> Pair:
    return (a, b) if a < b else (b, a)


def pair_scores(rows: Iterable[tuple[int, Iterable[int], Iterable[float]]]) -> dict[Pair, float]:
    """Each pair's score from ``(article, neighbours, scores)`` rows: the higher direction."""
    pairs: dict[Pair, float] = {}
    for a, neighbours, scores in rows:
        for b, score in zip(neighbours, scores, strict=True):
            if a != b:
                key = pair_key(a, int(b))
                pairs[key] = max(pairs.get(key, -math.inf), float(score))
    return pairs


@dataclass(frozen=True)
class Grouping:
    """Every article's group (article -> its story's founding article), and the model used."""

    story_of: Mapping[int, int]
    model: StoryModel | None

    @cached_property
    def members(self) -> dict[int, list[int]]:
        """Founding article -> its story's articles (derived once from ``story_of``)."""
        out: dict[int, list[int]] = defaultdict(list)
        for article, story in self.story_of.items():
            out[story].append(article)
        return dict(out)


def arrival(days: Mapping[int, float]) -> Callable[[int], tuple[float, int]]:
    """The order articles arrive in: earliest first by ``days``, undated last, then by id."""
    return lambda i: (math.inf if math.isnan(days[i]) else days[i], i)


def pair_arrays(
    pairs: Mapping[Pair, float], days: Mapping[int, float], among: Container[int] | None = None
) -> tuple[list[Pair], np.ndarray, np.ndarray]:
    """The pairs (of articles ``among``, default all) in order, their scores and date gaps."""
    keys = sorted(k for k in pairs if among is None or (k[0] in among and k[1] in among))
    scores = np.array([pairs[k] for k in keys], dtype=np.float64)
    gaps = np.array([abs(days[a] - days[b]) for a, b in keys], dtype=np.float64)
    return keys, scores, gaps


def group(
    ids: Iterable[int],
    pairs: Mapping[Pair, float],
    days: Mapping[int, float],
    model: StoryModel | None = None,
) -> Grouping:
    """Stories of ``ids`` from scored ``pairs`` and each article's date (``days``: NaN when
    unknown), by ``model`` or one fitted to these pairs; a story is keyed by its first article
    to arrive (:func:`arrival`)."""
    members = {article: [article] for article in ids}
    keys, scores, gaps = pair_arrays(pairs, days, members)
    model = model or story_model(scores, gaps)
    if model is None:
        return Grouping({a: a for a in members}, None)
    log_odds = dict(zip(keys, model.log_odds(scores, gaps).tolist(), strict=True))
    parent = {article: article for article in members}
    spans = {a: (days[a], days[a]) for a in members}

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    ranked = [k for k, v in sorted(log_odds.items(), key=lambda kv: (-kv[1], kv[0])) if v >= 0]
    merged = True
    while merged:  # until no two stories linked by a pair above even join
        merged = False
        for a, b in ranked:
            ra, rb = root(a), root(b)
            if ra == rb:
                continue
            span = joined_span(spans[ra], spans[rb])
            if span[1] - span[0] > model.span_days:
                continue
            left, right = members[ra], members[rb]
            total = sum(log_odds.get(pair_key(x, y), model.unpaired) for x in left for y in right)
            if total >= 0:
                parent[rb], spans[ra] = ra, span
                members[ra] = left + right
                del members[rb]
                merged = True
    story_of: dict[int, int] = {}
    order = arrival(days)
    for story in members.values():
        first = min(story, key=order)
        story_of.update((article, first) for article in story)
    return Grouping(story_of, model)


def name_stories(
    members: Mapping[int, list[int]],
    old: Mapping[int, str],
    founders: Mapping[int, str],
    in_use: Callable[[str], bool] = lambda name: False,
) -> dict[int, str]:
    """A stable id for each group (keyed by its first article): the old story most of its
    articles were in (larger groups choose first; a tie goes to the story of the earliest
    stored article), else its first article's id, made unique against the others and
    against ``in_use`` (stories elsewhere in the archive)."""
    names: dict[int, str] = {}
    taken: set[str] = set()
    before = set(old.values())
    for first, articles in sorted(members.items(), key=lambda m: (-len(m[1]), m[0])):
        votes = Counter(old[a] for a in articles if a in old)
        oldest = {s: min(a for a in articles if old.get(a) == s) for s in votes}
        ranked = sorted(votes, key=lambda s: (-votes[s], oldest[s]))
        name = next((s for s in ranked if s not in taken), None)
        if name is None:
            name = founders[first]
            while name in taken or name in before or in_use(name):
                name += "~"
        names[first] = name
        taken.add(name)
    return names


def joined_span(left: tuple[float, float], right: tuple[float, float]) -> tuple[float, float]:
    """The first and last date of two stories together (NaN dates take no part)."""
    lows = [x for x in (left[0], right[0]) if not math.isnan(x)]
    highs = [x for x in (left[1], right[1]) if not math.isnan(x)]
    return (min(lows), max(highs)) if lows else (math.nan, math.nan)


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
