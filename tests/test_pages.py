"""Saved news pages, as sites publish them, extracted to the story and the page's metadata.

The pages under tests/pages/ are invented stories in the templates real sites use, each with
the noise that must not reach the index (menus, breadcrumbs, share buttons, related and
most-read lists, comments, cookie banners, newsletter boxes, footers):

    site/   six story pages and one section front without a story (rejected)
    amp/    a story page and its AMP copy, both naming the same canonical URL
    query/  another site's page on the same story as site/local_news.html

site/dessert_cp1252.html is windows-1252, not UTF-8, and declares it with <meta charset>.
It was written as text and saved with

    Path("tests/pages/site/dessert_cp1252.html").write_bytes(text.encode("cp1252"))

so an editor that re-saves it as UTF-8 breaks test_cp1252_page_is_really_cp1252: re-encode it
the same way after editing.
"""

from __future__ import annotations

import json
import shutil
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from recommender.cli import main
from recommender.errors import InputError
from recommender.ingest.pages import MAX_PAGE_BYTES, Page, decode_page, extract_page
from recommender.ingest.records import parse_datetime, read_records
from recommender.types import Article, Rejection

PAGES = Path(__file__).resolve().parent / "pages"
SITE = PAGES / "site"
AMP = PAGES / "amp"
QUERY = PAGES / "query"
FAST = ["--model", "hashing:256", "--quiet"]

# Page file -> the id read_records gives it: the canonical URL, else the path in the folder.
GOOD_PAGES = {
    "barn_owls_comments.html": "https://northfieldcourier.example/2026/02/09/barn-owl-survey-record/",
    "dessert_cp1252.html": "dessert_cp1252.html",
    "ferries_cookie_newsletter.html": "ferries_cookie_newsletter.html",
    "local_news.html": (
        "https://www.elmsfordgazette.example/local/transport/council-approves-marrow-footbridge"
    ),
    "stalagmites_jsonld.html": (
        "https://valleyscience.example/earth/hollin-cave-stalagmites-drought"
    ),
    "waermepumpen_de.html": (
        "https://www.kelmbacher-rundschau.example/wirtschaft/waermepumpen-altbau-pilotprojekt-100.html"
    ),
}
STORYLESS_PAGE = "sport_section_front.html"
LIGHTHOUSE_URL = "https://dunmorepost.example/news/skerrow-point-lighthouse-museum"

# A distinctive phrase from every noise block of every page: none may reach title or body.
NOISE = {
    "local_news.html": [
        "Serving the Marrow valley",  # masthead
        "Births, Marriages",  # top navigation menu
        "What's On in Elmsford",
        "Subscribe to the print edition",
        "Transport and Roads",  # breadcrumb
        "Share on Facebook",  # share buttons
        "Email this story to a friend",
        "Share this article",
        "Local Democracy Reporter",  # byline
        "Related stories",  # related-stories list
        "Hill Street bakery marks fifty years",
        "Sunday afternoons from April",
        "Junior rowing crew lifts regional trophy",
        "Station car park charges",
        "Elmsford Gazette Media Ltd",  # footer
        "Contact the newsroom",
        "Independent Press Standards Organisation",
    ],
    "barn_owls_comments.html": [
        "Obituaries",  # menu
        "Miguel Garza",  # byline
        "School board delays vote",  # previous/next post links
        "Township signs new snow plough contract",
        "thoughts on",  # comments heading
        "Dot Pemberton",  # comment authors and comment text
        "My late father put up the first owl box",
        "Saw one hunting along the bypass verge",
        "reflective posts for wildlife crossings",
        "what about the kestrels",
        "Leave a Reply",  # comment form
        "Your email address will not be published",
        "Post Comment",
        "very old printing press",  # footer
    ],
    "ferries_cookie_newsletter.html": [
        "Sign in",  # top bar
        "143 partners use cookies",  # cookie banner
        "privacy settings link",
        "Accept all cookies",
        "Manage my preferences",
        "Harbourline Morning Briefing",  # newsletter box in the middle of the story
        "top stories from around the coast",
        "Sign me up",
        "unsubscribe at any time",
        "Fiona MacLeod",  # byline
        "Coastal Titles plc",  # footer
    ],
    "stalagmites_jsonld.html": [
        "The Lab Bench podcast",  # menu
        "Advertisement",  # ad slot
        "Dr. Imogen Starling",  # byline
        "More from Earth",  # sidebar
        "Drone survey maps retreat",
        "iron meteorite the size of a football",
        "Support our reporting",  # footer
    ],
    "waermepumpen_de.html": [
        "Jetzt abonnieren",  # menu
        "Energiewende",  # kicker above the headline
        "Von Jonas Brettschneider",  # byline
        "Meistgelesen",  # most-read sidebar
        "Pegel an der Kelm",
        "Neue Buslinie verbindet",
        "TSV Kelmbach gewinnt",
        "Stadttheater stellt neuen Spielplan vor",
        "Verlagsgesellschaft",  # footer
        "Impressum",
        "Datenschutzerklärung",
    ],
    "dessert_cp1252.html": [
        "Letters to the Editor",  # menu
        "Classifieds",
        "By Renée Galloway",  # byline
        "Est. 1912",  # footer
    ],
}


@cache
def _extracted(path: Path) -> Page:
    return extract_page(path.read_bytes(), "html")


def page(name: str) -> Page:
    """A page of tests/pages/site (or a path under tests/pages), extracted once per run."""
    return _extracted(SITE / name if "/" not in name else PAGES / name)


def paragraphs(text: str) -> list[str]:
    return text.split("\n\n")


def split(items: list[Article | Rejection]) -> tuple[list[Article], list[Rejection]]:
    articles = [item for item in items if isinstance(item, Article)]
    rejections = [item for item in items if isinstance(item, Rejection)]
    assert len(articles) + len(rejections) == len(items)
    return articles, rejections


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


# -- one page at a time --------------------------------------------------------------------


def test_local_news_page_keeps_the_story_and_its_metadata() -> None:
    found = page("local_news.html")
    assert found.title == "Council approves £2.4m footbridge over the River Marrow"
    assert found.body.startswith(
        "Elmsford councillors have approved plans for a £2.4 million footbridge across the"
        " River Marrow, ending a twelve-year campaign"
    )
    assert "Councillor Priya Anand, who chairs the committee, said" in found.body
    assert found.body.endswith("during which part of the riverside path will be closed.")
    assert len(paragraphs(found.body)) == 5
    assert found.published_at == "2026-03-04T08:15:00Z"  # <time datetime> in the <article>
    assert found.url == (
        "https://www.elmsfordgazette.example/local/transport/council-approves-marrow-footbridge"
    )
    assert found.language == "en"  # <html lang="en-GB">
    assert found.section == "Local"
    assert found.tags == ("Elmsford", "footbridge", "River Marrow", "planning")
    assert found.problem() is None


def test_comments_page_keeps_the_story_not_the_comments() -> None:
    found = page("barn_owls_comments.html")
    assert found.title == "Volunteers count record number of barn owls in Harrow Vale survey"
    assert found.body.startswith(
        "Volunteers with the Harrow Vale Wildlife Trust found 64 breeding pairs of barn owls"
    )
    assert "“Barn owls hunt over rough grassland, where voles live," in found.body
    assert found.body.endswith("to force hunting birds to fly higher over the road.")
    assert len(paragraphs(found.body)) == 5
    assert found.published_at == "2026-02-09T17:02:11-05:00"
    assert found.url == "https://northfieldcourier.example/2026/02/09/barn-owl-survey-record/"
    assert found.language == "en"
    assert found.section == "Environment"
    assert found.tags == ()


def test_cookie_banner_and_newsletter_box_are_dropped() -> None:
    found = page("ferries_cookie_newsletter.html")
    assert found.title == "Kessock Bay crossing to switch to battery-electric ferries"
    assert found.body.startswith(
        "The ferry service across Kessock Bay will be run by two battery-electric vessels"
    )
    # The paragraphs on both sides of the newsletter box follow each other directly.
    assert (
        "the two old ferries that have worked the crossing since 1994.\n\n"
        "Building the charging points is the larger job."
    ) in found.body
    assert found.body.endswith("in case the batteries struggle in cold weather.")
    assert len(paragraphs(found.body)) == 5
    assert found.published_at == "2026-03-12T10:05:00Z"  # <meta name="pubdate">
    assert found.url is None  # no canonical link, no og:url: the id will be the file's path
    assert found.language == "en"
    assert found.section == "Transport"  # <meta name="section">
    assert found.tags == ("ferries", "electric vessels", "Kessock Bay")  # <meta name="keywords">


def test_date_section_and_keywords_only_in_json_ld() -> None:
    found = page("stalagmites_jsonld.html")
    assert found.title == "Stalagmites in Hollin Cave record five centuries of drought"
    assert found.body.startswith(
        "Layers of rock inside stalagmites from Hollin Cave hold a record of rainfall"
    )
    assert "the worst lasting eleven years in the late sixteenth century." in found.body
    assert found.body.endswith("published in the Journal of Karst Climate Research.")
    assert len(paragraphs(found.body)) == 4
    assert found.published_at == "2026-02-17T14:30:00+01:00"  # datePublished, not dateModified
    assert found.url == "https://valleyscience.example/earth/hollin-cave-stalagmites-drought"
    assert found.language == "en"  # no <html lang>: JSON-LD inLanguage "en-GB"
    assert found.section == "Earth Sciences"
    assert found.tags == ("caves", "climate history", "geology", "stalagmites")


def test_opengraph_tags_and_german_language() -> None:
    found = page("waermepumpen_de.html")
    assert found.title == "Stadtwerke Kelmbach testen Wärmepumpen in Altbauten"
    # The story starts with its standfirst, not with the kicker, headline or byline.
    assert found.body.startswith(
        "Zwanzig Häuser aus der Gründerzeit bekommen in diesem Jahr Wärmepumpen statt Gasheizungen."
    )
    assert "Die Stadtwerke Kelmbach starten im Frühjahr ein Pilotprojekt" in found.body
    assert "„Wir wollen keine Prospektwerte, sondern echte Zahlen aus Kelmbach“" in found.body
    assert found.body.endswith("einen Festpreis für den Umbau anbieten.")
    assert found.published_at == "2026-01-22T06:45:00+01:00"
    assert found.url == (
        "https://www.kelmbacher-rundschau.example/wirtschaft/waermepumpen-altbau-pilotprojekt-100.html"
    )
    assert found.language == "de"  # <html lang="de-DE">
    assert found.section == "Wirtschaft"
    assert found.tags == ("Energie", "Wärmepumpen")


def test_cp1252_page_keeps_its_accented_words() -> None:
    found = page("dessert_cp1252.html")
    assert found.title == "Muñoz’s crème brûlée takes gold in Zürich"  # noqa: RUF001
    assert found.body.startswith(
        "José Muñoz, the pastry chef at Café Bélanger on Quay Street, has won the gold medal"
        " at the European Dessert Championship in Zürich"
    )
    assert "The judges praised the “glass-thin” caramel crust" in found.body
    assert "“I’ve been making this dessert every Friday for eight years" in found.body  # noqa: RUF001
    assert "Café Bélanger’s owner, Élodie Bélanger, said" in found.body  # noqa: RUF001
    assert found.body.endswith("a crêpe soufflé with mountain cherries.")
    assert "\ufffd" not in found.body
    assert found.published_at == "2026-03-01"
    assert found.url is None
    assert found.language == "en"
    assert found.section == "Food & Drink"
    assert found.tags == ("desserts", "competitions", "Café Bélanger")


def test_section_front_without_a_story_is_rejected() -> None:
    found = page(STORYLESS_PAGE)
    assert found.body == ""
    problem = found.problem()
    assert problem is not None
    assert problem.startswith("no story text found: 0 words, fewer than 10")


@pytest.mark.parametrize(
    ("name", "phrase"), [(name, phrase) for name, phrases in NOISE.items() for phrase in phrases]
)
def test_noise_never_reaches_title_or_body(name: str, phrase: str) -> None:
    found = page(name)
    assert phrase.casefold() not in found.body.casefold()
    assert phrase.casefold() not in found.title.casefold()


@pytest.mark.parametrize("name", sorted(GOOD_PAGES))
def test_headline_is_not_repeated_in_the_body(name: str) -> None:
    found = page(name)
    assert found.title
    assert found.title not in found.body


@pytest.mark.parametrize("name", sorted(GOOD_PAGES))
def test_every_fixture_story_is_a_full_article(name: str) -> None:
    assert len(page(name).body.split()) >= 120


# -- encodings -----------------------------------------------------------------------------


def test_cp1252_page_is_really_cp1252() -> None:
    raw = (SITE / "dessert_cp1252.html").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert "José Muñoz".encode("cp1252") in raw
    assert b'<meta charset="windows-1252">' in raw


def test_declared_cp1252_decodes_accents_and_curly_quotes() -> None:
    text = decode_page((SITE / "dessert_cp1252.html").read_bytes())
    for word in ("José Muñoz", "Zürich", "crème brûlée", "“glass-thin”", "I’ve", "Élodie"):  # noqa: RUF001
        assert word in text


def test_cp1252_declared_by_http_equiv() -> None:
    raw = (
        (SITE / "dessert_cp1252.html")
        .read_bytes()
        .replace(
            b'<meta charset="windows-1252">',
            b'<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">',
        )
    )
    found = extract_page(raw, "html")
    assert found.title == "Muñoz’s crème brûlée takes gold in Zürich"  # noqa: RUF001
    assert found.body.startswith("José Muñoz, the pastry chef at Café Bélanger")


def test_xhtml_page_with_an_xml_declaration() -> None:
    raw = (SITE / "dessert_cp1252.html").read_bytes()
    raw = raw.replace(b"<!DOCTYPE html>\n", b'<?xml version="1.0" encoding="windows-1252"?>\n')
    raw = raw.replace(b'<meta charset="windows-1252">\n', b"")
    raw = raw.replace(
        b'<html lang="en">', b'<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en">'
    )
    assert decode_page(raw).count("José Muñoz") >= 1
    found = extract_page(raw, "html")
    assert found.title == "Muñoz’s crème brûlée takes gold in Zürich"  # noqa: RUF001
    assert found.body.startswith("José Muñoz, the pastry chef at Café Bélanger")
    assert found.language == "en"


def test_undeclared_cp1252_is_detected_as_cp1252() -> None:
    raw = (SITE / "dessert_cp1252.html").read_bytes().replace(b'<meta charset="windows-1252">', b"")
    text = decode_page(raw)
    for word in ("José Muñoz", "Zürich", "crème brûlée", "“glass-thin”"):
        assert word in text


# -- dates ---------------------------------------------------------------------------------


def test_copyright_year_is_not_a_publication_date() -> None:
    html = (SITE / "ferries_cookie_newsletter.html").read_text(encoding="utf-8")
    html = html.replace('<meta name="pubdate" content="2026-03-12T10:05:00Z">\n', "")
    html = html.replace(
        "<p>Harbourline News is published", "<p>© 2026 Harbourline News is published"
    )
    found = extract_page(html.encode("utf-8"), "html")
    assert found.body.startswith("The ferry service across Kessock Bay")
    # The page does not say when the story was published; "© 2026" is not 2026-01-01.
    assert found.published_at is None


# -- size limit ----------------------------------------------------------------------------


def _padded_page(size: int) -> bytes:
    """The local-news page padded to exactly ``size`` bytes with an HTML comment."""
    raw = (SITE / "local_news.html").read_bytes()
    head, tail = raw.split(b"</body>")
    filler = size - len(raw) - len(b"<!--") - len(b"-->")
    assert filler > 0
    return head + b"<!--" + b"x" * filler + b"-->" + b"</body>" + tail


def test_page_over_the_size_limit_raises() -> None:
    with pytest.raises(InputError, match=rf"over the limit of {MAX_PAGE_BYTES:,}"):
        extract_page(_padded_page(MAX_PAGE_BYTES + 1), "html")


def test_page_at_the_size_limit_is_read() -> None:
    found = extract_page(_padded_page(MAX_PAGE_BYTES), "html")
    assert found.title == "Council approves £2.4m footbridge over the River Marrow"
    assert "x" * 100 not in found.body


def test_oversized_page_in_a_folder_is_one_rejection(tmp_path: Path) -> None:
    folder = tmp_path / "pages"
    folder.mkdir()
    (folder / "a_huge.html").write_bytes(_padded_page(MAX_PAGE_BYTES + 1))
    shutil.copy(SITE / "stalagmites_jsonld.html", folder / "b_story.html")
    articles, rejections = split(list(read_records([folder])))
    assert [a.id for a in articles] == [GOOD_PAGES["stalagmites_jsonld.html"]]
    assert len(rejections) == 1
    assert rejections[0].source.endswith("a_huge.html")
    assert f"over the limit of {MAX_PAGE_BYTES:,}" in rejections[0].reason


# -- folders -------------------------------------------------------------------------------


def test_folder_read_keeps_good_pages_and_rejects_the_storyless_one() -> None:
    articles, rejections = split(list(read_records([SITE])))
    assert [a.id for a in articles] == [GOOD_PAGES[name] for name in sorted(GOOD_PAGES)]
    assert len(rejections) == 1
    assert rejections[0].source.endswith(STORYLESS_PAGE)
    assert rejections[0].reason.startswith("html page: no story text found")
    by_id = {a.id: a for a in articles}
    owls = by_id[GOOD_PAGES["barn_owls_comments.html"]]
    assert owls.title == "Volunteers count record number of barn owls in Harrow Vale survey"
    assert owls.published_at == parse_datetime("2026-02-09T22:02:11Z")
    assert owls.section == "Environment" and owls.language == "en"
    ferries = by_id["ferries_cookie_newsletter.html"]
    assert ferries.url is None and ferries.tags == ("ferries", "electric vessels", "Kessock Bay")
    for name, article_id in GOOD_PAGES.items():
        assert by_id[article_id].body == page(name).body


def test_amp_copy_shares_the_canonical_id_and_is_a_duplicate() -> None:
    original, amp = page("amp/lighthouse.html"), page("amp/lighthouse.amp.html")
    assert original.url == amp.url == LIGHTHOUSE_URL
    assert amp.title == original.title
    assert amp.body == original.body
    assert original.body.startswith("The empty keeper's cottage beside the Skerrow Point")
    for noise in ("Jobs board", "Menu", "Share on Facebook", "View the full site", "Kessock"):
        assert noise not in amp.body
    articles, rejections = split(list(read_records([AMP])))
    assert [a.id for a in articles] == [LIGHTHOUSE_URL]
    assert len(rejections) == 1
    assert rejections[0].reason.startswith(f"duplicate id {LIGHTHOUSE_URL!r}")


# -- command line --------------------------------------------------------------------------


def test_extract_folder_json_prints_good_pages_and_exits_5(runner: CliRunner) -> None:
    result = runner.invoke(main, ["extract", str(SITE), "--json"])
    assert result.exit_code == 5, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in records] == [GOOD_PAGES[name] for name in sorted(GOOD_PAGES)]
    for record, name in zip(records, sorted(GOOD_PAGES), strict=True):
        found = page(name)
        assert record["title"] == found.title
        assert record["body"] == found.body
        assert record["language"] == found.language
    assert STORYLESS_PAGE in result.stderr
    assert "no story text found" in result.stderr
    assert "6 extracted, 1 rejected" in result.stderr


def _good_pages_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "pages"
    folder.mkdir()
    for name in GOOD_PAGES:
        shutil.copy(SITE / name, folder / name)
    shutil.copy(AMP / "lighthouse.html", folder / "lighthouse.html")
    return folder


def _build(runner: CliRunner, source: Path, index: Path) -> None:
    result = runner.invoke(main, ["build", str(source), "--index", str(index), *FAST])
    assert result.exit_code == 0, result.output
    assert "indexed 7, rejected 0" in result.output


def _similar(runner: CliRunner, index: Path, query: Path) -> list[dict[str, Any]]:
    result = runner.invoke(
        main, ["similar", "--index", str(index), "--file", str(query), "--json", "-k", "10"]
    )
    assert result.exit_code == 0, result.output
    matches: list[dict[str, Any]] = json.loads(result.stdout)
    return matches


@pytest.mark.parametrize(
    "query",
    [QUERY / "footbridge_followup.html", SITE / "stalagmites_jsonld.html"],
    ids=["same-story-other-site", "indexed-page"],
)
def test_index_from_pages_ranks_like_index_from_extracted_jsonl(
    tmp_path: Path, runner: CliRunner, query: Path
) -> None:
    folder = _good_pages_folder(tmp_path)
    extracted = runner.invoke(main, ["extract", str(folder), "--json"])
    assert extracted.exit_code == 0, extracted.output
    jsonl = tmp_path / "pages.jsonl"
    jsonl.write_text(extracted.stdout, encoding="utf-8")
    assert len(jsonl.read_text(encoding="utf-8").splitlines()) == 7

    _build(runner, folder, tmp_path / "from_pages")
    _build(runner, jsonl, tmp_path / "from_jsonl")
    from_pages = _similar(runner, tmp_path / "from_pages", query)
    from_jsonl = _similar(runner, tmp_path / "from_jsonl", query)

    assert len(from_pages) == 7
    assert [m["id"] for m in from_pages] == [m["id"] for m in from_jsonl]
    assert [m["score"] for m in from_pages] == pytest.approx([m["score"] for m in from_jsonl])
    strip = [{k: v for k, v in m.items() if k != "score"} for m in from_pages]
    assert strip == [{k: v for k, v in m.items() if k != "score"} for m in from_jsonl]


def test_page_on_the_same_story_finds_it_first(tmp_path: Path, runner: CliRunner) -> None:
    folder = _good_pages_folder(tmp_path)
    _build(runner, folder, tmp_path / "idx")
    matches = _similar(runner, tmp_path / "idx", QUERY / "footbridge_followup.html")
    assert matches[0]["id"] == GOOD_PAGES["local_news.html"]
    assert matches[0]["title"] == "Council approves £2.4m footbridge over the River Marrow"
    assert matches[0]["score"] > matches[1]["score"]


# -- hardening (issue 19): URLs, encodings, bytes that are not pages -----------------------

STORY_HTML = """<html lang="en"><head><title>Harbour budget approved</title>{head}</head>
<body><article><h1>{headline}</h1>
<p>The council voted on Tuesday to approve the new harbour budget after a long debate that
ran late into the evening, with dock workers watching from the public gallery.</p>
<p>The plan funds two new cranes and a safety review of the old quay, officials said.</p>
</article></body></html>"""


def _story(head: str = "", headline: str = "Harbour budget approved") -> bytes:
    return STORY_HTML.format(head=head, headline=headline).encode("utf-8")


@pytest.mark.parametrize(
    ("head", "url"),
    [
        ('<link rel="canonical" href="javascript:alert(1)">', None),
        ('<link rel="canonical" href=" JaVaScRiPt:alert(1)">', None),
        ('<link rel="canonical" href="data:text/html,x">', None),
        (
            '<link rel="canonical" href="javascript:alert(1)">'
            '<meta property="og:url" content="https://news.example/harbour">',
            "https://news.example/harbour",
        ),
        ('<meta property="og:url" content="HTTPS://news.example/a">', "https://news.example/a"),
        ('<link rel="canonical" href="/2026/03/harbour.html">', "/2026/03/harbour.html"),
    ],
)
def test_page_urls_pass_the_url_check(head: str, url: str | None) -> None:
    assert extract_page(_story(head), "html").url == url


def test_unsafe_canonical_link_never_becomes_the_id(tmp_path: Path) -> None:
    path = tmp_path / "story.html"
    path.write_bytes(_story('<link rel="canonical" href="javascript:alert(1)">'))
    (article,) = read_records([path])
    assert isinstance(article, Article)
    assert (article.id, article.url) == (str(path), None)


def test_lone_surrogate_escape_in_json_ld_is_repaired() -> None:
    ld = '<script type="application/ld+json">{"@type": "NewsArticle", "headline": "A\\ud800B"}'
    found = extract_page(_story(ld + "</script>"), "html")
    assert found.title == "A\ufffdB"


@pytest.mark.parametrize(
    ("charset", "literal"),
    [("utf-7", "+ADw-b+AD4-"), ("unicode_escape", "\\u0041\\u0042"), ("base64", "QUJD")],
)
def test_charsets_that_invent_characters_are_not_used(charset: str, literal: str) -> None:
    raw = _story(f'<meta charset="{charset}">', headline=f"Harbour {literal}")
    assert f"Harbour {literal}" in decode_page(raw)


def test_binary_file_with_a_page_extension_is_rejected_unread(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="binary file"):
        extract_page(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR secret words here", "html")
    folder = tmp_path / "pages"
    folder.mkdir()
    (folder / "image.html").write_bytes(b"GIF89a\x00\x00 root:x:0:0 more secret words")
    (folder / "notes.txt").write_text("root:x:0:0:root:/root:/bin/bash\n", encoding="utf-8")
    _, rejections = split(list(read_records([folder])))
    assert [r.reason for r in rejections] == [
        "binary file (NUL bytes), not a page",
        "text page: no story text found: 0 words, fewer than 10",
    ]
    # Neither the reason nor the message quotes the file.
    assert all("root:x" not in f"{r.reason} {r}" for r in rejections)


def test_storyless_page_reason_does_not_quote_the_page() -> None:
    problem = page(STORYLESS_PAGE).problem()
    assert problem == "no story text found: 0 words, fewer than 10"
