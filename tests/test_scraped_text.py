"""Scraped plain-text news pages: the story kept, the site around it removed.

The pages below are invented stories written in the layouts real sites have when their text
is scraped or copied: breadcrumbs, share bars, date and byline lines, author blurbs, tag
lists, cookie and newsletter banners, comments and lists of other headlines. The real page
in ../shared/examples/scraped_page.txt (third-party text, never copied here) is the
acceptance check; its tests skip where that folder is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from recommender.ingest.pages import Page
from recommender.ingest.scraped_text import parse_scraped_text

EXAMPLE = Path(__file__).resolve().parents[2] / "shared" / "examples" / "scraped_page.txt"


def paragraphs(page: Page) -> list[str]:
    return page.body.split("\n\n") if page.body else []


def everything(page: Page) -> str:
    return f"{page.title}\n{page.body}"


# -- the real example ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example() -> Page:
    if not EXAMPLE.is_file():
        pytest.skip(f"{EXAMPLE} is absent (it lives in ../shared, beside the project)")
    return parse_scraped_text(EXAMPLE.read_text(encoding="utf-8"))


def test_example_title_is_the_clean_headline(example: Page) -> None:
    assert example.title == "U.S. agrees to help Panama deport migrants crossing Darién Gap"


def test_example_body_is_the_story(example: Page) -> None:
    assert example.body.startswith("The U.S. and Panama signed an agreement")
    assert "a regional response" in example.body
    assert "\n\n" in example.body
    assert example.body.endswith("to get to the U.S. border.")


def test_example_body_ends_before_the_author_blurb(example: Page) -> None:
    assert "Camilo Montoya-Galvez is the immigration reporter" not in example.body
    assert "Montoya-Galvez" not in example.body


def test_example_drops_chrome_and_other_headlines(example: Page) -> None:
    text = everything(example)
    for noise in (
        "Taylor Swift",
        "Krispy Kreme",
        "Rams vs. 49ers",
        "Home > Scams",
        "veryGood",
        "AssetTrainer",
        "Date:",
        "Related",
        "Ranking",
        "Recommendation",
        "In:",
    ):
        assert noise not in text, noise
    assert "View" not in paragraphs(example)


def test_example_metadata(example: Page) -> None:
    assert example.published_at == "2025-04-15T07:30:54"
    assert "Immigration" in example.tags
    assert "Panama" in example.tags
    assert example.section == "Scams"  # the breadcrumb's section, the glued title cut off
    assert example.problem() is None


# -- a local-news page: nav, "Most read" list, comment count and comments ---------------------

LOCAL_NEWS = """\
Skip to main content
Menu
Search
Sign in
Riverton Gazette
News \u203a Local \u203a Transport
Bus route 9 to be cut back as council faces budget gap
By Maria Lopez
Published: April 3, 2025 at 6:15 PM
12 Comments
Share
Riverton's busiest bus route will stop short of the hospital from June, the city council \
decided on Tuesday night after a three-hour meeting.
Route 9, which carries about 4,000 riders a day, will end at Market Square instead of \
continuing to St. Anne's Hospital, saving the city an estimated $1.2 million a year.
Advertisement
Story continues below advertisement
Councillor Dev Patel, who voted against the change, said patients and hospital staff would \
be hit hardest. "People who rely on this bus have no other way to get there," he said.
The council said a shuttle would run between Market Square and the hospital at peak hours.
Most read
1. Man charged after break-in at Elm Street pharmacy
2. High school robotics team heads to national finals
3. Weekend weather: rain clearing by Sunday afternoon
Comments (12)
Jim R.: This is a disgrace. The hospital route is the only one I take every single week.
Pat K.: I agree with the council, the budget has to balance somewhere and this is fair.
© 2025 Riverton Gazette. All rights reserved.
"""


def test_local_news_keeps_the_story_in_order() -> None:
    page = parse_scraped_text(LOCAL_NEWS)
    assert page.title == "Bus route 9 to be cut back as council faces budget gap"
    body = paragraphs(page)
    assert len(body) == 4
    assert body[0].startswith("Riverton's busiest bus route")
    assert body[-1] == (
        "The council said a shuttle would run between Market Square and the hospital at peak hours."
    )


def test_local_news_drops_nav_ads_lists_and_comments() -> None:
    page = parse_scraped_text(LOCAL_NEWS)
    for noise in (
        "Skip to main content",
        "Sign in",
        "Maria Lopez",
        "Comments",
        "Advertisement",
        "advertisement",
        "Most read",
        "pharmacy",
        "robotics",
        "disgrace",
        "I agree with the council",
        "All rights reserved",
    ):
        assert noise not in everything(page), noise


def test_local_news_metadata() -> None:
    page = parse_scraped_text(LOCAL_NEWS)
    assert page.published_at == "2025-04-03T18:15:00"
    assert page.section == "Transport"


# -- a wire story: "Published:" and "Updated:" lines, credits, "Tags:" --------------------------

WIRE_STORY = """\
WORLD NEWS
Dutch farmers block motorways in protest over nitrogen rules
Published: 15 April 2025 7:30 AM
Updated: 15 April 2025 9:02 AM
3 min read
AMSTERDAM (Wire) - Hundreds of farmers drove tractors onto motorways across the \
Netherlands on Tuesday, causing tailbacks of more than 500 kilometres at the morning peak.
The protest is aimed at government plans to cut nitrogen emissions near nature reserves, \
which farmers say would force thousands of livestock farms to close.
"We are being pushed out of business," said one farmer from Gelderland.
Police said the blockades were cleared by midday.
Reporting by Anna Berg; Editing by Tom Hale
Tags: Netherlands, agriculture, protests
"""


def test_wire_story_takes_the_publication_time_not_the_update() -> None:
    page = parse_scraped_text(WIRE_STORY)
    assert page.published_at == "2025-04-15T07:30:00"


def test_wire_story_tags_become_tags() -> None:
    page = parse_scraped_text(WIRE_STORY)
    assert page.tags == ("Netherlands", "agriculture", "protests")
    assert "Tags" not in page.body


def test_wire_story_body_without_date_lines_or_credits() -> None:
    page = parse_scraped_text(WIRE_STORY)
    assert page.title == "Dutch farmers block motorways in protest over nitrogen rules"
    body = paragraphs(page)
    assert body[0].startswith("AMSTERDAM (Wire) - Hundreds of farmers")
    # A genuine one-sentence closing paragraph is the story's end, not a stray headline.
    assert body[-1] == "Police said the blockades were cleared by midday."
    for noise in ("Published", "Updated", "min read", "Reporting by", "Editing by", "WORLD NEWS"):
        assert noise not in page.body, noise


# -- other stories' headlines after the story, with no header above them -----------------------

TRAILING_HEADLINES = """\
Court delays ruling on harbour dredging permit
April 15, 2025
A federal judge on Monday postponed her decision on whether the port authority may dredge \
the outer harbour, asking both sides for more evidence on the impact on seagrass beds.
Environmental groups argue the dredging would destroy a nursery for juvenile fish. The \
port says the channel must be deepened for larger container ships.
The hearing resumes on Monday.
Storm knocks out power to 20,000 homes
City unveils plan for new waterfront park
Being a parent is hard. Here is what helps.
Why are egg prices still climbing?
Local chef wins national award
"""


def test_trailing_headlines_without_header_are_dropped() -> None:
    page = parse_scraped_text(TRAILING_HEADLINES)
    for headline in ("Storm knocks", "waterfront park", "Being a parent", "egg prices", "chef"):
        assert headline not in page.body, headline


def test_short_final_paragraph_is_kept() -> None:
    page = parse_scraped_text(TRAILING_HEADLINES)
    body = paragraphs(page)
    assert len(body) == 3
    assert body[-1] == "The hearing resumes on Monday."
    assert page.title == "Court delays ruling on harbour dredging permit"
    assert page.published_at == "2025-04-15"


def test_short_final_paragraph_is_kept_when_nothing_follows() -> None:
    story = "\n".join(TRAILING_HEADLINES.splitlines()[:5])
    assert paragraphs(parse_scraped_text(story))[-1] == "The hearing resumes on Monday."


# -- cookie banner, newsletter box and inline promos in the middle of the story -----------------

BANNERS = """\
We use cookies to improve your experience. By continuing to browse, you agree to our \
Cookie Policy.
Accept all cookies
Manage preferences
Ferry timetable cut as crew shortage bites
Tuesday, 15 April 2025
Island ferry services will run every two hours instead of hourly from next week, the \
operator said, blaming a shortage of qualified deck crew.
Sign up for our free Morning Briefing newsletter and get the day's top stories in your inbox.
Enter your email address
Subscribe
The operator said it had recruited 14 new crew members who would complete training in June.
READ MORE: Islanders protest over ferry fares
Residents said the cuts would make it harder to reach the mainland hospital.
Listen to this article
This site uses cookies to measure traffic. You can change your cookie settings at any time.
Normal service is expected to resume in July.
"""


def test_banners_and_promos_in_the_middle_are_removed() -> None:
    page = parse_scraped_text(BANNERS)
    for noise in (
        "cookies",
        "Cookie",
        "newsletter",
        "Enter your email",
        "Subscribe",
        "READ MORE",
        "Islanders protest",
        "Listen to this article",
    ):
        assert noise not in page.body, noise


def test_banners_do_not_split_the_story() -> None:
    page = parse_scraped_text(BANNERS)
    assert page.title == "Ferry timetable cut as crew shortage bites"
    assert paragraphs(page) == [
        "Island ferry services will run every two hours instead of hourly from next week, the "
        "operator said, blaming a shortage of qualified deck crew.",
        "The operator said it had recruited 14 new crew members who would complete training in "
        "June.",
        "Residents said the cuts would make it harder to reach the mainland hospital.",
        "Normal service is expected to resume in July.",
    ]
    assert page.published_at == "2025-04-15"


# -- a byline on top, an author bio at the end, a story about a journalist in between -----------

BYLINE_AND_BIO = """\
Home / World / Europe
Journalist freed after three weeks in detention
By Jane Doe and Sam Okafor | April 15, 2025 | 4 min read
Lena Brandt is a freelance journalist who was detained at the border in March while \
reporting on smuggling routes.
She was released on Monday after diplomatic talks, her family said in a statement.
Press freedom groups had campaigned for her release since her arrest.
Brandt said she planned to return to work as soon as possible.
Jane Doe is a staff writer covering press freedom. She previously reported from Berlin.
Sam Okafor is a correspondent based in Lagos.
Follow Jane on X @janedoe
"""


def test_byline_and_bio_are_removed() -> None:
    page = parse_scraped_text(BYLINE_AND_BIO)
    for noise in ("By Jane Doe", "staff writer", "Sam Okafor", "@janedoe", "4 min read"):
        assert noise not in page.body, noise
    assert paragraphs(page)[-1] == "Brandt said she planned to return to work as soon as possible."


def test_a_story_about_a_journalist_is_not_mistaken_for_a_bio() -> None:
    page = parse_scraped_text(BYLINE_AND_BIO)
    assert page.body.startswith("Lena Brandt is a freelance journalist who was detained")
    assert len(paragraphs(page)) == 4


def test_byline_line_gives_the_date_and_breadcrumb_the_section() -> None:
    page = parse_scraped_text(BYLINE_AND_BIO)
    assert page.title == "Journalist freed after three weeks in detention"
    assert page.published_at == "2025-04-15"
    assert page.section == "Europe"


# -- a page without a story ----------------------------------------------------------------------

NO_STORY = """\
Home
Search
Sign in
Trending
- Storm knocks out power to 20,000 homes
- City unveils plan for new waterfront park
- Being a parent is hard. Here is what helps.
Most popular
1. Local chef wins national award
2. Why are egg prices still climbing?
Advertisement
Subscribe
© 2025 Riverton Gazette
"""


def test_page_without_a_story_has_an_empty_body() -> None:
    page = parse_scraped_text(NO_STORY)
    assert page.body == ""
    assert page.problem() is not None


def test_empty_text() -> None:
    assert parse_scraped_text("") == Page()
    assert parse_scraped_text("\n \n\t\n").body == ""


# -- more layouts --------------------------------------------------------------------------------

INLINE_BOX = """\
Reservoir levels fall to lowest in a decade
Water companies have asked customers to save water after a dry spring left reservoirs in \
the south at their lowest level for ten years.
Rainfall in March and April was less than half the long-term average.
Related
- Hosepipe ban considered for three counties
- How to save water in the garden
The Environment Agency said river flows were also well below normal.
It will meet the companies again next week to decide whether restrictions are needed.
Related
- Drought declared in the east
- Farmers warn of poor harvest
- Reservoir walks to try this summer
- Water bills to rise by 8%
- Heatwave: what you need to know
- Beach guide 2025
Teaser for an unrelated story that goes on for a while and ends with a full stop.
"""


def test_related_box_inside_the_story_is_skipped_and_the_story_goes_on() -> None:
    page = parse_scraped_text(INLINE_BOX)
    body = paragraphs(page)
    assert len(body) == 4
    assert body[2] == "The Environment Agency said river flows were also well below normal."
    assert body[-1].startswith("It will meet the companies again next week")
    for noise in ("Hosepipe", "garden", "Drought declared", "Beach guide", "Teaser", "Related"):
        assert noise not in page.body, noise


TITLE_WITH_SITE = """\
Bridge reopens after repairs - Valley Courier
Bridge reopens after repairs
Posted on 04/15/2025
The Mill Street bridge reopened to traffic on Tuesday after six months of repairs to its \
supports, two weeks ahead of schedule.
Drivers had faced a detour of about three miles while the bridge was closed.
"""


def test_title_prefers_the_line_without_the_site_name() -> None:
    page = parse_scraped_text(TITLE_WITH_SITE)
    assert page.title == "Bridge reopens after repairs"
    assert page.published_at == "2025-04-15"  # 04/15 can only be month/day
    assert "Valley Courier" not in page.body


WRAPPED = """\
Library extends opening hours

The central library will open until 9 p.m. on weekdays from May, the council
said on Wednesday, after a survey found most users wanted later opening.

The change will cost about 40,000 pounds a year and will be paid for from the
culture budget.
"""


def test_hard_wrapped_paragraphs_are_rejoined() -> None:
    page = parse_scraped_text(WRAPPED)
    assert page.title == "Library extends opening hours"
    assert paragraphs(page) == [
        "The central library will open until 9 p.m. on weekdays from May, the council said on "
        "Wednesday, after a survey found most users wanted later opening.",
        "The change will cost about 40,000 pounds a year and will be paid for from the culture "
        "budget.",
    ]


TAG_LIST = """\
Council approves new cycle lanes
The council approved four new cycle lanes on Tuesday, linking the station to the \
university and the hospital.
Work will start in September and take about a year to finish.
Topics
- Transport
- Cycling
- City council
"""


def test_tag_list_under_a_header() -> None:
    page = parse_scraped_text(TAG_LIST)
    assert page.tags == ("Transport", "Cycling", "City council")
    assert paragraphs(page)[-1] == "Work will start in September and take about a year to finish."


# -- dates as pages write them ---------------------------------------------------------------------

STORY_UNDER_DATE = """\
Harbour festival returns after five-year break
{date}
The harbour festival returns this weekend for the first time in five years, with boat \
races, music and food stalls along the quay.
Organisers expect about 20,000 visitors over the two days.
"""


@pytest.mark.parametrize(
    ("date_line", "expected"),
    [
        ("Date:2025-04-15 07:30:54", "2025-04-15T07:30:54"),
        ("Published 2025-04-15T07:30:54Z", "2025-04-15T07:30:54Z"),
        ("Published: 2025-04-15T07:30:54+02:00", "2025-04-15T07:30:54+02:00"),
        ("2025-04-15", "2025-04-15"),
        ("April 15, 2025", "2025-04-15"),
        ("Published: 15 April 2025 7:30 AM", "2025-04-15T07:30:00"),
        ("Updated 7:30 p.m. EDT, Tue April 15th, 2025", "2025-04-15T19:30:00"),
        ("Published Sept. 3, 2025 at 18:05 GMT", "2025-09-03T18:05:00Z"),
        ("Posted on 15/04/2025", "2025-04-15"),
        ("Veröffentlicht am 15.04.2025, 07:30 Uhr", "2025-04-15T07:30:00"),
        ("Freigegeben 15.04.2025", None),  # not a date label: no date taken from it
        ("Posted on 04/05/2025", None),  # April 5 or 4 May: no date rather than a guess
        ("Updated 2 hours ago", None),
    ],
)
def test_date_forms(date_line: str, expected: str | None) -> None:
    page = parse_scraped_text(STORY_UNDER_DATE.format(date=date_line))
    assert page.published_at == expected
    assert page.title == "Harbour festival returns after five-year break"
    assert page.body.startswith("The harbour festival returns")
    if expected is not None or date_line.startswith(("Posted", "Updated")):
        assert date_line not in page.body


def test_published_wins_over_updated_on_one_line() -> None:
    line = "Published April 14, 2025 Updated April 15, 2025 9:00 AM"
    page = parse_scraped_text(STORY_UNDER_DATE.format(date=line))
    assert page.published_at == "2025-04-14"
    assert "Published" not in page.body


def test_prose_starting_with_a_date_word_is_kept() -> None:
    story = STORY_UNDER_DATE.format(date="April 15, 2025") + (
        "Published in 1998, the festival guide has sold more than a million copies.\n"
    )
    page = parse_scraped_text(story)
    assert paragraphs(page)[-1].startswith("Published in 1998")


# -- where the title is ------------------------------------------------------------------------

STORY = """\
The mayor of Riverton resigned on Tuesday, a day after an audit found that $2 million was \
missing from the city's accounts.
In a short statement, he said he had done nothing wrong but wanted to spare the city a long \
dispute.
The council will choose an interim mayor next week.
"""


def test_title_after_a_list_above_the_story() -> None:
    page = parse_scraped_text(
        "Trending\n"
        "Storm knocks out power to thousands\n"
        "City unveils new waterfront park\n"
        "Mayor resigns after audit finds missing funds\n"
        "By Jane Doe\n"
        "April 15, 2025\n" + STORY
    )
    assert page.title == "Mayor resigns after audit finds missing funds"
    assert "Storm" not in page.body
    assert "Jane Doe" not in page.body


def test_title_is_not_the_standfirst_below_it() -> None:
    page = parse_scraped_text(
        "Mayor resigns after audit finds missing funds\n"
        "The audit found $2 million unaccounted for over three years\n"
        "By Jane Doe\n" + STORY
    )
    assert page.title == "Mayor resigns after audit finds missing funds"


def test_title_is_not_the_site_name_above_it() -> None:
    page = parse_scraped_text("The Riverton Gazette\nMayor resigns after audit\n" + STORY)
    assert page.title == "Mayor resigns after audit"


def test_sub_heading_after_a_one_paragraph_lede_stays_in_the_story() -> None:
    lede, statement, closing = STORY.splitlines()
    page = parse_scraped_text(
        "Mayor resigns after audit finds missing funds\n"
        f"{lede}\n"
        "What happens next\n"
        f"{statement}\n"
        f"{closing}\n"
        "Share this article\n"
        "Facebook Twitter Email\n"
        "More from Riverton Gazette\n"
        "Storm knocks out power to thousands\n"
    )
    assert page.title == "Mayor resigns after audit finds missing funds"
    assert paragraphs(page) == [lede, "What happens next", statement, closing]


def test_german_page() -> None:
    page = parse_scraped_text(
        "Startseite > Politik > Inland\n"
        "Stadtrat beschließt neue Radwege\n"
        "Veröffentlicht am 15.04.2025, 07:30 Uhr\n"
        "Der Stadtrat hat am Dienstag vier neue Radwege beschlossen, die den Bahnhof mit der "
        "Universität verbinden.\n"
        "Die Arbeiten sollen im September beginnen und etwa ein Jahr dauern.\n"
    )
    assert page.title == "Stadtrat beschließt neue Radwege"
    assert page.published_at == "2025-04-15T07:30:00"
    assert page.section == "Inland"
    assert page.body.startswith("Der Stadtrat hat am Dienstag")
    assert "Veröffentlicht" not in page.body


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\x00\x01\x02",
        "Home > \ud800 > News\n\nHeadline \udcff here\n\n" + "Word " * 40,
        "\u017fep 3, 2013\n\nPublished: \u017fep 3, 2013",  # long s: "sep" to re.IGNORECASE
        "Date: 0001-01-01T00:00:00+01:00\n\n" + "Word " * 40,
        "- In: - \n- \n" * 50,
        "\u2028\u2029\x85\x0b\x0c" * 20,
    ],
)
def test_any_text_is_read_without_error(text: str) -> None:
    found = parse_scraped_text(text)
    assert isinstance(found, Page)


def test_a_date_line_with_an_impossible_time_is_no_date_not_a_crash() -> None:
    page = parse_scraped_text(
        "Harbour strike ends after talks\n"
        "Date: 2025-04-15 25:00\n"
        "Dockworkers at the port returned to work on Tuesday after union leaders and the port "
        "authority agreed a new contract, ending a strike that had stopped shipping for a week.\n"
        "The agreement raises wages and limits night shifts, both sides said in a statement.\n"
    )
    assert page.published_at is None
    assert "Dockworkers at the port returned" in page.body
