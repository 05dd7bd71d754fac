"""Metrics against hand-computed values, and the evaluate entry points."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from recommender import InvalidArgumentError, Recommender
from recommender.cli import main
from recommender.embedding.encoders import HashingEncoder
from recommender.evaluation import (
    average_precision,
    eligible_queries,
    evaluate_index,
    evaluate_rankings,
    label_sets,
    ndcg,
)

from .conftest import article


def test_average_precision_normalised_by_min_r_10() -> None:
    assert average_precision([True, False, True], 2) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([False] * 10, 3) == 0.0
    # 15 relevant, all of the top 10 found: perfect at 10.
    assert average_precision([True] * 10, 15) == pytest.approx(1.0)


def test_ndcg_binary_gains() -> None:
    assert ndcg([True, True], 2) == pytest.approx(1.0)
    expected = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert ndcg([False, True], 2) == pytest.approx(expected)


def test_label_sets_and_eligibility() -> None:
    labels = label_sets({"a": "x", "b": "x", "c": "y", "d": None, "e": '["y", "z"]'})
    assert labels["e"] == frozenset({"y", "z"})
    assert eligible_queries(labels) == ["a", "b", "c", "e"]  # d has no label


def test_evaluate_rankings_by_hand() -> None:
    labels = label_sets({"a": "s1", "b": "s1", "c": "s1", "d": "s2", "e": "s2", "f": None})
    groups = {"a": "t", "b": "t", "c": "t", "d": "t", "e": "u", "f": "t"}
    rankings = {
        "a": ["b", "d", "c", "f", "e"],  # hits at 1 and 3; d and f are hard negatives
        "b": ["a", "c", "d", "e", "f"],
        "c": ["a", "b", "d", "e", "f"],
        "d": ["e", "a", "b", "c", "f"],
        "e": ["a", "d", "b", "c", "f"],
    }
    result = evaluate_rankings("m", rankings, labels, groups=groups)
    assert result.queries == 5
    assert result.p_at_1 == pytest.approx(4 / 5)
    assert result.p_at_5 == pytest.approx((2 + 2 + 2 + 1 + 1) / 5 / 5)
    aps = [(1 + 2 / 3) / 2, 1.0, 1.0, 1.0, 0.5]
    assert result.map_at_10 == pytest.approx(sum(aps) / 5)
    hard = [2 / 5, 2 / 5, 2 / 5, 4 / 5, 0.0]  # same group "t", other (or no) story
    assert result.hard_negative_rate_at_5 == pytest.approx(sum(hard) / 5)


def test_multi_label_relevance_is_any_shared_label() -> None:
    labels = label_sets({"a": '["x", "y"]', "b": '["y"]', "c": '["z"]', "d": '["z", "x"]'})
    result = evaluate_rankings("m", {"a": ["c", "b", "d"]}, labels)
    assert result.queries == 1
    assert result.p_at_1 == 0.0
    assert result.map_at_10 == pytest.approx((1 / 2 + 2 / 3) / 2)


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    stories = {
        "port": "valdora port dockworkers strike cranes union harbor wages",
        "quake": "earthquake rubble rescue aftershock magnitude tremor province",
        "vote": "council budget vote mayor taxes library deficit ordinance",
    }
    items = []
    for story, words in stories.items():
        for n in range(3):
            a = article(f"{story}-{n}", f"{words} {n} day {story}{n}")
            items.append({**a.to_dict(), "metadata": {"story": story, "desk": "news"}})
    items.append({"id": "lonely", "body": "a filler article about cakes", "story": "solo"})
    path = tmp_path / "idx"
    Recommender.build(items, path, encoder=HashingEncoder(256)).close()
    return path


def test_evaluate_index_and_baselines(labelled: Path) -> None:
    with Recommender.open(labelled) as rec:
        results = evaluate_index(rec, label_field="story", group_field="desk", compare=["tfidf"])
    assert [r.method for r in results] == ["recommender", "tfidf"]
    ours = results[0]
    assert ours.queries == 9  # "lonely" is the only one of its story: not a query
    assert ours.p_at_1 == 1.0 and ours.map_at_10 == pytest.approx(1.0)


#: A tiny labelled corpus on which plain TF-IDF errs: quake-3 is about the port, budget-3
#: about a strike over wages. id -> (story, desk, title, body). Every body ends with
#: SIGN_OFF, so that every pair shares a term and no two scores of a query tie.
SIGN_OFF = " Reported by the Courier news desk."
CONFUSABLE = {
    "port-1": (
        "port",
        "news",
        "Dockworkers strike at Valdora port",
        "Wage talks stall as dockworkers strike and cranes stand idle at the port.",
    ),
    "port-2": (
        "port",
        "news",
        "Valdora dockworkers reject wage offer",
        "The union says the strike at the port goes on until wages rise.",
    ),
    "port-3": (
        "port",
        "news",
        "Harbour cranes idle for a third day",
        "Union leaders and the shipping firms meet again; no talks date is set.",
    ),
    "quake-1": (
        "quake",
        "news",
        "Earthquake hits Ardesh province",
        "Rescue teams search the rubble after the earthquake.",
    ),
    "quake-2": (
        "quake",
        "news",
        "Survivors pulled from Ardesh rubble",
        "Rescue teams work through the night after the earthquake in the province.",
    ),
    "quake-3": (
        "quake",
        "news",
        "Aftershock closes Valdora port",
        "The port and its cranes are shut after an aftershock shook the province.",
    ),
    "budget-1": (
        "budget",
        "city",
        "Council passes budget after library vote",
        "The council vote restores library funding in the budget.",
    ),
    "budget-2": (
        "budget",
        "city",
        "Mayor signs council budget",
        "Library funding is restored; the mayor praises the council vote.",
    ),
    "budget-3": (
        "budget",
        "city",
        "Teachers threaten strike over budget",
        "Union says teachers will strike if the wage freeze in the budget stays.",
    ),
    "cake": (None, None, "Lemon cake", "A recipe with flour, sugar and lemons."),
}


def _expected_tfidf_metrics() -> dict[str, float]:
    """The documented baseline, computed here: scikit-learn TF-IDF of title+body (sublinear
    tf, English stop words, min_df 2), cosine, each query's other articles best first."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    ids = list(CONFUSABLE)
    texts = [f"{title}\n{body}{SIGN_OFF}" for _, _, title, body in CONFUSABLE.values()]
    tfidf = TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=2)
    cosines = cosine_similarity(tfidf.fit_transform(texts))
    totals = dict.fromkeys(("p_at_1", "p_at_5", "map_at_10", "ndcg_at_10", "hard"), 0.0)
    queries = [q for q in ids if CONFUSABLE[q][0] is not None]
    for q in queries:
        story, desk, _, _ = CONFUSABLE[q]
        row = cosines[ids.index(q)]
        others = [j for j, aid in enumerate(ids) if aid != q]
        relevant = {j for j in others if CONFUSABLE[ids[j]][0] == story}
        # No two scores tie: the metrics do not depend on how ties are ordered.
        assert len({round(row[j], 9) for j in others}) == len(others)
        ranked = sorted(others, key=lambda j: -row[j])[:10]
        hits = [j in relevant for j in ranked]
        found = [n for n, hit in enumerate(hits, start=1) if hit]
        totals["p_at_1"] += hits[0]
        totals["p_at_5"] += sum(hits[:5]) / 5
        totals["map_at_10"] += sum(i / n for i, n in enumerate(found, start=1)) / min(
            len(relevant), 10
        )
        ideal = sum(1 / math.log2(n + 1) for n in range(1, min(len(relevant), 10) + 1))
        totals["ndcg_at_10"] += sum(1 / math.log2(n + 1) for n in found) / ideal
        top5 = [CONFUSABLE[ids[j]] for j in ranked[:5]]
        totals["hard"] += sum(d == desk and s != story for s, d, _, _ in top5) / len(top5)
    return {name: total / len(queries) for name, total in totals.items()}


def test_the_tfidf_baseline_scores_the_documented_recipe(tmp_path: Path) -> None:
    items = [
        {"id": aid, "title": title, "body": body + SIGN_OFF, "story": story, "desk": desk}
        for aid, (story, desk, title, body) in CONFUSABLE.items()
    ]
    path = tmp_path / "idx"
    Recommender.build(items, path, encoder=HashingEncoder(256)).close()
    with Recommender.open(path) as rec:
        results = evaluate_index(rec, label_field="story", group_field="desk", compare=["tfidf"])
    tfidf = results[1]
    assert tfidf.method == "tfidf" and tfidf.queries == 9
    want = _expected_tfidf_metrics()
    # By hand: quake-3 and budget-3 miss at 1; the relevant ranks of the nine queries are
    # (1, 3), (1, 5), (1, 4), (1, 3), (1, 3), (5, 6), (1, 2), (1, 3), (4, 5).
    assert tfidf.p_at_1 == pytest.approx(7 / 9)
    assert tfidf.map_at_10 == pytest.approx(
        (4 * (1 + 2 / 3) + (1 + 2 / 5) + (1 + 2 / 4) + (1 / 5 + 2 / 6) + 2 + (1 / 4 + 2 / 5))
        / 2
        / 9
    )
    assert tfidf.p_at_1 == pytest.approx(want["p_at_1"])
    assert tfidf.p_at_5 == pytest.approx(want["p_at_5"])
    assert tfidf.map_at_10 == pytest.approx(want["map_at_10"])
    assert tfidf.ndcg_at_10 == pytest.approx(want["ndcg_at_10"])
    assert tfidf.hard_negative_rate_at_5 == pytest.approx(want["hard"])
    assert want["map_at_10"] < 0.95 and want["hard"] > 0  # the corpus tells rankings apart


def test_evaluate_errors_name_the_value(labelled: Path) -> None:
    with Recommender.open(labelled) as rec:
        with pytest.raises(InvalidArgumentError, match="bm25"):
            evaluate_index(rec, label_field="story", compare=["bm25"])
        with pytest.raises(InvalidArgumentError, match="nosuchfield"):
            evaluate_index(rec, label_field="nosuchfield")


def test_evaluate_cli(labelled: Path) -> None:
    runner = CliRunner()
    args = ["evaluate", "--index", str(labelled), "--label-field", "story", "-q"]
    table = runner.invoke(main, args)
    assert table.exit_code == 0, table.output
    assert table.output.splitlines()[0].split()[:6] == [
        "method",
        "queries",
        "P@1",
        "P@5",
        "MAP@10",
        "nDCG@10",
    ]
    as_json = runner.invoke(main, [*args, "--json", "--group-field", "desk"])
    data = __import__("json").loads(as_json.output)
    assert data[0]["method"] == "recommender" and data[0]["hard_negative_rate_at_5"] is not None
