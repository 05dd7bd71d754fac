"""On a real site: related lists by the page's URL, HTTP caching (ETag, 304, Cache-Control)
and CORS for the read routes only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from recommender import ArticleNotFoundError, InvalidArgumentError, Recommender
from recommender.cli import main
from recommender.embedding.encoders import HashingEncoder
from recommender.serving.app import create_app
from recommender.types import Article
from recommender.urls import canonical_url

from .conftest import STORIES

SITE = "https://news.example.com"
ORIGIN = "https://www.example.org"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three stories of four articles; the first two of each at full URLs, the others at
    site paths, one with a trailing slash."""
    items = []
    for story, words in STORIES.items():
        for n in range(4):
            path = f"/{story}/{n}" + ("/" if n == 3 else "")
            url = f"{SITE}{path}" if n < 2 else path
            items.append(Article(id=f"{story}-{n}", body=f"{words} report {n}", url=url))
    index = tmp_path_factory.mktemp("site") / "idx"
    Recommender.build(items, index, encoder=HashingEncoder(256)).close()
    return index


@pytest.fixture
def client(site: Path) -> Any:
    with Recommender.open(site, encoder=HashingEncoder(256)) as rec:
        app = create_app(rec, token="secret", cache_max_age=30, allow_origins=(ORIGIN,))
        with TestClient(app) as test_client:
            yield test_client


@pytest.mark.parametrize(
    ("url", "found"),
    [
        (f"{SITE}/port/0", "port-0"),
        ("HTTPS://NEWS.example.com:443/port/0/?utm_source=feed&utm_medium=rss#top", "port-0"),
        (f"{SITE}/quake/1?fbclid=abc", "quake-1"),
        # Stored as a site path: any host's page with that path.
        (f"{SITE}/budget/2", "budget-2"),
        ("https://mirror.example.net/budget/3", "budget-3"),
        ("/quake/3/", "quake-3"),
    ],
)
def test_a_page_finds_its_article_by_url(site: Path, url: str, found: str) -> None:
    with Recommender.open(site, encoder=HashingEncoder(256)) as rec:
        assert rec.article_at(url) == found


def test_an_unknown_or_unusable_url_is_refused_naming_the_field(site: Path) -> None:
    with Recommender.open(site, encoder=HashingEncoder(256)) as rec:
        with pytest.raises(ArticleNotFoundError) as missing:
            rec.article_at(f"{SITE}/port/9")
        assert missing.value.field == "url" and "/port/9" in str(missing.value)
        with pytest.raises(InvalidArgumentError) as bad:
            rec.article_at("javascript:alert(1)")
        assert bad.value.field == "url"


def test_the_url_lookup_follows_writes(site: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(site, copy)
    with Recommender.open(copy, encoder=HashingEncoder(256)) as rec:
        rec.article_at(f"{SITE}/port/0")  # the map is built now...
        rec.upsert([Article(id="port-9", body=STORIES["port"], url=f"{SITE}/port/9")])
        assert rec.article_at(f"{SITE}/port/9") == "port-9"  # ...and rebuilt after a write
        rec.remove(["port-0"])
        with pytest.raises(ArticleNotFoundError):
            rec.article_at(f"{SITE}/port/0")


def test_related_by_url_over_http_and_the_cli(client: TestClient, site: Path) -> None:
    by_id = client.get("/v1/articles/port-0/related", params={"k": 3}).json()
    by_url = client.get("/v1/related", params={"url": f"{SITE}/port/0?utm_campaign=x", "k": 3})
    assert by_url.status_code == 200 and by_url.json() == by_id
    missing = client.get("/v1/related", params={"url": f"{SITE}/nothing"})
    error = missing.json()["error"]
    assert missing.status_code == 404 and (error["field"], error["in"]) == ("url", "query")
    assert client.get("/v1/related", params={"url": "ftp://x/y"}).status_code == 422
    assert client.get("/v1/related").status_code == 422  # url is required
    result = CliRunner().invoke(
        main, ["related", "--url", f"{SITE}/port/0/", "--index", str(site), "--json", "-k", "3"]
    )
    assert result.exit_code == 0, result.output
    assert [m["id"] for m in json.loads(result.output)] == [m["id"] for m in by_id["related"]]
    both = CliRunner().invoke(main, ["related", "port-0", "--url", "/x", "--index", str(site)])
    assert both.exit_code != 0 and "one of ARTICLE_ID, --url or --all" in both.output


def test_related_lists_carry_an_etag_and_answer_304_while_unchanged(client: TestClient) -> None:
    first = client.get("/v1/articles/port-0/related", params={"k": 3})
    tag = first.headers["etag"]
    assert tag.startswith('"') and len(tag) == 34
    assert first.headers["cache-control"] == "public, max-age=30, stale-while-revalidate=300"
    again = client.get("/v1/articles/port-0/related", params={"k": 3})
    assert again.headers["etag"] == tag  # the same list, the same tag
    cached = client.get(
        "/v1/articles/port-0/related", params={"k": 3}, headers={"If-None-Match": tag}
    )
    assert cached.status_code == 304 and cached.content == b""
    assert cached.headers["etag"] == tag and "cache-control" in cached.headers
    for other in ({"k": 2}, {"k": 3, "explain": "true"}):
        changed = client.get(
            "/v1/articles/port-0/related", params=other, headers={"If-None-Match": tag}
        )
        assert changed.status_code == 200 and changed.headers["etag"] != tag
    weak = client.get(
        "/v1/articles/port-0/related", params={"k": 3}, headers={"If-None-Match": f"W/{tag}"}
    )
    assert weak.status_code == 304
    by_url = client.get("/v1/related", params={"url": f"{SITE}/port/0", "k": 3})
    assert by_url.headers["etag"] == tag  # the same body, whichever way it was asked


def test_a_write_changes_the_etag(client: TestClient) -> None:
    tag = client.get("/v1/articles/port-1/related").headers["etag"]
    newcomer = {"id": "port-7", "body": STORIES["port"] + " report 7", "title": "Port 7"}
    put = client.put(
        "/v1/articles", json={"articles": [newcomer]}, headers={"Authorization": "Bearer secret"}
    )
    assert put.status_code == 200, put.text
    after = client.get("/v1/articles/port-1/related", headers={"If-None-Match": tag})
    assert after.status_code == 200 and after.headers["etag"] != tag


def test_errors_and_other_routes_are_not_cached(client: TestClient) -> None:
    missing = client.get("/v1/articles/nope/related")
    assert missing.status_code == 404 and "etag" not in missing.headers
    for path in ("/v1/info", "/healthz", "/v1/articles/port-0"):
        assert "etag" not in client.get(path).headers, path


def test_cors_only_for_allowed_origins_on_read_routes(client: TestClient) -> None:
    asked = {"Origin": ORIGIN}
    read = client.get("/v1/articles/port-0/related", headers=asked)
    assert read.headers["access-control-allow-origin"] == ORIGIN
    assert (
        "Origin" in read.headers["vary"] and "ETag" in read.headers["access-control-expose-headers"]
    )
    cached = client.get(
        "/v1/articles/port-0/related", headers={**asked, "If-None-Match": read.headers["etag"]}
    )
    assert cached.status_code == 304 and cached.headers["access-control-allow-origin"] == ORIGIN
    click = {"type": "click", "article_id": "port-0", "related_id": "port-1", "position": 1}
    events = client.post("/v1/events", json={"events": [click]}, headers=asked)
    assert events.status_code == 200, events.text
    assert events.headers.get("access-control-allow-origin") == ORIGIN, events.text
    stranger = client.get("/v1/articles/port-0/related", headers={"Origin": "https://evil.test"})
    assert "access-control-allow-origin" not in stranger.headers
    preflight = client.options(
        "/v1/events", headers={**asked, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ORIGIN


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/v1/articles"), ("DELETE", "/v1/articles/port-0"), ("POST", "/v1/articles")],
)
def test_routes_that_write_never_send_cors_headers(
    client: TestClient, method: str, path: str
) -> None:
    asked = {"Origin": ORIGIN}
    preflight = client.options(path, headers={**asked, "Access-Control-Request-Method": method})
    assert "access-control-allow-origin" not in preflight.headers
    answer = client.request(method, path, headers={**asked, "Authorization": "Bearer nope"})
    assert "access-control-allow-origin" not in answer.headers


def test_without_allowed_origins_there_are_no_cors_headers(site: Path) -> None:
    with (
        Recommender.open(site, encoder=HashingEncoder(256)) as rec,
        TestClient(create_app(rec, token=None)) as plain,
    ):
        answer = plain.get("/v1/articles/port-0/related", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in answer.headers
    assert answer.headers["cache-control"] == "public, max-age=60, stale-while-revalidate=600"


@pytest.mark.parametrize("origin", ["example.com", "https://x.com/path", "ftp://x.com", ""])
def test_a_bad_origin_is_refused_naming_it(site: Path, origin: str) -> None:
    with (
        Recommender.open(site, encoder=HashingEncoder(256)) as rec,
        pytest.raises(InvalidArgumentError) as refused,
    ):
        create_app(rec, token=None, allow_origins=(origin,))
    assert refused.value.field == "allow_origin"


@given(st.text(max_size=60))
def test_canonical_urls_are_fixed_points(value: str) -> None:
    """Any text is either no URL or one canonical form, which is its own canonical form."""
    found = canonical_url(value)
    if found is not None:
        assert found.startswith("/") and canonical_url(found) == found


def test_canonical_url_drops_what_does_not_name_the_page() -> None:
    assert canonical_url("HTTPS://Example.com:443/a/?utm_source=x&p=2#top") == "//example.com/a?p=2"
    assert canonical_url("http://example.com/a?p=2") == "//example.com/a?p=2"
    assert canonical_url("https://example.com:8443/a") == "//example.com:8443/a"
    assert canonical_url("https://example.com") == canonical_url("https://example.com/")
    assert canonical_url("/a/b/") == "/a/b"
    assert canonical_url("story.html") is None and canonical_url("javascript:x") is None


def test_serve_refuses_a_bad_origin_before_it_binds(site: Path) -> None:
    result = CliRunner().invoke(
        main, ["serve", "--index", str(site), "--allow-origin", "example.com", "--port", "0"]
    )
    assert result.exit_code != 0 and "allow_origin: 'example.com'" in result.output


def test_the_workers_read_the_cache_and_cors_settings(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recommender.serving import app as service

    monkeypatch.setenv(service.ENV_INDEX, str(site))
    monkeypatch.setenv(service.ENV_CACHE_MAX_AGE, "0")
    monkeypatch.setenv(service.ENV_ALLOW_ORIGINS, f"{ORIGIN} https://b.example")
    app = service.app_from_env()
    with TestClient(app) as worker:
        answer = worker.get("/v1/articles/port-0/related", headers={"Origin": "https://b.example"})
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.headers["access-control-allow-origin"] == "https://b.example"
    monkeypatch.setenv(service.ENV_CACHE_MAX_AGE, "soon")
    with pytest.raises(InvalidArgumentError, match="RECOMMENDER_CACHE_MAX_AGE"):
        service.app_from_env()


def test_the_widget_script_is_served_for_other_sites(client: TestClient) -> None:
    script = client.get("/widget.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.headers["cache-control"] == "public, max-age=3600"
    assert "data-recommender-related" in script.text and "/v1/events" in script.text


def test_the_html_fragment_is_the_list_escaped(tmp_path: Path) -> None:
    items = [
        Article(id="a", body=STORIES["port"], url="https://s.example/a"),
        Article(
            id="b",
            title='<script>alert("x")</script> & more',
            body=STORIES["port"] + " b",
            url="https://s.example/b?x=1&y=2",
            published_at=None,
        ),
        Article(id="c", body=STORIES["port"] + " c", url="/c"),
        Article(id="d", body=STORIES["port"] + " d"),  # no URL: not a link
    ]
    path = tmp_path / "idx"
    Recommender.build(items, path, encoder=HashingEncoder(256)).close()
    with (
        Recommender.open(path, encoder=HashingEncoder(256)) as rec,
        TestClient(create_app(rec, token=None)) as http,
    ):
        answer = http.get("/v1/related.html", params={"url": "https://s.example/a", "k": 3})
        missing = http.get("/v1/related.html", params={"url": "https://s.example/none"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    assert "etag" in answer.headers
    html = answer.text
    assert '<section class="recommender-related" aria-label="Related">' in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in html
    assert "<script>" not in html
    assert 'href="https://s.example/b?x=1&amp;y=2"' in html and 'href="/c"' in html
    assert html.count("<li") == 2  # d has no URL
    assert missing.status_code == 404


class _Counting:
    """Counts the related lists the library computes behind the app."""

    def __init__(self, rec: Recommender) -> None:
        self.rec, self.calls = rec, 0

    def related(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.rec.related(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rec, name)


def test_repeated_lists_are_answered_from_the_kept_bytes_until_the_index_changes(
    site: Path, tmp_path: Path
) -> None:
    import shutil

    from recommender.ranking.rules import Rules

    path = tmp_path / "copy"
    shutil.copytree(site, path)
    with Recommender.open(path, encoder=HashingEncoder(256)) as rec:
        counting = _Counting(rec)
        app = create_app(counting, token=None)  # type: ignore[arg-type]
        with TestClient(app) as http:
            first = http.get("/v1/articles/port-0/related?k=3")
            again = http.get("/v1/articles/port-0/related?k=3")
            assert first.content == again.content and counting.calls == 1
            assert again.headers["etag"] == first.headers["etag"]
            http.get("/v1/articles/port-0/related?k=2")  # another query string, another entry
            assert counting.calls == 2
            # Another process writes: the next answer is computed again, and it differs.
            with Recommender.open(path, encoder=HashingEncoder(256)) as other:
                other.remove(["port-1"])
            after = http.get("/v1/articles/port-0/related?k=3")
            assert counting.calls == 3 and "port-1" not in after.text
            # New rules: computed again.
            rec.set_rules(Rules.from_dict({"version": 1, "blocked_pairs": [["port-0", "port-2"]]}))
            ruled = http.get("/v1/articles/port-0/related?k=3")
            assert counting.calls == 4 and '"port-2"' not in ruled.text
            # Errors are never kept.
            http.get("/v1/articles/nope/related")
            http.get("/v1/articles/nope/related")
            assert counting.calls == 6


def test_no_list_cache_computes_every_answer(site: Path) -> None:
    with Recommender.open(site, encoder=HashingEncoder(256)) as rec:
        counting = _Counting(rec)
        app = create_app(counting, token=None, list_cache=0)  # type: ignore[arg-type]
        with TestClient(app) as http:
            for _ in range(3):
                assert http.get("/v1/articles/port-0/related").status_code == 200
    assert counting.calls == 3
