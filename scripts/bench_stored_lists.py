"""Refreshing stored related lists after adds, against recomputing every list.

    PYTHONPATH=. .venv/bin/python scripts/bench_stored_lists.py [--data ../shared/data]
        [--base 20000] [--adds 100] [--removes 10] [-k 10] [--work DIR]

Builds an index of the first BASE articles of reuters21578 (with a title or body),
stores every related list (``related --all --store-lists``), then adds the next
ADDS articles one at a time (as a newsroom publishes), each add refreshing the
lists it affects. The same adds go to a copy of the index without stored lists;
the difference is the refresh's cost. Then every list is recomputed once
(``related_all``, one process, as the refresh uses one, on the same index state
and so with the same pinned lexical statistics) for comparison, and the
refreshed lists are compared with the recomputed ones: ids in order, and scores.
Last, REMOVES of the base articles are removed one at a time, and compared again.

The encoder is the built-in ``hashing:384`` (no model): on this machine's two
shared cores the real model would take about an hour to embed 20k articles, and
neither side being compared embeds anything but the added articles, which both
embed alike. The ranking work measured is the real one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from recommender import Recommender
from recommender.embedding.encoders import HashingEncoder

ROOT = Path(__file__).resolve().parents[1]


def _articles(path: Path, count: int) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            title, body = record.get("title") or "", (record.get("body") or "").strip()
            if not (title or body):
                continue
            # The day is enough (a few dates carry malformed times, e.g. "605:12:19").
            when = datetime.strptime(record["date"].split()[0], "%d-%b-%Y")
            out.append(
                {
                    "id": str(record["newid"]),
                    "title": title,
                    "body": body,
                    "published_at": when.replace(tzinfo=timezone.utc).isoformat(),
                    "section": (record.get("topics") or ["none"])[0],
                }
            )
            if len(out) == count:
                break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--base", type=int, default=20_000)
    parser.add_argument("--adds", type=int, default=100)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--removes", type=int, default=10)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    records = _articles(
        args.data / "reuters21578" / "reuters21578_all.jsonl", args.base + args.adds
    )
    base, adds = records[: args.base], records[args.base :]
    work = Path(tempfile.mkdtemp(prefix="bench-lists-", dir=args.work))
    encoder = HashingEncoder(384)
    try:
        started = time.perf_counter()
        Recommender.build(base, work / "lists", encoder=encoder, workers=2).close()
        print(f"built {len(base)} articles in {time.perf_counter() - started:.0f} s")
        shutil.copytree(work / "lists", work / "plain")
        with Recommender.open(work / "lists", encoder=encoder) as rec:
            started = time.perf_counter()
            stored = rec.store_lists(k=args.k)
            first = time.perf_counter() - started
            print(f"stored {stored} lists (full computation) in {first:.1f} s")
        shutil.copytree(work / "lists", work / "lists-batch")
        shutil.copytree(work / "plain", work / "plain-batch")
        batch = {}
        for name in ("lists-batch", "plain-batch"):
            with Recommender.open(work / name, encoder=encoder) as rec:
                started = time.perf_counter()
                rec.upsert(adds)
                batch[name] = time.perf_counter() - started
            shutil.rmtree(work / name)
        batch_refresh = batch["lists-batch"] - batch["plain-batch"]
        print(
            f"{len(adds)} adds in one call: {batch['lists-batch']:.1f} s with stored lists, "
            f"{batch['plain-batch']:.1f} s without -> refresh {batch_refresh:.1f} s"
        )
        with Recommender.open(work / "lists", encoder=encoder) as rec:
            with_lists, refreshed_counts = _add_one_by_one(rec, adds)
            same_ids, same_scores, total, full = _compare(rec, args.k)
        with Recommender.open(work / "plain", encoder=encoder) as rec:
            without, _ = _add_one_by_one(rec, adds)
        refresh = with_lists - without
        print(
            f"{len(adds)} adds one at a time: {with_lists:.1f} s with stored lists, "
            f"{without:.1f} s without -> refresh {refresh:.1f} s "
            f"({refresh / len(adds) * 1000:.0f} ms per add)"
        )
        print(f"lists recomputed per add: {_spread(refreshed_counts)}")
        print(
            f"full recompute of {total} lists (related_all, one process): {full:.1f} s "
            f"-> refreshing after {len(adds)} adds is {full / max(refresh, 1e-9):.1f}x faster "
            f"one at a time, {full / max(batch_refresh, 1e-9):.1f}x in one call"
        )
        _print_identical(same_ids, same_scores, total)
        if args.removes:
            _removes(work / "lists", encoder, base[: args.removes], args.k)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _compare(rec: Recommender, k: int) -> tuple[int, int, int, float]:
    """Lists equal to a full recompute (ids in order; ids and scores), the count, and the
    recompute's seconds. The recompute is ``related_all`` on the same index state: the
    same pinned statistics, what ``store_lists`` would store now without re-pinning."""
    catalog = rec._index.state.catalog
    names = dict(catalog.all_ids())
    stored = {names[o]: hits for o, hits in catalog.stored_lists().items()}
    started = time.perf_counter()
    recomputed = dict(rec.related_all(k=k))
    full = time.perf_counter() - started
    same_ids = same_scores = 0
    for owner, matches in recomputed.items():
        hits = stored.get(owner, [])
        ids = [names[i] for i, _ in hits] == [m.id for m in matches]
        same_ids += ids
        same_scores += ids and all(
            abs(s - m.score) <= 1e-6 for (_, s), m in zip(hits, matches, strict=True)
        )
    return same_ids, same_scores, len(recomputed), full


def _print_identical(same_ids: int, same_scores: int, total: int) -> None:
    print(
        f"stored lists identical to the full recompute: ids in order {same_ids}/{total} "
        f"({100 * same_ids / total:.2f}%), ids and scores (1e-6) {same_scores}/{total} "
        f"({100 * same_scores / total:.2f}%)"
    )


def _spread(counts: list[int]) -> str:
    return (
        f"mean {statistics.mean(counts):.1f}, median {statistics.median(counts):.0f}, "
        f"max {max(counts)}"
    )


def _removes(path: Path, encoder: HashingEncoder, gone: list[dict[str, object]], k: int) -> None:
    """Remove articles one at a time: each recomputes every list whose pool held it."""
    with Recommender.open(path, encoder=encoder) as rec:
        counts = []
        started = time.perf_counter()
        for record in gone:
            rec.remove([str(record["id"])])
            counts.append(rec.refreshed_lists)
        seconds = time.perf_counter() - started
        print(
            f"{len(gone)} removes one at a time: {seconds:.1f} s with stored lists "
            f"({seconds / len(gone) * 1000:.0f} ms per remove); lists recomputed per remove: "
            f"{_spread(counts)}"
        )
        _print_identical(*_compare(rec, k)[:3])


def _add_one_by_one(rec: Recommender, adds: list[dict[str, object]]) -> tuple[float, list[int]]:
    """Seconds to add ``adds`` one upsert each, and how many stored lists each recomputed."""
    started = time.perf_counter()
    counts = []
    for record in adds:
        rec.upsert([record])
        counts.append(rec.refreshed_lists)
    return time.perf_counter() - started, counts


if __name__ == "__main__":
    main()
