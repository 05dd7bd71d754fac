"""Click feedback and A/B buckets: events in through the API, a report out of the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from recommender import Article, InvalidArgumentError, Recommender
from recommender.cli import main
from recommender.embedding.encoders import HashingEncoder
from recommender.index.events import Event
from recommender.serving.app import create_app


@pytest.fixture
def rec(built: Path, encoder: HashingEncoder) -> Iterator[Recommender]:
    with Recommender.open(built, encoder=encoder) as opened:
        yield opened


def _shown(client: TestClient, bucket: str | None) -> list[dict[str, object]]:
    params: dict[str, object] = {"k": 3}
    if bucket:
        params["bucket"] = bucket
    body = client.get("/v1/articles/port-0/related", params=params).json()
    assert body["bucket"] == bucket
    return [
        {
            "type": "impression",
            "article_id": "port-0",
            "related_id": item["id"],
            "position": n,
            **({"bucket": bucket} if bucket else {}),
        }
        for n, item in enumerate(body["related"], start=1)
    ]


def test_round_trip_events_to_report(rec: Recommender, built: Path) -> None:
    rec.set_bucket("diverse", {"diversity": 0.3})
    with TestClient(create_app(rec, token="secret")) as client:
        shown = _shown(client, None) + _shown(client, "diverse") + _shown(client, "diverse")
        clicks = [
            {**shown[0], "type": "click"},
            {**shown[4], "type": "click"},
            {**shown[5], "type": "click"},
        ]
        # Events need no token: pages report them from readers' browsers.
        response = client.post("/v1/events", json={"events": shown + clicks})
        assert response.status_code == 200, response.text
        assert response.json() == {"recorded": 12}
        bad = client.post(
            "/v1/events",
            json={"events": [{**shown[0], "position": 0}, {**shown[1], "type": "view"}]},
        )
        assert bad.status_code == 422
        assert bad.json()["error"]["message"].startswith("events[0].position")
    rows = {(r.bucket, r.position): r for r in rec.events.report()}
    assert (rows[(None, 1)].impressions, rows[(None, 1)].clicks) == (1, 1)
    assert (rows[("diverse", 2)].impressions, rows[("diverse", 2)].clicks) == (2, 1)
    assert rows[("diverse", None)].impressions == 6 and rows[("diverse", None)].clicks == 2
    assert rows[("diverse", None)].ctr == pytest.approx(2 / 6)
    runner = CliRunner()
    table = runner.invoke(main, ["report", "--index", str(built)])
    assert table.exit_code == 0, table.output
    assert "diverse" in table.output and "33.33%" in table.output
    as_json = json.loads(runner.invoke(main, ["report", "--index", str(built), "--json"]).output)
    assert {k: v for k, v in as_json[-1].items() if k != "ctr"} == {
        "bucket": "diverse",
        "position": None,
        "impressions": 6,
        "clicks": 2,
    }


def test_event_validation_names_the_field(rec: Recommender) -> None:
    good = {"type": "click", "article_id": "a", "related_id": "b", "position": 2}
    assert Event.from_dict(good).position == 2
    for change, message in [
        ({"type": "view"}, "events[0].type: expected one of ['impression', 'click']"),
        ({"position": 0}, "events[0].position: expected an integer >= 1"),
        ({"related_id": ""}, "events[0].related_id"),
        ({"extra": 1}, "events[0].extra: unknown field"),
    ]:
        with pytest.raises(InvalidArgumentError, match=r"^" + message.replace("[", r"\[")):
            rec.events.record([{**good, **change}])
    assert rec.events.report() == []  # nothing of a bad batch is recorded


def test_buckets_select_a_ranking(rec: Recommender, built: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        main, ["buckets", "set", "recent", "time_weight=3", "--index", str(built)]
    )
    assert result.exit_code == 0, result.output
    assert rec.ranking_for("recent").time_weight == 3
    assert rec.ranking_for(None) == rec.ranking
    assert "recent" in runner.invoke(main, ["buckets", "list", "--index", str(built)]).output
    plain = rec.related("quake-0", k=5)
    assert rec.related("quake-0", k=5, bucket="recent") == rec.related(
        "quake-0", k=5, ranking=rec.ranking.with_options(time_weight=3)
    )
    assert plain == rec.related("quake-0", k=5, bucket=None)
    assert rec.similar(text="earthquake rubble", k=3, bucket="recent") == rec.similar(
        text="earthquake rubble", k=3, ranking=rec.ranking.with_options(time_weight=3)
    )
    with pytest.raises(InvalidArgumentError, match="unknown bucket 'nope'"):
        rec.related("quake-0", bucket="nope")
    cli = runner.invoke(main, ["related", "quake-0", "--index", str(built), "--bucket", "nope"])
    assert cli.exit_code == 2 and "unknown bucket 'nope'" in cli.output
    bad = runner.invoke(main, ["buckets", "set", "x", "divrsity=0.3", "--index", str(built)])
    assert bad.exit_code == 2 and "unknown ranking option 'divrsity'" in bad.output
    with TestClient(create_app(rec, token=None)) as client:
        response = client.get("/v1/articles/quake-0/related", params={"bucket": "nope"})
        assert response.status_code == 422
    runner.invoke(main, ["buckets", "remove", "recent", "--index", str(built)])
    with pytest.raises(InvalidArgumentError):
        rec.ranking_for("recent")


def test_buckets_and_rules_survive_a_rebuild(
    built: Path, corpus: list[Article], encoder: HashingEncoder
) -> None:
    from recommender.ranking.rules import Rules

    with Recommender.open(built, encoder=encoder) as rec:
        rec.set_bucket("diverse", {"diversity": 0.3})
        rec.set_rules(Rules.from_dict({"version": 1, "never_pair": [["world", "local"]]}))
        rec.events.record([{"type": "click", "article_id": "a", "related_id": "b", "position": 1}])
    Recommender.build(corpus, built, encoder=encoder).close()
    with Recommender.open(built, encoder=encoder) as rec:
        assert rec.ranking_for("diverse").diversity == 0.3
        assert rec.rules is not None and rec.rules.never_pair == (("world", "local"),)
        assert rec.events.report()[-1].clicks == 1
