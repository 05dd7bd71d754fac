"""Sanity checks for the bundled demo corpus (recommender/data/demo_articles.jsonl)."""

import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parent.parent / "recommender" / "data" / "demo_articles.jsonl"

FIELDS = [
    "id",
    "title",
    "body",
    "url",
    "published_at",
    "section",
    "tags",
    "language",
    "outlet",
    "story",
]


def _parse_ts(value):
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    return datetime.fromisoformat(value)


@pytest.fixture(scope="module")
def lines():
    return [ln for ln in CORPUS.read_text(encoding="utf-8").splitlines() if ln.strip()]


@pytest.fixture(scope="module")
def records(lines):
    return [json.loads(ln) for ln in lines]


def test_file_has_at_least_80_lines(lines):
    assert len(lines) >= 80


def test_every_line_is_a_json_object(lines):
    for n, ln in enumerate(lines, 1):
        rec = json.loads(ln)
        assert isinstance(rec, dict), f"line {n} is not a JSON object"


def test_fields_present_and_in_order(records):
    for rec in records:
        assert list(rec.keys()) == FIELDS, rec.get("id")


def test_field_types(records):
    for rec in records:
        for key in ("id", "title", "body", "url", "published_at", "section", "language", "outlet"):
            assert isinstance(rec[key], str), (rec["id"], key)
        assert isinstance(rec["tags"], list) and 2 <= len(rec["tags"]) <= 5, rec["id"]
        assert all(isinstance(t, str) and t == t.lower() and t for t in rec["tags"]), rec["id"]
        assert rec["section"] == rec["section"].lower(), rec["id"]
        assert rec["language"] == "en", rec["id"]
        assert rec["url"].startswith("https://"), rec["id"]
        assert rec["story"] is None or (isinstance(rec["story"], str) and rec["story"]), rec["id"]


def test_unique_ids(records):
    ids = [rec["id"] for rec in records]
    assert len(ids) == len(set(ids))


def test_non_empty_title_and_body(records):
    for rec in records:
        assert rec["title"].strip(), rec["id"]
        assert rec["body"].strip(), rec["id"]


def test_published_at_parses(records):
    for rec in records:
        _parse_ts(rec["published_at"])  # raises ValueError if malformed


def test_stories_have_enough_coverage(records):
    by_story = defaultdict(list)
    for rec in records:
        if rec["story"] is not None:
            by_story[rec["story"]].append(rec)
    big = {s: arts for s, arts in by_story.items() if len(arts) >= 4}
    assert len(big) >= 14, sorted((s, len(a)) for s, a in by_story.items())
    for story, arts in by_story.items():
        assert len(arts) >= 4, story
        assert len({a["outlet"] for a in arts}) >= 3, story


def test_enough_fillers(records):
    assert sum(1 for rec in records if rec["story"] is None) >= 12
