"""The real packaged model, offline. Marked slow: a few seconds to a couple of minutes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from recommender import Recommender
from recommender.embedding.encoders import DEFAULT_MODEL, SentenceTransformerEncoder
from recommender.ingest.demo import DEFAULT_STORY, demo_articles

from .conftest import SHARED_DATA

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model() -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder()


def test_packaged_model_loads_offline(model: SentenceTransformerEncoder) -> None:
    vectors = model.encode(["Port workers strike", "Dockers walk out at the harbour", "Lemon cake"])
    assert model.model_id == DEFAULT_MODEL
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_demo_corpus_related_lists_find_the_same_story(
    tmp_path_factory: pytest.TempPathFactory, model: SentenceTransformerEncoder
) -> None:
    articles = demo_articles()
    story = {a.id: a.metadata.get("story") for a in articles}
    size: dict[str, int] = defaultdict(int)
    for s in story.values():
        if s:
            size[s] += 1
    path = tmp_path_factory.mktemp("demo") / "idx"
    with Recommender.build(articles, path, encoder=model) as rec:
        precision = []
        for aid, s in story.items():
            if not s:
                continue
            k = size[s] - 1
            top = rec.related(aid, k=k)
            precision.append(sum(story[m.id] == s for m in top) / k)
        top_default = rec.related(DEFAULT_STORY, k=3)
        similar = rec.similar(text="Dockworkers at Valdora port stay on strike as talks stall", k=3)
    # R-precision over every story article: same-beat pairs make this hard.
    assert np.mean(precision) >= 0.85, np.mean(precision)
    assert all(story[m.id] == story[DEFAULT_STORY] for m in top_default)
    assert all(story[m.id] == "port-strike-valdora" for m in similar)


@pytest.mark.data
def test_ecbplus_acceptance(tmp_path: Path) -> None:
    """The issue's acceptance run: 982 articles, 0 rejected, 1_10ecb's list from its event."""
    source = SHARED_DATA / "ecbplus" / "ecbplus_docs.jsonl"
    if not source.exists():
        pytest.skip(f"{source} is not available")
    cli = [sys.executable, "-m", "recommender"]
    index = tmp_path / "ecb"
    built = subprocess.run(
        [*cli, "build", str(source), "--index", str(index)], capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr
    assert "indexed 982, rejected 0" in built.stdout
    shown = subprocess.run(
        [*cli, "related", "1_10ecb", "--index", str(index), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    related = json.loads(shown.stdout)
    clusters = {
        r["id"]: r["event_cluster"]
        for r in map(json.loads, source.read_text(encoding="utf-8").splitlines())
    }
    assert len(related) == 10
    assert "1_10ecb" not in [r["id"] for r in related]
    assert sum(clusters[r["id"]] == "1_ecb" for r in related) >= 8
    background = subprocess.run(
        [*cli, "related", "1_10ecb", "--index", str(index), "--json", "--exclude-story"],
        capture_output=True,
        text=True,
        check=True,
    )
    _check_web_page(index, [r["id"] for r in json.loads(background.stdout)], clusters)


def _check_web_page(index: Path, related: list[str], clusters: dict[str, str]) -> None:
    """/articles/1_10ecb, server-rendered: "More on this story" holds the event's articles,
    and Related the same background list as ``related --exclude-story``, each item with its
    fields."""
    import lxml.html
    from fastapi.testclient import TestClient

    from recommender.serving.app import create_app

    with Recommender.open(index) as rec, TestClient(create_app(rec, token=None)) as client:
        response = client.get("/articles/1_10ecb")
    assert response.status_code == 200
    doc = lxml.html.fromstring(response.text)
    thread = [
        href.removeprefix("/articles/")
        for href in doc.xpath('//ol[@class="thread-list"]/li/a/@href')
    ]
    assert len(thread) >= 8 and all(clusters[aid] == "1_ecb" for aid in thread)
    items = doc.xpath('//ol[@class="related"]/li')
    shown = [item.xpath("string(.//a/@href)").removeprefix("/articles/") for item in items]
    assert shown == related and not set(shown) & set(thread)
    for item in items:
        meta = item.xpath("string(.//p[@class='meta'])")
        # ecbplus records carry neither dates nor sections: the page says so.
        assert "No date" in meta and "No section" in meta and "score" in meta
        assert item.xpath("string(.//p[@class='reason'])").startswith("Why: ")
