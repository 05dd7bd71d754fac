"""The lexical side: what it tokenises, weighs and matches; updates and persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recommender.lexical import LexicalIndex, entity_words

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


def test_max_query_terms_keeps_the_heaviest(index: LexicalIndex) -> None:
    query = index.stored_counts(np.array([10]))
    pruned = index.weigh(query, max_terms=2)
    assert pruned.nnz == 2
