"""The web pages, in-process: what the server renders, with no JavaScript involved."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from fastapi.testclient import TestClient

from recommender import Article, Recommender
from recommender.embedding.encoders import HashingEncoder
from recommender.ingest.demo import demo_articles
from recommender.serving.app import create_app
from recommender.serving.web import PAGE_SIZE

TOKEN = "web-token"
# A title, body and section that would run script or break the markup if not escaped,
# and an id with every reserved URL character.
EVIL_ID = 'evil/<b>?&#"x"'
EVIL_TITLE = '<script>alert("title")</script> Harbour <b>strike</b> & "quotes" </a>'
EVIL = Article(
    id=EVIL_ID,
    title=EVIL_TITLE,
    body="Dockworkers <img src=x onerror=alert(1)> strike at Valdora port as talks stall.\n"
    "Union leaders say the cranes stay idle until wages rise. </p><script>x()</script>",
    section="<i>ports</i>",
)


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recommender]:
    path = tmp_path_factory.mktemp("web") / "idx"
    articles = [*demo_articles(), EVIL]
    with Recommender.build(articles, path, encoder=HashingEncoder(256)) as built:
        yield built


@pytest.fixture(scope="module")
def client(rec: Recommender) -> Iterator[TestClient]:
    with TestClient(create_app(rec, token=TOKEN, max_k=20)) as c:
        yield c


def _page(client: TestClient, url: str, status: int = 200, **kwargs: Any) -> Any:
    response = client.get(url, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    return lxml.html.fromstring(response.text)


def _related_ids(doc: Any) -> list[str]:
    hrefs = doc.xpath('//ol[@class="related"]/li/a[@class="related-title"]/@href')
    return [_id_of(h) for h in hrefs]


def _texts(doc: Any, items: str) -> list[str]:
    """The reason line of each item."""
    return [
        " ".join(item.xpath("string(.//p[@class='reason'])").split()) for item in doc.xpath(items)
    ]


def _id_of(href: str) -> str:
    from urllib.parse import unquote

    assert href.startswith("/articles/"), href
    return unquote(href.removeprefix("/articles/"))


# -- browse ------------------------------------------------------------------------------


def test_home_lists_articles_newest_first_in_pages(client: TestClient, rec: Recommender) -> None:
    doc = _page(client, "/")
    ids = [_id_of(h) for h in doc.xpath('//ol[@class="articles"]/li/a/@href')]
    assert ids == [a.id for a in rec.browse(limit=PAGE_SIZE).articles]
    # Newest first, undated ones last: the dates as the page gives them, in list order.
    shown = [item.xpath(".//time/@datetime") for item in doc.xpath('//ol[@class="articles"]/li')]
    dates = [datetime.fromisoformat(d[0]) for d in shown if d]
    assert len(dates) == PAGE_SIZE and len(set(dates)) > 1  # page 1: dated, and not all alike
    assert dates == sorted(dates, reverse=True)
    assert doc.xpath("//nav[@aria-label='Pages']//a[@rel='next']/@href") == ["?page=2"]
    # 87 articles: page 5 is the last, with the undated article at the very end.
    last = _page(client, "/?page=5")
    last_ids = [_id_of(h) for h in last.xpath('//ol[@class="articles"]/li/a/@href')]
    assert last_ids[-1] == EVIL_ID
    rows = [item.xpath(".//time/@datetime") for item in last.xpath('//ol[@class="articles"]/li')]
    assert rows[-1] == [] and all(rows[:-1])  # the one undated article is after every dated one
    last_dates = [datetime.fromisoformat(d[0]) for d in rows[:-1]]
    assert last_dates == sorted(last_dates, reverse=True) and last_dates[0] <= dates[-1]
    assert last.xpath("//ol[@class='articles']/@start") == [str(4 * PAGE_SIZE + 1)]
    assert not last.xpath("//a[@rel='next']")


def test_home_searches_titles(client: TestClient) -> None:
    doc = _page(client, "/", params={"q": "QUAKE"})
    titles = doc.xpath('//ol[@class="articles"]/li/a/text()')
    assert len(titles) == 6 and all("quake" in t.lower() for t in titles)
    assert doc.xpath("//input[@id='q']/@value") == ["QUAKE"]
    assert "6 articles" in doc.xpath("string(//p[@id='results-summary'])")
    none = _page(client, "/", params={"q": "100%_nothing"})
    assert not none.xpath('//ol[@class="articles"]')
    assert "No title contains" in none.text_content()


def test_browse_library_method(rec: Recommender) -> None:
    listing = rec.browse(query="quake serevan", limit=2)
    assert listing.total == 2 and [a.id for a in listing.articles] == ["demo-081", "demo-001"]
    # LIKE wildcards in the query are literal characters.
    assert [a.id for a in rec.browse(query="%").articles] == ["demo-041"]  # "4.25%"
    assert rec.browse(query="_").total == 0
    assert rec.browse(query="<b>strike</b>").articles[0].id == EVIL_ID
    assert rec.browse(offset=86, limit=5).articles[0].id == EVIL_ID
    assert rec.sections()["world"] == 8
    with pytest.raises(ValueError, match="limit must be"):
        rec.browse(limit=0)
    with pytest.raises(ValueError, match="offset must be"):
        rec.browse(offset=-1)


# -- an article and its Related list -------------------------------------------------------


def test_article_page_shows_the_story_and_its_related_list(
    client: TestClient, rec: Recommender
) -> None:
    doc = _page(client, "/articles/demo-001")
    assert doc.xpath("string(//h1)") == rec.get("demo-001").title
    assert "magnitude 6.8 earthquake" in doc.xpath("string(//div[@class='story-body'])")
    expected = rec.related("demo-001", k=10, exclude_story=True)
    assert _related_ids(doc) == [m.id for m in expected]
    first = doc.xpath('//ol[@class="related"]/li')[0]
    assert first.xpath("string(.//a)") == expected[0].title
    assert first.xpath(".//time/@datetime") == [expected[0].published_at]
    assert first.xpath("string(.//span[@class='section'])") == "world"
    assert first.xpath(".//data/@value") == [f"{expected[0].score:.2f}"]
    # Every item says why it is there: the engine's explanation, as the library gives it.
    explained = rec.related("demo-001", k=10, explain=True, exclude_story=True)
    reasons = [r.removeprefix("Why: ") for r in _texts(doc, "//ol[@class='related']/li")]
    assert reasons == [m.explanation.summary() for m in explained if m.explanation]
    assert len(reasons) == 10
    # "More on this story": the article's own story, in time order, the article itself marked;
    # Related is background only (nothing from the story).
    thread = rec.story("demo-001")
    items = doc.xpath("//ol[@class='thread-list']/li")
    assert len(thread.articles) > 1 and len(items) == len(thread.articles)
    titles = [i.xpath("string(.//*[@class='thread-title'])") for i in items]
    assert titles == [a.title for a in thread.articles]
    assert "Ardesh" in " ".join(titles)
    assert doc.xpath("//*[@aria-current='page']/text()") == [rec.get("demo-001").title]
    assert not {a.id for a in thread.articles} & set(_related_ids(doc))
    passages = explained[0].explanation.passages if explained[0].explanation else None
    assert passages and first.xpath("string(.//details/dl/dd[1])") == passages[0]
    # Headings, labelled controls, a skip link to the main landmark.
    assert doc.xpath("//a[@class='skip-link']/@href") == ["#main"]
    assert doc.xpath("//main/@id") == ["main"]
    assert doc.xpath("//h2/text()") == ["More on this story", "Related"]
    for control in ("k", "section", "window", "diversity"):
        assert doc.xpath(f"//label[@for='{control}']"), control
        assert doc.xpath(f"//form[@method='get']//*[@id='{control}'][@name='{control}']")


def test_controls_filter_the_list(client: TestClient, rec: Recommender) -> None:
    doc = _page(client, "/articles/demo-001", params={"k": 3})
    assert len(_related_ids(doc)) == 3
    assert doc.xpath("//input[@id='k']/@value") == ["3"]
    sports = _page(client, "/articles/demo-001", params={"section": "sports", "k": 5})
    assert _related_ids(sports) == [
        m.id for m in rec.related("demo-001", k=5, section="sports", exclude_story=True)
    ]
    assert sports.xpath("//select[@id='section']/option[@selected]/@value") == ["sports"]
    # A day either side of 6 March: only the same-day follow-up of the quake and its neighbours.
    week = _page(client, "/articles/demo-001", params={"window": 1})
    dates = week.xpath('//ol[@class="related"]//time/@datetime')
    assert dates and all(d.startswith(("2026-03-05", "2026-03-06", "2026-03-07")) for d in dates)
    diverse = _page(client, "/articles/demo-001", params={"diversity": "0.6"})
    mmr = rec.related(
        "demo-001", ranking=rec.ranking.with_options(diversity=0.6), exclude_story=True
    )
    assert _related_ids(diverse) == [m.id for m in mmr]
    assert _related_ids(diverse) != _related_ids(_page(client, "/articles/demo-001"))


def test_bad_controls_fall_back_and_say_why(client: TestClient) -> None:
    doc = _page(client, "/articles/demo-001", params={"k": "abc", "window": "5", "diversity": "2"})
    errors = doc.xpath("string(//div[@role='alert'])")
    assert "1 to 20" in errors and "'abc'" in errors
    assert "date window '5'" in errors and "Diversity" in errors
    assert len(_related_ids(doc)) == 10


def test_window_on_an_undated_story_is_explained(client: TestClient) -> None:
    doc = _page(client, "/articles/" + _quoted(EVIL_ID), params={"window": 7})
    assert "has no date" in doc.xpath("string(//p[@class='note'])")
    assert _related_ids(doc)


def test_unknown_article_is_an_html_404(client: TestClient) -> None:
    doc = _page(client, "/articles/no-such-story", status=404)
    assert doc.xpath("string(//h1)") == "Not found"
    assert "no-such-story" in doc.xpath("string(//*[@role='alert'])")


def test_everything_from_the_index_is_escaped(client: TestClient) -> None:
    response = client.get("/articles/" + _quoted(EVIL_ID))
    assert response.status_code == 200
    html = response.text
    assert "<script>alert" not in html and "<img src=x" not in html and "<b>strike" not in html
    assert "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt;" in html
    doc = lxml.html.fromstring(html)
    assert doc.xpath("string(//h1)") == EVIL_TITLE
    assert not doc.xpath("//img") and not doc.xpath("//i")
    # The only scripts are the page's own.
    assert doc.xpath("//script/@src") == ["/static/app.js"] and not doc.xpath("//script/text()")
    assert "<i>ports</i>" in doc.xpath("string(//span[@class='section'])")
    # It is linked from other lists with its id quoted, and the link leads back to it.
    found = _page(client, "/", params={"q": "Harbour strike"})
    href = found.xpath('//ol[@class="articles"]/li/a/@href')[0]
    assert _id_of(href) == EVIL_ID and "<" not in href and "?" not in href and "#" not in href
    assert _page(client, href).xpath("string(//h1)") == EVIL_TITLE
    # A query that looks like markup comes back as text.
    echoed = client.get("/", params={"q": '"><script>q()</script>'}).text
    assert "<script>q()" not in echoed


def _quoted(article_id: str) -> str:
    from urllib.parse import quote

    return quote(article_id, safe="")


# -- paste a story -------------------------------------------------------------------------


def test_paste_form_renders_without_results(client: TestClient) -> None:
    doc = _page(client, "/similar")
    assert doc.xpath("//form[@method='post']//textarea[@id='story'][@name='story']")
    assert doc.xpath("//label[@for='story']") and doc.xpath("//label[@for='format']")
    assert not doc.xpath('//ol[@class="related"]')


def test_pasted_text_shows_what_the_archive_holds(client: TestClient, rec: Recommender) -> None:
    story = "Dockworkers at Valdora port stay on strike as wage talks stall; cranes idle"
    response = client.post("/similar", data={"story": story, "format": "plain", "k": "4"})
    assert response.status_code == 200, response.text
    doc = lxml.html.fromstring(response.text)
    explained = rec.similar(text=story, k=4, explain=True)
    assert _related_ids(doc) == [m.id for m in explained]
    reasons = [r.removeprefix("Why: ") for r in _texts(doc, "//ol[@class='related']/li")]
    assert reasons == [m.explanation.summary() for m in explained if m.explanation]
    assert "Read as plain story text" in doc.xpath("string(//p[@class='read-as'])")
    # The form keeps what was sent.
    assert doc.xpath("string(//textarea)") == story
    assert doc.xpath("//input[@id='k']/@value") == ["4"]


def test_pasted_html_page_goes_through_the_extraction(client: TestClient, rec: Recommender) -> None:
    page = (Path(__file__).parent / "pages" / "site").glob("*.html")
    html = sorted(page)[0].read_text("utf-8")
    response = client.post("/similar", data={"story": html, "format": "auto"})
    assert response.status_code == 200, response.text
    doc = lxml.html.fromstring(response.text)
    read_as = doc.xpath("string(//p[@class='read-as'])")
    assert "saved web page" in read_as
    from recommender.ingest.pages import extract_html

    extracted = extract_html(html)
    assert extracted.title in read_as
    assert _related_ids(doc) == [
        m.id
        for m in rec.similar(
            title=extracted.title, body=extracted.body, published_at=extracted.published_at
        )
    ]


def test_pasted_scraped_text_page(client: TestClient) -> None:
    text = (
        "Home > World > Ardesh\n"
        "Rescuers search rubble after Serevan earthquake\n"
        "Date: 2026-03-07\n"
        "Share\n"
        "Rescue teams dug through collapsed homes in Kalvar on Saturday as the death toll from "
        "the Serevan province earthquake rose, officials in Ardesh said.\n"
        "Aid convoys reached mountain villages cut off by landslides.\n"
    )
    response = client.post(
        "/similar", data={"story": text, "format": "text", "window": "7", "k": "5"}
    )
    doc = lxml.html.fromstring(response.text)
    assert response.status_code == 200, response.text
    read_as = doc.xpath("string(//p[@class='read-as'])")
    assert "Rescuers search rubble" in read_as and "7 Mar 2026" in read_as
    ids = _related_ids(doc)
    assert ids and ids[0] in {"demo-001", "demo-011", "demo-021", "demo-025", "demo-081"}
    assert all(d.startswith("2026-03") for d in doc.xpath('//ol[@class="related"]//time/@datetime'))


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        ({"story": "   "}, 422, "story field is empty"),
        ({"story": "x", "format": "pdf"}, 422, "unknown format 'pdf'"),
        ({"story": "<html><body><p>Too short.</p></body></html>"}, 400, "no story text"),
    ],
)
def test_paste_problems_are_shown_on_the_form(
    client: TestClient, data: dict[str, str], status: int, message: str
) -> None:
    response = client.post("/similar", data=data)
    assert response.status_code == status, response.text
    doc = lxml.html.fromstring(response.text)
    assert message in doc.xpath("string(//div[@role='alert'])")
    assert doc.xpath("//textarea[@id='story']")


def test_paste_needs_a_form_body(client: TestClient) -> None:
    response = client.post("/similar", json={"story": "x"})
    assert response.status_code == 415
    assert "application/x-www-form-urlencoded" in response.text


def test_paste_with_a_bad_option_still_answers(client: TestClient) -> None:
    response = client.post("/similar", data={"story": "earthquake rescue teams", "k": "0"})
    doc = lxml.html.fromstring(response.text)
    assert response.status_code == 200
    assert "'0'" in doc.xpath("string(//div[@role='alert'])")
    assert len(_related_ids(doc)) == 10


def test_page_numbers_out_of_range(client: TestClient) -> None:
    for page in ("0", "-3", "x", "99", str(10**30)):
        doc = _page(client, "/", params={"page": page})
        assert doc.xpath("//h1/text()") == ["Articles"], page


# -- the service around it -----------------------------------------------------------------


def test_json_api_auth_and_read_only_are_unchanged(rec: Recommender) -> None:
    with TestClient(create_app(rec, token=TOKEN, allow_writes=False)) as c:
        assert c.get("/articles/demo-001").status_code == 200
        assert c.post("/similar", data={"story": "earthquake rescue"}).status_code == 200
        assert c.get("/v1/articles/demo-001/related").json()["id"] == "demo-001"
        assert c.delete("/v1/articles/demo-001", headers=_auth()).status_code == 403
        missing = c.get("/v1/articles/nope")
        assert missing.status_code == 404 and missing.json()["error"]["type"]
        schema = c.get("/openapi.json").json()
        assert not any(p == "/" or p.startswith(("/articles", "/similar")) for p in schema["paths"])
    with TestClient(create_app(rec, token=TOKEN)) as c:
        assert c.delete("/v1/articles/demo-001").status_code == 401


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def test_static_assets_ship_in_the_package(client: TestClient) -> None:
    from importlib import resources

    css = client.get("/static/style.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert ":focus-visible" in css.text and "@media" in css.text
    assert client.get("/static/app.js").status_code == 200
    root = resources.files("recommender")
    for name in ("base.html", "article.html", "index.html", "similar.html", "error.html"):
        assert (root / "serving" / "templates" / name).is_file(), name


def test_package_data_covers_templates_and_static() -> None:
    # An editable install reads the source tree; a wheel has only what package-data names.
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"serving/templates/*.html", "serving/static/*"' in pyproject


def test_sections_follow_writes(tmp_path: Path) -> None:
    from recommender.embedding.encoders import HashingEncoder as Hashing

    path = tmp_path / "idx"
    first = Article(
        id="a", title="Port strike", body="dockworkers strike at the port", section="business"
    )
    with Recommender.build([first], path, encoder=Hashing(64)) as rec:
        assert rec.sections() == {"business": 1}
        rec.upsert(
            [Article(id="b", title="Quake", body="an earthquake shook the city", section="World")]
        )
        assert rec.sections() == {"World": 1, "business": 1}
        with Recommender.open(path, encoder=Hashing(64)) as other:
            other.remove(["a"])
        assert rec.sections() == {"World": 1}
