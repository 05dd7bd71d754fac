"""An index written before a refactoring opens after it and answers the same.

``fixtures/index-before-packages.tar.gz`` holds an index of the demo corpus (hashing
encoder, 64 dimensions) written by the code just before the package layout of issue 20
(commit af8f3de), with the related lists that code computed for every article
(``related --all -k 5``). The format is what matters, so the fixture never changes: a
change that cannot open it, or answers differently, breaks every index in the field.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from recommender import Recommender

FIXTURE = Path(__file__).parent / "fixtures" / "index-before-packages.tar.gz"


@pytest.fixture
def old_index(tmp_path: Path) -> tuple[Path, dict[str, list[tuple[str, float]]]]:
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(tmp_path, filter="data")
    lines = (tmp_path / "related.jsonl").read_text("utf-8").splitlines()
    expected = {
        row["id"]: [(item["id"], item["score"]) for item in row["related"]]
        for row in map(json.loads, lines)
    }
    return tmp_path / "index-v1", expected


def test_an_index_built_before_the_step_answers_the_same(
    old_index: tuple[Path, dict[str, list[tuple[str, float]]]],
) -> None:
    path, expected = old_index
    with Recommender.open(path) as rec:
        assert len(rec) == len(expected) == 86
        got = {aid: [(m.id, m.score) for m in rec.related(aid, k=5)] for aid in expected}
        batch = dict(rec.related_all(k=5))
    assert got == expected
    assert {aid: [(m.id, m.score) for m in ms] for aid, ms in batch.items()} == expected


def test_an_index_built_before_the_step_takes_writes(
    old_index: tuple[Path, dict[str, list[tuple[str, float]]]],
) -> None:
    path, _ = old_index
    with Recommender.open(path) as rec:
        report = rec.upsert([{"id": "new", "title": "Port strike", "body": "dockers strike"}])
        assert report.added == 1
        rec.remove(["demo-001"])
    with Recommender.open(path) as rec:
        assert len(rec) == 86 and "new" in rec and "demo-001" not in rec
