"""Metrics against hand-computed values, and the evaluate entry points."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from recommender import InvalidArgumentError, Recommender
from recommender.cli import main
from recommender.encoders import HashingEncoder
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
