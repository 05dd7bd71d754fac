"""Hardening of the service (issue 19), each reproduction kept as a regression test.

- Text that is not valid Unicode (a JSON ``"\\ud800"``) is a 4xx naming the field, never a 5xx.
- An article's ``url`` is a live link only when it is http(s) or a site path.
- Every response carries the security headers; the pages run under a strict CSP.
- The docs and /metrics need the token unless they are made public.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import lxml.html
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from recommender import InvalidArgumentError, Recommender
from recommender.embedding.encoders import HashingEncoder
from recommender.serving.app import (
    API_CSP,
    ENV_INDEX,
    ENV_PUBLIC_DOCS,
    ENV_PUBLIC_METRICS,
    ENV_READ_ONLY,
    ENV_TOKEN,
    PAGE_CSP,
    app_from_env,
    create_app,
)

from .conftest import STORIES, article

TOKEN = "security-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"content-type": "application/json"}
# The documented values (README, "Security").
HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
DOCUMENTED_PAGE_CSP = (
    "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
    "object-src 'none'"
)
DOCUMENTED_API_CSP = "default-src 'none'; frame-ancestors 'none'"


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recommender]:
    """One index for the tests that do not write to it."""
    articles = [
        article(f"{story}-{n}", f"{words} report {n}", title=f"{story.title()} {n}")
        for story, words in STORIES.items()
        for n in range(4)
    ]
    path = tmp_path_factory.mktemp("security") / "idx"
    with Recommender.build(articles, path, encoder=HashingEncoder(256)) as built:
        yield built


@pytest.fixture(scope="module")
def client(rec: Recommender) -> Iterator[TestClient]:
    with TestClient(create_app(rec, token=TOKEN, max_body_bytes=4096)) as c:
        yield c


@pytest.fixture
def writable(built: Path, encoder: HashingEncoder) -> Iterator[TestClient]:
    """A client over an index of its own, for the tests that write."""
    with (
        Recommender.open(built, encoder=encoder) as opened,
        TestClient(create_app(opened, token=TOKEN)) as c,
    ):
        yield c


def _error(response: Any, status: int) -> dict[str, Any]:
    """The documented error shape, with ``status``; its ``error`` object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert {"type", "message", "field", "in"} <= set(error)
    return error


# -- text that is not valid Unicode ------------------------------------------------------


def test_put_rejects_a_record_whose_id_is_not_valid_unicode(writable: TestClient) -> None:
    """Issue 19: a 500. Now the record is rejected like any bad record (200, in `rejected`)."""
    body = b'[{"id": "\\ud800", "body": "x"}, {"id": "ok", "body": "harbor strike"}]'
    response = writable.put("/v1/articles", content=body, headers=AUTH | JSON)
    assert response.status_code == 200, response.text
    response.content.decode("utf-8")  # strict: what is sent back is valid UTF-8
    report = response.json()
    assert (report["added"], report["total"]) == (1, 15)
    [rejected] = report["rejected"]
    assert rejected["line"] == 1
    assert rejected["reason"].startswith("id: invalid Unicode (lone surrogate U+D800")


@pytest.mark.parametrize(
    "record",
    [
        b'{"id": "a", "body": "\\udfff"}',
        b'{"id": "a", "body": "x", "title": "\\ud800x"}',
        b'{"id": "a", "body": "x", "tags": ["\\ud83d"]}',
        b'{"id": "a", "body": "x", "extra": {"deep": ["\\ud800"]}}',
        b'{"id": "a", "body": "x", "\\ud800": "key"}',
    ],
)
def test_put_rejects_any_string_that_is_not_valid_unicode(
    client: TestClient, record: bytes
) -> None:
    response = client.put("/v1/articles", content=b"[" + record + b"]", headers=AUTH | JSON)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["added"] == 0 and [r["line"] for r in report["rejected"]] == [1]
    assert "invalid Unicode" in report["rejected"][0]["reason"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"text": "\\ud800"}', "text"),
        (b'{"title": "ok", "body": "\\udc00"}', "body"),
        (b'{"title": "\\ud800", "body": "ok"}', "title"),
        (b'{"text": "port", "section": "\\ud800"}', "section"),
        (b'{"text": "port", "section": ["world", "\\ud800"]}', "section.1"),
        (b'{"text": "port", "exclude": ["\\ud800"]}', "exclude.0"),
        (b'{"text": "port", "language": "\\ud800"}', "language"),
        (b'{"text": "port", "since": "\\ud800"}', "since"),
        (b'{"text": "port", "published_at": "2026\\ud800"}', "published_at"),
    ],
)
def test_similar_with_text_that_is_not_valid_unicode_is_422_naming_it(
    client: TestClient, body: bytes, field: str
) -> None:
    """Issue 19: {"text": "\\ud800"} was a 500 (the tokenizer's TypeError)."""
    error = _error(client.post("/v1/similar", content=body, headers=JSON), 422)
    assert (error["type"], error["field"], error["in"]) == ("ValidationError", field, "body")
    assert "invalid Unicode (lone surrogate" in error["message"]


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (b'"article_id": "\\ud800", "related_id": "b", "position": 1', "events.0.article_id"),
        (b'"article_id": "a", "related_id": "\\udfff", "position": 1', "events.0.related_id"),
        (
            b'"article_id": "a", "related_id": "b", "position": 1, "bucket": "\\ud800"',
            "events.0.bucket",
        ),
        (
            b'"article_id": "a", "related_id": "b", "position": 99999999999999999999',
            "events.0.position",
        ),
    ],
)
def test_events_with_bad_values_are_422_naming_the_field(
    client: TestClient, event: bytes, field: str
) -> None:
    """Each was a 500 (the event log's UTF-8 encoding, SQLite's 64-bit integers)."""
    body = b'{"events": [{"type": "click", ' + event + b"}]}"
    error = _error(client.post("/v1/events", content=body, headers=JSON), 422)
    assert (error["field"], error["in"]) == (field, "body")


def test_a_body_that_is_not_utf8_is_422(client: TestClient) -> None:
    error = _error(client.post("/v1/similar", content=b'{"text": "\xff\xfe"}', headers=JSON), 422)
    assert (error["type"], error["in"]) == ("ValidationError", "body")
    assert "not UTF-8" in error["message"]
    response = client.put("/v1/articles", content=b'[{"id": "\xc0"}]', headers=AUTH | JSON)
    assert _error(response, 422)["in"] == "body"


@pytest.mark.parametrize("raw_id", ["%ED%A0%80", "%FF", "%00", "%C0%AF", "a%ED%B0%80b"])
def test_ids_in_the_path_that_are_not_utf8_are_404s(client: TestClient, raw_id: str) -> None:
    # The server decodes the path with U+FFFD for bytes that are not UTF-8: an unknown id.
    for method, path in [
        ("GET", f"/v1/articles/{raw_id}"),
        ("GET", f"/v1/articles/{raw_id}/related"),
        ("DELETE", f"/v1/articles/{raw_id}"),
    ]:
        response = client.request(method, path, headers=AUTH)
        assert _error(response, 404)["type"] == "ArticleNotFoundError", path
    page = client.get(f"/articles/{raw_id}")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    "name", ["section", "language", "exclude", "since", "until", "bucket", "k"]
)
def test_query_strings_that_are_not_utf8_never_get_a_5xx(client: TestClient, name: str) -> None:
    for value in ("%ED%A0%80", "%FF", "%00"):
        response = client.get(f"/v1/articles/port-0/related?{name}={value}")
        assert response.status_code in (200, 422), response.text
        if response.status_code == 422:
            _error(response, 422)
        for page in (f"/articles/port-0?{name}={value}", f"/?q={value}&page={value}"):
            assert client.get(page).status_code == 200


def test_paste_form_that_is_not_utf8_never_gets_a_5xx(client: TestClient) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    assert client.post("/similar", content=b"story=\xff\xfe", headers=form).status_code == 415
    escaped = client.post("/similar", content=b"story=%ED%A0%80port+strike", headers=form)
    assert escaped.status_code in (200, 400, 422)


class _Raising:
    """A Recommender whose queries raise ``error``: how the service maps the library's field."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def related(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error

    def similar(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error

    def __len__(self) -> int:
        return 0


@pytest.mark.parametrize(
    ("method", "path", "field", "named", "where"),
    [
        ("POST", "/v1/similar", "text", "text", "body"),
        ("GET", "/v1/articles/x/related", "id", "article_id", "path"),
        ("GET", "/v1/articles/x/related?section=a", "section", "section", "query"),
        ("GET", "/v1/articles/x/related", None, None, None),
    ],
)
def test_the_library_field_of_an_invalid_argument_is_named(
    method: str, path: str, field: str | None, named: str | None, where: str | None
) -> None:
    error = InvalidArgumentError(f"{field}: invalid Unicode", field=field)
    app = create_app(cast(Recommender, _Raising(error)), token=TOKEN)
    with TestClient(app) as client:
        response = client.request(method, path, json={"text": "a story"})
    body = _error(response, 422)
    assert (body["type"], body["field"], body["in"]) == ("InvalidArgumentError", named, where)


def test_an_error_that_quotes_invalid_unicode_is_still_sent() -> None:
    """Messages may quote what the client sent; the response must not fail on it."""
    error = InvalidArgumentError("unknown bucket '\udc80'", field="bucket")
    app = create_app(cast(Recommender, _Raising(error)), token=TOKEN)
    with TestClient(app) as client:
        response = client.get("/v1/articles/x/related")
    assert _error(response, 422)["message"] == "unknown bucket '\ufffd'"


# -- links: only http(s) and site paths --------------------------------------------------

UNSAFE_URLS = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "\tjavascript:alert(1)",
    "java\tscript:alert(1)",
    "\x01javascript:alert(1)",
    "javascript&colon;alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
]


class _OldIndex:
    """The real index as if built before ingest checked URLs: every article's url is ``url``."""

    def __init__(self, rec: Recommender, url: str) -> None:
        self._rec = rec
        self._url = url

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rec, name)

    def __len__(self) -> int:
        return len(self._rec)

    def get(self, article_id: str) -> Any:
        return replace(self._rec.get(article_id), url=self._url)

    def related(self, *args: Any, **kwargs: Any) -> Any:
        return [replace(m, url=self._url) for m in self._rec.related(*args, **kwargs)]

    def similar(self, *args: Any, **kwargs: Any) -> Any:
        return [replace(m, url=self._url) for m in self._rec.similar(*args, **kwargs)]


def _links(html: str) -> list[str]:
    doc = lxml.html.fromstring(html)
    return [str(v) for v in doc.xpath("//@href | //@src | //@action | //@formaction")]


def _pages(client: TestClient) -> list[str]:
    """Every page that shows articles: the story, its related list, search, pasted results."""
    story = {"story": "harbor dockworkers strike port cranes", "format": "plain"}
    return [
        client.get("/articles/port-0").text,
        client.get("/", params={"q": "port"}).text,
        client.post("/similar", data=story).text,
    ]


@pytest.mark.parametrize("url", UNSAFE_URLS)
def test_an_unsafe_url_is_shown_as_text_never_as_a_link(rec: Recommender, url: str) -> None:
    """Issue 19: a stored "javascript:" url was a live link on /articles/{id} (stored XSS)."""
    app = create_app(cast(Recommender, _OldIndex(rec, url)), token=TOKEN)
    with TestClient(app) as client:
        pages = _pages(client)
    for html in pages:
        for link in _links(html):
            cleaned = re.sub(r"[\x00-\x20]", "", link).lower()
            assert not cleaned.startswith(("javascript", "data", "vbscript", "file")), link
            assert link.startswith(("/", "#", "?")), link  # the pages' own links only
    doc = lxml.html.fromstring(pages[0])
    shown = doc.xpath("string(//code[@class='url'])")
    assert re.sub(r"[\x00-\x20]", "", shown) == re.sub(r"[\x00-\x20]", "", url)
    assert "original (not a web link)" in doc.xpath("string(//p[@class='meta'])")


@pytest.mark.parametrize(
    ("url", "href"),
    [
        ("https://example.com/a?b=1&c=2", "https://example.com/a?b=1&c=2"),
        ("HTTP://EXAMPLE.COM/x", "http://EXAMPLE.COM/x"),
        ("/2026/03/story.html", "/2026/03/story.html"),
    ],
)
def test_http_urls_and_site_paths_are_links(rec: Recommender, url: str, href: str) -> None:
    app = create_app(cast(Recommender, _OldIndex(rec, url)), token=TOKEN)
    with TestClient(app) as client:
        doc = lxml.html.fromstring(client.get("/articles/port-0").text)
    original = doc.xpath("//a[text()='original']")
    assert [a.get("href") for a in original] == [href]
    assert original[0].get("rel") == "noopener noreferrer"


def test_a_url_written_through_the_api_never_becomes_a_link(writable: TestClient) -> None:
    record = {"id": "xss", "title": "x", "body": "harbor strike", "url": "JaVaScRiPt:alert(1)"}
    assert writable.put("/v1/articles", json=[record], headers=AUTH).status_code == 200
    page = writable.get("/articles/xss")
    assert page.status_code == 200
    assert not any("script:" in link.lower() for link in _links(page.text))


# -- security headers ----------------------------------------------------------------------


def _secured(response: Any, csp: str) -> None:
    for name, value in HEADERS.items():
        assert response.headers[name] == value, (response.request.url, name)
    assert response.headers["content-security-policy"] == csp, response.request.url


def test_the_documented_header_values() -> None:
    assert PAGE_CSP == DOCUMENTED_PAGE_CSP
    assert API_CSP == DOCUMENTED_API_CSP


@pytest.mark.parametrize(
    ("method", "path", "status", "csp"),
    [
        ("GET", "/", 200, DOCUMENTED_PAGE_CSP),
        ("GET", "/articles/port-0", 200, DOCUMENTED_PAGE_CSP),
        ("GET", "/articles/nope", 404, DOCUMENTED_PAGE_CSP),
        ("GET", "/similar", 200, DOCUMENTED_PAGE_CSP),
        ("POST", "/similar", 415, DOCUMENTED_PAGE_CSP),
        ("GET", "/v1/info", 200, DOCUMENTED_API_CSP),
        ("GET", "/v1/articles/port-0/related", 200, DOCUMENTED_API_CSP),
        ("GET", "/v1/articles/nope", 404, DOCUMENTED_API_CSP),
        ("GET", "/v1/articles/port-0/related?k=0", 422, DOCUMENTED_API_CSP),
        ("PUT", "/v1/articles", 401, DOCUMENTED_API_CSP),
        ("POST", "/healthz", 405, DOCUMENTED_API_CSP),
        ("GET", "/no/such/path", 404, DOCUMENTED_API_CSP),
        ("GET", "/healthz", 200, DOCUMENTED_API_CSP),
        ("GET", "/metrics", 200, DOCUMENTED_API_CSP),
        ("GET", "/openapi.json", 200, DOCUMENTED_API_CSP),
        ("GET", "/static/style.css", 200, DOCUMENTED_API_CSP),
        ("GET", "/static/app.js", 200, DOCUMENTED_API_CSP),
        ("GET", "/static/nope.js", 404, DOCUMENTED_API_CSP),
    ],
)
def test_every_response_carries_the_security_headers(
    client: TestClient, method: str, path: str, status: int, csp: str
) -> None:
    response = client.request(method, path)
    assert response.status_code == status, response.text
    _secured(response, csp)


def test_413_and_500_carry_the_security_headers(client: TestClient) -> None:
    big = client.post("/v1/similar", json={"text": "x" * 5000})
    assert big.status_code == 413
    _secured(big, DOCUMENTED_API_CSP)
    app = create_app(cast(Recommender, _Raising(RuntimeError("boom"))), token=TOKEN)
    with TestClient(app, raise_server_exceptions=False) as failing:
        crash = failing.get("/v1/articles/x/related")
    assert _error(crash, 500)["type"] == "InternalError"
    _secured(crash, DOCUMENTED_API_CSP)


def test_the_pages_need_nothing_the_csp_forbids(client: TestClient) -> None:
    """No inline script or style, no handler attribute, nothing from another origin."""
    pages = [
        *_pages(client),
        client.get("/").text,
        client.get("/similar").text,
        client.get("/articles/nope").text,
    ]
    for html in pages:
        doc = lxml.html.fromstring(html)
        assert not doc.xpath("//script[not(@src)]") and not doc.xpath("//style")
        assert not doc.xpath("//@style")
        handlers = [a for a in doc.xpath("//@*") if a.attrname.lower().startswith("on")]
        assert not handlers, handlers
        for source in doc.xpath("//script/@src | //link/@href | //img/@src | //form/@action"):
            assert source.startswith("/") and not source.startswith("//"), source
    script = client.get("/static/app.js").text
    for forbidden in ("eval(", "new Function", 'setAttribute("style"', 'setTimeout("', ".cssText"):
        assert forbidden not in script, forbidden


def test_docs_pages_get_a_csp_that_lets_them_run(client: TestClient) -> None:
    swagger = client.get("/docs")
    assert swagger.status_code == 200
    policy = swagger.headers["content-security-policy"]
    for name, value in HEADERS.items():
        assert swagger.headers[name] == value
    inline = re.findall(rb"<script>(.*?)</script>", swagger.content, re.DOTALL)
    assert len(inline) == 1  # SwaggerUIBundle({...}): allowed by its hash, nothing else is
    digest = base64.b64encode(hashlib.sha256(inline[0]).digest()).decode()
    assert f"script-src https://cdn.jsdelivr.net 'sha256-{digest}';" in policy
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    assert "frame-ancestors 'none'" in policy and "'unsafe-eval'" not in policy
    # The page fetches the schema from this server, not a validator elsewhere.
    assert b"url: '/openapi.json'" in swagger.content and b'"validatorUrl": null' in swagger.content
    redoc = client.get("/redoc")
    assert redoc.status_code == 200
    assert not re.findall(rb"<script>", redoc.content)
    assert "worker-src blob:" in redoc.headers["content-security-policy"]


# -- docs and /metrics behind the token ---------------------------------------------------

PRIVATE = ["/docs", "/redoc", "/openapi.json", "/metrics"]


def test_docs_and_metrics_are_public_by_default(client: TestClient) -> None:
    for path in PRIVATE:
        assert client.get(path).status_code == 200, path
    assert "/docs" in _links(client.get("/").text)  # the pages' "API" link


@pytest.mark.parametrize("path", PRIVATE)
def test_private_docs_and_metrics_need_the_token(rec: Recommender, path: str) -> None:
    app = create_app(rec, token=TOKEN, public_docs=False, public_metrics=False)
    with TestClient(app) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            response = client.get(path, headers=headers)
            assert _error(response, 401)["type"] == "Unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"
        assert client.get(path, headers=AUTH).status_code == 200
        # The queries and pages stay public; the pages no longer link to the docs.
        assert client.get("/v1/articles/port-0/related").status_code == 200
        home = client.get("/")
        assert home.status_code == 200 and "/docs" not in _links(home.text)


def test_private_without_a_token_is_403_saying_how_to_open_it(rec: Recommender) -> None:
    app = create_app(rec, token=None, public_docs=False, public_metrics=False)
    with TestClient(app) as client:
        assert "--public-docs" in _error(client.get("/docs"), 403)["message"]
        assert "--public-docs" in _error(client.get("/openapi.json"), 403)["message"]
        assert "--public-metrics" in _error(client.get("/metrics"), 403)["message"]


def test_each_can_be_public_alone(rec: Recommender) -> None:
    app = create_app(rec, token=TOKEN, public_docs=True, public_metrics=False)
    with TestClient(app) as client:
        assert client.get("/docs").status_code == 200
        assert client.get("/metrics").status_code == 401
        schema = client.get("/openapi.json").json()
    assert "HTTPBearer" in str(schema["paths"]["/metrics"]["get"]["security"])
    assert "security" not in schema["paths"]["/v1/info"]["get"]
    app = create_app(rec, token=TOKEN, public_docs=False, public_metrics=True)
    with TestClient(app) as client:
        assert client.get("/redoc").status_code == 401
        assert client.get("/metrics").status_code == 200


def test_the_docs_follow_a_proxy_path_prefix(rec: Recommender) -> None:
    with TestClient(create_app(rec, token=TOKEN), root_path="/news") as client:
        assert client.get("/openapi.json").json()["servers"] == [{"url": "/news"}]
        assert b"url: '/news/openapi.json'" in client.get("/docs").content


# -- how serve, app_from_env and the CLI set it ---------------------------------------------

ENV = [ENV_INDEX, ENV_TOKEN, ENV_READ_ONLY, ENV_PUBLIC_DOCS, ENV_PUBLIC_METRICS]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """serve() writes these for its workers: put each back as it was afterwards."""
    for name in ENV:
        monkeypatch.setenv(name, "placeholder")  # recorded, so teardown restores the original
        monkeypatch.delenv(name)


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("host", "options", "docs", "metrics"),
    [
        ("127.0.0.1", {}, "1", "1"),
        ("::1", {}, "1", "1"),
        ("0.0.0.0", {}, "0", "0"),
        ("10.0.0.5", {"public_docs": True}, "1", "0"),
        ("0.0.0.0", {"public_metrics": True}, "0", "1"),
        ("127.0.0.1", {"public_docs": False, "public_metrics": False}, "0", "0"),
    ],
)
def test_serve_makes_docs_and_metrics_public_only_on_loopback_unless_told(
    built: Path,
    monkeypatch: pytest.MonkeyPatch,
    host: str,
    options: dict[str, bool],
    docs: str,
    metrics: str,
) -> None:
    from recommender.serving import _uvicorn
    from recommender.serving import app as service

    seen: dict[str, str | None] = {}
    monkeypatch.setattr(
        _uvicorn, "run", lambda config: seen.update({n: os.environ.get(n) for n in ENV})
    )
    service.serve(built, host=host, token=TOKEN, **options)
    assert (seen[ENV_PUBLIC_DOCS], seen[ENV_PUBLIC_METRICS]) == (docs, metrics)


@pytest.mark.usefixtures("clean_env")
def test_app_from_env_reads_the_flags(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_INDEX, str(built))
    monkeypatch.setenv(ENV_TOKEN, TOKEN)
    monkeypatch.setenv(ENV_PUBLIC_DOCS, "0")
    monkeypatch.setenv(ENV_PUBLIC_METRICS, "1")
    with TestClient(app_from_env()) as client:
        assert client.get("/docs").status_code == 401
        assert client.get("/docs", headers=AUTH).status_code == 200
        assert client.get("/metrics").status_code == 200
    monkeypatch.setenv(ENV_PUBLIC_DOCS, "maybe")
    with pytest.raises(InvalidArgumentError, match="RECOMMENDER_PUBLIC_DOCS must be 1 or 0"):
        app_from_env()


@pytest.mark.parametrize(
    ("flags", "docs", "metrics"),
    [
        ([], None, None),
        (["--public-docs"], True, None),
        (["--no-public-docs", "--public-metrics"], False, True),
        (["--no-public-metrics"], None, False),
    ],
)
def test_cli_serve_passes_the_flags(
    built: Path,
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
    docs: bool | None,
    metrics: bool | None,
) -> None:
    from recommender.cli import main
    from recommender.serving import app as service

    seen: dict[str, Any] = {}
    monkeypatch.setattr(service, "serve", lambda index, **kwargs: seen.update(kwargs))
    result = CliRunner().invoke(main, ["serve", "--index", str(built), *flags])
    assert result.exit_code == 0, result.output
    assert (seen["public_docs"], seen["public_metrics"]) == (docs, metrics)
    help_text = CliRunner().invoke(main, ["serve", "--help"]).output
    assert "--public-docs / --no-public-docs" in help_text
    assert "--public-metrics / --no-public-metrics" in help_text
