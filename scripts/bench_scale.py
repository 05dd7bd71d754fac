"""Related-by-id latency, recall and memory at archive scale (10k, 100k, 1M articles).

    .venv/bin/python scripts/bench_scale.py [--source indexes/reuters] \\
        [--sizes 10000,100000,1000000] [--rss]

No 100k- or 1M-article labelled news corpus exists here, and encoding one would
take days on this machine, so larger archives are synthesised from a real
index (default: indexes/reuters, the Reuters-21578 test split embedded with
all-MiniLM-L6-v2; `scripts/evaluate.sh reuters` builds it). Each synthetic
article copies the stored term counts of one real article and gets its real
embedding moved towards another article's and blurred with noise (cosine ~0.9
to its source), so the vectors keep the clustered shape of real embeddings and
the inverted lists the skew of real vocabulary; uniform random vectors would
make approximate search look both harder and less realistic.

The synthetic index is written through the engine's own pieces (catalog, vector
store with the default ``auto`` index type, lexical index, pool statistics,
snapshots, manifest), and every figure is measured through the public API
(``Recommender.open(path).related(id)`` and ``related_all``).

For each size it prints: build time, index type, related-by-id p50/p99 (ms,
in-process, k=10, after a warm-up), recall@10 of the dense search against exact
search, and, for the sizes in ``--all-sizes``, the time of ``related --all``.
With ``--rss`` it also serves the largest index in a fresh process and reports
its peak RSS after the queries.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recommender import Recommender  # noqa: E402
from recommender.index import layout as storage  # noqa: E402
from recommender.index.catalog import Catalog  # noqa: E402
from recommender.index.state import (  # noqa: E402
    PARALLEL_STATS_MIN,
    compute_pool_stats,
    compute_pool_stats_in_workers,
    write_snapshots,
)
from recommender.lexical.index import LexicalIndex  # noqa: E402
from recommender.ranking.scoring import RankingConfig  # noqa: E402
from recommender.recommender import _new_manifest  # noqa: E402
from recommender.stores.faiss import FaissStore, recall_at, write_probes  # noqa: E402
from recommender.types import Article  # noqa: E402

_BATCH = 20_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=ROOT / "indexes" / "reuters")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--all-sizes", default="100000", help="sizes to time related --all on")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--rss", action="store_true", help="peak RSS serving the largest index")
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="build the indexes in this directory and keep them; an index already there (with "
        "the build time recorded when it was built) is reused, so latency can be re-measured "
        "on a quiet machine without rebuilding 1M articles",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    all_sizes = {int(s) for s in args.all_sizes.split(",") if s}
    run(args.source, sizes, all_sizes, args.queries, rss=args.rss, keep=args.keep)


def run(
    source: Path,
    sizes: list[int],
    all_sizes: set[int],
    queries: int = 500,
    *,
    rss: bool = False,
    keep: Path | None = None,
) -> list[dict[str, Any]]:
    if not (source / "manifest.json").is_file():
        sys.exit(f"no index at {source}: build it with scripts/evaluate.sh reuters")
    real = _load_source(source)
    print(f"source: {source} ({len(real['ids'])} real articles, {real['dim']}-d)")
    print(
        f"{'articles':>9} {'type':>5} {'build s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'recall@10':>9} {'related --all s':>15}"
    )
    results = []
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
        tmp = keep or Path(scratch)
        for n in sizes:
            path = Path(tmp) / f"scale-{n}"
            result = _measure(real, path, n, queries, n in all_sizes)
            results.append(result)
            print(
                f"{n:>9} {result['index_kind']:>5} {result['build_s']:>8.1f} "
                f"{result['p50_ms']:>7.2f} {result['p99_ms']:>7.2f} "
                f"{result['recall_at_10']:>9.4f} "
                f"{result.get('related_all_s', float('nan')):>15.1f}",
                flush=True,
            )
        if rss:
            largest = Path(tmp) / f"scale-{max(sizes)}"
            results[-1]["serving_peak_rss_mib"] = _serving_rss(largest, queries)
            peak = results[-1]["serving_peak_rss_mib"]
            print(f"peak RSS serving {max(sizes)} articles: {peak} MiB")
    return results


def _load_source(source: Path) -> dict[str, Any]:
    rec = Recommender.open(source)
    state = rec._index.state
    int_ids = np.array([i for i, _ in state.catalog.all_ids()], dtype=np.int64)
    int_ids = int_ids[state.lexical.rows(int_ids) >= 0]
    rows = state.catalog.rows(int_ids.tolist())
    out = {
        "ids": int_ids,
        "dim": int(rec.manifest["model"]["dimension"]),
        "vectors": state.store.get(int_ids),
        "counts": state.lexical.stored_counts(int_ids),
        "titles": [rows[int(i)].title for i in int_ids],
        "manifest": rec.manifest,
    }
    rec.close()
    return out


def synthetic_vectors(real: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` unit vectors, each a real one moved towards another and blurred (cos ~0.9)."""
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    for start in range(0, n, _BATCH):
        m = min(_BATCH, n - start)
        base = real[rng.integers(0, len(real), m)]
        other = real[rng.integers(0, len(real), m)]
        noise = rng.normal(scale=0.3 / np.sqrt(real.shape[1]), size=base.shape)
        block = base + 0.3 * other + noise
        out[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def build_synthetic(real: dict[str, Any], path: Path, n: int, seed: int = 0) -> None:
    """Write an n-article index whose articles copy real term counts and blur real vectors."""
    rng = np.random.default_rng(seed)
    source = rng.integers(0, len(real["ids"]), n)
    vectors = synthetic_vectors(real["vectors"][source], n, rng)
    layout = storage.IndexLayout(path)
    gen = layout.new_generation()
    catalog = Catalog.create(gen / storage.CATALOG)
    store = FaissStore(real["dim"])
    lexical = LexicalIndex()
    for start in range(0, n, _BATCH):
        part = range(start, min(n, start + _BATCH))
        articles = [
            Article(id=f"s{i}", title=real["titles"][source[i]], body=f"copy {i}") for i in part
        ]
        _, touched = catalog.write(
            list(zip(articles, vectors[part.start : part.stop], strict=True))
        )
        ids = np.array(touched, dtype=np.int64)
        store.add(ids, vectors[part.start : part.stop])
        lexical.add_counts(ids, real["counts"][source[part.start : part.stop]])
    _phase(f"{n}: catalog, vectors and term counts written")
    store.optimise()  # as Recommender.build does: IVF from 50k vectors
    _phase(f"{n}: {store.kind} index ready")
    # This version's default ranking, not the one the source index was built with.
    config = RankingConfig()
    seq = catalog.seq()
    write_snapshots(gen, store, lexical, seq)
    # As Recommender.build does: one process per core from PARALLEL_STATS_MIN articles.
    workers = os.cpu_count() or 1
    if workers > 1 and n >= PARALLEL_STATS_MIN:
        compute_pool_stats_in_workers(
            gen, seq, store, catalog, lexical.ids, config=config, workers=workers
        )
    else:
        compute_pool_stats(store, lexical, catalog, lexical.ids, config=config)
    _phase(f"{n}: pool statistics computed")
    catalog.prune_changes(seq)
    catalog.close()

    class _Embedder:  # what the manifest records of the source's embedding
        def config(self) -> dict[str, Any]:
            return dict(real["manifest"].get("embedding", {}))

    manifest = _new_manifest(
        gen.name,
        real["manifest"]["model"]["id"],
        store,
        _Embedder(),
        n,
        config,  # type: ignore[arg-type]
    )
    layout.publish(manifest)


_STARTED = time.perf_counter()


def _phase(what: str) -> None:
    print(f"  [{time.perf_counter() - _STARTED:7.1f} s] {what}", file=sys.stderr, flush=True)


def _measure(
    real: dict[str, Any], path: Path, n: int, queries: int, time_all: bool
) -> dict[str, Any]:
    build_s = _built(real, path, n)
    rec = Recommender.open(path)
    rng = np.random.default_rng(1)
    picks = [f"s{i}" for i in rng.choice(n, size=min(n, queries + 50), replace=False)]
    for article_id in picks[:50]:  # warm-up: page cache, lazy tables
        rec.related(article_id)
    times = []
    for article_id in picks[50:]:
        t0 = time.perf_counter()
        rec.related(article_id)
        times.append(time.perf_counter() - t0)
    result: dict[str, Any] = {
        "articles": n,
        "build_s": build_s,
        "index_kind": rec._index.state.store.kind,  # type: ignore[attr-defined]
        "search": rec.info().search,
        "p50_ms": 1000 * float(np.percentile(times, 50)),
        "p99_ms": 1000 * float(np.percentile(times, 99)),
        "recall_at_10": _recall(rec, picks[50:]),
    }
    if time_all:
        t0 = time.perf_counter()
        # As `recommender related --all` runs by default: one process per core.
        count = sum(1 for _ in rec.related_all(k=10, workers=os.cpu_count() or 1))
        result["related_all_s"] = time.perf_counter() - t0
        result["related_all_lists"] = count
    rec.close()
    return result


def _built(real: dict[str, Any], path: Path, n: int) -> float:
    """Build the n-article index at ``path`` unless a kept one is there; its build seconds."""
    record = path.parent / f"{path.name}.build.json"
    if (path / "manifest.json").is_file() and record.is_file():
        build = json.loads(record.read_text())
        _phase(f"{n}: reusing {path}, built {build['built_at']} in {build['build_s']:.0f} s")
        _add_probes(path)
        return float(build["build_s"])
    started = time.perf_counter()
    build_synthetic(real, path, n)
    build_s = time.perf_counter() - started
    record.write_text(json.dumps({"build_s": build_s, "built_at": time.strftime("%Y-%m-%d %H:%M")}))
    return build_s


def _add_probes(path: Path) -> None:
    """Write the probe file a kept IVF index's snapshot lacks (kept before they existed).

    The same file the next snapshot of that index would write, so that a reused index is
    measured as a new build would be.
    """
    rec = Recommender.open(path)
    try:
        store = rec._index.state.store
        if not isinstance(store, FaissStore) or store.kind != "ivf" or store._probes is not None:
            return
        seq = rec._index.state.snapshot_seq
        target = storage.probes_path(rec._index.state.gen_dir, seq)
        temporary = target.with_name(f".{target.name}.tmp")
        write_probes(store.index, temporary)
        os.replace(temporary, target)
        _phase(f"wrote {target.name} for the kept snapshot")
    finally:
        rec.close()


def _recall(rec: Recommender, picks: list[str]) -> float:
    """recall@10 of the index's dense search against exact search over the same vectors."""
    state = rec._index.state
    ids = np.array(list(state.catalog.int_ids(picks).values()), dtype=np.int64)
    queries = state.store.get(ids)
    found = state.store.search(queries, 10, stored=ids).ids  # as a query by id searches
    all_ids, vectors = state.store.live()  # type: ignore[attr-defined]
    truth = np.empty_like(found)
    for start in range(0, len(queries), 100):
        scores = queries[start : start + 100] @ vectors.T
        top = np.argpartition(-scores, 10, axis=1)[:, :10]
        truth[start : start + 100] = all_ids[top]
    return recall_at(found, truth)


_RSS_CHILD = """
import sys, time, json
import numpy as np
from recommender import Recommender
rec = Recommender.open(sys.argv[1])
n = int(sys.argv[2])
rng = np.random.default_rng(2)
for i in rng.choice(n, size=int(sys.argv[3]), replace=False):
    rec.related(f"s{i}")
status = open("/proc/self/status").read().split("\\n")
peak = [line for line in status if line.startswith("VmHWM")][0].split()[1]
print(json.dumps({"peak_rss_kib": int(peak)}))
"""


def _serving_rss(path: Path, queries: int) -> int:
    """Peak RSS (MiB) of a fresh process that opens the index and answers queries."""
    n = Recommender.open(path).info().counts["articles"]
    out = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, str(path), str(n), str(queries)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return int(json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_kib"]) // 1024


if __name__ == "__main__":
    main()
