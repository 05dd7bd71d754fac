"""One contract, every vector store: FAISS, Milvus Lite and a real Milvus server.

The server tests use the Milvus server the test session starts (tests/milvus_support.py),
or $RECOMMENDER_MILVUS_URL; without milvus-server they skip, under CI they fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from recommender import Article, Match, Recommender, StoreError
from recommender.embedding.encoders import HashingEncoder
from recommender.filters import Filters
from recommender.stores import VectorMeta, VectorStore, check_store_url, new_store
from recommender.stores.faiss import FaissStore

from .conftest import article
from .milvus_support import STORES, store_url, unique_collection

DIM = 16
N = 60


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    out: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return out


def _meta(i: int) -> VectorMeta:
    return VectorMeta(
        section=("politics", "sport", "culture")[i % 3],
        language="en" if i % 4 else "fr",
        published=None if i % 5 == 0 else 1_700_000_000.0 + i * 86_400,
    )


def _open(kind: str, tmp_path: Path) -> VectorStore:
    if kind == "faiss":
        return FaissStore(DIM)
    from recommender.stores.milvus import MilvusStore

    url = store_url(kind, tmp_path)
    return MilvusStore.create(url, DIM, collection=unique_collection())


@pytest.fixture(params=STORES)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def filled(kind: str, tmp_path: Path) -> Iterator[tuple[VectorStore, np.ndarray]]:
    """N vectors under ids 100.. with section/language/date metadata."""
    store = _open(kind, tmp_path)
    vectors = _unit(np.random.default_rng(7), N)
    store.add(np.arange(100, 100 + N), vectors, [_meta(i) for i in range(N)])
    yield store, vectors
    _dispose(store)


def _dispose(store: VectorStore) -> None:
    drop = getattr(store, "drop", None)
    if drop is not None:
        drop()
    store.close()


def _exact(vectors: np.ndarray, ids: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    order = np.argsort(-(vectors @ query), kind="stable")[:k]
    return [int(ids[i]) for i in order]


def test_add_len_get(filled: tuple[VectorStore, np.ndarray]) -> None:
    store, vectors = filled
    assert len(store) == N
    assert store.get(np.array([105, 100])) == pytest.approx(vectors[[5, 0]], abs=1e-6)
    with pytest.raises(KeyError):
        store.get(np.array([100, 999]))


def test_search_is_exact_inner_product(filled: tuple[VectorStore, np.ndarray]) -> None:
    store, vectors = filled
    ids = np.arange(100, 100 + N)
    queries = vectors[:4]
    result = store.search(queries, 10)
    for row, query in enumerate(queries):
        assert result.ids[row].tolist() == _exact(vectors, ids, query, 10)
        assert result.scores[row] == pytest.approx(np.sort(vectors @ query)[::-1][:10], abs=1e-5)


def test_search_pads_when_fewer_than_k(filled: tuple[VectorStore, np.ndarray]) -> None:
    store, vectors = filled
    result = store.search(vectors[:1], 8, include=np.array([101, 102, 103]))
    found = [i for i in result.ids[0].tolist() if i >= 0]
    assert sorted(found) == [101, 102, 103]


def test_include_and_exclude(filled: tuple[VectorStore, np.ndarray]) -> None:
    store, vectors = filled
    allowed = np.arange(100, 100 + N, 3)
    got = store.search(vectors[:2], 5, include=allowed, exclude=np.array([100, 103]))
    for row in range(2):
        keep = np.isin(np.arange(100, 100 + N), allowed) & ~np.isin(
            np.arange(100, 100 + N), [100, 103]
        )
        want = _exact(vectors[keep], np.arange(100, 100 + N)[keep], vectors[row], 5)
        assert got.ids[row].tolist() == want


def test_remove_counts_only_present_ids(filled: tuple[VectorStore, np.ndarray]) -> None:
    store, vectors = filled
    assert store.remove(np.array([100, 101, 5_000])) == 2
    assert len(store) == N - 2
    assert store.remove(np.array([100])) == 0
    assert not {100, 101} & set(store.search(vectors[:2], N).ids.ravel().tolist())


def test_upsert_replaces_in_place(filled: tuple[VectorStore, np.ndarray]) -> None:
    store, _ = filled
    new = _unit(np.random.default_rng(11), 2)
    store.upsert(np.array([110, 500]), new, [_meta(10), _meta(500)])
    assert len(store) == N + 1
    assert store.get(np.array([110, 500])) == pytest.approx(new, abs=1e-6)
    top = store.search(new[:1], 3).ids[0].tolist()
    assert top[0] == 110 and top.count(110) == 1


def test_save_and_load_give_the_same_answers(
    filled: tuple[VectorStore, np.ndarray], tmp_path: Path
) -> None:
    store, vectors = filled
    path = tmp_path / f"vectors.1.{store.snapshot_suffix}"
    store.save(path)
    loaded = type(store).load(path, DIM, mmap=True, **store.options())
    try:
        assert len(loaded) == N
        got, want = loaded.search(vectors[:3], 6), store.search(vectors[:3], 6)
        assert got.ids.tolist() == want.ids.tolist()
    finally:
        loaded.close()


def _passes(i: int, where: Filters) -> bool:
    meta = _meta(i)
    if where.sections and meta.section not in {s.lower() for s in where.sections}:
        return False
    if where.languages and meta.language not in {s.lower() for s in where.languages}:
        return False
    if where.since is not None or where.until is not None:
        if meta.published is None:
            return False
        if where.since is not None and meta.published < where.since:
            return False
        if where.until is not None and meta.published >= where.until:
            return False
    return True


@pytest.mark.parametrize(
    "where",
    [
        Filters(sections=("Politics",)),
        Filters(sections=("sport", "culture"), languages=("EN",)),
        Filters(since=1_700_000_000.0 + 10 * 86_400, until=1_700_000_000.0 + 40 * 86_400),
        Filters(languages=("fr",), since=1_700_000_000.0 + 20 * 86_400),
    ],
)
def test_metadata_filters_run_in_the_engine(
    filled: tuple[VectorStore, np.ndarray], where: Filters
) -> None:
    store, vectors = filled
    if not store.keeps_metadata:
        with pytest.raises(TypeError):
            store.search(vectors[:1], 5, where=where)
        return
    ids = np.arange(100, 100 + N)
    keep = np.array([_passes(i, where) for i in range(N)]) & (ids != 104)
    got = store.search(vectors[:2], 5, where=where, exclude=np.array([104]))
    for row in range(2):
        assert got.ids[row].tolist()[: keep.sum()] == _exact(
            vectors[keep], ids[keep], vectors[row], 5
        )


# -- the engine behind the whole Recommender ------------------------------------------------


@pytest.fixture
def corpus_store(kind: str, tmp_path: Path) -> str:
    return store_url(kind, tmp_path)


def _listed(matches: list[Match]) -> list[tuple[float, str]]:
    """Scores (to 4 places) and ids; equal scores in id order, as engines order ties freely.

    Tests ask for every candidate (k=13 of 14), so no tie is cut at the k-th place.
    """
    return sorted((-round(m.score, 4), m.id) for m in matches)


def test_recommender_answers_the_same_on_every_store(
    corpus: list[Article], encoder: HashingEncoder, tmp_path: Path, corpus_store: str
) -> None:
    reference = Recommender.build(corpus, tmp_path / "faiss", encoder=encoder)
    rec = Recommender.build(corpus, tmp_path / "other", encoder=encoder, store=corpus_store)
    queries = [
        {},
        {"section": "business"},
        {"language": "fr"},
        {"since": "2026-03-11", "until": "2026-03-12"},
        {"exclude": ["quake-1", "port-2"]},
    ]
    try:
        for aid in ("port-0", "quake-3", "budget-1", "filler-1"):
            for options in queries:
                want = _listed(reference.related(aid, k=13, **options))
                got = _listed(rec.related(aid, k=13, **options))
                assert got == want, (aid, options)
    finally:
        reference.close()
        rec.close()


def test_writes_reach_every_reader_of_a_shared_store(
    corpus: list[Article], encoder: HashingEncoder, tmp_path: Path, corpus_store: str
) -> None:
    path = tmp_path / "idx"
    writer = Recommender.build(corpus, path, encoder=encoder, store=corpus_store)
    reader = Recommender.open(path, encoder=encoder)
    try:
        text = "harbor dockworkers strike valdora port cranes container shipping union wages"
        writer.upsert([article("port-9", text, section="Business", language="en")])
        writer.remove(["port-1"])
        # A metadata-only change moves port-2 out of the business section.
        moved = next(a for a in corpus if a.id == "port-2")
        writer.upsert([{**moved.to_dict(), "section": "archive"}])
        ids = [m.id for m in reader.related("port-0", k=5, section="business")]
        assert "port-9" in ids and "port-1" not in ids and "port-2" not in ids
        assert len(reader) == len(corpus)
        assert reader.info().counts["vectors"] == len(corpus)
    finally:
        writer.close()
        reader.close()


def test_a_rebuild_writes_a_new_collection_and_drops_the_old(
    corpus: list[Article], encoder: HashingEncoder, tmp_path: Path, kind: str, corpus_store: str
) -> None:
    if kind == "faiss":
        pytest.skip("FAISS keeps its vectors in the index directory")
    from recommender.stores.milvus import MilvusStore

    path = tmp_path / "idx"
    Recommender.build(corpus, path, encoder=encoder, store=corpus_store).close()
    first = Recommender.open(path).manifest["store_options"]
    Recommender.build(corpus[:5], path, encoder=encoder, store=corpus_store).close()
    with Recommender.open(path, encoder=encoder) as rec:
        second = rec.manifest["store_options"]
        assert second["collection"] != first["collection"] and len(rec) == 5
        assert second["url"] == first["url"]
        probe = MilvusStore(0, url=second["url"], collection="")
        try:
            names = probe._call("list_collections")
        finally:
            probe.close()
        assert second["collection"] in names and first["collection"] not in names


def test_the_manifest_never_holds_credentials(tmp_path: Path) -> None:
    from recommender.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="credentials"):
        check_store_url("milvus://root:secret@127.0.0.1:19530")
    with pytest.raises(InvalidArgumentError, match="'faiss'"):
        check_store_url("qdrant://x")
    with pytest.raises(InvalidArgumentError, match="'FLAT'"):
        check_store_url("milvus://127.0.0.1:19530?index=DISKANN")


def test_an_unreachable_engine_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"127\.0\.0\.1:9"):
        new_store("milvus://127.0.0.1:9", DIM, generation=tmp_path / "gen-x", index_type="auto")


def test_reads_wait_for_the_engine_only_after_a_change(
    filled: tuple[VectorStore, np.ndarray],
) -> None:
    """Strong reads (they wait for a server time tick) only after a change this process saw."""
    store, vectors = filled
    if not store.shared:
        pytest.skip("only a shared engine has read consistency levels")
    from recommender.stores.milvus import MilvusStore

    assert isinstance(store, MilvusStore)
    assert store._consistency() == "Strong"  # just written to
    store._strong_until = 0.0
    assert store._consistency() == "Bounded"
    store.saw_change()  # e.g. another process's write, seen through the catalog
    assert store._consistency() == "Strong"
    store._strong_until = 0.0
    store.upsert(np.array([100]), vectors[:1], [_meta(0)])
    assert store._consistency() == "Strong"
