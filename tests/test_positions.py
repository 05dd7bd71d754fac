"""Dense id -> position tables (the lexical rows and the vector base both use them)."""

from __future__ import annotations

import numpy as np

from recommender.compiled.positions import position_table, positions


def test_ids_map_to_their_positions_and_everything_else_to_minus_one() -> None:
    ids = np.array([7, -1, 3, 12, -1])  # -1: a dead row, never found
    table = position_table(ids)
    assert positions(table, np.array([3, 7, 12])).tolist() == [2, 0, 3]  # all inside
    assert positions(table, np.array([5, -1, 13, 99, 7])).tolist() == [-1, -1, -1, -1, 0]
    assert positions(table, np.array([99, -4])).tolist() == [-1, -1]  # none inside
    assert positions(table, np.zeros(0, dtype=np.int64)).tolist() == []


def test_an_empty_table_finds_nothing() -> None:
    for ids in (np.zeros(0, dtype=np.int64), np.array([-1, -1])):
        assert positions(position_table(ids), np.array([0, 1])).tolist() == [-1, -1]
