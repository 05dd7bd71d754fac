"""Stories placed as articles arrive against a batch grouping of the same archive (issue 23).

    .venv/bin/python scripts/story_agreement.py [--index indexes/ecbplus]
        [--label-field event_cluster] [--batches 1,50] [--work DIR] [--json]

Reads the articles and vectors of an evaluation index (``scripts/evaluate.sh ecbplus``
builds indexes/ecbplus with the real model), so nothing is embedded again. Then:

* **batch**: a build of every article (a build groups the whole archive at once);
* **incremental, batches of N**: a build of the first N articles (or ``--start``) in date
  order (id order where dates are missing), then ``upsert`` of the next N, and so on: each
  write places its articles in the stored stories one by one; when the archive has grown by a
  quarter it scores every article's pool and regroups, and when the stored model has drifted
  from the stored pairs it regroups (``--no-regroup`` turns both off).

For each it prints B-cubed F1 against the labels, the number of stories, how many regroupings
the incremental run did and at how many articles the last was, and the agreement of the
incremental stories with the batch build's (``agreement_f1``: B-cubed F1 of one against the
other) and with the same incremental index grouped again at once (``agreement_regroup_f1``).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from recommender import Article, Recommender
from recommender.embedding.precomputed import write_embeddings
from recommender.stories import keeper
from recommender.stories.grouping import bcubed
from recommender.writes import update


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, default=Path("indexes/ecbplus"))
    parser.add_argument("--label-field", default="event_cluster")
    parser.add_argument("--batches", default="1,50")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--start", type=int, default=0, help="build with this many first (default: one batch)"
    )
    parser.add_argument(
        "--no-regroup",
        action="store_true",
        help="never regroup (neither when the model drifts nor at a quarter's growth) nor "
        "recompute every pool statistic as the archive grows (to see placement alone)",
    )
    args = parser.parse_args()
    if args.no_regroup:
        update._POOL_GROWTH = math.inf
        keeper._DRIFT = math.inf
    work = args.work or Path(tempfile.mkdtemp(prefix="story-agreement-"))
    try:
        sizes = [int(b) for b in args.batches.split(",")]
        figures = run(args.index, args.label_field, sizes, work, args.start)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    for row in figures:
        print("\t".join(f"{k}={v}" for k, v in row.items()))


def run(
    index: Path, label_field: str, batches: list[int], work: Path, start: int = 0
) -> list[dict[str, Any]]:
    articles, labels, embeddings = _source(index, label_field, work)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    with Recommender.build(articles, work / "batch", embeddings=embeddings) as rec:
        batch = _story_of(rec)
    rows.append(_row("batch", batch, labels, None, time.perf_counter() - started, 0))
    for size in batches:
        started = time.perf_counter()
        path = work / f"incremental-{size}"
        first = start or size
        with Recommender.build(articles[:first], path, embeddings=embeddings) as rec:
            regroups = 0
            for at in range(first, len(articles), size):
                rows_before = _grouped(rec)
                rec.upsert(articles[at : at + size], embeddings=embeddings)
                regroups += _grouped(rec) != rows_before
            found = _story_of(rec)
            elapsed = time.perf_counter() - started
            last = _grouped(rec)
            rec.regroup_stories()  # the same archive grouped at once, with its own scores
            again = _story_of(rec)
        row = _row(f"incremental-{size}", found, labels, batch, elapsed, regroups)
        row["agreement_regroup_f1"] = round(bcubed(found, again)[2], 4)
        row["last_regroup_at"] = last
        rows.append(row)
    return rows


def _grouped(rec: Recommender) -> object:
    """How many articles the stories were last grouped from (a placement leaves it)."""
    return (rec._index.state.catalog.stories_meta() or {}).get("articles")


def _source(
    index: Path, label_field: str, work: Path
) -> tuple[list[Article], dict[str, Any], Path]:
    """The index's articles in arrival order (date, then id), their labels, and their vectors
    written as precomputed embeddings."""
    with Recommender.open(index) as rec:
        labels = rec.field_values(label_field)
        catalog = rec._index.state.catalog
        numbers = catalog.all_ids()
        articles = [rec.get(a) for _, a in numbers]
        found = catalog.vectors([i for i, _ in numbers], rec.manifest["model"]["dimension"])
        vectors = np.stack([found[i] for i, _ in numbers]).astype(np.float32)
        embeddings = work / "embeddings"
        write_embeddings(articles, vectors, rec._index.embedder(), embeddings)
    order = sorted(
        range(len(articles)),
        key=lambda n: (
            articles[n].published_at is None,
            articles[n].published_at.timestamp() if articles[n].published_at else math.inf,
            articles[n].id,
        ),
    )
    return [articles[n] for n in order], labels, embeddings


def _story_of(rec: Recommender) -> dict[str, str]:
    return {a.id: s.id for s in rec.stories() for a in s.articles}


def _row(
    name: str,
    found: dict[str, str],
    labels: dict[str, Any],
    batch: dict[str, str] | None,
    seconds: float,
    regroups: int,
) -> dict[str, Any]:
    p, r, f = bcubed(found, labels)
    row: dict[str, Any] = {
        "run": name,
        "stories": len(set(found.values())),
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(f, 4),
        "seconds": round(seconds, 1),
    }
    if batch is not None:
        row["agreement_f1"] = round(bcubed(found, batch)[2], 4)
        row["regroups"] = regroups
    return row


if __name__ == "__main__":
    main()
