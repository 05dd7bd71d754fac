"""Stored related lists: refreshed by writes exactly where they change, read without ranking."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from recommender import Article, InvalidArgumentError, Recommender
from recommender.cli import main
from recommender.demo import demo_articles
from recommender.encoders import HashingEncoder
from recommender.rules import Rules
from recommender.service import create_app

K = 5


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Recommender]:
    path = tmp_path / "demo"
    articles = demo_articles()
    # Hold some back to add later: they join existing stories' lists.
    Recommender.build(articles[:70], path, encoder=HashingEncoder(256)).close()
    with Recommender.open(path, encoder=HashingEncoder(256)) as rec:
        rec.later = articles[70:]  # type: ignore[attr-defined]
        yield rec


def _stored(rec: Recommender) -> dict[str, list[str]]:
    """Every stored list: its related ids, in order.

    Scores are left out on purpose: a write moves global statistics (IDF, the
    article count, candidate pools) and so every score a little; a list that
    the write does not change keeps the scores of when it was computed.
    """
    catalog = rec._state.catalog
    names = {i: aid for i, aid in catalog.all_ids()}
    return {
        names[owner]: [names[i] for i, _ in hits] for owner, hits in catalog.stored_lists().items()
    }


def _recomputed(rec: Recommender) -> dict[str, list[str]]:
    return {aid: [m.id for m in ms] for aid, ms in rec.related_all(k=K)}


#: Scores closer than this are a tie that global statistics may break either way.
TIE = 0.1


def _assert_like_a_full_recompute(rec: Recommender, gone: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    """Stored lists equal a full recompute, position by position, except for near-ties.

    A write moves global statistics (the article count and document frequencies
    behind IDF, the candidate pools behind the per-query standardisation), so
    every score in every list shifts a little; lists the write does not touch
    keep their stored order, which a full recompute may flip between two items
    whose scores differ by a few hundredths. Anything else -- a removed article
    left in a list, an added one missing where it belongs, a real reordering --
    fails.
    """
    stored = _stored(rec)
    fresh = dict(rec.related_all(k=K + 5))
    assert set(stored) == set(fresh)
    for owner, ids in stored.items():
        assert not set(ids) & gone, owner
        scores = {m.id: m.score for m in fresh[owner]}
        expected = fresh[owner][:K]
        assert len(ids) == len(expected), owner
        for got, want in zip(ids, expected, strict=True):
            if got != want.id:
                assert got in scores and abs(scores[got] - want.score) <= TIE, (owner, ids)


def test_store_then_read_without_ranking(demo: Recommender) -> None:
    assert demo.store_lists(k=K) == 70
    assert _stored(demo) == _recomputed(demo)
    fresh = demo.related("demo-001", k=K)
    assert demo.related("demo-001", k=K, fresh=False) == fresh
    assert demo.related("demo-001", k=3, fresh=False) == fresh[:3]
    computed_at, matches = demo.stored_list("demo-001") or ("", [])
    assert computed_at and matches == fresh
    # A longer list than stored is computed fresh; filters cannot use stored lists.
    assert len(demo.related("demo-001", k=K + 3, fresh=False)) == K + 3
    with pytest.raises(InvalidArgumentError, match="fresh=False"):
        demo.related("demo-001", k=K, fresh=False, section="world")


def test_adds_and_removes_keep_stored_lists_equal_to_a_full_recompute(
    demo: Recommender,
) -> None:
    """The acceptance test: after a series of writes, stored == recomputed, list by list."""
    demo.store_lists(k=K)
    assert _stored(demo) == _recomputed(demo)  # exactly, before any write
    later: list[Article] = demo.later  # type: ignore[attr-defined]
    demo.upsert(later[:6])
    _assert_like_a_full_recompute(demo)
    gone = {"demo-001", "demo-060", later[0].id}
    demo.remove(sorted(gone))
    _assert_like_a_full_recompute(demo, gone)
    demo.upsert(later[6:12])
    edited = demo.get("demo-021")
    demo.upsert([Article(**{**edited.__dict__, "body": edited.body + " Kalvar rebuilt."})])
    moved = demo.get("demo-002")
    demo.upsert([Article(**{**moved.__dict__, "section": "world"})])  # metadata only
    demo.remove(["demo-025", "demo-030"])
    gone |= {"demo-025", "demo-030"}
    demo.upsert(later[12:])
    _assert_like_a_full_recompute(demo, gone)


def test_writes_refresh_only_affected_lists(demo: Recommender) -> None:
    demo.store_lists(k=K)
    conn = demo._state.catalog._lists_conn()
    # computed_at has one-second resolution: tag every row to see which get rewritten.
    with conn:
        conn.execute("UPDATE related_lists SET computed_at = 'old'")
    demo.upsert(demo.later[:1])  # type: ignore[attr-defined]
    rewritten = conn.execute("SELECT count(*) FROM related_lists WHERE computed_at != 'old'")
    count = rewritten.fetchone()[0]
    # Its own list, its 20 nearest neighbours' and those it enters; a new article is in no
    # stored list yet. The others are left as they were.
    assert 1 + 20 <= count < 71 / 2


def test_rules_change_makes_stored_lists_unusable(demo: Recommender) -> None:
    demo.store_lists(k=K)
    top = demo.related("demo-001", k=1)[0].id
    demo.set_rules(Rules.from_dict({"version": 1, "blocked_pairs": [["demo-001", top]]}))
    assert demo.stored_list("demo-001") is None
    assert top not in [m.id for m in demo.related("demo-001", k=K, fresh=False)]
    demo.store_lists(k=K)
    assert demo.stored_list("demo-001") is not None
    assert _stored(demo) == _recomputed(demo)


def test_cli_and_service(demo: Recommender) -> None:
    index = str(demo._layout.root)
    runner = CliRunner()
    result = runner.invoke(
        main, ["related", "--all", "--store-lists", "--index", index, "-k", str(K), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "stored 70 related lists" in result.output
    stored = runner.invoke(
        main, ["related", "demo-001", "--index", index, "-k", "3", "--stored", "--json"]
    )
    assert stored.exit_code == 0, stored.output
    assert [m["id"] for m in json.loads(stored.output)] == [
        m.id for m in demo.related("demo-001", k=3)
    ]
    with TestClient(create_app(demo, token=None)) as client:
        body = client.get("/v1/articles/demo-001/related", params={"k": 3, "fresh": "false"})
        assert body.status_code == 200
        assert body.json()["computed_at"]
        assert [m["id"] for m in body.json()["related"]] == [
            m["id"] for m in json.loads(stored.output)
        ]
        added = demo.later[0]  # type: ignore[attr-defined]
        put = client.put("/v1/articles", json=[added.to_dict()])
        assert put.status_code == 200
        assert client.delete("/v1/articles/demo-002").status_code == 200
    _assert_like_a_full_recompute(demo, {"demo-002"})
    assert added.id in {i for ids in _stored(demo).values() for i in ids}
