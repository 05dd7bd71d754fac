"""The time prior's year scale: a pair within a year gains half the prior's weight, one a
year or more apart loses it, and an undated story's year is the latest one its text writes."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from recommender import InvalidArgumentError, Recommender
from recommender.cli import main
from recommender.embedding.encoders import HashingEncoder
from recommender.ingest.dates import written_year
from recommender.ranking.scoring import Candidates, RankingConfig, rank

from .conftest import article

DAY = 86_400.0
NOW = 1_700_000_000.0  # 2023-11-14


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The 2008 rule was reversed in March 2009 by the new administration", 2009),
        ("Shares rose in 1987.", 1987),
        ("Elected in 2004, re-elected (2008), he served until 2012, aides said", 2012),
        ("The 1990-2010 series", 2010),
        ("No year at all, only 12 people and 300 votes", None),
        ("$2010 raised, 2,013 people, 2019.5 tonnes, 1999% up, 20130 units", None),
        ("Model A2013 and the 2010s", None),
    ],
)
def test_the_latest_year_a_story_writes(text: str, expected: int | None) -> None:
    assert written_year("", text) == expected


def test_years_from_the_title_count_and_plans_past_next_year_do_not() -> None:
    assert written_year("Quake of 2013", "It struck on Tuesday") == 2013
    now = datetime(2026, 12, 6, tzinfo=timezone.utc)
    assert written_year("", "Built in 2019, to be finished by 2031", now=now) == 2019
    assert written_year("", "Built in 2019, ready in 2027", now=now) == 2027
    assert written_year("", "In 1850 and 1899") is None  # before 1900: not a news year


@given(st.text(), st.text())
def test_written_year_reads_any_text(title: str, body: str) -> None:
    found = written_year(title, body)
    assert found is None or 1900 <= found <= datetime.now(timezone.utc).year + 1


def _pool(published: list[float], years: list[float]) -> Candidates:
    n = len(published)
    return Candidates(
        ids=np.arange(100, 100 + n, dtype=np.int64),
        dense=np.full(n, 0.5, dtype=np.float32),
        lexical=np.full(n, 0.5, dtype=np.float32),
        vectors=None,
        published=np.array(published),
        years=np.array(years),
    )


def _scores(pool: Candidates, config: RankingConfig, **query: float | None) -> dict[int, float]:
    return dict(rank(pool, len(pool.ids), config, **query))  # type: ignore[arg-type]


def test_dated_pairs_within_a_year_gain_and_years_apart_lose() -> None:
    nan = float("nan")
    pool = _pool([NOW - 200 * DAY, NOW - 400 * DAY, nan], [2023, 2022, nan])
    config = RankingConfig(time_weight=1.0, time_scale_days=7.0)
    scores = _scores(pool, config, query_time=NOW, query_year=2023.0)
    assert scores[100] == pytest.approx(np.exp(-200 / 7) + 0.5)
    assert scores[101] == pytest.approx(np.exp(-400 / 7) - 0.5)
    assert scores[102] == pytest.approx(0.0)  # no date, no year: nothing either way
    # It is the time prior's: it scales with the weight and is off with it.
    doubled = _scores(pool, replace(config, time_weight=2.0), query_time=NOW, query_year=2023.0)
    assert doubled[101] == pytest.approx(2 * scores[101])
    off = _scores(pool, replace(config, time_weight=0.0), query_time=NOW, query_year=2023.0)
    assert set(off.values()) == {0.0}
    plain = _scores(pool, replace(config, year_weight=0.0), query_time=NOW, query_year=2023.0)
    assert plain[100] == pytest.approx(np.exp(-200 / 7)) and plain[102] == 0.0


def test_a_pair_with_a_date_missing_is_placed_by_its_two_years() -> None:
    nan = float("nan")
    # Undated candidates whose text writes 2013, 2009, nothing; one dated in 2013.
    pool = _pool([nan, nan, nan, NOW], [2013, 2009, nan, 2023])
    config = RankingConfig()
    scores = _scores(pool, config, query_time=None, query_year=2013.0)
    assert scores[100] == pytest.approx(0.5) and scores[101] == pytest.approx(-0.5)
    assert scores[102] == 0.0 and scores[103] == pytest.approx(-0.5)
    # A query with neither a date nor a year gets no prior at all.
    assert set(_scores(pool, config, query_time=None, query_year=None).values()) == {0.0}


def test_an_estimated_curve_keeps_dated_pairs_to_itself() -> None:
    nan = float("nan")
    curve = ((0.25, 2.0), (10.0, 0.5), (730.0, -1.0))
    pool = _pool([NOW - 5_000 * DAY, nan], [2010, 2010])
    config = RankingConfig(time_curve=curve)
    scores = _scores(pool, config, query_time=NOW, query_year=2023.0)
    assert scores[100] == pytest.approx(-1.0)  # the curve's value: years apart said once
    assert scores[101] == pytest.approx(-0.5)  # undated: the year scale still reads it


@pytest.mark.parametrize("weight", [-0.1, 1.5, float("nan")])
def test_year_weight_out_of_range_is_refused_by_name(weight: float) -> None:
    with pytest.raises(InvalidArgumentError, match="year_weight"):
        RankingConfig(year_weight=weight)


STORY = "valdora harbor strike cranes idle dockworkers union wages talks"


def _twins() -> list:
    # One strike reported twice, years apart, in the same words; no dates anywhere.
    return [
        article("query", f"{STORY} stalled again in 2013", title="Strike"),
        article("same", f"{STORY} stalled as talks failed in 2013"),
        article("years", f"{STORY} stalled as talks failed in 2009"),
        article("other", "lemon cake recipe flour sugar oven"),
    ]


def test_undated_twins_years_apart_are_told_apart_by_the_years_they_write(
    tmp_path: Path,
) -> None:
    with Recommender.build(_twins(), tmp_path / "i", encoder=HashingEncoder(256)) as rec:
        on = {m.id: m.score for m in rec.related("query", k=3)}
        config = rec.ranking.with_options(year_weight=0.0)
        off = {m.id: m.score for m in rec.related("query", k=3, ranking=config)}
        assert on["same"] - off["same"] == pytest.approx(0.5, abs=1e-3)
        assert on["years"] - off["years"] == pytest.approx(-0.5, abs=1e-3)
        assert on["other"] == pytest.approx(off["other"], abs=1e-3)  # writes no year
        # A story given as text is read the same way, and its stated date gives its year.
        text = f"{STORY} stalled as talks failed in 2009"
        assert rec.similar(text=text, k=1)[0].id == "years"
        text = f"{STORY} stalled as talks failed"
        assert rec.similar(text=text, k=1, published_at="2009-05-01T00:00:00Z")[0].id == "years"
        assert rec.similar(text=text, k=1, published_at="2013-05-01T00:00:00Z")[0].id == "same"
        for edge in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"):  # any date is a year
            assert len(rec.similar(text=text, k=3, published_at=edge)) == 3


def test_catalogs_without_written_years_open_and_gain_them_on_write(tmp_path: Path) -> None:
    encoder = HashingEncoder(256)
    Recommender.build(_twins(), tmp_path / "i", encoder=encoder).close()
    for catalog in (tmp_path / "i").glob("gen-*/catalog.sqlite3"):
        with sqlite3.connect(catalog) as conn:  # as an index written before the column
            conn.execute("ALTER TABLE articles DROP COLUMN written_year")
    with Recommender.open(tmp_path / "i", encoder=encoder) as rec:
        state = rec._index.state
        ids = np.array(sorted(state.catalog.int_ids(["query", "years"]).values()))
        assert np.isnan(state.years(ids)).all()
        assert len(rec.related("query", k=3)) == 3
        rec.upsert([article("new", f"{STORY} once more in 2011")])
        state = rec._index.state
        ids = np.array([state.catalog.int_ids([a])[a] for a in ("query", "years", "new")])
        assert state.years(ids).tolist() == [2013.0, 2009.0, 2011.0]


def test_info_shows_the_year_scale_and_an_older_index_keeps_its_ranking(tmp_path: Path) -> None:
    path = tmp_path / "i"
    Recommender.build(_twins(), path, encoder=HashingEncoder(256)).close()
    result = CliRunner().invoke(main, ["info", "--index", str(path)])
    assert "time prior: 1.0 x exp(-days/7.0); year scale +/-0.5 x 1.0" in result.output
    # A manifest written before the year scale existed: its ranking, and answers, stay.
    manifest = json.loads((path / "manifest.json").read_text())
    del manifest["ranking"]["year_weight"]
    (path / "manifest.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(main, ["info", "--index", str(path)])
    assert result.exit_code == 0 and "year scale" not in result.output
    with Recommender.open(path, encoder=HashingEncoder(256)) as rec:
        assert rec.ranking.year_weight == 0.0
        scores = {m.id: m.score for m in rec.related("query", k=3)}
        plain = rec.ranking.with_options(year_weight=0.0, time_weight=0.0)
        assert scores == {m.id: m.score for m in rec.related("query", k=3, ranking=plain)}
