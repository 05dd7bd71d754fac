"""Editorial rules: each rule type, validation, and one behaviour for CLI, library and service."""

# The validation table reads best one case per line.
# ruff: noqa: E501

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from recommender import InvalidArgumentError, Recommender
from recommender.cli import main
from recommender.embedding.encoders import HashingEncoder
from recommender.ingest.demo import demo_articles
from recommender.ranking.rules import Rules
from recommender.serving.app import create_app


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Recommender]:
    path = tmp_path / "demo"
    Recommender.build(demo_articles(), path, encoder=HashingEncoder(256)).close()
    with Recommender.open(path, encoder=HashingEncoder(256)) as rec:
        yield rec


#: Demo articles stripped of their date; some keep a full date at the head of their text
#: (a dateline), which dates them for the time prior only, never for editorial rules.
UNDATED = {
    "demo-081": "March 6, 2026 - ",  # world, 11.5 hours after demo-001 by that dateline
    "demo-011": "",  # world, no date anywhere
    "demo-067": "Friday, March 6, 2026 - ",  # local, the day of demo-001
    "demo-025": "Wednesday, March 11, 2026 - ",  # world: a story without a date
}


@pytest.fixture
def undated(tmp_path: Path) -> Iterator[Recommender]:
    articles = [
        replace(a, published_at=None, body=UNDATED[a.id] + a.body) if a.id in UNDATED else a
        for a in demo_articles()
    ]
    path = tmp_path / "undated"
    Recommender.build(articles, path, encoder=HashingEncoder(256)).close()
    with Recommender.open(path, encoder=HashingEncoder(256)) as rec:
        yield rec


def _rules(**data: Any) -> Rules:
    return Rules.from_dict({"version": 1, **data})


def _sections(rec: Recommender) -> dict[str, str]:
    return {aid: (s or "").casefold() for aid, s in rec.field_values("section").items()}


def _pairs(rec: Recommender, k: int = 10) -> set[tuple[str, str]]:
    sections = _sections(rec)
    return {(sections[aid], sections[m.id]) for aid, ms in rec.related_all(k=k) for m in ms}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"version": 2}, "version: must be 1"),
        ({"version": 1, "pins": {}}, "pins: unknown key; expected one of"),
        ({"version": 1, "pinned": {"a": "b"}}, "pinned['a']: expected an array"),
        ({"version": 1, "pinned": {"a": ["b", 5]}}, "pinned['a'][1]: expected an article id"),
        ({"version": 1, "pinned": {"a": ["a"]}}, "cannot be pinned to itself"),
        ({"version": 1, "blocked_pairs": [["a"]]}, 'blocked_pairs[0]: expected a pair [A, B], got ["a"]'),
        ({"version": 1, "never_pair": [["x", ""]]}, "never_pair[0][1]: expected a section"),
        ({"version": 1, "never_offer": [{"section": "s"}]}, "never_offer[0]: expected"),
        ({"version": 1, "never_offer": [{"section": "s", "to": []}]}, "never_offer[0].to"),
        ({"version": 1, "recency_days": {"sports": -3}}, "recency_days['sports']: expected a number of days > 0, got -3"),
        ({"version": 1, "min_score": {"score": "high"}}, 'min_score.score: expected a number, got "high"'),
        ({"version": 1, "min_score": {"score": 1, "fallback": "latest"}}, "unknown fallback 'latest'; expected one of ['nothing', 'backfill']"),
        ({"version": 1, "min_score": {"score": 1, "min_items": 0}}, "min_score.min_items: expected an integer >= 1"),
    ],
)  # fmt: skip
def test_validation_names_the_bad_value(data: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        Rules.from_dict(data, source="r.json")
    assert str(err.value).startswith("r.json:")
    assert message in str(err.value)


def test_round_trip() -> None:
    data = {
        "version": 1,
        "pinned": {"a": ["b", "c"]},
        "blocked_pairs": [["a", "d"]],
        "never_pair": [["obituaries", "satire"]],
        "never_offer": [{"section": "sponsored", "to": "*"}],
        "recency_days": {"sports": 3.0, "*": 30.0},
        "min_score": {"score": 1.5, "min_items": 2, "fallback": "backfill"},
    }
    assert Rules.from_dict(data).to_dict() == data


def test_no_rules_changes_nothing(demo: Recommender) -> None:
    before = demo.related("demo-001", k=10)
    demo.set_rules(_rules())
    assert demo.related("demo-001", k=10) == before


def test_pinned_first_in_order(demo: Recommender) -> None:
    plain = [m.id for m in demo.related("demo-001", k=5)]
    demo.set_rules(_rules(pinned={"demo-001": ["demo-060", plain[2], "not-indexed"]}))
    ids = [m.id for m in demo.related("demo-001", k=5)]
    assert ids[:2] == ["demo-060", plain[2]]
    assert len(ids) == 5 and len(set(ids)) == 5
    assert ids[2:] == [i for i in plain if i != plain[2]][:3]
    # Pins obey the query's own exclusions.
    excluded = [m.id for m in demo.related("demo-001", k=5, exclude=["demo-060"])]
    assert "demo-060" not in excluded


def test_blocked_pair_both_ways(demo: Recommender) -> None:
    top = demo.related("demo-001", k=1)[0].id
    demo.set_rules(_rules(blocked_pairs=[["demo-001", top]]))
    assert top not in [m.id for m in demo.related("demo-001", k=10)]
    assert "demo-001" not in [m.id for m in demo.related(top, k=85)]


def test_never_pair_sections_hold_in_every_list(demo: Recommender) -> None:
    """The acceptance test: with A never next to B, no list on the demo corpus pairs them."""
    pairs = _pairs(demo)
    a, b = "business", "technology"
    assert (a, b) in pairs and (b, a) in pairs  # they do pair without the rule
    demo.set_rules(_rules(never_pair=[["Business", "TECHNOLOGY"]]))
    pairs = _pairs(demo, k=20)
    assert (a, b) not in pairs and (b, a) not in pairs
    assert (a, a) in pairs  # everything else still flows
    for aid in ("demo-002", "demo-042"):
        sections = _sections(demo)
        for m in demo.related(aid, k=30):
            assert {sections[aid], sections[m.id]} != {a, b}


def test_never_offer_sponsored_to_any_other_section(demo: Recommender) -> None:
    sections = _sections(demo)
    sponsored = [aid for aid, s in sections.items() if s == "food"]
    demo.set_rules(_rules(never_offer=[{"section": "food", "to": "*"}]))
    for aid, matches in demo.related_all(k=20):
        if sections[aid] != "food":
            assert not {m.id for m in matches} & set(sponsored)
    # Food articles may still be related to each other.
    assert any(m.id in sponsored for m in demo.related(sponsored[0], k=85))
    demo.set_rules(_rules(never_offer=[{"section": "food", "to": ["world"]}]))
    world = next(aid for aid, s in sections.items() if s == "world")
    assert not {m.id for m in demo.related(world, k=85)} & set(sponsored)


def _within(days: float, of: str = "demo-001") -> set[str]:
    """Demo articles dated within ``days`` of article ``of`` (the undated ones never are)."""
    dated = {a.id: a.published_at for a in demo_articles() if a.id not in UNDATED}
    when = dated[of]
    assert when is not None
    return {
        aid
        for aid, at in dated.items()
        if aid != of and at is not None and abs(at - when).total_seconds() <= days * 86_400
    }


def test_recency_window_per_section(undated: Recommender) -> None:
    everything = {m.id for m in undated.related("demo-001", k=85)}
    assert len(everything) == 85  # every other article, the undated ones included
    world = {aid for aid, s in _sections(undated).items() if s == "world"}
    undated.set_rules(_rules(recency_days={"world": 3}))
    # A world candidate passes only with a date within 3 days (undated ones never pass,
    # whatever their text says); the other sections are untouched, undated ones included.
    kept = {m.id for m in undated.related("demo-001", k=85)}
    assert kept == (everything - world) | (world & _within(3))
    assert world & _within(3) and "demo-067" in kept and "demo-081" not in kept
    undated.set_rules(_rules(recency_days={"*": 1}))
    kept = {m.id for m in undated.related("demo-001", k=85)}
    assert kept == _within(1) and kept
    assert not kept & set(UNDATED)


def test_a_story_without_a_date_applies_no_window(undated: Recommender) -> None:
    assert undated.get("demo-025").published_at is None
    everything = {m.id for m in undated.related("demo-025", k=85)}
    undated.set_rules(_rules(recency_days={"*": 1}))
    assert {m.id for m in undated.related("demo-025", k=85)} == everything


def test_min_score_show_nothing(demo: Recommender) -> None:
    scores = [m.score for m in demo.related("demo-001", k=10)]
    demo.set_rules(_rules(min_score={"score": scores[2], "min_items": 3}))
    assert [m.score for m in demo.related("demo-001", k=10)] == scores[:3]
    demo.set_rules(_rules(min_score={"score": scores[2], "min_items": 4, "fallback": "nothing"}))
    assert demo.related("demo-001", k=10) == []


def test_min_score_backfill_latest_in_section(undated: Recommender) -> None:
    top = undated.related("demo-001", k=10)
    undated.set_rules(
        _rules(
            min_score={"score": top[0].score, "min_items": 3, "fallback": "backfill"},
            blocked_pairs=[["demo-001", "demo-022"]],
        )
    )
    filled = undated.related("demo-001", k=10)
    # The newest articles of the story's section that pass the other rules, newest first,
    # score 0: not the story, not the item above, not a blocked one, never an undated one
    # (the world section has 8 articles, 3 of them undated: the list stays short).
    newest = sorted(
        (a for a in demo_articles() if a.section == "world" and a.id not in UNDATED),
        key=lambda a: a.published_at.timestamp() if a.published_at else 0.0,
        reverse=True,
    )
    taken = {"demo-001", top[0].id, "demo-022"}
    assert [m.id for m in filled] == [top[0].id] + [a.id for a in newest if a.id not in taken]
    assert filled[0].score == top[0].score
    assert all(m.score == 0.0 for m in filled[1:]) and len(filled) >= 3


def test_backfill_finds_a_section_written_with_capitals(tmp_path: Path) -> None:
    # Rules and queries fold sections; the archive may store "Économie" or "ÉCONOMIE"
    # (SQLite's NOCASE folds only ASCII letters).
    def spelled(section: str | None, n: int) -> str:
        name = "É" + (section or "")
        return name.upper() if n % 2 else name.title()

    shouted = [replace(a, section=spelled(a.section, n)) for n, a in enumerate(demo_articles())]
    path = tmp_path / "shouted"
    Recommender.build(shouted, path, encoder=HashingEncoder(256)).close()
    with Recommender.open(path, encoder=HashingEncoder(256)) as rec:
        top = rec.related("demo-001", k=1)[0]
        rec.set_rules(
            _rules(min_score={"score": top.score, "min_items": 3, "fallback": "backfill"})
        )
        rest = rec.related("demo-001", k=5)[1:]
    assert len(rest) == 4
    assert {m.section for m in rest} == {"Éworld", "ÉWORLD"}


def test_rules_follow_the_index_file(demo: Recommender, tmp_path: Path) -> None:
    """Another process (the CLI) attaching rules changes this one's answers (same as service)."""
    top = demo.related("demo-001", k=1)[0].id
    file = tmp_path / "rules.json"
    file.write_text(json.dumps({"version": 1, "blocked_pairs": [["demo-001", top]]}))
    runner = CliRunner()
    index = str(demo._layout.root)
    assert runner.invoke(main, ["rules", "check", str(file), "--index", index]).exit_code == 0
    result = runner.invoke(main, ["rules", "set", str(file), "--index", index])
    assert result.exit_code == 0, result.output
    library = [m.id for m in demo.related("demo-001", k=5)]
    assert top not in library
    cli = runner.invoke(main, ["related", "demo-001", "--index", index, "-k", "5", "--json"])
    assert [m["id"] for m in json.loads(cli.output)] == library
    with TestClient(create_app(demo, token=None)) as client:
        body = client.get("/v1/articles/demo-001/related", params={"k": 5}).json()
    assert [m["id"] for m in body["related"]] == library
    shown = runner.invoke(main, ["rules", "show", "--index", index])
    assert json.loads(shown.output)["blocked_pairs"] == [["demo-001", top]]
    assert runner.invoke(main, ["rules", "clear", "--index", index]).exit_code == 0
    assert top in [m.id for m in demo.related("demo-001", k=5)]


def test_rules_check_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1, "min_score": {"score": 1, "fallback": "latest"}}')
    result = runner.invoke(main, ["rules", "check", str(bad)])
    assert result.exit_code == 2
    assert "min_score.fallback" in result.output and "'latest'" in result.output
    broken = tmp_path / "broken.json"
    broken.write_text("{version: 1")
    result = runner.invoke(main, ["rules", "check", str(broken)])
    assert result.exit_code == 2 and "invalid JSON" in result.output
