"""Dates read from an undated article's lead, and how the time prior uses them."""

from __future__ import annotations

import math
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest

from recommender import Recommender
from recommender.embedding.encoders import HashingEncoder
from recommender.ingest.dates import LEAD_CHARS, lead_date

from .conftest import article


def day(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("lead", "expected"),
    [
        ("Thursday, March 14, 2013 An earthquake struck", day(2013, 3, 14)),
        ("Posted: 03 / 14 / 2013 06: 37: 46 AM PDT Updated", day(2013, 3, 14)),
        ("eight years 12 / 16 / 08 1: 30 AM EST", day(2008, 12, 16)),
        ("LONDON, 5 Sept. 2019 - Ministers met", day(2019, 9, 5)),
        ("Published 2021-11-02T10:00 by staff", day(2021, 11, 2)),
        ("Dated 14/03/2013: the day comes first when it must", day(2013, 3, 14)),
        ("Dec. 1st 2010 was cold", day(2010, 12, 1)),
    ],
)
def test_full_dates_in_the_lead_are_read(lead: str, expected: datetime) -> None:
    assert lead_date("", lead) == expected


@pytest.mark.parametrize(
    "lead",
    [
        "NEW YORK, March 3 - Stocks rose",  # no year: says nothing about which March
        "On Tuesday the council voted",
        "February 30, 2013 is not a day",
        "open 24 / 7 / 365 days",  # not a date
        "A record set in March 14, 1850 stood",  # before 1900
    ],
)
def test_partial_or_impossible_dates_are_not(lead: str) -> None:
    assert lead_date("", lead) is None


def test_the_earliest_date_in_the_lead_wins_and_the_title_counts() -> None:
    assert lead_date("Quake of March 14, 2013", "Updated 03/15/2013") == day(2013, 3, 14)
    assert lead_date("", "Updated 03/15/2013, first reported March 14, 2013") == day(2013, 3, 15)


def test_dates_past_the_lead_or_in_the_future_are_ignored() -> None:
    assert lead_date("", "x" * LEAD_CHARS + " March 14, 2013") is None
    now = day(2026, 11, 29)
    assert lead_date("", "Plans for March 1, 2031 were shown", now=now) is None
    assert lead_date("", "Plans for March 1, 2027 were shown", now=now) == day(2027, 3, 1)


STORY = "valdora harbor strike cranes idle dockworkers union wages talks"


def _corpus(published: str | None) -> list:
    # Two equally close follow-ups of one strike; only the lead dates tell them apart.
    return [
        article("query", f"{STORY} stalled", title="Strike", published=published),
        article("near", f"March 14, 2013 {STORY} again"),
        article("far", f"June 2, 2009 {STORY} again"),
        article("other", "lemon cake recipe flour sugar oven"),
    ]


@pytest.mark.parametrize("query_date", [None, "2013-03-15T00:00:00Z"])
def test_lead_dates_place_undated_articles_in_time(tmp_path: Path, query_date: str | None) -> None:
    items = _corpus(query_date)
    if query_date is None:  # the query is undated too: its own lead gives its time
        items[0] = article("query", f"March 15, 2013 {STORY} stalled", title="Strike")
    rec = Recommender.build(items, tmp_path / "i", encoder=HashingEncoder(256))
    with rec:
        on = {m.id: m for m in rec.related("query", k=2)}
        off_config = rec.ranking.with_options(lead_dates=False)
        off = {m.id: m.score for m in rec.related("query", k=2, ranking=off_config)}
    assert set(on) == {"near", "far"}
    # One day apart earns the prior's exp(-1/7); four years apart nothing.
    assert on["near"].score - off["near"] == pytest.approx(math.exp(-1 / 7), abs=1e-3)
    assert on["far"].score - off["far"] == pytest.approx(0.0, abs=1e-3)
    assert on["near"].published_at is None  # a lead date never poses as a publication date


def test_a_publication_date_wins_over_the_lead(tmp_path: Path) -> None:
    items = _corpus("2013-03-15T00:00:00Z")
    items[2] = article("far", f"June 2, 2009 {STORY} again", published="2013-03-15T00:00:00Z")
    with Recommender.build(items, tmp_path / "i", encoder=HashingEncoder(256)) as rec:
        assert rec.related("query", k=1)[0].id == "far"


def test_similar_reads_the_query_lead(tmp_path: Path) -> None:
    encoder = HashingEncoder(256)
    Recommender.build(_corpus(None), tmp_path / "i", encoder=encoder).close()
    with Recommender.open(tmp_path / "i", encoder=encoder) as rec:
        assert rec.similar(text=f"March 13, 2013 {STORY} latest", k=1)[0].id == "near"
        assert rec.similar(text=f"June 1, 2009 {STORY} latest", k=1)[0].id == "far"


def test_catalogs_without_lead_dates_still_open_and_gain_them_on_write(tmp_path: Path) -> None:
    encoder = HashingEncoder(256)
    Recommender.build(_corpus(None), tmp_path / "i", encoder=encoder).close()
    for catalog in (tmp_path / "i").glob("gen-*/catalog.sqlite3"):
        with sqlite3.connect(catalog) as conn:  # as an index written before lead dates
            conn.execute("ALTER TABLE articles DROP COLUMN lead_ts")
    with Recommender.open(tmp_path / "i", encoder=encoder) as rec:
        assert len(rec.related("query", k=3)) == 3
        rec.upsert([article("new", f"March 14, 2013 {STORY} once more")])
        assert {m.id for m in rec.related("query", k=4)} == {"near", "far", "other", "new"}
