"""Explanations: shared names, salient terms and passages, computed only when asked."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from recommender import Explanation, Match, Recommender
from recommender.cli import main
from recommender.embedding.encoders import HashingEncoder
from recommender.ingest.demo import demo_articles
from recommender.ranking.explain import Story, named_entities, sentences
from recommender.serving.app import create_app


@pytest.fixture(scope="module")
def demo_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("demo") / "idx"
    Recommender.build(demo_articles(), path, encoder=HashingEncoder(256)).close()
    yield path


@pytest.fixture
def demo(demo_index: Path) -> Iterator[Recommender]:
    with Recommender.open(demo_index, encoder=HashingEncoder(256)) as rec:
        yield rec


def _kinds(text: str, title: str = "") -> dict[str, str | None]:
    return {v.display: v.kind for v in named_entities(Story(title, text)).values()}


def test_sentences_keep_abbreviations_and_initials() -> None:
    text = 'Mr. Smith met U.S. officials. "It went well," he said. J. R. Doe left.\nNew line'
    assert sentences(text) == [
        "Mr. Smith met U.S. officials.",
        '"It went well," he said.',
        "J. R. Doe left.",
        "New line",
    ]


def test_names_are_classed_by_cues() -> None:
    kinds = _kinds(
        "Actress Lindsay Lohan checked into the Betty Ford Center in Rancho Mirage on Friday. "
        "Lohan's lawyer told Judge Marsha Revel that the Ministry of Justice and Acme Inc "
        "were not involved. The FBI said it had no comment. Police in Kalvar said the town "
        "of Serevan was quiet."
    )
    assert kinds["Lindsay Lohan"] == "person"
    assert "Lohan" not in kinds  # the lone surname joined the full name
    assert kinds["Marsha Revel"] == "person"
    assert kinds["Betty Ford Center"] == "place"
    assert kinds["Rancho Mirage"] == "place"
    assert kinds["Ministry of Justice"] == "organisation"
    assert kinds["Acme Inc"] == "organisation"
    assert kinds["FBI"] == "organisation"
    assert kinds["Kalvar"] == "place"
    assert kinds["Serevan"] == "place"
    assert "Friday" not in kinds and "Police" not in kinds and "The" not in kinds


def test_sentence_initial_words_are_not_names_unless_capitalised_elsewhere() -> None:
    kinds = _kinds("Rescuers worked all night. Officials met in Kalvar. Kalvar is quiet.")
    assert "Rescuers" not in kinds
    assert kinds["Kalvar"] == "place"


def test_summary_never_empty_and_to_dict() -> None:
    why = Explanation(
        terms=("rehab", "sentence"),
        people=("Lindsay Lohan",),
        places=("Betty Ford Center",),
        passages=("a", "b"),
    )
    assert why.summary() == (
        "shared people: Lindsay Lohan; places: Betty Ford Center; terms: rehab, sentence"
    )
    assert Explanation(terms=("rehab",)).summary() == "shared terms: rehab"
    assert Explanation().summary()
    data = why.to_dict()
    assert data["passages"] == ["a", "b"] and data["summary"] == why.summary()
    assert data["organisations"] == []
    match = Match("x", 1.0, "t", None, None, None, why)
    assert match.to_dict()["explanation"] == data
    assert Match("x", 1.0, "t", None, None, None).to_dict()["explanation"] is None


def test_related_explains_only_when_asked(demo: Recommender) -> None:
    plain = demo.related("demo-001", k=5)
    assert all(m.explanation is None for m in plain)
    explained = demo.related("demo-001", k=5, explain=True)
    # Same list, same order: explaining never changes the ranking.
    assert [(m.id, m.score) for m in explained] == [(m.id, m.score) for m in plain]
    for m in explained:
        assert m.explanation is not None
        assert m.explanation.summary().startswith("shared ")
        assert m.explanation.terms and m.explanation.passages
    first = explained[0].explanation
    assert first is not None and "Ardesh" in first.places


def test_every_demo_list_is_explained(demo: Recommender) -> None:
    """On the demo corpus every match has a reason; the best ones name names or terms.

    (The fake encoder puts unrelated stories low in short lists; those may
    share nothing and get the honest fallback reason.)
    """
    for aid in ("demo-001", "demo-002", "demo-004", "demo-048", "demo-069", "demo-085"):
        for rank, m in enumerate(demo.related(aid, k=5, explain=True)):
            assert m.explanation is not None and m.explanation.summary()
            names = m.explanation.people + m.explanation.places + m.explanation.organisations
            if rank < 2:
                assert names or m.explanation.terms, (aid, m.id)


def test_similar_explains(demo: Recommender) -> None:
    story = demo.get("demo-069")
    matches = demo.similar(title=story.title, body=story.body, k=3, explain=True)
    top = matches[0].explanation
    assert top is not None
    assert "Dayo Okafor" in top.people or "Okafor" in " ".join(top.people + top.terms)


def test_cli_explain(demo_index: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(
        main, ["related", "demo-001", "--index", str(demo_index), "-k", "3", "--explain", "--json"]
    )
    assert out.exit_code == 0, out.output
    items = json.loads(out.output)
    assert all(item["explanation"]["summary"].startswith("shared ") for item in items)
    table = runner.invoke(
        main, ["related", "demo-001", "--index", str(demo_index), "-k", "3", "--explain"]
    )
    assert table.exit_code == 0 and table.output.count("why: shared") == 3
    plain = runner.invoke(main, ["related", "demo-001", "--index", str(demo_index), "--json"])
    assert all(item["explanation"] is None for item in json.loads(plain.output))
    text = runner.invoke(
        main,
        ["similar", "--index", str(demo_index), "--text", "earthquake in Ardesh", "--explain"],
    )
    assert text.exit_code == 0 and "why: " in text.output
    refused = runner.invoke(main, ["related", "--all", "--index", str(demo_index), "--explain"])
    assert refused.exit_code == 2 and "--explain" in refused.output


def test_service_explain(demo: Recommender) -> None:
    with TestClient(create_app(demo, token=None)) as client:
        plain = client.get("/v1/articles/demo-001/related", params={"k": 3}).json()
        assert all(item["explanation"] is None for item in plain["related"])
        explained = client.get(
            "/v1/articles/demo-001/related", params={"k": 3, "explain": "true"}
        ).json()
        for item in explained["related"]:
            assert item["explanation"]["summary"]
            assert set(item["explanation"]) == {
                "terms",
                "people",
                "places",
                "organisations",
                "passages",
                "summary",
            }
        similar = client.post(
            "/v1/similar", params={"explain": "true"}, json={"text": "earthquake in Ardesh"}
        ).json()
        assert similar["related"][0]["explanation"]["summary"]


def test_related_explain_never_imports_the_model(demo_index: Path) -> None:
    code = (
        "import sys; from recommender.cli import main\n"
        f"try: main(['related', 'demo-001', '--index', {str(demo_index)!r}, '--explain'])\n"
        "except SystemExit as exit: print('exit', exit.code)\n"
        "print([m for m in ('torch', 'sentence_transformers', 'onnxruntime') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # A hashing index; tests/test_no_model_load.py explains on one the real model built.
    assert "why: shared" in out.stdout
    assert out.stdout.strip().splitlines()[-2:] == ["exit 0", "[]"]
