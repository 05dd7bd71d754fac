"""The lexical side: what it tokenises, weighs and matches; updates and persistence."""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import pytest

from recommender.lexical.index import LexicalIndex, entity_words

TEXTS = [
    "Tara Reid checked into the Promises clinic in Malibu on Tuesday.",
    "Actress Tara Reid entered rehab at Promises, her representative said.",
    "Lindsay Lohan checked into the Betty Ford clinic on Friday.",
    "A 6.1 magnitude earthquake struck, killing 1,200 people.",
    "The 6.1 quake killed 1,200 and injured thousands more.",
]


@pytest.fixture
def index() -> LexicalIndex:
    lexical = LexicalIndex()
    lexical.add(np.arange(10, 15), TEXTS)
    return lexical


def scores_of(index: LexicalIndex, int_id: int) -> dict[int, float]:
    row = index.scores(index.stored_counts(np.array([int_id])))[0]
    return {int(i): float(s) for i, s in zip(index.ids, row, strict=True)}


def test_entity_words_are_names_and_numbers_not_sentence_starts() -> None:
    words = entity_words("The mayor met Ana Ruiz. The mayor said 1,200 jobs. the end")
    assert {"ana", "ruiz", "1,200"} <= words
    assert "the" not in words and "mayor" not in words


def test_same_story_scores_highest(index: LexicalIndex) -> None:
    scores = scores_of(index, 10)
    assert max((s, i) for i, s in scores.items() if i != 10)[1] == 11
    assert scores[11] > scores[12] > 0  # Lohan's rehab shares words, but not the names
    quake = scores_of(index, 13)
    assert max((s, i) for i, s in quake.items() if i != 13)[1] == 14


def test_numbers_stay_whole(index: LexicalIndex) -> None:
    counts = index.counts(["killing 1,200 people"])
    other = index.counts(["killing 1 200 people"])
    assert counts.nnz and set(counts.indices) != set(other.indices)


def test_terms_in_one_article_only_weigh_nothing(index: LexicalIndex) -> None:
    unique = index.counts(["Malibu"])  # only in article 10
    assert unique.nnz == 1
    assert index.idf()[unique.indices[0]] == 0.0
    shared = index.counts(["Promises"])
    assert index.idf()[shared.indices[0]] > 0.0


def test_numbers_count_as_entities() -> None:
    lexical = LexicalIndex()
    assert lexical.counts(["toll 1,200"]).max() == pytest.approx(1.5)


def test_entity_terms_weigh_more() -> None:
    lexical = LexicalIndex()
    counts = lexical.counts(["Reid met the reid"])  # "Reid" lower-case too: not an entity
    plain = lexical.counts(["Garcia met the garcia"])
    entity = lexical.counts(["Garcia met Garcia"])
    assert counts.max() == pytest.approx(plain.max())
    assert entity.max() == pytest.approx(1.5 * (1 + np.log(2)), rel=1e-5)


def test_remove_and_document_frequencies(index: LexicalIndex) -> None:
    promises = index.counts(["Promises"]).indices[0]
    assert index.idf()[promises] > 0
    assert index.remove(np.array([11, 99])) == 1
    assert len(index) == 4 and 11 not in set(index.ids.tolist())
    assert index.idf()[promises] == 0.0  # now only in one article
    assert index.rows(np.array([10, 11, 14])).tolist() == [0, -1, 3]


def test_save_and_load_round_trip(index: LexicalIndex, tmp_path: Path) -> None:
    path = tmp_path / "lexical.npz"
    index.save(path)
    loaded = LexicalIndex.load(path)
    assert loaded.ids.tolist() == index.ids.tolist()
    assert scores_of(loaded, 10) == pytest.approx(scores_of(index, 10))


def _term(index: LexicalIndex, term: str) -> int:
    """The hashed column of one analysed term (a word or a word pair)."""
    words = set(term.split())
    (column,) = set(index.counts([term]).indices) - {
        c for word in words if word != term for c in index.counts([word]).indices
    }
    return int(column)


def test_max_query_terms_keeps_the_heaviest(index: LexicalIndex) -> None:
    query = index.stored_counts(np.array([10]))
    full = index.weigh(query)
    # Article 10's heaviest terms are the names it shares with article 11 (IDF of a
    # term in two of five articles, x1.5 for names); "checked" and "clinic" (shared with
    # article 12, not names) weigh 2/3 of that; the rest is in one article: weight 0.
    names = {_term(index, t) for t in ("tara", "reid", "tara reid", "promises")}
    plain = {_term(index, t) for t in ("checked", "clinic")}
    weights = dict(zip(full.indices.tolist(), full.data.tolist(), strict=True))
    assert set(weights) == names | plain
    assert min(weights[c] for c in names) > max(weights[c] for c in plain)
    pruned = index.weigh(query, max_terms=4)
    assert set(pruned.indices.tolist()) == names
    # The kept terms are weighed as before, the row normalised again over them alone.
    kept = np.array([weights[c] for c in pruned.indices.tolist()])
    assert pruned.data == pytest.approx(kept / np.linalg.norm(kept), rel=1e-6)
    five = set(index.weigh(query, max_terms=5).indices.tolist())
    assert len(five) == 5 and names < five < names | plain


MORE = [
    "Tara Reid left the Promises clinic in Malibu after a month.",
    "Rescuers searched the rubble after the 6.1 quake killed 1,200.",
]


def _live_scores(index: LexicalIndex, int_id: int) -> dict[int, float]:
    return {i: s for i, s in scores_of(index, int_id).items() if i >= 0}


def _is_mapped(array: np.ndarray) -> bool:
    owner: object = array
    while isinstance(owner, np.ndarray):
        owner = owner.base
    return isinstance(owner, mmap.mmap)


def test_a_mapped_snapshot_is_shared_not_copied(index: LexicalIndex, tmp_path: Path) -> None:
    path = tmp_path / "lexical.npz"
    index.save(path)
    mapped = LexicalIndex.load(path, mmap=True)
    for array in (mapped._base.data, mapped._base.indices, mapped._base.indptr):
        assert _is_mapped(array)
        assert not array.flags.writeable
    assert _live_scores(mapped, 10) == pytest.approx(_live_scores(index, 10))


def test_writes_over_a_mapped_snapshot_match_an_index_built_in_memory(
    index: LexicalIndex, tmp_path: Path
) -> None:
    path = tmp_path / "lexical.npz"
    index.save(path)
    mapped = LexicalIndex.load(path, mmap=True)
    for lexical in (index, mapped):
        lexical.add(np.array([20, 21]), MORE)
        assert lexical.remove(np.array([11, 21, 99])) == 2
    fresh = LexicalIndex()
    fresh.add(np.array([10, 12, 13, 14, 20]), [*TEXTS[:1], *TEXTS[2:], MORE[0]])
    assert len(mapped) == len(fresh) == 5
    assert mapped.rows(np.array([11, 21])).tolist() == [-1, -1]
    for int_id in (10, 13, 20):
        expected = _live_scores(fresh, int_id)
        assert _live_scores(mapped, int_id) == pytest.approx(expected, abs=1e-6)
        assert _live_scores(index, int_id) == pytest.approx(expected, abs=1e-6)
    # A removed article's row position scores 0 and never comes back.
    dead = int(np.flatnonzero(mapped.ids == -1)[0])
    assert mapped.scores(mapped.stored_counts(np.array([10])))[0, dead] == 0.0
    # The next snapshot holds exactly the live rows.
    mapped.save(tmp_path / "next.npz")
    again = LexicalIndex.load(tmp_path / "next.npz", mmap=True)
    assert sorted(again.ids.tolist()) == [10, 12, 13, 14, 20]
    assert _live_scores(again, 20) == pytest.approx(_live_scores(fresh, 20), abs=1e-6)


def test_stored_counts_keep_the_order_asked(index: LexicalIndex, tmp_path: Path) -> None:
    path = tmp_path / "lexical.npz"
    index.save(path)
    mapped = LexicalIndex.load(path, mmap=True)
    mapped.add(np.array([20]), MORE[:1])
    got = mapped.stored_counts(np.array([20, 99, 12]))
    assert got.shape[0] == 3 and got[1].nnz == 0
    assert (got[0] != mapped.counts(MORE[:1])).nnz == 0
    assert (got[2] != index.stored_counts(np.array([12]))).nnz == 0
    # One id (a query by id) takes a shortcut; it must read the same rows.
    for one in (20, 12):
        alone = mapped.stored_counts(np.array([one]))
        assert (alone != got[[20, 99, 12].index(one)]).nnz == 0
    assert mapped.stored_counts(np.array([99])).nnz == 0


def _exact_top(index: LexicalIndex, counts: object, n: int) -> list[list[int]]:
    scores = index.scores(counts)  # type: ignore[arg-type]
    return [[int(r) for r in np.argsort(-row, kind="stable")[:n] if row[r] > 0] for row in scores]


def test_inverted_search_with_every_term_finds_the_exact_top(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    words = [f"w{i}" for i in range(300)]
    texts = [" ".join(rng.choice(words, size=40)) for _ in range(120)]
    index = LexicalIndex()
    index.add(np.arange(120), texts)
    index.save(tmp_path / "lex.npz")
    mapped = LexicalIndex.load(tmp_path / "lex.npz", mmap=True)
    mapped.add(np.arange(500, 510), texts[:10])  # delta rows are searched too
    mapped.remove(np.array([3, 4, 505]))  # dead rows never come back
    queries = mapped.stored_counts(np.array([0, 7, 501]))
    weights = mapped.query_weights(queries, max_terms=None)
    got = mapped.search(weights, 15, terms=None, allowed=None)
    want = _exact_top(mapped, queries, 15)
    for g, w in zip(got, want, strict=True):
        assert set(g.tolist()) == set(w)  # equal scores may tie in another order
        assert not set(mapped.ids[g].tolist()) & {-1, 3, 4, 505}
    # One query at a time takes another path (direct gathers); same results.
    for q, batched in enumerate(got):
        for terms in (None, 5):
            alone = mapped.search(weights[q], 15, terms=terms, allowed=None)[0]
            in_batch = mapped.search(weights, 15, terms=terms, allowed=None)[q]
            assert set(alone.tolist()) == set(in_batch.tolist())  # ties may swap
        assert set(mapped.search(weights[q], 15, terms=None, allowed=None)[0]) == set(batched)


def test_inverted_search_scores_match_cosines(index: LexicalIndex) -> None:
    query = index.stored_counts(np.array([10]))
    weights = index.query_weights(query, max_terms=None)
    rows = index.search(weights, 5, terms=None, allowed=None)[0]
    full = index.scores(query)[0]
    assert index.cosines(weights, rows) == pytest.approx(full[rows], abs=1e-6)
    assert index.ids[rows[0]] == 10 and index.ids[rows[1]] == 11  # itself, then its story
    # -1 rows (unknown ids) score 0.
    assert index.cosines(weights, np.array([-1, rows[1]]))[0] == 0.0


def test_rows_as_arrays_weigh_search_and_score_as_matrices_do(
    index: LexicalIndex, tmp_path: Path
) -> None:
    from recommender.lexical.index import TermRow

    index.save(tmp_path / "lex.npz")
    mapped = LexicalIndex.load(tmp_path / "lex.npz", mmap=True)
    mapped.add(np.array([500]), ["A second quake story, added after the snapshot."])
    for int_id in (10, 13, 500):  # base rows (coded weights) and a delta row
        row = mapped.stored_row(int_id)
        counts = mapped.stored_counts(np.array([int_id]))
        assert row.terms.tolist() == counts.indices.tolist()
        assert row.values.tobytes() == counts.data.astype(np.float32).tobytes()
        for max_terms in (None, 3):
            (alone,) = mapped.query_terms([row], max_terms=max_terms)
            matrix = mapped.query_weights(counts, max_terms=max_terms)
            assert alone.terms.tolist() == matrix.indices.tolist()
            assert alone.values.tobytes() == matrix.data.tobytes()
            for terms in (None, 2):
                by_arrays = mapped.search_terms([alone], 4, terms=terms, allowed=None)[0]
                by_matrix = mapped.search_scored(matrix, 4, terms=terms, allowed=None)[0]
                assert by_arrays[0].tolist() == by_matrix[0].tolist()
                assert by_arrays[1].tobytes() == by_matrix[1].tobytes()
            rows = np.arange(mapped.width)
            assert mapped.cosines(alone, rows).tobytes() == mapped.cosines(matrix, rows).tobytes()
    # A batch of counts splits into the same rows as one query at a time.
    batch = mapped.stored_counts(np.array([10, 13, 500]))
    each = [mapped.query_terms([mapped.stored_row(i)], max_terms=None)[0] for i in (10, 13, 500)]
    for got, want in zip(mapped.query_terms(batch, max_terms=None), each, strict=True):
        assert got.terms.tolist() == want.terms.tolist()
        assert got.values.tobytes() == want.values.tobytes()
    # An id without a row has no terms.
    missing = mapped.stored_row(999)
    assert isinstance(missing, TermRow) and len(missing.terms) == len(missing.values) == 0
    assert mapped.query_terms([missing], max_terms=None)[0].terms.tolist() == []


def test_inverted_search_honours_filters_and_heaviest_terms(index: LexicalIndex) -> None:
    query = index.query_weights(index.stored_counts(np.array([13])), max_terms=None)
    allowed = np.ones(index.width, dtype=bool)
    allowed[index.rows(np.array([14]))] = False
    rows = index.search(query, 5, terms=None, allowed=allowed)[0]
    assert 14 not in index.ids[rows].tolist() and 13 in index.ids[rows].tolist()
    # One heaviest term still finds the other quake story.
    assert 14 in index.ids[index.search(query, 5, terms=1, allowed=None)[0]].tolist()


def test_snapshots_carry_the_inverted_lists(index: LexicalIndex, tmp_path: Path) -> None:
    index.save(tmp_path / "lex.npz")
    with np.load(tmp_path / "lex.npz") as data:
        assert {"postings_codes", "postings_indices", "postings_indptr"} <= set(data.files)
    mapped = LexicalIndex.load(tmp_path / "lex.npz", mmap=True)
    postings = mapped.postings()
    for array in (postings.data, postings.indices, postings.indptr):
        assert _is_mapped(array)


def test_snapshots_store_weights_as_codes_and_read_float32_ones(
    index: LexicalIndex, tmp_path: Path
) -> None:
    index.save(tmp_path / "lex.npz")
    with np.load(tmp_path / "lex.npz") as data:
        arrays = {name: data[name] for name in data.files}
    # Half the bytes: uint16 codes into the table of distinct weights, exact.
    assert arrays["codes"].dtype == arrays["postings_codes"].dtype == np.uint16
    weights = arrays["value_table"][arrays["codes"]]
    assert np.array_equal(weights, index.stored_counts(index.ids).data)
    # A snapshot written before codes (float32 weights) reads and scores the same.
    old = {name: value for name, value in arrays.items() if "codes" not in name}
    old.pop("value_table")
    old["data"] = weights
    old["postings_data"] = arrays["value_table"][arrays["postings_codes"]]
    np.savez(tmp_path / "old.npz", **old)
    for mapped in (False, True):
        coded = LexicalIndex.load(tmp_path / "lex.npz", mmap=mapped)
        plain = LexicalIndex.load(tmp_path / "old.npz", mmap=mapped)
        assert plain.postings().dtype == np.float32
        for int_id in (10, 13):
            assert _live_scores(coded, int_id) == _live_scores(plain, int_id)
            assert _live_scores(coded, int_id) == pytest.approx(
                _live_scores(index, int_id), abs=1e-6
            )
        # The inverted-list search and the cosines read the codes the same way.
        query = coded.query_weights(coded.stored_counts(np.array([10])), max_terms=None)
        found = coded.search_scored(query, 3, terms=None, allowed=None)[0]
        again = plain.search_scored(query, 3, terms=None, allowed=None)[0]
        assert found[0].tolist() == again[0].tolist() and found[1].tolist() == again[1].tolist()
        rows = np.arange(coded.width)
        assert coded.cosines(query, rows).tolist() == plain.cosines(query, rows).tolist()


def test_snapshots_carry_norms_and_document_frequencies(
    index: LexicalIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recommender.lexical import index as module

    # Opening a snapshot must not read every count to rebuild them (1 GB at 1M articles).
    index.save(tmp_path / "lex.npz")
    mapped = LexicalIndex.load(tmp_path / "lex.npz", mmap=True)
    with monkeypatch.context() as patch:

        def recomputed(*args: object) -> None:
            raise AssertionError("norms recomputed from the counts")

        patch.setattr(module, "_inverse_norms", recomputed)
        stored = mapped._norms(mapped.idf())
    assert mapped._df.tolist() == index._df.tolist()
    mapped._inv_norms = None  # recompute from the counts
    assert stored == pytest.approx(mapped._norms(mapped.idf()))
    assert stored == pytest.approx(index._norms(index.idf()))


@pytest.mark.parametrize("rows", [3, 40, 2_000])
def test_found_sums_each_row_over_every_list_and_segment(rows: int) -> None:
    import scipy.sparse as sp

    from recommender.lexical.search import _NO_MASK, _found
    from recommender.lexical.snapshot import _encoded
    from recommender.lexical.weights import _NO_TABLE

    rng = np.random.default_rng(rows)
    # Two segments of inverted lists (the snapshot's, with coded weights, and the overlay's).
    base = sp.random(6, rows, density=0.4, format="csr", dtype=np.float32, random_state=1)
    base.data = np.round(base.data * 4 + 1, 1).astype(np.float32)  # few distinct weights
    table, codes = _encoded(base.data)
    assert codes is not None and np.array_equal(table[codes], base.data)
    coded = sp.csr_matrix((codes, base.indices, base.indptr), shape=base.shape)
    delta = sp.random(6, 7, density=0.5, format="csr", dtype=np.float32, random_state=2)
    terms = np.array([0, 2, 3, 5])
    weights = rng.random(4).astype(np.float32)
    dense = np.hstack([base.toarray(), delta.toarray()])
    norms = rng.random(rows + 7).astype(np.float32) + 0.5
    expected = (weights @ dense[terms]) * norms
    segments = [(coded, table, 0), (delta, _NO_TABLE, rows)]
    for _ in range(2):  # the per-thread scratch must come back clean
        got_rows, got = _found(segments, terms, weights, norms, _NO_MASK)
        assert len(set(got_rows.tolist())) == len(got_rows)  # each row once
        assert sorted(got_rows.tolist()) == np.flatnonzero(dense[terms].any(axis=0)).tolist()
        assert got == pytest.approx(expected[got_rows], rel=1e-6)
        # The best few, best first, as a heap keeps them.
        best_rows, best = _found(segments, terms, weights, norms, _NO_MASK, top=3)
        assert best.tolist() == sorted(got.tolist(), reverse=True)[:3]
        assert set(best_rows.tolist()) <= set(got_rows.tolist())
    allowed = np.zeros(rows + 7, dtype=bool)
    allowed[::2] = True
    for top in (None, 2):
        got_rows, _ = _found(segments, terms, weights, norms, allowed, top=top)
        assert got_rows.tolist() and all(row % 2 == 0 for row in got_rows.tolist())


def test_weights_with_too_many_distinct_values_stay_float32() -> None:
    from recommender.lexical.snapshot import _MAX_CODES, _encoded

    table, codes = _encoded(np.arange(_MAX_CODES + 1, dtype=np.float32))
    assert codes is None and not len(table)


@pytest.mark.parametrize("max_terms", [None, 3])
def test_one_query_is_weighed_exactly_as_in_a_batch(index: LexicalIndex, max_terms: int) -> None:
    counts = index.stored_counts(np.array([10, 13, 11]))
    batch = index.query_weights(counts, max_terms=max_terms).toarray()
    for row in range(3):
        alone = index.query_weights(counts[row], max_terms=max_terms).toarray()[0]
        assert alone == pytest.approx(batch[row], abs=1e-7)
    # The heaviest-terms cut that picks candidates agrees too.
    for row in range(3):
        one = index.query_weights(counts[row], max_terms=None)
        assert set(index.search(one, 3, terms=2, allowed=None)[0].tolist()) == set(
            index.search(index.query_weights(counts, max_terms=None), 3, terms=2, allowed=None)[
                row
            ].tolist()
        )
