"""Ranking-quality metrics on labelled corpora (leave-one-out).

Every article whose label has at least two members is a query; its relevant
set is the other articles with the same label. Articles without a label stay
in the index as distractors but are never queries.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from recommender.ranking.scoring import RankingConfig
    from recommender.recommender import Recommender

__all__ = [
    "BASELINES",
    "EvaluationResult",
    "StoryScore",
    "eligible_queries",
    "evaluate_index",
    "evaluate_rankings",
    "evaluate_stories",
    "label_sets",
]

#: Baselines ``--compare`` can add, scored on the same articles in the same run.
BASELINES = ("tfidf", "dense")


@dataclass(frozen=True)
class EvaluationResult:
    """Mean metrics of one ranking method over the eligible queries."""

    method: str
    queries: int
    k: int
    p_at_1: float
    p_at_5: float
    map_at_10: float
    ndcg_at_10: float
    hard_negative_rate_at_5: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Labels = Mapping[str, frozenset[str]]


def label_sets(values: Mapping[str, str | None]) -> dict[str, frozenset[str]]:
    """Field values as label sets: a JSON list is several labels, a plain value one."""
    out: dict[str, frozenset[str]] = {}
    for aid, value in values.items():
        if value is None:
            out[aid] = frozenset()
        elif value.startswith("["):
            try:
                out[aid] = frozenset(map(str, json.loads(value)))
            except ValueError:
                out[aid] = frozenset([value])
        else:
            out[aid] = frozenset([value])
    return out


def eligible_queries(labels: Labels) -> list[str]:
    """Ids that share a label with at least one other article."""
    sizes = Counter(label for members in labels.values() for label in members)
    return [aid for aid, mine in labels.items() if any(sizes[label] >= 2 for label in mine)]


def evaluate_rankings(
    method: str,
    rankings: Mapping[str, Sequence[str]],
    labels: Labels,
    *,
    groups: Mapping[str, str | None] | None = None,
    k: int = 10,
) -> EvaluationResult:
    """Score ``rankings`` (query id -> ranked result ids): relevant = shares a label."""
    members: dict[str, set[str]] = {}
    for aid, mine in labels.items():
        for label in mine:
            members.setdefault(label, set()).add(aid)
    totals: dict[str, float] = dict.fromkeys(("p1", "p5", "map", "ndcg", "hard"), 0.0)
    queries = [q for q in eligible_queries(labels) if q in rankings]
    for query in queries:
        mine = labels[query]
        ranked = [r for r in rankings[query] if r != query]
        hits = [bool(mine & labels.get(r, frozenset())) for r in ranked]
        relevant = len(set().union(*(members[label] for label in mine))) - 1
        totals["p1"] += float(bool(hits[:1] and hits[0]))
        totals["p5"] += sum(hits[:5]) / 5
        totals["map"] += average_precision(hits[:10], relevant)
        totals["ndcg"] += ndcg(hits[:10], relevant)
        if groups is not None:
            totals["hard"] += _hard_negative_share(query, ranked[:5], hits[:5], groups)
    n = max(len(queries), 1)
    return EvaluationResult(
        method=method,
        queries=len(queries),
        k=k,
        p_at_1=totals["p1"] / n,
        p_at_5=totals["p5"] / n,
        map_at_10=totals["map"] / n,
        ndcg_at_10=totals["ndcg"] / n,
        hard_negative_rate_at_5=totals["hard"] / n if groups is not None else None,
    )


def average_precision(hits: Sequence[bool], relevant: int) -> float:
    """AP over the given (already truncated) list, normalised by min(relevant, len cut-off)."""
    if relevant <= 0:
        return 0.0
    found, total = 0, 0.0
    for rank, hit in enumerate(hits, start=1):
        if hit:
            found += 1
            total += found / rank
    return total / min(relevant, 10)


def ndcg(hits: Sequence[bool], relevant: int) -> float:
    """Binary-gain nDCG of the given (already truncated) list."""
    dcg = sum(1 / math.log2(rank + 1) for rank, hit in enumerate(hits, start=1) if hit)
    ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(relevant, 10) + 1))
    return dcg / ideal if ideal else 0.0


def _hard_negative_share(
    query: str,
    top: Sequence[str],
    hits: Sequence[bool],
    groups: Mapping[str, str | None],
) -> float:
    group = groups.get(query)
    if not top or group is None:
        return 0.0
    hard = sum(groups.get(r) == group and not hit for r, hit in zip(top, hits, strict=True))
    return hard / len(top)


def evaluate_index(
    rec: Recommender,
    *,
    label_field: str,
    group_field: str | None = None,
    k: int = 10,
    compare: Sequence[str] = (),
    ranking: RankingConfig | None = None,
    progress: bool = False,
) -> list[EvaluationResult]:
    """Leave-one-out evaluation of the index's ranking, then of each baseline in ``compare``.

    ``tfidf`` is scikit-learn TF-IDF (sublinear tf, English stop words, min_df 2)
    over title+body by cosine, the classic More-Like-This;
    ``dense`` is title+body through the default model, cut at its window, by cosine.
    """
    from recommender.errors import InvalidArgumentError

    unknown = [name for name in compare if name not in BASELINES]
    if unknown:
        raise InvalidArgumentError(
            f"unknown baseline {unknown[0]!r}; expected one of {list(BASELINES)}"
        )
    labels = label_sets(rec.field_values(label_field))
    queries = eligible_queries(labels)
    if not queries:
        raise InvalidArgumentError(
            f"no article shares a value of {label_field!r} with another; nothing to evaluate"
        )
    groups = rec.field_values(group_field) if group_field else None
    config = ranking or rec.ranking
    runs = [("recommender", config)]
    results = []
    for name, run_config in runs:
        # Relevance of the ranking alone: editorial rules would hide neighbours on purpose.
        lists = rec.related_all(
            k=k, ids=queries, ranking=run_config, progress=progress, rules=False
        )
        rankings = {aid: [m.id for m in matches] for aid, matches in lists}
        results.append(evaluate_rankings(name, rankings, labels, groups=groups, k=k))
    if "tfidf" in compare:
        rankings = _plain_tfidf_rankings(rec, queries, k)
        results.append(evaluate_rankings("tfidf", rankings, labels, groups=groups, k=k))
    if "dense" in compare:
        rankings = _plain_dense_rankings(rec, queries, k)
        results.append(evaluate_rankings("dense", rankings, labels, groups=groups, k=k))
    return results


def _plain_tfidf_rankings(rec: Recommender, queries: Sequence[str], k: int) -> dict[str, list[str]]:
    """The classic More-Like-This: scikit-learn TF-IDF of title+body, exact cosine top-k."""
    ids = list(rec.field_values("title"))
    matrix = _tfidf(rec, ids)
    return _top_k(ids, queries, k, lambda rows: (matrix[rows] @ matrix.T).toarray())


def _top_k(ids: list[str], queries: Sequence[str], k: int, scores_of: Any) -> dict[str, list[str]]:
    position = {aid: i for i, aid in enumerate(ids)}
    out: dict[str, list[str]] = {}
    for start in range(0, len(queries), 512):
        chunk = queries[start : start + 512]
        rows = np.array([position[q] for q in chunk])
        scores = np.asarray(scores_of(rows), dtype=np.float64)
        scores[np.arange(len(chunk)), rows] = -np.inf
        top = np.argsort(-scores, axis=1)[:, :k]
        out.update({q: [ids[j] for j in top[n]] for n, q in enumerate(chunk)})
    return out


def _plain_dense_rankings(rec: Recommender, queries: Sequence[str], k: int) -> dict[str, list[str]]:
    """The textbook recipe: embed title+body with the default model, exact cosine top-k."""
    from recommender.embedding.encoders import ArticleEmbedder, SentenceTransformerEncoder

    ids = list(rec.field_values("title"))
    articles = [rec.get(aid) for aid in ids]
    embedder = ArticleEmbedder(SentenceTransformerEncoder(), passage_words=10**9, max_passages=1)
    vectors = embedder.embed_articles(articles)
    return _top_k(ids, queries, k, lambda rows: vectors[rows] @ vectors.T)


@dataclass(frozen=True)
class StoryScore:
    """B-cubed precision, recall and F1 of one grouping of the archive into stories."""

    method: str
    articles: int
    stories: int
    precision: float
    recall: float
    f1: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The single-link TF-IDF baseline's one fixed cosine (the issue's reference recipe).
TFIDF_LINK = 0.5


def evaluate_stories(rec: Recommender, *, label_field: str) -> list[StoryScore]:
    """The index's stories against ``label_field`` (same label = same story), with two
    baselines in the same run: every article its own story, and single-link over TF-IDF
    cosine at :data:`TFIDF_LINK`. Articles without a label count as their own story."""
    from recommender.stories.grouping import bcubed

    values = rec.field_values(label_field)
    if not any(v is not None for v in values.values()):
        from recommender.errors import InvalidArgumentError

        raise InvalidArgumentError(f"no article has a value of {label_field!r}", field="label")
    labels = {a: v if v is not None else f"\0{a}" for a, v in values.items()}
    found = {article.id: story.id for story in rec.stories() for article in story.articles}
    runs = [
        ("recommender", found),
        ("singletons", {a: a for a in labels}),
        (f"tfidf-single-link@{TFIDF_LINK}", _tfidf_single_link(rec, list(labels))),
    ]
    scores = []
    for name, grouping in runs:
        precision, recall, f1 = bcubed(grouping, labels)
        count = len(set(grouping.values()))
        scores.append(StoryScore(name, len(grouping), count, precision, recall, f1))
    return scores


def _tfidf_single_link(rec: Recommender, ids: list[str]) -> dict[str, str]:
    """Connected components of the TF-IDF cosine graph cut at :data:`TFIDF_LINK`."""
    from scipy.sparse.csgraph import connected_components

    matrix = _tfidf(rec, ids)
    linked = (matrix @ matrix.T) >= TFIDF_LINK
    _, component = connected_components(linked, directed=False)
    return {aid: f"c{component[i]}" for i, aid in enumerate(ids)}


def _tfidf(rec: Recommender, ids: list[str]) -> Any:
    """The baselines' TF-IDF rows of ``ids`` (title+body; sublinear tf, English stop words,
    min_df 2), L2-normalised: a row product is a cosine."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [f"{a.title}\n{a.body}" for a in map(rec.get, ids)]
    return TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=2).fit_transform(texts)
