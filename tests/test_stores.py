"""The FAISS store, in memory and over a memory-mapped snapshot with its overlay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recommender.stores.faiss import FaissStore

DIM = 16


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture
def pair(tmp_path: Path) -> tuple[FaissStore, FaissStore, np.random.Generator]:
    """The same 50 vectors in memory and mapped from a snapshot."""
    rng = np.random.default_rng(3)
    memory = FaissStore(DIM)
    memory.add(np.arange(100, 150), _unit(rng, 50))
    memory.save(tmp_path / "vectors.faiss")
    mapped = FaissStore.load(tmp_path / "vectors.faiss", DIM, mmap=True)
    assert mapped.mapped and not memory.mapped
    return memory, mapped, rng


def _same_search(a: FaissStore, b: FaissStore, queries: np.ndarray, **kw: np.ndarray) -> None:
    got_a, got_b = a.search(queries, 8, **kw), b.search(queries, 8, **kw)
    assert got_a.ids.tolist() == got_b.ids.tolist()
    assert got_a.scores == pytest.approx(got_b.scores, abs=1e-6)


def test_writes_over_a_mapped_snapshot_behave_like_memory(
    pair: tuple[FaissStore, FaissStore, np.random.Generator], tmp_path: Path
) -> None:
    memory, mapped, rng = pair
    new = _unit(rng, 5)
    for store in (memory, mapped):
        store.add(np.arange(200, 205), new)
        assert store.remove(np.array([100, 101, 202, 999])) == 3
        assert len(store) == 52
    assert mapped.overlay_size == 4 + 2  # 4 added vectors held, 2 base ids hidden
    queries = np.vstack([memory.get(np.array([102, 200])), _unit(rng, 3)])
    _same_search(memory, mapped, queries)
    _same_search(memory, mapped, queries, include=np.array([100, 102, 200, 203]))
    _same_search(memory, mapped, queries, exclude=np.array([102, 200]))
    assert mapped.get(np.array([203, 105])) == pytest.approx(memory.get(np.array([203, 105])))
    for gone in (100, 202):
        with pytest.raises(KeyError):
            mapped.get(np.array([gone]))
    # A checkpoint folds the overlay into a new snapshot.
    mapped.save(tmp_path / "next.faiss")
    folded = FaissStore.load(tmp_path / "next.faiss", DIM, mmap=True)
    assert len(folded) == 52 and folded.overlay_size == 0
    _same_search(memory, folded, queries)


def test_a_removed_then_re_added_id_is_found_once(
    pair: tuple[FaissStore, FaissStore, np.random.Generator],
) -> None:
    memory, mapped, rng = pair
    vector = _unit(rng, 1)
    for store in (memory, mapped):
        store.remove(np.array([120]))
        store.add(np.array([120]), vector)  # an article re-embedded after an edit
    result = mapped.search(vector, 3)
    assert result.ids[0].tolist().count(120) == 1
    assert mapped.get(np.array([120])) == pytest.approx(vector)
    _same_search(memory, mapped, vector)


def test_search_never_asks_for_more_than_there_is(
    pair: tuple[FaissStore, FaissStore, np.random.Generator],
) -> None:
    _, mapped, rng = pair
    mapped.remove(np.arange(100, 148))
    mapped.add(np.array([300]), _unit(rng, 1))
    result = mapped.search(_unit(rng, 1), 10)
    assert sorted(result.ids[0].tolist()) == [148, 149, 300]
