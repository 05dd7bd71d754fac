"""Pool statistics and the numbers the ranking reads for every candidate.

Per article: publication time, lead time (the date in an undated story's lead),
written year (the latest year its text writes), case-folded section, and the four
statistics of its score over its own candidate pool, which belong to its vector (a
write that changes the vector clears them in the same commit). The in-memory state
reads them in bulk into arrays and the pool statistics step writes them back, so they
have a module of their own; writing an article's row stays with the articles in
``catalog``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recommender.index.catalog_base import CatalogBase, _chunks

__all__ = ["CatalogNumbers"]


class CatalogNumbers(CatalogBase):
    """The catalog's per-article numbers: times, sections and pool statistics."""

    def numbers(
        self, int_ids: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(int ids, publication times, lead times, pool statistics, case-folded sections,
        written years) of ``int_ids``, or all.

        The lead time is the publication time, or for an undated article the
        date written in its lead (recommender.ingest.dates); NaN when neither exists.
        The written year is the latest year its text writes; NaN when none (or when the
        catalog predates the column: it is added, and filled, on the next write).

        The ranking reads them for every candidate; the state keeps them in arrays.
        """
        # Catalogs written before lead dates existed lack the column until their next write.
        lead = "lead_ts" if self._has_lead_dates() else "published_ts"
        year = "written_year" if self._has_written_years() else "NULL"
        sql = f"SELECT int_id, published_ts, {lead}, pool_stats, section, {year} FROM articles"
        parts = []
        if int_ids is None:
            # In slices: a million rows as Python tuples would cost ~250 MB at once.
            cursor = self._conn().execute(sql)
            while rows := cursor.fetchmany(20_000):
                parts.append(_number_arrays(rows))
        for chunk in _chunks([int(i) for i in int_ids or ()], 500):
            marks = ",".join("?" * len(chunk))
            rows = self._conn().execute(f"{sql} WHERE int_id IN ({marks})", chunk).fetchall()
            parts.append(_number_arrays(rows))
        if not parts:
            parts.append(_number_arrays([]))
        ids, times, leads, stats, sections, years = (
            np.concatenate(arrays) for arrays in zip(*parts, strict=True)
        )
        return ids, times, leads, stats, sections, years

    def pool_stats(self, int_ids: Sequence[int]) -> np.ndarray:
        """Each id's score statistics over its own candidate pool; NaN rows when unknown."""
        out = np.full((len(int_ids), 4), np.nan, dtype=np.float64)
        position = {int(i): n for n, i in enumerate(int_ids)}
        for chunk in _chunks(list(position), 500):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT int_id, pool_stats FROM articles WHERE int_id IN ({marks})"
            for iid, blob in self._conn().execute(sql, chunk):
                if blob is not None:
                    out[position[int(iid)]] = np.frombuffer(blob, dtype=np.float64, count=4)
        return out

    def set_pool_stats(self, int_ids: Sequence[int], stats: np.ndarray) -> None:
        conn = self._conn()
        rows = [(_blob64(row), int(i)) for i, row in zip(int_ids, stats, strict=True)]
        with conn:
            conn.executemany("UPDATE articles SET pool_stats = ? WHERE int_id = ?", rows)

    def pool_stats_basis(self) -> int | None:
        """The number of articles when every article's pool statistics were last computed."""
        row = (
            self._conn()
            .execute("SELECT value FROM meta WHERE key = 'pool_stats_articles'")
            .fetchone()
        )
        return None if row is None else int(row[0])

    def set_pool_stats_basis(self, count: int) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('pool_stats_articles', ?)", (str(count),)
            )

    def missing_pool_stats(self) -> list[int]:
        """Int ids whose pool statistics are missing (a writer died before computing them)."""
        conn = self._conn()
        if not getattr(self._local, "no_stats_ready", False):
            # A partial index keeps this cheap at every write: no scan of the vectors.
            # Created once per connection (indexes written before it have none).
            with conn:
                conn.execute(
                    "CREATE INDEX IF NOT EXISTS articles_no_stats ON articles (int_id)"
                    " WHERE pool_stats IS NULL"
                )
            self._local.no_stats_ready = True
        rows = conn.execute("SELECT int_id FROM articles WHERE pool_stats IS NULL")
        return [int(row[0]) for row in rows]


def _number_arrays(
    rows: Sequence[tuple[int, float | None, float | None, bytes | None, str | None, int | None]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    times = np.array([r[1] for r in rows], dtype=np.float64)  # None becomes NaN
    leads = np.array([r[2] for r in rows], dtype=np.float64)
    stats = np.full((len(rows), 4), np.nan, dtype=np.float64)
    for n, row in enumerate(rows):
        if row[3] is not None:
            stats[n] = np.frombuffer(row[3], dtype=np.float64, count=4)
    sections = np.array([(r[4] or "").casefold() for r in rows], dtype=object)
    years = np.array([r[5] for r in rows], dtype=np.float64)
    return ids, times, leads, stats, sections, years


def _blob64(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype=np.float64).tobytes()
