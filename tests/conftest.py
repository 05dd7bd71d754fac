"""Shared fixtures: a fast deterministic encoder, small corpora, no network."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from recommender import Article
from recommender.embedding.encoders import HashingEncoder

from . import milvus_support

# Property-based tests: a bounded, repeatable run by default (CI); scripts/fuzz.sh selects
# "long" (many more examples, random seeds). HYPOTHESIS_PROFILE picks one.
settings.register_profile(
    "ci",
    max_examples=200,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "long",
    max_examples=5000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
#: Files tests saved for people to look at (browser screenshots); listed after the run.
ARTIFACTS: list[Path] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if ARTIFACTS:
        terminalreporter.write_sep("-", "artefacts saved")
        for path in ARTIFACTS:
            terminalreporter.write_line(str(path))
    if note := milvus_support.SESSION_SERVER.summary():
        terminalreporter.write_line(note)


@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish() -> Iterator[None]:
    """Stop the Milvus server a server test started, if one did: after the other finishers
    (the teardown of an interrupted test may still use it), also when one of them fails."""
    try:
        yield
    finally:
        milvus_support.SESSION_SERVER.stop()


#: Taken at import, before the autouse fixture below replaces it.
_REAL_CONNECT = socket.socket.connect


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Allow connections to this machine's loopback addresses only (a test's own servers)."""

    def connect(sock: socket.socket, address: Any) -> None:
        assert address[0] in ("127.0.0.1", "::1", "localhost"), address
        _REAL_CONNECT(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Forbid network access and hub downloads in every test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"network access attempted in a test: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    yield


@pytest.fixture
def encoder() -> HashingEncoder:
    return HashingEncoder(256)


def article(
    aid: str,
    body: str,
    *,
    title: str = "",
    section: str | None = None,
    published: str | None = None,
    language: str | None = "en",
) -> Article:
    from recommender.ingest.records import parse_datetime

    return Article(
        id=aid,
        title=title,
        body=body,
        section=section,
        language=language,
        published_at=parse_datetime(published) if published else None,
    )


#: Every route of the JSON API's OpenAPI schema (test_service and test_api_fuzz check it).
JSON_ROUTES = {
    "/healthz",
    "/metrics",
    "/v1/info",
    "/v1/similar",
    "/v1/events",
    "/v1/articles",
    "/v1/articles/{article_id}",
    "/v1/articles/{article_id}/related",
    "/v1/related",
    "/v1/articles/{article_id}/story",
    "/v1/stories",
}

# Three small "stories" whose articles share distinctive words, plus fillers.
STORIES = {
    "port": "harbor dockworkers strike valdora port cranes container shipping union wages",
    "quake": "earthquake magnitude tremor rubble rescue teams aftershock epicentre province",
    "budget": "council budget vote mayor taxes library funding deficit ordinance",
}


def built_index(
    factory: pytest.TempPathFactory, name: str, articles: list[Article], **options: Any
) -> Path:
    """An index of ``articles`` (hashing encoder) in a fresh folder: a module's shared index."""
    from recommender import Recommender

    path = factory.mktemp(name) / "idx"
    Recommender.build(articles, path, encoder=HashingEncoder(256), **options).close()
    return path


def dated_stories(
    prefix: str, stories: int, *, seed: int, span_days: int, spread_days: int
) -> list[Article]:
    """``stories`` synthetic stories of 4 articles: each story's own words plus common ones,
    its articles within ``spread_days`` of each other, the stories over ``span_days``.
    Ids ``<prefix><story>-<n>``. Enough dated pairs for the two-class model of the ranking."""
    import numpy as np

    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(3_000)]
    items = []
    for story in range(stories):
        own = " ".join(rng.choice(words, 14, replace=False))
        start = np.datetime64("2022-01-01") + np.timedelta64(int(rng.integers(0, span_days)), "D")
        for n in range(4):
            day = start + np.timedelta64(int(rng.integers(0, spread_days)), "D")
            common = " ".join(rng.choice(words[:150], 8, replace=False))
            body = f"{own} {common}"
            items.append(article(f"{prefix}{story}-{n}", body, published=f"{day}T08:00:00Z"))
    return items


@pytest.fixture
def corpus() -> list[Article]:
    items = []
    sections = {"port": "business", "quake": "world", "budget": "local"}
    for story, words in STORIES.items():
        for n in range(4):
            items.append(
                article(
                    f"{story}-{n}",
                    f"{words} report number {n} with extra detail {story} coverage",
                    title=f"{story.title()} update {n}",
                    section=sections[story],
                    published=f"2026-03-{10 + n:02d}T09:00:00Z",
                    language="en" if n < 3 else "fr",
                )
            )
    items.append(article("filler-1", "recipe lemon cake flour sugar oven bake", section="food"))
    items.append(
        article("filler-2", "football striker scored twice league derby", section="sports")
    )
    return items


@pytest.fixture
def built(tmp_path: Path, corpus: list[Article], encoder: HashingEncoder) -> Path:
    from recommender import Recommender

    path = tmp_path / "idx"
    Recommender.build(corpus, path, encoder=encoder).close()
    return path
