"""Tests for recommender.ingest.records: record validation, readers, and rejection reports."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from recommender.errors import InputError, InvalidArgumentError
from recommender.ingest import readers
from recommender.ingest import records as ingest
from recommender.ingest.records import (
    FieldMap,
    ReadStats,
    article_from_mapping,
    parse_datetime,
    read_records,
)
from recommender.ingest.sources import SKIPPED_LINK
from recommender.types import Article, Rejection

UTC = timezone.utc
DATE_HINT = "; expected ISO 8601 such as 2024-05-01 or 2024-05-01T10:00:00Z"


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def jsonl(*records: object) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def split(results: Iterable[Article | Rejection]) -> tuple[list[Article], list[Rejection]]:
    items = list(results)
    articles = [item for item in items if isinstance(item, Article)]
    rejections = [item for item in items if isinstance(item, Rejection)]
    assert len(articles) + len(rejections) == len(items)
    return articles, rejections


def reasons(rejections: list[Rejection]) -> list[tuple[int, str]]:
    return [(r.line, r.reason) for r in rejections]


def _nested(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


def test_public_surface_is_locked() -> None:
    assert ingest.__all__ == [
        "FieldMap",
        "ReadStats",
        "article_from_mapping",
        "check_article",
        "parse_datetime",
        "read_records",
    ]


# --- parse_datetime ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01T10:00:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01 10:00:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01T10:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01t10:00:00z", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01T10:00:00.5Z", datetime(2024, 5, 1, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2024-05-01T10:00:00.123456789Z", datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)),
        ("  2024-05-01T10:00:00Z  ", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01T12:00:00+02:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01T04:30:00-0530", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01T12:00:00+02", datetime(2024, 5, 1, 10, tzinfo=UTC)),
    ],
)
def test_parse_datetime_accepts_iso_forms(text: str, expected: datetime) -> None:
    parsed = parse_datetime(text)
    assert parsed.tzinfo is not None
    assert parsed == expected


def test_parse_datetime_keeps_the_given_offset() -> None:
    parsed = parse_datetime("2024-05-01T12:00:00+02:00")
    assert parsed.utcoffset() == timedelta(hours=2)
    assert parse_datetime("2024-05-01").utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "",
        "31/02/2024",
        "2024-02-30",
        "2024-13-01",
        "2024-05-01T25:00:00",
        "2024-05-01T10:00:61",
        "2024-05-01T10:00:00+24:00",
        "2024-05-01T10:00:00+02:75",
        "2024-05-01Z",
        "20240501",
        "2024-05-01T10:00:00 UTC",
    ],
)
def test_parse_datetime_rejects_and_names_the_value(text: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        parse_datetime(text)
    assert str(caught.value) == f"unparseable date {text!r}{DATE_HINT}"


def test_parse_datetime_rejects_non_strings() -> None:
    with pytest.raises(InvalidArgumentError, match="unparseable date 1714557600"):
        parse_datetime(1714557600)  # type: ignore[arg-type]


# --- article_from_mapping ----------------------------------------------------------------


def test_minimal_record_gets_defaults() -> None:
    article = article_from_mapping({"id": " a1 ", "body": " Text. "})
    assert article == Article(id="a1", body="Text.")
    assert article.title == ""
    assert article.metadata == {}


def test_full_record() -> None:
    record = {
        "id": "a1",
        "body": "Body",
        "title": " Title ",
        "url": "https://example.com/a1",
        "published_at": "2024-05-01T10:00:00Z",
        "section": "world",
        "tags": ["eu", " politics ", "eu", ""],
        "language": "en",
        "author": "Ann",
        "views": 12,
        "extra": {"nested": [1, None]},
    }
    article = article_from_mapping(record)
    assert article.title == "Title"
    assert article.url == "https://example.com/a1"
    assert article.published_at == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert article.section == "world"
    assert article.tags == ("eu", "politics")
    assert article.language == "en"
    assert article.metadata == {"author": "Ann", "views": 12, "extra": {"nested": [1, None]}}


def test_int_id_becomes_string() -> None:
    assert article_from_mapping({"id": 42, "body": "x"}).id == "42"
    assert article_from_mapping({"id": -7, "body": "x"}).id == "-7"


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"body": "x"}, "missing id"),
        ({"id": None, "body": "x"}, "missing id"),
        ({"id": "  ", "body": "x"}, "empty id"),
        ({"id": True, "body": "x"}, "id must be a string or integer, got bool"),
        ({"id": 1.5, "body": "x"}, "id must be a string or integer, got float"),
        ({"id": ["a"], "body": "x"}, "id must be a string or integer, got list"),
        ({"id": {"a": 1}, "body": "x"}, "id must be a string or integer, got dict"),
        ({"id": "a"}, "missing body"),
        ({"id": "a", "body": " \n\t"}, "empty body"),
        ({"id": "a", "body": 3}, "body must be a string, got int"),
        ({"id": "a", "body": "x", "title": 3}, "title must be a string, got int"),
        ({"id": "a", "body": "x", "url": ["u"]}, "url must be a string, got list"),
        ({"id": "a", "body": "x", "section": 1}, "section must be a string, got int"),
        ({"id": "a", "body": "x", "language": False}, "language must be a string, got bool"),
        (
            {"id": "a", "body": "x", "tags": 5},
            "tags must be a list of strings or a comma-separated string, got int",
        ),
        ({"id": "a", "body": "x", "tags": ["ok", 2]}, "tags must hold strings, got int"),
        ({"id": "a", "body": "x", "published_at": "31/02/2024"}, "unparseable date '31/02/2024'"),
        ({"id": "a", "body": "x", "published_at": 17}, "unparseable date 17"),
        (
            {"id": "a", "body": "bad \ud800"},
            "body: invalid Unicode (lone surrogate U+D800 at character 5)",
        ),
        (
            {"id": "a", "body": "x", "k": ["ok", "\ud83d"]},
            "k: invalid Unicode (lone surrogate U+D83D at character 1)",
        ),
        (
            {"id": "a", "body": "x", "metadata": {"deep": [{"\ud800": 1}]}},
            "metadata (a key): invalid Unicode",
        ),
        ({"id": "a", "body": "x", "k\udcff": 1}, "field name: invalid UTF-8 byte 0xff"),
        ({"id": "a", "body": "x", "score": float("nan")}, "score: nan is not a JSON number"),
        ({"id": "a", "body": "x", "n": 10**4000}, "n: integer too large"),
        ({"id": "a", "body": "x", "deep": _nested(150)}, "deep: nested more than 100 levels"),
        (
            {"id": "a", "body": "x", "published_at": "0001-01-01T00:00:00+01:00"},
            "unparseable date '0001-01-01T00:00:00+01:00'",
        ),
    ],
)
def test_invalid_records_say_why(record: dict[str, object], reason: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        article_from_mapping(record)
    assert str(caught.value).startswith(reason)


def test_non_mapping_record_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="record must be a mapping, got list"):
        article_from_mapping([("id", "a")])  # type: ignore[arg-type]


def test_empty_optional_strings_become_none() -> None:
    record = {"id": "a", "body": "x", "url": "", "section": " ", "language": "", "title": ""}
    record |= {"published_at": "", "tags": ""}
    article = article_from_mapping(record)
    assert (article.url, article.section, article.language, article.title) == (None, None, None, "")
    assert article.published_at is None
    assert article.tags == ()


def test_tags_from_comma_separated_string() -> None:
    article = article_from_mapping({"id": "a", "body": "x", "tags": "b, a,,b , c"})
    assert article.tags == ("b", "a", "c")


def test_date_objects_are_accepted_and_made_aware() -> None:
    naive = article_from_mapping({"id": "a", "body": "x", "published_at": datetime(2024, 5, 1, 9)})
    day = article_from_mapping({"id": "b", "body": "x", "published_at": date(2024, 5, 1)})
    assert naive.published_at == datetime(2024, 5, 1, 9, tzinfo=UTC)
    assert day.published_at == datetime(2024, 5, 1, tzinfo=UTC)


def test_field_map_renames_and_keeps_other_fields_in_metadata() -> None:
    fields = FieldMap(id="doc_id", body="text", title="headline", tags="keywords")
    record = {"doc_id": 9, "text": "Body", "headline": "H", "keywords": "a,b", "id": "other"}
    article = article_from_mapping(record, fields=fields)
    assert (article.id, article.body, article.title, article.tags) == ("9", "Body", "H", ("a", "b"))
    # Unmapped fields go to metadata, even one called "id"; mapped ones are not duplicated.
    assert article.metadata == {"id": "other"}


def test_field_map_names_the_source_field_in_errors() -> None:
    with pytest.raises(InvalidArgumentError, match=r"missing id \(field 'doc_id'\)"):
        article_from_mapping({"id": "a", "body": "x"}, fields=FieldMap(id="doc_id"))


def test_to_dict_reads_back_as_the_same_article() -> None:
    original = Article(
        id="a",
        body="Body",
        title="T",
        url="https://example.com",
        published_at=datetime(2024, 5, 1, 10, tzinfo=timezone(timedelta(hours=2))),
        section="world",
        tags=("x", "y"),
        language="en",
        metadata={"author": "Ann", "score": 1.5},
    )
    restored = article_from_mapping(json.loads(json.dumps(original.to_dict())))
    assert restored == original
    assert restored.record_hash == original.record_hash


def test_nested_metadata_is_merged_and_top_level_extras_win() -> None:
    record = {"id": "a", "body": "x", "metadata": {"k": 1, "j": 2}, "k": 3}
    assert article_from_mapping(record).metadata == {"k": 3, "j": 2}
    scalar = {"id": "a", "body": "x", "metadata": "note"}
    assert article_from_mapping(scalar).metadata == {"metadata": "note"}


# --- read_records: JSONL -----------------------------------------------------------------


def test_hundred_good_and_five_bad_lines(tmp_path: Path) -> None:
    lines = [json.dumps({"id": f"a{i}", "body": f"Body {i}"}) for i in range(100)]
    bad = {
        10: '{"id": "x1" "body": "y"}',
        25: json.dumps({"body": "no id here"}),
        50: json.dumps({"id": "x3", "body": "   "}),
        75: json.dumps({"id": "x4", "body": "b", "published_at": "31/02/2024"}),
        101: json.dumps({"id": "a5", "body": "again"}),
    }
    for line, text in sorted(bad.items()):
        lines.insert(line - 1, text)
    path = write(tmp_path, "in.jsonl", "\n".join(lines) + "\n")

    articles, rejections = split(read_records([path]))

    assert len(articles) == 100
    assert [a.id for a in articles] == [f"a{i}" for i in range(100)]
    assert reasons(rejections) == [
        (10, "invalid JSON: Expecting ',' delimiter at column 13"),
        (25, "missing id"),
        (50, "empty body"),
        (75, f"unparseable date '31/02/2024'{DATE_HINT}"),
        (101, f"duplicate id 'a5' (first at {path}:6)"),
    ]
    assert [r.id for r in rejections] == [None, None, "x3", "x4", "a5"]
    assert all(r.source == str(path) for r in rejections)
    assert rejections[0].raw == bad[10]


def test_jsonl_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    text = '\n  \n{"id": "a", "body": "x"}\r\n\n[1, 2]\n"text"\nnull\n{"id": "b", "body": "y"}'
    path = write(tmp_path, "in.jsonl", text)
    articles, rejections = split(read_records([path]))
    assert [a.id for a in articles] == ["a", "b"]
    assert reasons(rejections) == [
        (5, "expected a JSON object, got array"),
        (6, "expected a JSON object, got string"),
        (7, "expected a JSON object, got null"),
    ]


def test_jsonl_invalid_utf8_rejects_only_that_line(tmp_path: Path) -> None:
    content = (
        b'{"id": "a", "body": "ok"}\n{"id": "b", "body": "\xff\xfe"}\n{"id": "c", "body": "ok"}\n'
    )
    path = write(tmp_path, "in.jsonl", content)
    articles, rejections = split(read_records([path]))
    assert [a.id for a in articles] == ["a", "c"]
    assert reasons(rejections) == [(2, "invalid UTF-8 at byte 22")]
    assert rejections[0].raw == '{"id": "b", "body": "\ufffd\ufffd"}'


def test_jsonl_bom_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "in.jsonl", b"\xef\xbb\xbf" + jsonl({"id": "a", "body": "x"}).encode())
    articles, rejections = split(read_records([path]))
    assert [a.id for a in articles] == ["a"]
    assert rejections == []


def test_jsonl_keeps_line_separators_inside_strings(tmp_path: Path) -> None:
    # U+2028 is a line break to str.splitlines but not to JSONL.
    path = write(tmp_path, "in.jsonl", '{"id": "a", "body": "one\u2028two"}\n')
    (article,) = read_records([path])
    assert isinstance(article, Article)
    assert article.body == "one\u2028two"


def test_jsonl_escaped_lone_surrogate_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "in.jsonl", '{"id": "a", "body": "x\\ud800"}\n')
    (rejection,) = read_records([path])
    assert isinstance(rejection, Rejection)
    assert (rejection.line, rejection.id) == (1, "a")
    assert rejection.reason == "body: invalid Unicode (lone surrogate U+D800 at character 2)"


def test_rejection_raw_is_truncated(tmp_path: Path) -> None:
    path = write(tmp_path, "in.jsonl", json.dumps({"id": "a", "body": "", "pad": "p" * 5000}))
    (rejection,) = read_records([path])
    assert isinstance(rejection, Rejection)
    assert rejection.raw is not None
    assert len(rejection.raw) == 2000


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson", ".json-lines", ".JSONL"])
def test_jsonl_extensions(tmp_path: Path, suffix: str) -> None:
    path = write(tmp_path, f"in{suffix}", jsonl({"id": "a", "body": "x"}))
    assert [a.id for a in split(read_records([path]))[0]] == ["a"]


def test_stdin_is_read_as_jsonl() -> None:
    stdin = io.BytesIO(jsonl({"id": 1, "body": "x"}, {"body": "y"}).encode())
    articles, rejections = split(read_records(["-"], stdin=stdin))
    assert [a.id for a in articles] == ["1"]
    assert [(r.source, r.line, r.reason) for r in rejections] == [("<stdin>", 2, "missing id")]
    assert not stdin.closed


def test_duplicates_are_found_across_sources(tmp_path: Path) -> None:
    first = write(tmp_path, "a.jsonl", jsonl({"id": "x", "body": "1"}))
    second = write(tmp_path, "b.csv", "id,body\ny,2\nx,3\n")
    stdin = io.BytesIO(jsonl({"id": "y", "body": "4"}).encode())
    articles, rejections = split(read_records([first, second, "-"], stdin=stdin))
    assert [(a.id, a.body) for a in articles] == [("x", "1"), ("y", "2")]
    assert [(r.source, r.line, r.reason) for r in rejections] == [
        (str(second), 3, f"duplicate id 'x' (first at {first}:1)"),
        ("<stdin>", 1, f"duplicate id 'y' (first at {second}:2)"),
    ]


def test_a_rejected_record_does_not_claim_its_id(tmp_path: Path) -> None:
    path = write(tmp_path, "in.jsonl", jsonl({"id": "a", "body": ""}, {"id": "a", "body": "x"}))
    articles, rejections = split(read_records([path]))
    assert [(a.id, a.body) for a in articles] == [("a", "x")]
    assert reasons(rejections) == [(1, "empty body")]


def test_the_same_file_twice_rejects_every_second_copy(tmp_path: Path) -> None:
    path = write(tmp_path, "in.jsonl", jsonl({"id": "a", "body": "x"}))
    articles, rejections = split(read_records([path, path]))
    assert len(articles) == 1
    assert reasons(rejections) == [(1, f"duplicate id 'a' (first at {path}:1)")]


def test_field_map_applies_to_files(tmp_path: Path) -> None:
    fields = FieldMap(id="doc_id", body="text")
    path = write(tmp_path, "in.jsonl", jsonl({"doc_id": 5, "text": "x", "id": "meta"}))
    (article,) = read_records([path], fields=fields)
    assert isinstance(article, Article)
    assert (article.id, article.body, dict(article.metadata)) == ("5", "x", {"id": "meta"})


def test_a_single_path_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "in.jsonl", jsonl({"id": "a", "body": "x"}))
    assert len(list(read_records(str(path)))) == 1


# --- read_records: CSV -------------------------------------------------------------------


def test_csv_records_with_tags_metadata_and_dates(tmp_path: Path) -> None:
    content = (
        "id,title,body,published_at,tags,author,section\n"
        '1,T1,Body one,2024-05-01,"eu, politics,eu",Ann,\n'
        "2,,Body two,,,,world\n"
    )
    path = write(tmp_path, "in.csv", content)
    articles, rejections = split(read_records([path]))
    assert rejections == []
    one, two = articles
    assert (one.id, one.title, one.tags) == ("1", "T1", ("eu", "politics"))
    assert one.published_at == datetime(2024, 5, 1, tzinfo=UTC)
    assert one.section is None
    assert one.metadata == {"author": "Ann"}
    assert (two.title, two.published_at, two.tags, two.section) == ("", None, (), "world")
    assert two.metadata == {"author": ""}


def test_csv_multiline_fields_report_the_start_line(tmp_path: Path) -> None:
    content = 'id,body\na,"first line\nsecond line\n\nfourth"\nb,""\nc,plain\nd,"x\ny",extra\n'
    path = write(tmp_path, "in.csv", content)
    articles, rejections = split(read_records([path]))
    assert [(a.id, a.body) for a in articles] == [
        ("a", "first line\nsecond line\n\nfourth"),
        ("c", "plain"),
    ]
    assert reasons(rejections) == [
        (6, "empty body"),
        (8, "expected 2 fields as in the header, got 3"),
    ]
    assert rejections[1].raw == 'd,"x\ny",extra'


def test_csv_invalid_utf8_rejects_only_that_record(tmp_path: Path) -> None:
    content = b'id,body\r\na,ok\r\nb,"multi\r\nli\xffne"\r\nc,ok\r\n'
    path = write(tmp_path, "in.csv", content)
    articles, rejections = split(read_records([path]))
    assert [a.id for a in articles] == ["a", "c"]
    # Byte 13 of the record: 'b,"multi\r\nli' is 12 bytes.
    assert reasons(rejections) == [(3, "invalid UTF-8 at byte 13")]
    assert rejections[0].raw == 'b,"multi\r\nli\ufffdne"'


def test_csv_bom_blank_and_padding_rows(tmp_path: Path) -> None:
    content = b"\xef\xbb\xbfid,body,x\n\na,one,\n,,\n  , ,\nb,two,\n"
    path = write(tmp_path, "in.csv", content)
    articles, rejections = split(read_records([path]))
    assert [a.id for a in articles] == ["a", "b"]
    assert rejections == []


def test_csv_rejections_carry_the_id(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", "id,body,published_at\nk, ,\nm,x,nope\n,x,\n")
    _, rejections = split(read_records([path]))
    assert [(r.line, r.reason, r.id) for r in rejections] == [
        (2, "empty body", "k"),
        (3, f"unparseable date 'nope'{DATE_HINT}", "m"),
        (4, "empty id", None),
    ]


def test_csv_huge_field(tmp_path: Path) -> None:
    body = "word " * 100_000  # 500 KB, well past the csv module's 128 KiB default
    path = write(tmp_path, "in.csv", f'id,body\na,"{body}"\n')
    (article,) = read_records([path])
    assert isinstance(article, Article)
    assert article.body == body.strip()


def test_csv_parse_errors_reject_the_record_and_reading_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Shrink the field limit so the csv module's own error is cheap to provoke.
    monkeypatch.setattr(readers, "_CSV_FIELD_LIMIT", 100)
    previous = csv.field_size_limit(100)
    try:
        content = f'id,body\na,ok\nb,{"x" * 300}\nc,"{"y" * 50}\n{"y" * 100}"\nd,fine\n'
        articles, rejections = split(read_records([write(tmp_path, "in.csv", content)]))
    finally:
        csv.field_size_limit(previous)
    assert [a.id for a in articles] == ["a", "d"]
    limit_error = "invalid CSV: field larger than field limit (100)"
    assert reasons(rejections) == [(3, limit_error), (4, limit_error)]


def test_csv_field_map_and_missing_column(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", "doc_id,text\n1,x\n")
    (article,) = read_records([path], fields=FieldMap(id="doc_id", body="text"))
    assert isinstance(article, Article)
    assert (article.id, article.body, dict(article.metadata)) == ("1", "x", {})
    (rejection,) = read_records([path])
    assert isinstance(rejection, Rejection)
    assert (rejection.line, rejection.reason) == (2, "missing id")


def test_csv_empty_file_yields_nothing(tmp_path: Path) -> None:
    assert list(read_records([write(tmp_path, "in.csv", "")])) == []
    assert list(read_records([write(tmp_path, "head.csv", "id,body\n")])) == []


def test_csv_duplicate_header_column_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", "id,body,id\n1,x,2\n")
    with pytest.raises(InputError, match=r"duplicate column 'id' in the CSV header of '.*in\.csv'"):
        list(read_records([path]))


def test_csv_undecodable_header_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", b"id,bo\xffdy\n1,x\n")
    with pytest.raises(InputError, match="invalid UTF-8 at byte 6"):
        list(read_records([path]))


# --- read_records: JSON array ------------------------------------------------------------


def test_json_array(tmp_path: Path) -> None:
    content = '[\n  {"id": "a", "body": "x"},\n  [1],\n  {"id": "b",\n   "body": ""}\n]\n'
    path = write(tmp_path, "in.json", content)
    articles, rejections = split(read_records([path]))
    assert [a.id for a in articles] == ["a"]
    assert reasons(rejections) == [(3, "expected a JSON object, got array"), (4, "empty body")]


def test_json_array_syntax_error_stops_that_file(tmp_path: Path) -> None:
    content = '[{"id": "a", "body": "x"}\n {"id": "b", "body": "y"}]'
    path = write(tmp_path, "in.json", content)
    articles, rejections = split(read_records([path]))
    assert [a.id for a in articles] == ["a"]
    assert reasons(rejections) == [
        (2, "invalid JSON: Expecting ',' delimiter at line 2 column 2; rest not read")
    ]


def test_json_that_is_not_an_array_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, "in.json", '{"id": "a", "body": "x"}')
    with pytest.raises(InputError, match="is not a JSON array"):
        list(read_records([path]))


# --- read_records: unusable sources ------------------------------------------------------


def test_missing_file_fails_before_anything_is_read(tmp_path: Path) -> None:
    good = write(tmp_path, "good.jsonl", jsonl({"id": "a", "body": "x"}))
    missing = tmp_path / "typo.jsonl"
    # Raised by the call itself, not on first iteration.
    with pytest.raises(InputError, match=r"cannot open input '.*typo\.jsonl': No such file"):
        read_records([good, missing])


def test_a_folder_without_pages_is_an_input_error(tmp_path: Path) -> None:
    folder = tmp_path / "dir.jsonl"
    folder.mkdir()
    write(folder, "notes.md", "# not a page")
    with pytest.raises(InputError, match=r"folder '.*dir\.jsonl' holds no pages \(\.html"):
        read_records([folder])


def test_unknown_extension_lists_the_supported_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "in.xml", "hello")
    with pytest.raises(InputError) as caught:
        read_records([path])
    message = str(caught.value)
    assert repr(str(path)) in message
    for suffix in (".csv", ".json", ".jsonl", ".ndjson", ".json-lines", ".html", ".txt", "'-'"):
        assert suffix in message


def test_headline_only_brief_is_indexed_but_empty_title_and_body_is_not() -> None:
    brief = article_from_mapping({"id": "b1", "title": "Coach fired, successor named", "body": ""})
    assert brief.body == "" and brief.title == "Coach fired, successor named"
    with pytest.raises(InvalidArgumentError, match="empty body"):
        article_from_mapping({"id": "b2", "title": "  ", "body": ""})
    with pytest.raises(InvalidArgumentError, match="missing body"):
        article_from_mapping({"id": "b3", "title": "Headline"})


# --- hardening (issue 19): outside text, URLs, symlinks, blank lines -----------------------


def writable(rejection: Rejection) -> None:
    """Any rejection can be printed and written as UTF-8 JSON (rejects.jsonl)."""
    json.dumps(rejection.to_dict(), ensure_ascii=False).encode("utf-8")
    str(rejection).encode("utf-8")


def test_lone_surrogate_id_gives_a_writable_rejection(tmp_path: Path) -> None:
    path = write(tmp_path, "x.jsonl", '{"id":"\\ud800","body":"some text"}\n')
    (rejection,) = read_records([path])
    assert isinstance(rejection, Rejection)
    assert rejection.id == "\ufffd"
    assert rejection.reason == "id: invalid Unicode (lone surrogate U+D800 at character 1)"
    assert rejection.raw == '{"id":"\\ud800","body":"some text"}'
    writable(rejection)


@pytest.mark.parametrize(
    "record",
    [
        {"id": "\ud800x", "body": "b"},
        {"id": "a", "body": "b", "\udcff": "key"},
        {"id": "a", "body": "b", "published_at": "\ud800"},
        {"id": "a\ud800", "body": "b", "url": "javascript:\ud800"},
        {"id": "a", "body": "b", "metadata": {"k": ["\udfff"]}},
    ],
)
def test_rejections_of_invalid_unicode_are_writable(tmp_path: Path, record: object) -> None:
    path = write(tmp_path, "in.json", json.dumps([record]))
    (rejection,) = read_records([path])
    assert isinstance(rejection, Rejection)
    writable(rejection)


def test_undecodable_file_name_gives_writable_rejections(tmp_path: Path) -> None:
    name = os.fsdecode(b"bad\xff.jsonl")  # how Python spells a name that is not UTF-8
    path = write(tmp_path, name, jsonl({"id": "a"}, {"id": "b", "body": "x"}, {"id": "b"}))
    rejection, article, duplicate = read_records([path])
    assert isinstance(article, Article)
    assert isinstance(rejection, Rejection) and isinstance(duplicate, Rejection)
    assert rejection.source.endswith("bad\ufffd.jsonl")
    writable(rejection)
    writable(duplicate)


def test_huge_json_integer_is_one_rejection(tmp_path: Path) -> None:
    line = '{"id": "a", "body": "x", "n": ' + "1" * 5000 + "}"
    path = write(tmp_path, "in.jsonl", line + "\n" + jsonl({"id": "b", "body": "y"}))
    rejection, article = read_records([path])
    assert isinstance(rejection, Rejection) and isinstance(article, Article)
    assert rejection.reason == "invalid JSON: number too large"
    array = write(tmp_path, "in.json", "[" + line + "]")
    (rejection,) = read_records([array])
    assert isinstance(rejection, Rejection)
    assert rejection.reason == "invalid JSON: number too large at line 1 column 2; rest not read"


def test_nan_in_metadata_is_rejected(tmp_path: Path) -> None:
    # json.loads reads NaN, but no JSON consumer (the HTTP API) could be given it back.
    path = write(tmp_path, "in.jsonl", '{"id": "a", "body": "x", "score": NaN}\n')
    (rejection,) = read_records([path])
    assert isinstance(rejection, Rejection)
    assert rejection.reason.startswith("score: nan is not a JSON number")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("javascript:alert(1)", "scheme 'javascript' is not http or https"),
        ("JaVaScRiPt:alert(1)", "scheme 'JaVaScRiPt' is not http or https"),
        (" javascript:alert(1)", "scheme 'javascript' is not http or https"),
        ("\tjavascript:alert(1)", "scheme 'javascript' is not http or https"),
        ("\x01javascript:alert(1)", "control character U+0001 at character 1"),
        ("java\tscript:alert(1)", "control character U+0009 at character 5"),
        ("java\nscript:alert(1)", "control character U+000A at character 5"),
        ("data:text/html,<script>alert(1)</script>", "scheme 'data' is not http or https"),
        ("vbscript:msgbox(1)", "scheme 'vbscript' is not http or https"),
        ("file:///etc/passwd", "scheme 'file' is not http or https"),
        ("&#106;avascript:alert(1)", "not an absolute http or https URL"),
        ("javascript&#58;alert(1)", "not an absolute http or https URL"),
        ("story.html", "not an absolute http or https URL, nor a path starting with '/'"),
        ("/\\evil.example/", "a backslash at character 2"),
        ("https:evil.example", "https URL without a host"),
        ("http:///path", "http URL without a host"),
        ("//", "protocol-relative URL without a host"),
        ("\uff4aavascript:alert(1)", "not an absolute http or https URL"),  # fullwidth j
    ],
)
def test_unsafe_url_is_dropped_and_kept_in_metadata(url: str, reason: str) -> None:
    article = article_from_mapping({"id": "a", "body": "x", "url": url, "author": "Ann"})
    assert article.url is None
    assert dict(article.metadata) == {
        "author": "Ann",
        "url_rejected": {"value": url, "reason": article.metadata["url_rejected"]["reason"]},
    }
    assert article.metadata["url_rejected"]["reason"].startswith(reason)
    # The record survives a round trip through its own output.
    assert article_from_mapping(article.to_dict()) == article


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://example.com/a?b=1#c", "https://example.com/a?b=1#c"),
        ("  http://example.com  ", "http://example.com"),
        ("HTTPS://Example.com/A", "https://Example.com/A"),
        ("/2026/03/story.html", "/2026/03/story.html"),
        ("//cdn.example.com/story", "//cdn.example.com/story"),
        ("https://bücher.example/ä", "https://bücher.example/ä"),
        ("/javascript:alert(1)", "/javascript:alert(1)"),  # a path on the site
    ],
)
def test_http_https_and_site_paths_are_kept(url: str, kept: str) -> None:
    article = article_from_mapping({"id": "a", "body": "x", "url": url})
    assert article.url == kept
    assert "url_rejected" not in article.metadata


def test_unsafe_url_in_a_file_keeps_the_record(tmp_path: Path) -> None:
    path = write(tmp_path, "in.jsonl", jsonl({"id": "a", "body": "x", "url": "javascript:x()"}))
    (article,) = read_records([path])
    assert isinstance(article, Article)
    assert article.url is None
    assert article.metadata["url_rejected"]["value"] == "javascript:x()"


SECRET = "root:x:0:0:root:/root:/bin/bash"


def _site_with_links(tmp_path: Path) -> Path:
    """site/ with a story, a link to a file outside, a link to a folder outside, a loop."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text(SECRET + "\n", encoding="utf-8")
    (outside / "story.txt").write_text(STORY, encoding="utf-8")
    site = tmp_path / "site"
    site.mkdir()
    (site / "story.txt").write_text(STORY, encoding="utf-8")
    (site / "leak.txt").symlink_to(outside / "passwd")
    (site / "more").symlink_to(outside)
    (site / "again.txt").symlink_to(site / "story.txt")  # inside: read
    (site / "loop").symlink_to(site)  # inside: its pages are read at their own place
    return site


STORY = (
    "Council approves harbour budget\n\n"
    "The council voted on Tuesday to approve the new harbour budget after a long debate.\n\n"
    "Dock workers welcomed the decision, which funds two new cranes and a safety review.\n"
)


def _no_secret(items: list[Article | Rejection]) -> None:
    for item in items:
        assert "root:" not in json.dumps(item.to_dict())


def test_folder_symlinks_to_outside_are_reported_not_read(tmp_path: Path) -> None:
    site = _site_with_links(tmp_path)
    stats = ReadStats()
    items = list(read_records([site], stats=stats))
    articles, rejections = split(items)
    assert sorted(a.id for a in articles) == ["again.txt", "story.txt"]
    assert [(Path(r.source).name, r.reason) for r in rejections] == [
        ("leak.txt", SKIPPED_LINK),
        ("more", SKIPPED_LINK),
    ]
    assert "--follow-symlinks" in rejections[0].reason
    assert all(r.raw == "" for r in rejections)
    assert stats.records == 4
    _no_secret(items)


def test_follow_symlinks_reads_links_out_and_ends_loops(tmp_path: Path) -> None:
    site = _site_with_links(tmp_path)
    items = list(read_records([site], follow_symlinks=True))
    articles, rejections = split(items)
    ids = sorted(a.id for a in articles)
    assert "more/story.txt" in ids and "story.txt" in ids
    # The page read through the link is a rejection (no story), but its text was read.
    assert [Path(r.source).name for r in rejections] == ["leak.txt"]
    assert "no story text found" in rejections[0].reason
    assert SECRET not in rejections[0].reason


def test_glob_symlinks_to_outside_are_reported_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _site_with_links(tmp_path)
    monkeypatch.chdir(tmp_path)
    items = list(read_records(["site/**/*.txt"]))
    articles, rejections = split(items)
    assert sorted(a.id for a in articles) == ["site/again.txt", "site/story.txt"]
    # The folder link is reported once, not each file under it; the loop is not followed.
    assert sorted(r.source for r in rejections) == ["site/leak.txt", "site/more"]
    assert {r.reason for r in rejections} == {SKIPPED_LINK}
    _no_secret(items)
    # A glob whose folder holds the target reads it: the link stays inside what was given.
    followed = split(list(read_records(["site/**/*.txt"], follow_symlinks=True)))[0]
    assert sorted(a.id for a in followed) == [
        "site/again.txt",
        "site/more/story.txt",
        "site/story.txt",
    ]


def test_a_file_named_directly_is_read_even_through_a_link(tmp_path: Path) -> None:
    site = _site_with_links(tmp_path)
    (rejection,) = read_records([site / "leak.txt"])
    assert isinstance(rejection, Rejection)
    assert rejection.reason.startswith("text page: no story text found")


def test_blank_lines_are_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "in.jsonl", '\n  \n{"id": "a", "body": "x"}\r\n\n[1]\n\t\n')
    stats = ReadStats()
    assert len(list(read_records([path], stats=stats))) == 2
    assert stats == ReadStats(records=2, blank_lines=4)
    csv_path = write(tmp_path, "in.csv", "\n,,\nid,body,x\n\na,one,\n,,\n  , ,\nb,two,\n")
    stats = ReadStats()
    assert len(list(read_records([csv_path], stats=stats))) == 2
    assert stats == ReadStats(records=2, blank_lines=5)


def test_build_summary_counts_blank_lines(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from recommender.cli import main

    path = write(tmp_path, "in.jsonl", '{"id": "a", "body": "x"}\n\n\n{"id": "b"}\n \n')
    index = str(tmp_path / "idx")
    runner = CliRunner()
    result = runner.invoke(main, ["build", str(path), "--index", index, "--model", "hashing:256"])
    assert result.exit_code == 0, result.output
    assert "indexed 1, rejected 1, 3 blank lines skipped" in result.stdout
    result = runner.invoke(main, ["add", str(path), "--index", index, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["unchanged"], len(report["rejected"]), report["blank_lines"]) == (1, 1, 3)


def test_cli_follow_symlinks_flag(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from recommender.cli import main

    site = _site_with_links(tmp_path)
    runner = CliRunner()
    plain = runner.invoke(main, ["extract", str(site), "--json"])
    assert plain.exit_code == 5
    assert "symlink to outside the folder" in plain.stderr
    assert "root:" not in plain.output
    followed = runner.invoke(main, ["extract", str(site), "--json", "--follow-symlinks"])
    assert '"id": "more/story.txt"' in followed.stdout
    index = str(tmp_path / "idx")
    built = runner.invoke(
        main, ["build", str(site), "--index", index, "--model", "hashing:256", "--follow-symlinks"]
    )
    assert built.exit_code == 0, built.output
    assert "indexed 3, rejected 1" in built.stdout


@pytest.mark.parametrize("command", ["build", "add", "extract"])
def test_undecodable_path_argument_is_one_line_error(tmp_path: Path, command: str) -> None:
    import subprocess
    import sys

    args = [command, os.fsencode(tmp_path) + b"/missing\xff.jsonl"]
    if command != "extract":
        args += [b"--index", os.fsencode(tmp_path / "idx"), b"--model", b"hashing:256"]
    result = subprocess.run(
        [sys.executable, "-m", "recommender", *args], capture_output=True, check=False
    )
    assert result.returncode in (4, 6), result.stderr
    lines = result.stderr.decode("utf-8").splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), lines


def test_page_whose_path_is_not_utf8_is_a_writable_rejection(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / os.fsdecode(b"caf\xe9.txt")).write_text(STORY, encoding="utf-8")  # a latin-1 name
    (rejection,) = read_records([site])
    assert isinstance(rejection, Rejection)
    # Its id would be its path, which is not text.
    assert rejection.reason == "id: invalid UTF-8 byte 0xe9 at character 4"
    assert rejection.id == "caf\ufffd.txt"
    writable(rejection)
