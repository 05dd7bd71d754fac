"""The library facade: build, query, filters, updates, errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from recommender import (
    Article,
    ArticleNotFoundError,
    IndexFormatError,
    IndexNotFoundError,
    InvalidArgumentError,
    Match,
    ModelMismatchError,
    Recommender,
    RejectedRecordsError,
    Rejection,
)
from recommender.embedding.encoders import HashingEncoder
from recommender.ranking.scoring import RankingConfig

from .conftest import article

if TYPE_CHECKING:
    from recommender.index.catalog import Catalog


def test_build_and_related_excludes_self(built: Path) -> None:
    with Recommender.open(built) as rec:
        matches = rec.related("port-0", k=5)
    assert all(isinstance(m, Match) for m in matches)
    assert "port-0" not in [m.id for m in matches]
    assert {m.id for m in matches[:3]} == {"port-1", "port-2", "port-3"}
    assert matches == sorted(matches, key=lambda m: -m.score)


def test_match_carries_display_fields(built: Path) -> None:
    with Recommender.open(built) as rec:
        top = rec.related("quake-0", k=1)[0]
    assert top.title.startswith("Quake update")
    assert top.section == "world"
    assert top.published_at is not None and top.published_at.startswith("2026-03-1")
    assert set(top.to_dict()) == {
        "id",
        "title",
        "url",
        "published_at",
        "section",
        "score",
        "explanation",
    }
    assert top.explanation is None  # only when asked


def test_k_larger_than_index_returns_everything_but_self(
    built: Path, corpus: list[Article]
) -> None:
    with Recommender.open(built) as rec:
        matches = rec.related("port-0", k=1000)
    assert len(matches) == len(corpus) - 1


@pytest.mark.parametrize("bad", [0, -1, "3", 2.5, True])
def test_bad_k_is_rejected_with_its_value(built: Path, bad: object) -> None:
    with Recommender.open(built) as rec, pytest.raises(InvalidArgumentError, match=repr(bad)):
        rec.related("port-0", k=bad)  # type: ignore[arg-type]


def test_unknown_id(built: Path) -> None:
    with Recommender.open(built) as rec, pytest.raises(ArticleNotFoundError, match="'nope'"):
        rec.related("nope")


def test_section_filter(built: Path) -> None:
    with Recommender.open(built) as rec:
        matches = rec.related("port-0", k=20, section="WORLD")
    assert matches and {m.section for m in matches} == {"world"}


def test_section_filter_is_an_or_when_repeated(built: Path) -> None:
    with Recommender.open(built) as rec:
        matches = rec.related("port-0", k=20, section=["world", "local"])
    assert {m.section for m in matches} == {"world", "local"}


def test_language_filter(built: Path) -> None:
    with Recommender.open(built) as rec:
        matches = rec.related("port-0", k=20, language="fr")
    assert {m.id for m in matches} == {"port-3", "quake-3", "budget-3"}


def test_since_until_filters(built: Path) -> None:
    with Recommender.open(built) as rec:
        since = rec.related("port-0", k=20, since="2026-03-12")
        until = rec.related("port-0", k=20, until="2026-03-11")  # a date covers that whole day
        window = rec.related("port-0", k=20, since="2026-03-11T00:00:00Z", until="2026-03-12")
    assert {m.published_at[:10] for m in since if m.published_at} == {"2026-03-12", "2026-03-13"}
    assert len(since) == 6  # fillers have no date and never pass a date filter
    assert {m.published_at[:10] for m in until if m.published_at} == {"2026-03-10", "2026-03-11"}
    assert {m.published_at[:10] for m in window if m.published_at} == {"2026-03-11", "2026-03-12"}


def test_bad_filter_dates_name_the_value(built: Path) -> None:
    with Recommender.open(built) as rec:
        with pytest.raises(InvalidArgumentError, match="yesterday"):
            rec.related("port-0", since="yesterday")
        with pytest.raises(InvalidArgumentError, match="until"):
            rec.related("port-0", since="2026-03-12", until="2026-03-01")


def test_exclude(built: Path) -> None:
    with Recommender.open(built) as rec:
        matches = rec.related("port-0", k=20, exclude=["port-1", "quake-2", "not-indexed"])
    ids = {m.id for m in matches}
    assert "port-1" not in ids and "quake-2" not in ids and "port-0" not in ids
    assert "port-2" in ids


def test_similar_by_text(built: Path, encoder: HashingEncoder) -> None:
    with Recommender.open(built, encoder=encoder) as rec:
        matches = rec.similar(text="earthquake rescue teams search rubble after aftershock", k=4)
        titled = rec.similar(title="Council budget vote", body="mayor taxes deficit", k=2)
    assert {m.id for m in matches} == {"quake-0", "quake-1", "quake-2", "quake-3"}
    assert {m.id for m in titled} <= {f"budget-{n}" for n in range(4)}


def test_similar_needs_text(built: Path, encoder: HashingEncoder) -> None:
    with Recommender.open(built, encoder=encoder) as rec:
        with pytest.raises(InvalidArgumentError, match="text"):
            rec.similar(text="   ")
        with pytest.raises(InvalidArgumentError, match="either"):
            rec.similar(text="a", body="b")


@pytest.mark.parametrize(
    ("call", "field"),
    [
        ({"text": "   "}, "text"),
        ({"text": "a", "body": "b"}, "text"),
        ({"title": "\ud800"}, "title"),
        ({"text": "port", "published_at": "2026-02-30"}, "published_at"),
        ({"text": "port", "since": "soon"}, "since"),
        ({"text": "port", "until": "2026-13-01"}, "until"),
        ({"text": "port", "since": "2026-03-12", "until": "2026-03-11"}, "until"),
        ({"text": "port", "section": ["ok", "\udc80"]}, "section"),
    ],
)
def test_a_bad_query_value_names_its_field(
    built: Path, encoder: HashingEncoder, call: dict[str, Any], field: str
) -> None:
    """The edges pass the field on (HTTP 422 ``field``) instead of checking values again;
    nothing is embedded for a query that is refused."""
    with Recommender.open(built, encoder=encoder) as rec:
        calls = encoder.calls
        with pytest.raises(InvalidArgumentError) as refused:
            rec.similar(**call)
        assert refused.value.field == field and encoder.calls == calls
        dates = {k: v for k, v in call.items() if k in ("since", "until")}
        if dates:
            with pytest.raises(InvalidArgumentError) as by_id:
                rec.related("port-0", **dates)
            assert by_id.value.field == field


def test_related_does_not_use_the_encoder(built: Path) -> None:
    counting = HashingEncoder(256)
    with Recommender.open(built, encoder=counting) as rec:
        rec.related("port-0")
    assert counting.calls == 0


def test_open_missing_index(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError, match="nothing-here"):
        Recommender.open(tmp_path / "nothing-here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexNotFoundError, match=r"no manifest\.json"):
        Recommender.open(tmp_path / "empty")


def test_model_mismatch_is_a_clear_error(built: Path) -> None:
    with pytest.raises(ModelMismatchError, match="hashing:256"):
        Recommender.open(built, model="sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(ModelMismatchError, match="hashing:64"):
        Recommender.open(built, encoder=HashingEncoder(64))


def test_encoder_with_other_dimension_is_caught_at_query(built: Path) -> None:
    impostor = HashingEncoder(64)
    impostor.model_id = "hashing:256"  # claims the right model, but is not
    with Recommender.open(built, encoder=impostor) as rec, pytest.raises(ModelMismatchError):
        rec.similar(text="earthquake")


def test_unknown_format_version(built: Path) -> None:
    manifest = json.loads((built / "manifest.json").read_text())
    manifest["format_version"] = 99
    (built / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="99"):
        Recommender.open(built)


def test_manifest_contents(built: Path, corpus: list[Article]) -> None:
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["format_version"] == 1
    assert manifest["model"] == {
        "id": "hashing:256",
        "backend": "hashing",
        "dimension": 256,
        "normalized": True,
    }
    assert manifest["counts"] == {"articles": len(corpus)}
    assert {"created_at", "updated_at", "versions", "embedding", "store"} <= set(manifest)
    assert manifest["versions"]["faiss-cpu"]


def test_build_refuses_foreign_directory(tmp_path: Path, corpus: list[Article]) -> None:
    target = tmp_path / "docs"
    target.mkdir()
    (target / "thesis.txt").write_text("precious")
    with pytest.raises(IndexFormatError, match=r"thesis\.txt"):
        Recommender.build(corpus, target, encoder=HashingEncoder())
    assert (target / "thesis.txt").read_text() == "precious"


def test_build_accepts_mappings_and_reports_rejections(tmp_path: Path) -> None:
    records = [
        {"id": "a", "body": "alpha story text"},
        {"id": "b", "body": ""},
        {"body": "no id"},
        {"id": "a", "body": "dup"},
        {"id": 7, "body": "int id", "published_at": "2026-01-02"},
    ]
    rec = Recommender.build(records, tmp_path / "i", encoder=HashingEncoder())
    assert rec.report is not None
    assert rec.report.added == 2 and len(rec.report.rejected) == 3
    reasons = [r.reason for r in rec.report.rejected]
    assert "empty body" in reasons[0] and "missing id" in reasons[1] and "duplicate" in reasons[2]
    lines = (tmp_path / "i" / "rejects.jsonl").read_text().splitlines()
    assert [json.loads(line)["line"] for line in lines] == [2, 3, 4]
    assert "7" in rec
    rec.close()


def test_strict_build_publishes_nothing(built: Path, corpus: list[Article]) -> None:
    before = (built / "manifest.json").read_text()
    bad = [*corpus, Rejection(source="x.jsonl", line=9, reason="invalid JSON")]
    with pytest.raises(RejectedRecordsError, match=r"x.jsonl:9"):
        Recommender.build(bad, built, encoder=HashingEncoder(), strict=True)
    assert (built / "manifest.json").read_text() == before
    assert "invalid JSON" in (built / "rejects.jsonl").read_text()


def test_rebuild_replaces_index_and_cleans_old_generation(built: Path) -> None:
    Recommender.build([article("only", "one lonely article")], built, encoder=HashingEncoder(256))
    with Recommender.open(built) as rec:
        assert len(rec) == 1
    assert len([p for p in built.iterdir() if p.name.startswith("gen-")]) == 1


# -- updates -------------------------------------------------------------------------------


def test_upsert_skips_unchanged_without_calling_the_model(
    built: Path, corpus: list[Article]
) -> None:
    counting = HashingEncoder(256)
    with Recommender.open(built, encoder=counting) as rec:
        report = rec.upsert(corpus)
    assert counting.calls == 0 and counting.texts_encoded == 0
    assert report.unchanged == len(corpus)
    assert report.added == report.reembedded == report.metadata_updated == 0


def test_upsert_adds_reembeds_and_updates_metadata(built: Path, corpus: list[Article]) -> None:
    counting = HashingEncoder(256)
    changed = replace(corpus[0], body="earthquake rubble rescue aftershock magnitude tremor")
    retagged = replace(corpus[1], section="economy")
    new = article("port-new", "valdora port dockworkers strike union cranes", section="business")
    with Recommender.open(built, encoder=counting) as rec:
        report = rec.upsert([changed, retagged, new, corpus[2]])
        assert (report.added, report.reembedded, report.metadata_updated, report.unchanged) == (
            1,
            1,
            1,
            1,
        )
        assert counting.texts_encoded == 2  # only the new and the changed article
        assert rec.get(retagged.id).section == "economy"
        # The re-embedded article now sits with the quake story.
        assert {m.id for m in rec.related(changed.id, k=4)} == {f"quake-{n}" for n in range(4)}
        assert "port-new" in {m.id for m in rec.related("port-1", k=3)}
    with Recommender.open(built) as fresh:  # persisted
        assert len(fresh) == len(corpus) + 1
        assert fresh.get("port-new").section == "business"


def test_int_ids_are_stable_across_updates(built: Path, corpus: list[Article]) -> None:
    from recommender.index.catalog import Catalog
    from recommender.index.layout import IndexLayout

    def id_map() -> dict[str, int]:
        layout = IndexLayout(built)
        catalog = Catalog(layout.generation_dir(layout.read_manifest()) / "catalog.sqlite3")
        try:
            return catalog.int_ids([a.id for a in corpus] + ["late"])
        finally:
            catalog.close()

    before = id_map()
    with Recommender.open(built, encoder=HashingEncoder(256)) as rec:
        rec.remove(["port-1"])
        rec.upsert([replace(corpus[0], body="rewritten body"), article("late", "late body")])
        rec.upsert([corpus[1]])  # re-added after removal
    after = id_map()
    for aid, iid in before.items():
        if aid != "port-1":
            assert after[aid] == iid
    assert after["port-1"] not in before.values()  # a removed int id is never reused
    assert after["late"] not in before.values()


def test_remove(built: Path, corpus: list[Article]) -> None:
    with Recommender.open(built) as rec:
        report = rec.remove(["port-1", "ghost"])
        assert report.removed == 1 and report.missing == ("ghost",)
        assert "port-1" not in {m.id for m in rec.related("port-0", k=20)}
        with pytest.raises(ArticleNotFoundError):
            rec.related("port-1")
    with Recommender.open(built) as fresh:
        assert len(fresh) == len(corpus) - 1
        assert "port-1" not in fresh


def test_writes_from_another_instance_are_seen_on_next_query(built: Path) -> None:
    reader = Recommender.open(built)
    writer = Recommender.open(built, encoder=HashingEncoder(256))
    writer.upsert([article("port-x", "valdora port dockworkers strike union cranes harbor")])
    writer.remove(["port-2"])
    ids = {m.id for m in reader.related("port-0", k=20)}
    assert "port-x" in ids and "port-2" not in ids
    writer.close()
    reader.close()


def test_rebuild_is_picked_up_by_an_open_reader(built: Path) -> None:
    reader = Recommender.open(built)
    Recommender.build(
        [article("n1", "alpha beta gamma"), article("n2", "alpha beta delta")],
        built,
        encoder=HashingEncoder(256),
    ).close()
    assert [m.id for m in reader.related("n1")] == ["n2"]
    reader.close()


def test_checkpoint_compacts_history_and_state_survives(built: Path, corpus: list[Article]) -> None:
    with Recommender.open(built, encoder=HashingEncoder(256)) as rec:
        rec.upsert([article("c1", "valdora port strike cranes")])
        rec.checkpoint()
        rec.remove(["c1"])
        rec.upsert([article("c2", "earthquake rubble rescue")])
    with Recommender.open(built) as fresh:
        assert "c1" not in fresh and "c2" in fresh
        assert len(fresh) == len(corpus) + 1
        assert fresh.info().counts == {
            "articles": len(corpus) + 1,
            "vectors": len(corpus) + 1,
        }


def test_stale_snapshot_is_replayed_from_the_catalog(built: Path, corpus: list[Article]) -> None:
    # Small updates commit to the catalog and leave the vector snapshot behind
    # (as a crash right after the commit would); opening replays the change log.
    with Recommender.open(built, encoder=HashingEncoder(256)) as rec:
        rec.upsert([article("late", "valdora port strike dockworkers cranes harbor union")])
        rec.remove(["port-3"])
    gen = next(p for p in built.iterdir() if p.name.startswith("gen-"))
    assert sorted(p.name for p in gen.glob("vectors.*.faiss")) == ["vectors.1.faiss"]
    with Recommender.open(built) as fresh:
        ids = {m.id for m in fresh.related("port-0", k=50)}
        assert "late" in ids and "port-3" not in ids
        assert fresh.info().counts["vectors"] == len(corpus)


def test_info(built: Path, corpus: list[Article]) -> None:
    with Recommender.open(built) as rec:
        data = rec.info().to_dict()
    assert data["counts"]["articles"] == len(corpus)
    assert data["path"] == str(built)


def _stored_vectors(rec: Recommender) -> dict[str, np.ndarray]:
    """Every article's vector as the catalog keeps it (not the FAISS copy the search reads)."""
    catalog = rec._index.state.catalog
    names = dict(catalog.all_ids())
    stored = catalog.vectors(list(names), rec.manifest["model"]["dimension"])
    return {names[i]: vector.astype(np.float64) for i, vector in stored.items()}


def test_dense_scores_are_cosines_of_unit_vectors(built: Path, corpus: list[Article]) -> None:
    # With the dense side alone and no time prior, a score is the documented cosine: the
    # inner product of the two stored unit vectors (shown to 6 decimals).
    plain = RankingConfig(method="dense", time_weight=0.0)
    with Recommender.open(built) as rec:
        matches = rec.related("port-0", k=len(corpus), ranking=plain)
        vectors = _stored_vectors(rec)
    assert [np.linalg.norm(v) for v in vectors.values()] == pytest.approx(
        [1.0] * len(corpus), abs=1e-6
    )
    query = vectors["port-0"]
    cosines = {aid: float(v @ query) for aid, v in vectors.items() if aid != "port-0"}
    assert {m.id: m.score for m in matches} == pytest.approx(cosines, abs=1e-6)
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)


def test_related_all_matches_related_for_every_article(built: Path, corpus: list[Article]) -> None:
    with Recommender.open(built) as rec:
        everything = dict(rec.related_all(k=4, batch_size=5))
        assert set(everything) == {a.id for a in corpus}
        for article_id, matches in everything.items():
            assert matches == rec.related(article_id, k=4)
        subset = dict(rec.related_all(k=2, ids=["quake-1"]))
        assert list(subset) == ["quake-1"]
        with pytest.raises(ArticleNotFoundError, match="ghost"):
            list(rec.related_all(ids=["ghost"]))


def test_related_all_in_worker_processes_gives_the_same_lists_in_order(built: Path) -> None:
    with Recommender.open(built) as rec:
        alone = list(rec.related_all(k=3, batch_size=2))
        pooled = list(rec.related_all(k=3, batch_size=2, workers=2))
        assert pooled == alone
        with pytest.raises(InvalidArgumentError, match="workers must be >= 1, got 0"):
            list(rec.related_all(workers=0))


def test_pool_statistics_are_stored_for_new_articles(built: Path) -> None:
    from recommender.index.catalog import Catalog
    from recommender.index.layout import IndexLayout

    with Recommender.open(built, encoder=HashingEncoder(256)) as rec:
        rec.upsert([article("fresh", "valdora port dockworkers strike cranes harbor")])
    layout = IndexLayout(built)
    catalog = Catalog(layout.generation_dir(layout.read_manifest()) / "catalog.sqlite3")
    try:
        stats = catalog.pool_stats(list(catalog.int_ids(["fresh", "port-0"]).values()))
    finally:
        catalog.close()
    assert np.isfinite(stats).all() and (stats[:, 1] > 0).all()


@contextmanager
def _two_catalogs(built: Path) -> Iterator[tuple[Catalog, Catalog, np.ndarray]]:
    """A reader and a writer on ``built``'s catalog (another process's view), and two ids."""
    from recommender.index.catalog import Catalog
    from recommender.index.layout import IndexLayout

    layout = IndexLayout(built)
    path = layout.generation_dir(layout.read_manifest()) / "catalog.sqlite3"
    reader, writer = Catalog(path), Catalog(path)
    try:
        ids = np.array(sorted(reader.int_ids(["port-0", "port-1"]).values()), dtype=np.int64)
        yield reader, writer, ids
    finally:
        reader.close()
        writer.close()


def _counted_reads(catalog: Catalog) -> list[int]:
    """One entry per ``catalog.numbers`` call from now on."""
    reads: list[int] = []
    original = catalog.numbers

    def counted(*args: object) -> object:
        reads.append(1)
        return original(*args)  # type: ignore[arg-type]

    catalog.numbers = counted  # type: ignore[method-assign]
    return reads


def test_statistics_not_stored_yet_are_read_again_only_after_a_commit(built: Path) -> None:
    from recommender.index.state import ArticleNumbers

    with _two_catalogs(built) as (reader, writer, ids):
        writer.set_pool_stats(ids.tolist(), np.full((2, 4), np.nan))  # as if not computed yet
        numbers = ArticleNumbers(reader)
        reads = _counted_reads(reader)
        assert np.isnan(numbers.stats(ids)).all()
        assert np.isnan(numbers.stats(ids)).all()
        assert len(reads) <= 1  # nothing committed since: no query per request
        # Another process stores them: the next request reads them.
        writer.set_pool_stats(ids.tolist(), np.ones((2, 4)))
        assert numbers.stats(ids) == pytest.approx(np.ones((2, 4)))


def test_known_numbers_are_served_from_memory_until_forgotten(built: Path) -> None:
    from recommender.index.state import ArticleNumbers

    with _two_catalogs(built) as (reader, writer, ids):
        # port-0 and port-1 (conftest's corpus), in the int id order of ``ids``.
        dates = {"port-0": "2026-03-10T09:00:00+00:00", "port-1": "2026-03-11T09:00:00+00:00"}
        by_int = {i: aid for aid, i in reader.int_ids(dates).items()}
        published = [datetime.fromisoformat(dates[by_int[i]]).timestamp() for i in ids.tolist()]
        numbers = ArticleNumbers(reader)
        before = numbers.stats(ids)
        assert np.isfinite(before).all()
        reads = _counted_reads(reader)
        writer.set_pool_stats(ids.tolist(), before + 1.0)
        assert numbers.stats(ids).tolist() == before.tolist()  # known: no catalog read
        # Publication times come from memory too, and are the articles' own.
        assert numbers.times(ids).tolist() == published and not reads
        # An id that is not an article (-1) reads as unknown without touching the rest.
        assert np.isnan(numbers.stats(np.array([-1, ids[0]]))[0]).all()
        numbers.forget(ids)  # what a write to them does: the next use reads them again
        assert numbers.stats(ids) == pytest.approx(before + 1.0)
        assert len(reads) == 1


def test_pool_statistics_from_worker_processes_equal_one_process(
    tmp_path: Path, corpus: list[Article], monkeypatch: pytest.MonkeyPatch
) -> None:
    from recommender.index.catalog import Catalog
    from recommender.index.layout import IndexLayout
    from recommender.writes import build as module

    def stats_of(path: Path) -> np.ndarray:
        layout = IndexLayout(path)
        catalog = Catalog(layout.generation_dir(layout.read_manifest()) / "catalog.sqlite3")
        try:
            ids = [i for i, _ in sorted(catalog.all_ids(), key=lambda pair: pair[1])]
            return catalog.pool_stats(ids)
        finally:
            catalog.close()

    Recommender.build(corpus, tmp_path / "one", encoder=HashingEncoder(256), workers=1).close()
    monkeypatch.setattr(module, "PARALLEL_STATS_MIN", 1)  # parallel even for a tiny corpus
    Recommender.build(corpus, tmp_path / "two", encoder=HashingEncoder(256), workers=2).close()
    one, two = stats_of(tmp_path / "one"), stats_of(tmp_path / "two")
    assert np.isfinite(one).all()
    assert two == pytest.approx(one, rel=1e-6)


def test_manifest_records_the_ranking(built: Path) -> None:
    manifest = json.loads((built / "manifest.json").read_text())
    assert RankingConfig.from_dict(manifest["ranking"]) == RankingConfig()
    custom = RankingConfig(diversity=0.2, time_weight=0.5)
    Recommender.build(
        [article("a", "x y"), article("b", "x z")],
        built,
        encoder=HashingEncoder(256),
        ranking=custom,
    ).close()
    with Recommender.open(built) as rec:
        assert rec.ranking == custom


def test_neighbour_feedback_moves_the_query_towards_its_story(built: Path) -> None:
    # Documented (RankingConfig.feedback_*): the dense query moves towards the mean of its
    # top feedback_docs results by feedback_weight (Rocchio), normalised, then re-queries.
    # On the dense side alone every score of the second pass is then a cosine with it.
    dense = RankingConfig(method="dense", time_weight=0.0)
    with Recommender.open(built) as rec:
        before = rec.related("quake-0", k=20, ranking=dense)
        after = rec.related(
            "quake-0", k=20, ranking=dense.with_options(feedback_docs=2, feedback_weight=0.5)
        )
        hybrid = RankingConfig(time_weight=0.0, feedback_docs=2, feedback_weight=1.0)
        story = rec.related("quake-0", k=3, ranking=hybrid)
        vectors = _stored_vectors(rec)
    top = [m.id for m in before[:2]]
    assert set(top) < {"quake-1", "quake-2", "quake-3"}
    moved = vectors["quake-0"] + 0.5 * (vectors[top[0]] + vectors[top[1]]) / 2
    moved /= np.linalg.norm(moved)
    expected = {aid: float(v @ moved) for aid, v in vectors.items() if aid != "quake-0"}
    assert {m.id: m.score for m in after} == pytest.approx(expected, abs=1e-6)
    # Towards its story: every other article of the story is closer to the moved query.
    old, new = {m.id: m.score for m in before}, {m.id: m.score for m in after}
    for aid in ("quake-1", "quake-2", "quake-3"):
        assert new[aid] > old[aid], aid
    assert {m.id for m in story} == {"quake-1", "quake-2", "quake-3"}


def test_an_article_object_with_invalid_text_is_rejected_not_a_crash(
    tmp_path: Path, corpus: list[Article], encoder: HashingEncoder
) -> None:
    """Articles built in code pass the same text gate as records read from files."""
    rec = Recommender.build(corpus, tmp_path / "idx", encoder=encoder)
    report = rec.upsert([Article(id="\ud800", body="x"), Article(id="fine", body="harbour")])
    assert report.added == 1
    (rejected,) = report.rejected
    assert rejected.reason == "id: invalid Unicode (lone surrogate U+D800 at character 1)"
    lines = (tmp_path / "idx" / "rejects.jsonl").read_text("ascii").splitlines()
    assert [json.loads(line)["reason"] for line in lines] == [rejected.reason]
    with pytest.raises(InvalidArgumentError, match=r"^section: invalid Unicode"):
        rec.similar(text="harbour", section="\ud800")
    with pytest.raises(InvalidArgumentError, match=r"^id: invalid Unicode") as caught:
        rec.related("\ud800")
    assert caught.value.field == "id"
    assert "\ud800" not in rec
