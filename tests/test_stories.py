"""Story threads: the archive grouped into stories, the thread of an article, the scores."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from recommender import Article, ArticleNotFoundError, Recommender
from recommender.cli import main
from recommender.embedding.encoders import HashingEncoder
from recommender.stories.grouping import bcubed, group

from .conftest import article, built_index, dated_stories


def test_bcubed_against_hand_counts() -> None:
    labels = {"a": "x", "b": "x", "c": "y", "d": "y"}
    assert bcubed({"a": "1", "b": "1", "c": "2", "d": "2"}, labels) == (1.0, 1.0, 1.0)
    p, r, f = bcubed({"a": "1", "b": "1", "c": "1", "d": "1"}, labels)
    assert (p, r) == (0.5, 1.0) and f == pytest.approx(2 / 3)
    assert bcubed({k: k for k in labels}, labels)[:2] == (1.0, 0.5)


def test_grouping_follows_the_model_of_the_pairs() -> None:
    """Pairs inside 40 stories score high and are days apart; pairs across score low and are
    months apart: the model puts the cut between them, and each story is one group."""
    rng = np.random.default_rng(2)
    ids = list(range(160))  # story i // 4
    days = {i: (i // 4) * 60.0 + float(rng.exponential(1.0)) for i in ids}
    pairs = {}
    for a in ids:
        for b in ids[a + 1 :]:
            same = a // 4 == b // 4
            if same or rng.random() < 0.05:
                pairs[(a, b)] = rng.normal(6.0, 1.0) if same else rng.normal(1.0, 1.0)
    found = group(ids, pairs, days)
    assert found.model is not None and 1.0 < found.model.cut < 6.0
    labels = {str(a): str(a // 4) for a in ids}
    assert bcubed({str(a): str(s) for a, s in found.story_of.items()}, labels)[2] > 0.95
    first = min(range(28, 32), key=lambda i: days[i])
    assert found.story_of[29] == first  # a story is named after its earliest article
    assert group(ids, pairs, days) == found  # deterministic


def test_a_story_never_spans_an_implausible_gap() -> None:
    """A late article on the same words as a story three years older scores as that story by
    content alone; the model's span (fitted on stories that last days) keeps it out."""
    rng = np.random.default_rng(3)
    ids = list(range(4_000))  # 1,000 stories of 4, a day apart
    days = {i: float(i // 4) + float(rng.exponential(0.5)) for i in ids}
    pairs = {(a, b): float(rng.normal(6.0, 1.0)) for a in ids for b in range(a + 1, a // 4 * 4 + 4)}
    for a, b in rng.integers(0, len(ids), size=(6_000, 2)).tolist():
        if a // 4 != b // 4:
            pairs[(min(a, b), max(a, b))] = float(rng.normal(1.0, 1.0))
    late = 10_000
    days[late] = 365.0 * 3
    pairs.update({(a, late): 9.0 for a in range(4)})
    found = group([*ids, late], pairs, days)
    assert found.model is not None and found.model.span_days < 365
    assert found.story_of[late] == late and found.story_of[3] == found.story_of[0]
    unbounded = replace(found.model, span_days=math.inf)
    assert group([*ids, late], pairs, days, unbounded).story_of[
        late] == found.story_of[0]  # fmt: skip


def _stories_archive() -> list[Article]:
    """40 stories, a story's articles within four days, the stories over three years."""
    return dated_stories("t", 40, seed=5, span_days=1_200, spread_days=4)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_index(tmp_path_factory, "stories", _stories_archive())


def test_the_archive_is_grouped_into_its_stories(archive: Path) -> None:
    with Recommender.open(archive, encoder=HashingEncoder(256)) as rec:
        found = {a.id: s.id for s in rec.stories() for a in s.articles}
        thread = rec.story("t3-2")
        again = rec.stories()
    labels = {aid: aid.split("-")[0] for aid in found}
    assert len(found) == 160 and bcubed(found, labels)[2] > 0.9
    dates = [a.published_at for a in thread.articles]
    assert dates == sorted(dates) and thread.id == thread.articles[0].id
    assert {a.id.split("-")[0] for a in thread.articles} == {"t3"}
    assert [s.id for s in again] == sorted({s for s in found.values()}, key=lambda s: (
        -list(found.values()).count(s), s))  # largest first, then by id  # fmt: skip


def test_a_write_regroups_and_an_unknown_id_is_refused(archive: Path, tmp_path: Path) -> None:
    import shutil
    from datetime import timedelta

    path = tmp_path / "copy"
    shutil.copytree(archive, path)
    with Recommender.open(path, encoder=HashingEncoder(256)) as rec:
        assert "t5-9" not in {a.id for a in rec.story("t5-0").articles}
        source = rec.get("t5-1")
        assert source.published_at is not None
        when = (source.published_at + timedelta(days=1)).isoformat()
        rec.upsert([article("t5-9", source.body + " a follow-up", published=when)])
        assert "t5-9" in {a.id for a in rec.story("t5-0").articles}  # grouped again
        with pytest.raises(ArticleNotFoundError):
            rec.story("nope")


def test_the_cli_lists_stories_threads_and_scores(archive: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(main, ["stories", "--index", str(archive), "--json", "--min-size", "2"])
    assert listed.exit_code == 0, listed.output
    stories = json.loads(listed.output)
    assert stories and all(s["size"] >= 2 for s in stories)
    assert {"id", "title", "size", "first", "last", "sections", "articles"} <= set(stories[0])
    out = tmp_path / "stories.jsonl"
    every = runner.invoke(main, ["stories", "--index", str(archive), "--all", "-o", str(out)])
    assert every.exit_code == 0, every.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 160 and set(rows[0]) == {"id", "story"}
    thread = runner.invoke(main, ["story", "t1-1", "--index", str(archive)])
    assert thread.exit_code == 0 and "t1-0" in thread.output
    missing = runner.invoke(main, ["story", "nope", "--index", str(archive)])
    assert missing.exit_code == 3
    stray = runner.invoke(main, ["stories", "--index", str(archive), "-o", str(out)])
    assert stray.exit_code == 2 and "--output goes with --all" in stray.output


def test_evaluate_stories_scores_the_grouping_beside_the_baselines(tmp_path: Path) -> None:
    items = _stories_archive()
    path = tmp_path / "idx"
    records = [
        {"id": a.id, "body": a.body, "published_at": a.published_at, "story": a.id.split("-")[0]}
        for a in items
    ]
    Recommender.build(records, path, encoder=HashingEncoder(256)).close()
    result = CliRunner().invoke(
        main, ["evaluate", "--stories", "--index", str(path), "--label-field", "story", "--json"]
    )
    assert result.exit_code == 0, result.output
    scores = {s["method"]: s for s in json.loads(result.output)}
    assert set(scores) == {"recommender", "singletons", "tfidf-single-link@0.5"}
    assert scores["singletons"]["stories"] == 160 and scores["singletons"]["precision"] == 1.0
    assert scores["recommender"]["f1"] > scores["singletons"]["f1"]


def test_stories_over_http_and_background_only_lists(archive: Path) -> None:
    from fastapi.testclient import TestClient

    from recommender.serving.app import create_app

    with (
        Recommender.open(archive, encoder=HashingEncoder(256)) as rec,
        TestClient(create_app(rec, token=None)) as http,
    ):
        thread = http.get("/v1/articles/t2-3/story")
        assert thread.status_code == 200, thread.text
        body = thread.json()
        assert body == rec.story("t2-3").to_dict() and body["size"] == len(body["articles"])
        page = http.get("/v1/stories", params={"min_size": 2, "limit": 5}).json()
        assert len(page["stories"]) == 5 and page["total"] == len(rec.stories(min_size=2))
        assert http.get("/v1/articles/nope/story").status_code == 404
        own = {a["id"] for a in body["articles"]}
        background = http.get(
            "/v1/articles/t2-3/related", params={"exclude_story": "true", "k": 10}
        ).json()["related"]
        assert background and not own & {m["id"] for m in background}
        library = rec.related("t2-3", k=10, exclude_story=True)
        assert [m.id for m in library] == [m["id"] for m in background]
        assert own - {"t2-3"} <= {m.id for m in rec.related("t2-3", k=10)}  # shown otherwise
    cli = CliRunner().invoke(
        main, ["related", "t2-3", "--exclude-story", "--index", str(archive), "--json"]
    )
    assert cli.exit_code == 0, cli.output
    assert [m["id"] for m in json.loads(cli.output)] == [m.id for m in library]
    refused = CliRunner().invoke(
        main, ["related", "--all", "--exclude-story", "--index", str(archive)]
    )
    assert refused.exit_code == 2 and "--exclude-story" in refused.output
