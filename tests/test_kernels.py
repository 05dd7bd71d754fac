"""The compiled loops against plain numpy/scipy arithmetic."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.compiled import kernels
from recommender.compiled.switch import compiled_loops
from recommender.lexical.search import _NO_MASK, _found
from recommender.lexical.snapshot import _encoded
from recommender.lexical.weights import _NO_TABLE

T = TypeVar("T")


def _matrix(rows: int, seed: int) -> sp.csr_matrix:
    matrix = sp.random(rows, 300, density=0.2, format="csr", dtype=np.float32, random_state=seed)
    matrix.data = (1.0 + np.log1p(np.floor(matrix.data * 6))).astype(np.float32)
    return matrix


@pytest.mark.parametrize("coded", [False, True])
def test_dots_equal_float64_products_of_the_stored_weights(coded: bool) -> None:
    matrix = _matrix(50, 3)
    table, data = _NO_TABLE, matrix.data
    if coded:
        table, codes = _encoded(matrix.data)
        assert codes is not None
        data = codes
    rng = np.random.default_rng(0)
    terms = np.sort(rng.choice(300, size=40, replace=False)).astype(np.int32)
    weights = rng.random(40).astype(np.float32)
    rows = np.array([0, 7, 7, 49, 3])  # repeats and any order
    got = kernels.dots(matrix.indptr, matrix.indices, data, table, rows, terms, weights)
    query = np.zeros(300)
    query[terms] = weights
    expected = matrix.toarray().astype(np.float64)[rows] @ query
    assert got == pytest.approx(expected, rel=1e-12)


def test_dots_of_rows_without_shared_terms_are_zero() -> None:
    matrix = sp.csr_matrix(np.array([[1.0, 0, 0], [0, 0, 2.0], [0, 0, 0]], dtype=np.float32))
    terms, weights = np.array([1], dtype=np.int32), np.array([0.5], dtype=np.float32)
    got = kernels.dots(
        matrix.indptr, matrix.indices, matrix.data, _NO_TABLE, np.arange(3), terms, weights
    )
    assert got.tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("n", [1, 5, 400])
def test_the_heap_keeps_the_best_n_best_first(n: int) -> None:
    postings = _matrix(300, 5)  # 300 terms x 300 rows, used as inverted lists
    rng = np.random.default_rng(n)
    terms = np.sort(rng.choice(300, size=12, replace=False)).astype(np.int32)
    weights = rng.random(12).astype(np.float32)
    norms = (rng.random(300) + 0.5).astype(np.float32)
    segments = [(postings, _NO_TABLE, 0)]
    rows, scores = _found(segments, terms, weights, norms, _NO_MASK)
    best_rows, best = _found(segments, terms, weights, norms, _NO_MASK, top=n)
    assert len(best) == min(n, len(scores))
    assert best.tolist() == sorted(scores.tolist(), reverse=True)[: len(best)]
    assert (
        dict(zip(best_rows.tolist(), best.tolist(), strict=True)).items()
        <= dict(zip(rows.tolist(), scores.tolist(), strict=True)).items()
    )


def test_an_interrupted_search_leaves_no_sums_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    postings = _matrix(300, 7)
    terms, weights = np.array([3, 9, 40], dtype=np.int32), np.ones(3, dtype=np.float32)
    norms = np.ones(300, dtype=np.float32)
    segments = [(postings, _NO_TABLE, 0)]

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    with compiled_loops():
        before = _found(segments, terms, weights, norms, _NO_MASK)
        with monkeypatch.context() as patch:
            patch.setattr(kernels, "collect", interrupted)
            with pytest.raises(KeyboardInterrupt):
                _found(segments, terms, weights, norms, _NO_MASK)
        after = _found(segments, terms, weights, norms, _NO_MASK)
    assert after[0].tolist() == before[0].tolist() and after[1].tolist() == before[1].tolist()


def test_no_terms_find_nothing() -> None:
    postings = _matrix(300, 9)
    none = np.zeros(0, dtype=np.int32)
    rows, scores = _found(
        [(postings, _NO_TABLE, 0)],
        none,
        np.zeros(0, dtype=np.float32),
        np.ones(300, np.float32),
        _NO_MASK,
        top=5,
    )
    assert rows.tolist() == [] and scores.tolist() == []


def _in_a_fresh_process(index: Path, *lines: str) -> list[str]:
    """What ``lines`` print, run in a new interpreter with ``rec`` open on ``index``."""
    script = "\n".join(
        [
            "import sys",
            "from recommender import Recommender",
            "from recommender.compiled import switch",
            "rec = Recommender.open(sys.argv[1])",
            "ids = [a for _, a in rec._index.state.catalog.all_ids()]",
            *lines,
        ]
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(index)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.split()


def test_the_switch_loads_numba_from_a_process_s_second_query(built: Path) -> None:
    """One query (a CLI command) runs through numpy and never imports numba; the second
    query of the same process loads the compiled loops, and they stay."""
    printed = _in_a_fresh_process(
        built,
        "rec.related(ids[0])",
        "print('numba' in sys.modules, switch.enabled())",
        "rec.related(ids[1])",
        "print('numba' in sys.modules, switch.enabled())",
    )
    assert printed == ["False", "False", "True", "True"]


def test_a_batch_of_queries_runs_compiled_from_the_start(built: Path) -> None:
    printed = _in_a_fresh_process(
        built,
        "lists = rec.related_all(k=3)",
        "print(switch.enabled(), len(list(lists)) == len(rec), switch.enabled())",
    )
    assert printed == ["False", "True", "True"]


def test_a_warm_up_query_loads_the_kernels_before_any_request(built: Path) -> None:
    printed = _in_a_fresh_process(
        built,
        "from recommender.compiled import kernels",
        "before = len(kernels.accumulate.signatures)",
        "answered = rec.warm_up()",
        "after = len(kernels.accumulate.signatures), len(kernels.dots.signatures)",
        "print(before, answered, *after)",
    )
    before, answered, accumulate, dots = printed
    assert (before, answered) == ("0", "True")
    assert int(accumulate) >= 1 and int(dots) >= 1


def _both(call: Callable[[], T]) -> tuple[T, T]:
    """``call()`` with the loops compiled, then through numpy."""
    from recommender.compiled.switch import compiled_loops, numpy_loops

    with compiled_loops():
        compiled = call()
    with numpy_loops():
        return compiled, call()


@pytest.mark.parametrize("top", [None, 4])
def test_numpy_and_compiled_searches_agree_bit_for_bit(top: int | None) -> None:
    base = _matrix(300, 11)
    table, codes = _encoded(base.data)
    assert codes is not None
    coded = sp.csr_matrix((codes, base.indices, base.indptr), shape=base.shape)
    delta = _matrix(300, 12)[:, :40]  # 300 terms x 40 newer rows
    rng = np.random.default_rng(4)
    terms = np.sort(rng.choice(300, size=20, replace=False)).astype(np.int32)
    weights = rng.random(20).astype(np.float32)
    norms = (rng.random(340) + 0.5).astype(np.float32)
    allowed = rng.random(340) < 0.7
    segments = [(coded, table, 0), (delta, _NO_TABLE, 300)]
    for mask in (_NO_MASK, allowed):
        compiled, numpy = _both(lambda m=mask: _found(segments, terms, weights, norms, m, top=top))
        if top is None:  # every row found, in the order each way met them
            compiled, numpy = _by_row(*compiled), _by_row(*numpy)
        assert compiled[0].tolist() == numpy[0].tolist()
        assert compiled[1].tobytes() == numpy[1].tobytes()


def _by_row(rows: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(rows)
    return rows[order], scores[order]


def test_numpy_and_compiled_related_lists_agree_bit_for_bit(built: Path) -> None:
    from recommender import Recommender

    with Recommender.open(built) as rec:
        ids = [article_id for _, article_id in rec._index.state.catalog.all_ids()]
        compiled, numpy = _both(lambda: [rec.related(article_id, k=5) for article_id in ids])
    assert compiled == numpy
    assert any(matches for matches in compiled)


@pytest.mark.parametrize("top", [1, 3, 8])
def test_equal_scores_at_the_cut_go_to_the_lower_row_both_ways(top: int) -> None:
    # Rows 20-39 copy rows 0-19 (a wire story printed twice): every score comes in pairs.
    half = _matrix(300, 13)[:, :20].toarray()
    postings = sp.csr_matrix(np.hstack([half, half]).astype(np.float32))
    rng = np.random.default_rng(top)
    terms = np.sort(rng.choice(300, size=25, replace=False)).astype(np.int32)
    weights = rng.random(25).astype(np.float32)
    norms = np.ones(40, dtype=np.float32)
    segments = [(postings, _NO_TABLE, 0)]
    everything = _found(segments, terms, weights, norms, _NO_MASK)
    expected = np.lexsort((everything[0], -everything[1]))[:top]
    compiled, numpy = _both(lambda: _found(segments, terms, weights, norms, _NO_MASK, top=top))
    for rows, scores in (compiled, numpy):
        assert rows.tolist() == everything[0][expected].tolist()
        assert scores.tobytes() == everything[1][expected].tobytes()


def test_widen_reads_every_float16_bit_pattern_as_numpys_cast_does() -> None:
    every = np.arange(2**16, dtype=np.uint16).reshape(-1, 64)
    got = kernels.widen(every, np.arange(len(every))[::-1].copy())
    expected = every[::-1].view(np.float16).astype(np.float32)
    nan = np.isnan(expected)
    assert (np.isnan(got) == nan).all()  # NaNs stay NaN (their payload is no one's business)
    assert got[~nan].view(np.uint32).tolist() == expected[~nan].view(np.uint32).tolist()
    assert kernels.widen(every, np.zeros(0, dtype=np.int64)).shape == (0, 64)
