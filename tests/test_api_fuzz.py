"""The HTTP API fuzzed against its own OpenAPI schema (schemathesis), in-process.

Every operation of /openapi.json gets generated requests, valid and not, with the write
token and without it. Properties: no 5xx; every status, content type, header and body is
one the schema documents; every error is the documented JSON error shape; every response
carries the security headers. The ASGI app is called directly (no socket: the autouse
fixture forbids them). The "ci" hypothesis profile (tests/conftest.py) keeps the run
bounded and repeatable; HYPOTHESIS_PROFILE=long (scripts/fuzz.sh) runs many more examples.

The schema is read when this module is imported, from an app built with the same options
but no index (building one does not call it): schemathesis' fixture-based loader does not
run under pytest 9. The requests go to the fixture's app, over a real index.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import settings
from schemathesis import Case

from recommender import Recommender
from recommender.embedding.encoders import HashingEncoder
from recommender.recommender import Recommender as RecommenderType
from recommender.serving.app import API_CSP, REFERRER_POLICY, create_app

from .conftest import JSON_ROUTES, STORIES, article

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OPTIONS: dict[str, Any] = {
    "token": TOKEN,
    "public_docs": True,
    "public_metrics": True,
    "max_k": 20,
}
# Per operation and token setting: enough for every route's edge cases in well under a
# minute here; the "long" profile takes its own (much larger) number.
EXAMPLES = 25 if os.environ.get("HYPOTHESIS_PROFILE", "ci") == "ci" else settings().max_examples


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    articles = [
        article(f"{story}-{n}", f"{words} report {n}", title=f"{story} {n}", section="world")
        for story, words in STORIES.items()
        for n in range(3)
    ]
    path = tmp_path_factory.mktemp("fuzz") / "idx"
    with Recommender.build(articles, path, encoder=HashingEncoder(64)) as rec:
        yield create_app(rec, **OPTIONS)


SCHEMA = create_app(cast(RecommenderType, None), **OPTIONS).openapi()
schema = schemathesis.openapi.from_dict(SCHEMA)


def _documented_error(response: Any) -> None:
    """An error is {"error": {"type", "message", "field", "in"}}, as the README says."""
    if response.status_code < 400:
        return
    assert response.headers["content-type"][0].startswith("application/json"), response.text
    body = json.loads(response.content)
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"type", "message", "field", "in"} <= set(error) <= {*error, "details"}, error
    assert isinstance(error["type"], str) and isinstance(error["message"], str), error


def _secured(response: Any) -> None:
    headers = {name.lower(): values[0] for name, values in response.headers.items()}
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == REFERRER_POLICY
    assert headers["content-security-policy"] == API_CSP  # the API serves no pages


def _check(app: FastAPI, case: Case[Any], headers: dict[str, str]) -> None:
    response = case.call_and_validate(
        app=app,
        headers=headers,
        checks=[
            schemathesis.checks.not_a_server_error,
            schemathesis.checks.status_code_conformance,
            schemathesis.checks.content_type_conformance,
            schemathesis.checks.response_headers_conformance,
            schemathesis.checks.response_schema_conformance,
        ],
    )
    _documented_error(response)
    _secured(response)


@schema.parametrize()
@settings(max_examples=EXAMPLES)
def test_api_with_the_token(app: FastAPI, case: Case[Any]) -> None:
    _check(app, case, AUTH)


@schema.parametrize()
@settings(max_examples=EXAMPLES)
def test_api_without_a_token(app: FastAPI, case: Case[Any]) -> None:
    _check(app, case, {})


def test_every_route_is_fuzzed(app: FastAPI) -> None:
    """The schema the fuzzer reads is the app's, and lists every JSON route."""
    assert app.openapi() == SCHEMA
    assert set(SCHEMA["paths"]) == JSON_ROUTES


def test_the_index_is_still_whole(app: FastAPI, tmp_path: Path) -> None:
    """After the fuzzing (which wrote with the token), the index still answers queries."""
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/v1/info").status_code == 200
