"""The lexical index on disk: one uncompressed ``.npz`` snapshot, read mapped or copied.

A snapshot holds the live rows' counts (CSR), their inverted lists, the ids and
each row's inverse norm (so that opening it reads no entry it does not need),
with the weights as uint16 codes into a table of their distinct values when
there are few enough (half the bytes). Members are uncompressed so that every
process serving the index maps the same pages read-only. The file format lives
here, apart from the index's in-memory state, so that the index sees a
:class:`Snapshot` and never a member name, and older snapshots (float32
weights, no inverted lists, no norms) keep reading in one place.
"""

from __future__ import annotations

import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recommender.lexical.terms import N_FEATURES
from recommender.lexical.weights import (
    _NO_TABLE,
    MIN_DF,
    _document_counts,
    _idf,
    _inverse_norms,
)

__all__ = ["Snapshot", "read_snapshot", "write_snapshot"]

#: Snapshot weights are stored as uint16 codes into a table of their distinct values
#: when there are at most this many (always, for counts() output): half the bytes.
_MAX_CODES = 2**16


@dataclass(frozen=True, eq=False)
class Snapshot:
    """The arrays of one snapshot, as the index holds them."""

    base: sp.csr_matrix  # rows x terms; data are codes into ``table`` when it is not empty
    table: np.ndarray  # the distinct weights, or _NO_TABLE
    postings: sp.csr_matrix | None  # terms x rows; None in snapshots before 0.2
    ids: np.ndarray  # int64, one per row
    df: np.ndarray  # int32 document frequency per term
    inv_norms: np.ndarray | None  # per row; None when the snapshot has none
    norms_pin: str  # the pin token ``inv_norms`` were computed with ("" for live counts)


def write_snapshot(
    path: Path, counts: sp.csr_matrix, ids: np.ndarray, *, pinned: tuple[str, np.ndarray] | None
) -> None:
    """Write ``counts`` (float32, one row per id) and ``ids`` to ``path``, fsynced.

    ``pinned`` is (pin token, IDF) for an index scoring with pinned statistics.
    """
    # Stored so that opening the snapshot reads neither all counts (for the
    # document frequencies) nor all entries (for the norms): at 1M articles
    # that is about 1 GB of the file a query by id never otherwise touches.
    # read_snapshot() reads with the default min_df, so the norms are computed with it.
    # A pinned index stores the norms under its pin, which a reader cannot know.
    df = _document_counts(counts)
    idf = pinned[1] if pinned else _idf(df, counts.shape[0], MIN_DF)
    inv_norms = _inverse_norms(counts, idf)
    table, codes = _encoded(counts.data)
    weights: dict[str, np.ndarray] = {}
    if codes is not None:  # the lists share the codes: transposed as they are
        counts = sp.csr_matrix((codes, counts.indices, counts.indptr), shape=counts.shape)
        weights["value_table"] = table
    postings = sp.csr_matrix(counts.T)
    data_name = "data" if codes is None else "codes"
    weights[data_name] = counts.data
    weights[f"postings_{data_name}"] = postings.data
    arrays = {
        "ids": ids,
        "indices": counts.indices,
        "indptr": counts.indptr,
        "postings_indices": postings.indices,
        "postings_indptr": postings.indptr,
        "inv_norms": inv_norms,
        "norms_pin": np.frombuffer((pinned[0] if pinned else "").encode(), np.uint8),
        **weights,
    }
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
        handle.flush()
        os.fsync(handle.fileno())


def read_snapshot(path: Path, *, mmap: bool = False) -> Snapshot:
    """Read a snapshot; with ``mmap`` its arrays are mapped read-only, not copied."""
    arrays = _map_npz(path) if mmap else None
    if arrays is None:
        with np.load(path) as data:
            arrays = {name: data[name] for name in data.files}
    n = len(arrays["ids"])
    # Snapshots written before weights were coded store them as float32 ("data").
    coded = "value_table" in arrays
    data_name = "codes" if coded else "data"
    table = np.array(arrays["value_table"], dtype=np.float32) if coded else _NO_TABLE
    base = sp.csr_matrix(
        (arrays[data_name], arrays["indices"], arrays["indptr"]), shape=(n, N_FEATURES)
    )
    postings = None
    if "postings_indptr" in arrays:  # snapshots before 0.2 derive them on first use
        postings = sp.csr_matrix(
            (
                arrays[f"postings_{data_name}"],
                arrays["postings_indices"],
                arrays["postings_indptr"],
            ),
            shape=(N_FEATURES, n),
        )
    ids = np.array(arrays["ids"], dtype=np.int64)
    if postings is not None:
        # The length of each term's inverted list is its document frequency.
        df = np.diff(postings.indptr).astype(np.int32)
    else:
        df = _document_counts(base)
    inv_norms, norms_pin = None, ""
    if "inv_norms" in arrays:
        # Copied (4 bytes an article): every query reads it at thousands of random
        # rows, which through the mapping was measurably slower at 1M articles.
        inv_norms = np.array(arrays["inv_norms"])
        if "norms_pin" in arrays:
            norms_pin = bytes(np.asarray(arrays["norms_pin"])).decode()
    return Snapshot(base, table, postings, ids, df, inv_norms, norms_pin)


def _encoded(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The distinct ``weights`` (sorted) and each weight's uint16 code, or no codes.

    counts() writes (1 + ln tf), x the entity boost or not: a few hundred distinct
    values in any archive, so the codes are exact. Over 2**16 distinct values
    (weights made some other way) the snapshot keeps float32.
    """
    table = np.unique(weights)
    if not len(table) or len(table) > _MAX_CODES:
        return _NO_TABLE, None
    codes = np.empty(len(weights), dtype=np.uint16)
    step = 1 << 24  # searchsorted returns int64: bound its scratch at 1M articles
    for start in range(0, len(weights), step):
        chunk = weights[start : start + step]
        codes[start : start + step] = np.searchsorted(table, chunk)
    return table.astype(np.float32), codes


def _map_npz(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of an uncompressed ``.npz`` as read-only memory maps, or None.

    ``np.savez`` stores members uncompressed, so each ``.npy`` member is a plain
    run of bytes inside the zip file that can be mapped in place.
    """
    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as handle:
        for info in archive.infolist():
            if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(".npy"):
                return None
            handle.seek(info.header_offset)
            header = handle.read(30)  # the zip local file header
            name_len, extra_len = struct.unpack("<HH", header[26:30])
            handle.seek(info.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(handle)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(handle)
            name = info.filename[: -len(".npy")]
            if fortran or dtype.hasobject:
                return None
            if int(np.prod(shape)) == 0:
                out[name] = np.zeros(shape, dtype=dtype)
                continue
            mapped = np.memmap(path, dtype=dtype, mode="r", offset=handle.tell(), shape=shape)
            # A plain view of the mapping: np.memmap's own __getitem__ adds its cost to
            # every slice, and a query slices dozens of inverted lists.
            out[name] = mapped.view(np.ndarray)
    return out
