"""Stored related lists: refreshed by writes exactly where they change, read without ranking.

Stored lists must equal a full recompute (``related_all``) after any series of writes:
same ids in the same order, same scores.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from recommender import Article, InvalidArgumentError, Recommender
from recommender.cli import main
from recommender.embedding.encoders import HashingEncoder
from recommender.ingest.demo import demo_articles
from recommender.ranking.rules import Rules
from recommender.ranking.scoring import RankingConfig
from recommender.serving.app import create_app

K = 5
#: Small pools, so that most lists are out of a write's reach (the default 200 candidates
#: exceed the demo corpus: every pool holds every article, and every write reaches every list).
SMALL = RankingConfig(candidates=10)


def _open_demo(path: Path, ranking: RankingConfig | None = None) -> Recommender:
    articles = demo_articles()
    # Hold some back to add later: they join existing stories' lists.
    Recommender.build(articles[:70], path, encoder=HashingEncoder(256), ranking=ranking).close()
    rec = Recommender.open(path, encoder=HashingEncoder(256))
    rec.later = articles[70:]  # type: ignore[attr-defined]
    return rec


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Recommender]:
    with _open_demo(tmp_path / "demo") as rec:
        yield rec


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Recommender]:
    with _open_demo(tmp_path / "small", SMALL) as rec:
        yield rec


def _names(rec: Recommender) -> dict[int, str]:
    return dict(rec._index.state.catalog.all_ids())


def _stored(rec: Recommender) -> dict[str, list[tuple[str, float]]]:
    """Every stored list: its related (id, score) pairs, in order."""
    names = _names(rec)
    return {
        names[owner]: [(names[i], s) for i, s in hits]
        for owner, hits in rec._index.state.catalog.stored_lists().items()
    }


def _recomputed(rec: Recommender, k: int = K) -> dict[str, list[tuple[str, float]]]:
    return {aid: [(m.id, m.score) for m in ms] for aid, ms in rec.related_all(k=k)}


def _assert_equal_to_a_full_recompute(rec: Recommender) -> None:
    """Stored lists equal :meth:`related_all` now: the same owners, ids in order, and scores."""
    info = rec._index.state.catalog.lists_info()
    assert info is not None and info.stale is None
    stored, fresh = _stored(rec), _recomputed(rec, info.k)
    assert set(stored) == set(fresh)
    for owner, want in fresh.items():
        got = stored[owner]
        assert [i for i, _ in got] == [i for i, _ in want], owner
        assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-6), owner


def _copy(article: Article, new_id: str) -> Article:
    return Article(**{**article.__dict__, "id": new_id})


def _writes(rec: Recommender) -> Iterator[str]:
    """A newsroom's day: adds, duplicates, edits, a section move, removes, a checkpoint,
    a reopen. Yields after each step so that callers check the lists there."""
    later: list[Article] = rec.later  # type: ignore[attr-defined]
    rec.upsert(later[:6])
    yield "adds"
    # Two identical copies of a story: ties everywhere they go.
    rec.upsert([_copy(later[6], "copy-a"), _copy(later[6], "copy-b")])
    yield "duplicates"
    rec.remove(["demo-001", "demo-060", later[0].id])
    yield "removes"
    edited = rec.get("demo-021")
    rec.upsert([Article(**{**edited.__dict__, "body": edited.body + " Kalvar rebuilt."})])
    yield "body edit"
    moved = rec.get("demo-002")
    rec.upsert([Article(**{**moved.__dict__, "section": "world"})])  # metadata only
    yield "section move"
    rec.checkpoint()
    yield "checkpoint"
    rec.upsert(later[6:12])
    rec.remove(["demo-025", "copy-a"])
    yield "adds and removes"


def test_store_then_read_without_ranking(demo: Recommender) -> None:
    assert demo.store_lists(k=K) == 70
    _assert_equal_to_a_full_recompute(demo)
    fresh = demo.related("demo-001", k=K)
    assert demo.related("demo-001", k=K, fresh=False) == fresh
    assert demo.related("demo-001", k=3, fresh=False) == fresh[:3]
    stored = demo.stored_list("demo-001")
    assert stored is not None and stored.computed_at and stored.matches == fresh
    # A longer list than stored is computed fresh; filters cannot use stored lists.
    assert len(demo.related("demo-001", k=K + 3, fresh=False)) == K + 3
    with pytest.raises(InvalidArgumentError, match="fresh=False"):
        demo.related("demo-001", k=K, fresh=False, section="world")


@pytest.mark.parametrize(
    "ranking",
    [
        None,
        SMALL,
        # Raw scores: their time prior is scaled by the query's own spread (dated articles).
        RankingConfig(candidates=10, method="dense"),
        RankingConfig(candidates=10, fusion="sum"),
    ],
    ids=["default", "small-pools", "dense-side-dated", "raw-sum-dated"],
)
def test_writes_keep_stored_lists_equal_to_a_full_recompute(
    tmp_path: Path, ranking: RankingConfig | None
) -> None:
    """The acceptance test: after every write, stored == recomputed, ids and scores."""
    path = tmp_path / "demo"
    rec = _open_demo(path, ranking)
    later: list[Article] = rec.later  # type: ignore[attr-defined]
    rec.store_lists(k=K)
    _assert_equal_to_a_full_recompute(rec)
    for step in _writes(rec):
        try:
            _assert_equal_to_a_full_recompute(rec)
        except AssertionError as exc:
            raise AssertionError(f"after {step}: {exc}") from None
    rec.close()
    with Recommender.open(path, encoder=HashingEncoder(256)) as reopened:
        _assert_equal_to_a_full_recompute(reopened)
        reopened.remove(["demo-040"])  # the first write after opening: a remove
        _assert_equal_to_a_full_recompute(reopened)
        reopened.upsert(later[12:])
        _assert_equal_to_a_full_recompute(reopened)
        assert {"demo-001", "demo-025", "demo-040", "copy-a"}.isdisjoint(
            {i for hits in _stored(reopened).values() for i, _ in hits}
        )


def test_editorial_rules_stay_exact(small: Recommender) -> None:
    """A pin to an article added later, and backfill from the latest of a section."""
    later: list[Article] = small.later  # type: ignore[attr-defined]
    pinned = later[3].id
    rules = {
        "version": 1,
        "pinned": {"demo-010": [pinned, "demo-050"]},
        "min_score": {"score": 1.5, "min_items": 3, "fallback": "backfill"},
    }
    small.set_rules(Rules.from_dict(rules))
    small.store_lists(k=K)
    _assert_equal_to_a_full_recompute(small)
    assert [m.id for m in small.related("demo-010", k=K, fresh=False)][:1] == ["demo-050"]
    small.upsert(later[:4])  # the pinned one arrives
    _assert_equal_to_a_full_recompute(small)
    assert [m.id for m in small.related("demo-010", k=K, fresh=False)][:2] == [
        pinned,
        "demo-050",
    ]
    backfilled = {
        owner
        for owner, hits in _stored(small).items()
        if owner != "demo-010" and any(s == 0.0 for _, s in hits)
    }
    assert backfilled, "the rules should backfill some lists"
    newest = max(
        (small.get(i) for i in small._index.state.catalog.int_ids(backfilled)),
        key=lambda a: a.published_at or datetime.min.replace(tzinfo=timezone.utc),
    )
    # A new latest article in a backfilled list's section goes into that list.
    fresh_one = Article(
        id="newest-in-section",
        title="Council notes",
        body="Minutes of a meeting about nothing else in this corpus.",
        published_at=datetime(2030, 1, 1, tzinfo=timezone.utc),
        section=newest.section,
    )
    for _step in _writes(small):
        _assert_equal_to_a_full_recompute(small)
    small.upsert([fresh_one])
    _assert_equal_to_a_full_recompute(small)
    small.remove([pinned, fresh_one.id])
    _assert_equal_to_a_full_recompute(small)


def test_writes_refresh_only_affected_lists(small: Recommender) -> None:
    small.store_lists(k=K)
    conn = small._index.state.catalog._lists_conn()
    counts = []
    for article in small.later[:8]:  # type: ignore[attr-defined]
        # computed_at has one-second resolution: tag every row to see which get rewritten.
        with conn:
            conn.execute("UPDATE related_lists SET computed_at = 'old'")
        small.upsert([article])
        rewritten = conn.execute("SELECT count(*) FROM related_lists WHERE computed_at != 'old'")
        counts.append(rewritten.fetchone()[0])
        assert counts[-1] == small.refreshed_lists
    # Its own list and the few lists it joins or pushes a listed item out of: a small
    # share of the 70-78 lists, though it enters the pools of about a third of them.
    assert all(c >= 1 for c in counts)
    assert sum(counts) / len(counts) < 70 / 5, counts
    _assert_equal_to_a_full_recompute(small)


def test_pinning_changes_no_list_at_the_moment_of_the_pin(
    demo: Recommender, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stored lists standardise with pinned statistics; at the pin they are the live ones."""
    from recommender.ranking import ranker as module

    # Matches show scores rounded to 6 decimals, which turns any difference into a step of
    # 1e-6 (or 2e-6): compare the scores as ranked.
    rounded = module._match
    monkeypatch.setattr(
        module, "_match", lambda row, score: replace(rounded(row, 0.0), score=score)
    )
    live = _recomputed(demo)
    demo.store_lists(k=K)
    pinned = _recomputed(demo)
    for owner, want in live.items():
        assert [i for i, _ in pinned[owner]] == [i for i, _ in want], owner
        # The query's own statistics were stored in float32 sums: the same to about 1e-6
        # (measured on the demo corpus: 7e-7 of the score at most, 1.3e-6 absolute).
        scores = [s for _, s in want]
        assert [s for _, s in pinned[owner]] == pytest.approx(scores, rel=1e-6, abs=1e-6)


def test_stored_lists_pin_the_lexical_statistics(small: Recommender) -> None:
    idf = small._index.state.lexical.idf().copy()
    small.upsert(small.later[:2])  # type: ignore[attr-defined]
    assert not np.array_equal(small._index.state.lexical.idf(), idf), "without lists IDF is live"
    small.store_lists(k=K)
    pinned = small._index.state.lexical.idf().copy()
    small.upsert(small.later[2:6])  # type: ignore[attr-defined]
    small.remove(["demo-003"])
    assert np.array_equal(small._index.state.lexical.idf(), pinned)
    for owner in ("demo-004", "demo-040", small.later[3].id):  # type: ignore[attr-defined]
        assert small.related(owner, k=K) == small.related(owner, k=K, fresh=False)
    small.checkpoint()
    assert np.array_equal(small._index.state.lexical.idf(), pinned)
    with Recommender.open(small._layout.root, encoder=HashingEncoder(256)) as reopened:
        assert np.array_equal(reopened._index.state.lexical.idf(), pinned)
        # The next store_lists pins the statistics of that moment.
        reopened.store_lists(k=K)
        assert not np.array_equal(reopened._index.state.lexical.idf(), pinned)
        _assert_equal_to_a_full_recompute(reopened)


def test_another_process_picks_up_the_pin(small: Recommender) -> None:
    with Recommender.open(small._layout.root, encoder=HashingEncoder(256)) as reader:
        reader.related("demo-001", k=K)
        small.store_lists(k=K)
        small.upsert(small.later[:3])  # type: ignore[attr-defined]
        assert reader.related("demo-001", k=K) == small.related("demo-001", k=K, fresh=False)
        pins = (reader._index.state.lexical.pinned, small._index.state.lexical.pinned)
        assert pins[0] is not None and pins[1] is not None and pins[0].token == pins[1].token


def test_ivf_checkpoint_marks_stored_lists_stale(tmp_path: Path) -> None:
    articles = demo_articles()
    path = tmp_path / "ivf"
    Recommender.build(
        articles[:70], path, encoder=HashingEncoder(256), index_type="ivf", ranking=SMALL
    ).close()
    with Recommender.open(path, encoder=HashingEncoder(256)) as rec:
        rec.store_lists(k=K)
        rec.upsert(articles[70:74])
        _assert_equal_to_a_full_recompute(rec)  # exact between checkpoints
        rec.checkpoint()
        status = rec.stored_lists_status()
        assert status is not None and not status.usable
        assert status.stale and "ivf" in status.stale and "--store-lists" in status.recompute
        assert rec.stored_list("demo-001") is None
        assert rec.related("demo-001", k=K, fresh=False) == rec.related("demo-001", k=K)
        assert rec.info().to_dict()["stored_lists"]["stale"]
        rec.store_lists(k=K)
        status = rec.stored_lists_status()
        assert status is not None and status.usable


def test_rules_change_makes_stored_lists_unusable(demo: Recommender) -> None:
    demo.store_lists(k=K)
    top = demo.related("demo-001", k=1)[0].id
    demo.set_rules(Rules.from_dict({"version": 1, "blocked_pairs": [["demo-001", top]]}))
    assert demo.stored_list("demo-001") is None
    assert top not in [m.id for m in demo.related("demo-001", k=K, fresh=False)]
    demo.store_lists(k=K)
    assert demo.stored_list("demo-001") is not None
    _assert_equal_to_a_full_recompute(demo)


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
    _assert_equal_to_a_full_recompute(demo)
    assert added.id in {i for hits in _stored(demo).values() for i, _ in hits}


def test_lists_stored_by_worker_processes_equal_one_process(
    small: Recommender, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers open the index and read the pin from it: the same lists and bounds."""
    import recommender.stored_lists.keeper as module

    small.store_lists(k=K)
    one = small._index.state.catalog.stored_lists(), small._index.state.catalog.list_bounds()
    monkeypatch.setattr(module, "_BATCH", 16)  # several batches for two workers
    small.store_lists(k=K, workers=2)
    two = small._index.state.catalog.stored_lists(), small._index.state.catalog.list_bounds()
    assert one[0] == two[0]
    assert np.array_equal(one[1][0], two[1][0]) and np.array_equal(one[1][1], two[1][1])
    _assert_equal_to_a_full_recompute(small)


def test_the_standing_of_a_stored_answer_is_reported_by_the_library(small: Recommender) -> None:
    """One library call says when a fresh=False answer was computed and why lists are stale;
    the service and the CLI only shape it."""
    small.store_lists(k=K)
    answer = small.related("demo-001", k=3, fresh=False)
    standing = small.stored_standing("demo-001", answer, k=3)
    stored = small.stored_list("demo-001")
    assert stored is not None and standing.computed_at == stored.computed_at
    assert standing.stale is None and standing.recompute is None

    small._index.state.catalog.mark_lists_stale("a test made them stale")
    answer = small.related("demo-001", k=3, fresh=False)  # computed fresh now
    standing = small.stored_standing("demo-001", answer, k=3)
    assert standing.computed_at is None
    assert standing.stale == "a test made them stale"
    assert standing.recompute == "recommender related --all --store-lists"
    with TestClient(create_app(small, token=None)) as client:
        body = client.get("/v1/articles/demo-001/related", params={"k": 3, "fresh": "false"})
        assert body.json()["computed_at"] is None
        assert body.json()["stale"] == (
            "a test made them stale; recompute with: recommender related --all --store-lists"
        )
    result = CliRunner().invoke(
        main, ["related", "demo-001", "--index", str(small._layout.root), "--stored", "-k", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "warning: the stored lists are stale (a test made them stale)" in result.output
