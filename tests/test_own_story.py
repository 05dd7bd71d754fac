"""Related lists rank the query article's own story first (ranking/own_story.py)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from recommender import Article, Recommender
from recommender.embedding.encoders import HashingEncoder
from recommender.ranking.own_story import STORY_DEPTH, OwnStory
from recommender.ranking.scoring import Candidates, PoolBounds, RankingConfig

from .conftest import article, built_index

ENCODER = HashingEncoder(256)
K = 10


def _beat() -> list[Article]:
    """A narrow beat: 30 stories of 3 whose few own words are drowned in the beat's common
    ones, so that the score alone often ranks another story's article above one's own."""
    rng = np.random.default_rng(11)
    words = [f"w{i}" for i in range(2_000)]
    items = []
    for story in range(30):
        own = list(rng.choice(words[200:], 2, replace=False))
        start = np.datetime64("2024-01-01") + np.timedelta64(int(rng.integers(0, 600)), "D")
        for n in range(3):
            body = " ".join([*own, *rng.choice(words[:60], 16, replace=False)])
            day = start + np.timedelta64(int(rng.integers(0, 3)), "D")
            items.append(article(f"s{story}-{n}", body, published=f"{day}T08:00:00Z"))
    return items


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_index(tmp_path_factory, "own-story", _beat())


@pytest.fixture
def rec(built: Path, tmp_path: Path) -> Recommender:
    shutil.copytree(built, tmp_path / "idx")
    return Recommender.open(tmp_path / "idx", encoder=ENCODER)


def test_the_own_story_comes_first_among_the_top_30(rec: Recommender) -> None:
    by_score = rec.ranking.with_options(story_first=False)
    story = {a.id: s.id for s in rec.stories() for a in s.articles}
    moved = 0
    for article_id in story:
        plain = rec.related(article_id, k=STORY_DEPTH, ranking=by_score)
        own = [m for m in plain if story[m.id] == story[article_id]]
        expected = (own + [m for m in plain if m not in own])[:K]
        got = rec.related(article_id, k=K)
        assert got == expected  # same items, same scores, the own story's first
        moved += [m.id for m in got] != [m.id for m in plain[:K]]
    assert moved >= 5, moved  # the beat is narrow enough for the order to change


def test_text_queries_and_diversity_rank_by_score(rec: Recommender) -> None:
    source = rec.get("s3-0")
    plain = rec.ranking.with_options(story_first=False)
    assert rec.similar(text=source.body) == rec.similar(text=source.body, ranking=plain)
    mmr = rec.ranking.with_options(diversity=0.3)
    assert rec.related("s3-0", ranking=mmr) == rec.related(
        "s3-0", ranking=mmr.with_options(story_first=False)
    )


def test_stored_lists_follow_the_stories_through_writes(rec: Recommender) -> None:
    rec.store_lists(k=K)
    source = rec.get("s4-0")
    assert source.published_at is not None
    later = (source.published_at + timedelta(days=1)).isoformat()
    steps = [
        lambda: rec.upsert([article("s4-new", source.body + " w5 w6", published=later)]),
        lambda: rec.remove(["s4-1"]),
        # A date moved a year away (metadata only): the article leaves its story's window.
        lambda: rec.upsert([_dated(rec.get("s7-2"), days=400)]),
        lambda: rec.upsert([_dated(rec.get("s7-2"), days=-400)]),
    ]
    for step in steps:
        step()
        status = rec.stored_lists_status()
        assert status is not None and status.usable
        stored = {a: rec.related(a, k=K, fresh=False) for a in _ids(rec)}
        assert stored == {a: rec.related(a, k=K) for a in _ids(rec)}


def test_a_weak_follow_up_changes_its_story_s_stored_lists(rec: Recommender) -> None:
    """A follow-up sharing one word of its story joins it (same day) while scoring under
    the articles its story's lists show: those lists change through the story alone."""
    rec.store_lists(k=K)
    joined = 0
    for story in range(13):
        source = rec.get(f"s{story}-0")
        assert source.published_at is not None
        words = source.body.split()
        new = f"s{story}-new"
        body = " ".join([words[0], *words[2:14]])
        rec.upsert([article(new, body, published=source.published_at.isoformat())])
        joined += rec.story(new).id == rec.story(source.id).id
        for member in (f"s{story}-{n}" for n in range(3)):
            assert rec.related(member, k=K, fresh=False) == rec.related(member, k=K)
    assert joined >= 10, joined


def test_lists_stored_before_the_own_story_came_first_are_stale(rec: Recommender) -> None:
    rec.store_lists(k=K)
    catalog = rec._index.state.catalog
    info = catalog.lists_info()
    assert info is not None
    old = {key: value for key, value in info.ranking.items() if key != "story_first"}
    conn = catalog._conn()
    row = json.loads(conn.execute("SELECT value FROM meta WHERE key = 'lists'").fetchone()[0])
    row["ranking"] = old
    with conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'lists'", (json.dumps(row),))
    status = rec.stored_lists_status()
    assert status is not None and not status.usable and "own story" in (status.stale or "")


def test_regrouping_makes_lists_that_read_the_stories_stale(rec: Recommender) -> None:
    rec.store_lists(k=K, ranking=rec.ranking.with_options(story_first=False))
    rec.regroup_stories()
    status = rec.stored_lists_status()
    assert status is not None and status.usable  # these lists rank by score alone
    rec.store_lists(k=K)
    rec.regroup_stories()
    status = rec.stored_lists_status()
    assert status is not None and not status.usable and "stories" in (status.stale or "")


def _dated(source: Article, *, days: int) -> Article:
    assert source.published_at is not None
    return Article(**{**source.__dict__, "published_at": source.published_at + timedelta(days)})


def _ids(rec: Recommender) -> list[str]:
    return sorted(a for _, a in rec._index.state.catalog.all_ids())


def test_the_cli_ranks_by_score_on_request_and_info_says_how(rec: Recommender) -> None:
    from click.testing import CliRunner

    from recommender.cli import main

    index = str(rec._layout.root)
    runner = CliRunner()
    plain = rec.ranking.with_options(story_first=False)
    # An article whose list the own story changes, so that the flag is seen to matter.
    article_id = next(a for a in _ids(rec) if rec.related(a) != rec.related(a, ranking=plain))
    for flags, config in (([], None), (["--by-score"], plain)):
        result = runner.invoke(main, ["related", article_id, "--index", index, "--json", *flags])
        assert result.exit_code == 0, result.output
        expected = [m.id for m in rec.related(article_id, ranking=config)]
        assert [m["id"] for m in json.loads(result.output)] == expected
    result = runner.invoke(main, ["info", "--index", index])
    assert "own story first in related lists" in result.output
    result = runner.invoke(main, ["info", "--index", index, "--json"])
    stories = json.loads(result.output)["stories"]
    assert stories["articles"] == 90 and stories["pending"] == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stored_lists_stay_exact_under_random_writes(rec: Recommender, seed: int) -> None:
    """Random follow-ups, weak follow-ups, edits, date moves and removals on a narrow beat,
    the stored lists (k=5: the own story often fills or splits them) checked after each."""
    rng = np.random.default_rng(seed)
    rec.store_lists(k=5)
    for step in range(12):
        ids = _ids(rec)
        source = rec.get(ids[int(rng.integers(len(ids)))])
        assert source.published_at is not None
        words = source.body.split()
        kind = int(rng.integers(5))
        if kind == 0:  # a follow-up a day later
            when = (source.published_at + timedelta(days=1)).isoformat()
            rec.upsert([article(f"new-{seed}-{step}", source.body + " w7", published=when)])
        elif kind == 1:  # a weak follow-up: one of the story's words
            when = source.published_at.isoformat()
            body = " ".join([words[0], *rng.choice(words[2:], 8, replace=False)])
            rec.upsert([article(f"weak-{seed}-{step}", body, published=when)])
        elif kind == 2:  # an edit: re-embedded
            rec.upsert([Article(**{**source.__dict__, "body": " ".join(words[::-1][:12])})])
        elif kind == 3:  # a date moved
            rec.upsert([_dated(source, days=int(rng.choice([-300, -2, 3, 400])))])
        else:
            rec.remove([source.id])
        status = rec.stored_lists_status()
        assert status is not None and status.usable, (step, kind)
        for article_id in _ids(rec):
            assert rec.related(article_id, k=5, fresh=False) == rec.related(article_id, k=5), (
                step,
                kind,
                article_id,
            )


class _Stories:
    """A catalog's stored stories, for OwnStory alone."""

    def __init__(self, stories: dict[int, str]) -> None:
        self._stories = stories

    def story_of(self, int_ids: Iterable[int]) -> dict[int, str]:
        return {i: self._stories[i] for i in int_ids if i in self._stories}

    def story_members(self, stories: Iterable[str]) -> dict[str, list[int]]:
        wanted = set(stories)
        out: dict[str, list[int]] = {}
        for i, story in self._stories.items():
            if story in wanted:
                out.setdefault(story, []).append(i)
        return out


def _bounds(stories: dict[int, str]) -> tuple[list[tuple[int, float]], PoolBounds]:
    """Query 0's list (k=10) from a pool of 40 ranked 1..40, its own story ``stories``."""
    ids = np.arange(1, 41, dtype=np.int64)
    dense = (1.0 - ids / 100).astype(np.float32)
    pool = Candidates(
        ids=ids,
        dense=dense,
        lexical=np.zeros(40, dtype=np.float32),
        vectors=None,
        published=np.full(40, np.nan),
        dense_side=np.ones(40, dtype=bool),
        search=np.full(40, np.nan),
        dense_top=np.sort(dense)[::-1],
        query_stats=np.zeros(4),
    )
    window = [(int(i), 10.0 - float(i) / 10) for i in ids[:STORY_DEPTH]]
    own = OwnStory(_Stories(stories), [0], 10)
    shown = own.first([window])[0]
    return shown, own.bounds(0, pool, window, shown, RankingConfig())


def test_a_list_s_bounds_are_those_of_what_it_shows() -> None:
    # No story: the 10th item's score, the rooms of the 10 shown.
    shown, plain = _bounds({})
    assert [i for i, _ in shown] == list(range(1, 11)) and plain.hits_floor == shown[-1][1]
    assert plain.dense_room == 101 - 10
    # Its story's 5th and 20th moved first: the floor is the last shown of another story;
    # one newcomer above the 20th pushes nothing out of the 30 (10 places under it): room 5.
    shown, first = _bounds({0: "s", 5: "s", 20: "s"})
    assert [i for i, _ in shown] == [5, 20, 1, 2, 3, 4, 6, 7, 8, 9]
    assert first.hits_floor == dict(shown)[9] and first.dense_room == 10 // 2
    # Its story has an article under the 30 and none in it: the 30's rooms, which count
    # the newcomers that could let that article in.
    shown, under = _bounds({0: "s", 35: "s"})
    assert [i for i, _ in shown] == list(range(1, 11)) and under.hits_floor == shown[-1][1]
    assert under.dense_room == 101 - STORY_DEPTH


def test_story_first_must_be_a_boolean(rec: Recommender) -> None:
    from recommender.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="story_first must be true or false, got 'yes'"):
        rec.set_bucket("plain", {"story_first": "yes"})
    rec.set_bucket("plain", {"story_first": False})
    assert rec.buckets["plain"].story_first is False
    assert rec.related("s3-0", bucket="plain") == rec.related(
        "s3-0", ranking=rec.ranking.with_options(story_first=False)
    )


def test_only_a_moved_date_recomputes_every_pool_holding_the_article(rec: Recommender) -> None:
    """A section change cannot move a score; a date can (the time prior), and with the own
    story first that can let the story in from below the 30: every pool holding it then."""
    rec.store_lists(k=K)
    source = rec.get("s9-1")
    rec.upsert([Article(**{**source.__dict__, "section": "coast"})])
    section_move = rec.refreshed_lists
    rec.upsert([_dated(rec.get("s9-1"), days=200)])
    date_move = rec.refreshed_lists
    assert section_move < date_move, (section_move, date_move)
    for article_id in _ids(rec):
        assert rec.related(article_id, k=K, fresh=False) == rec.related(article_id, k=K)
