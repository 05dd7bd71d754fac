"""Refreshing stored related lists after adds, against recomputing every list.

    .venv/bin/python scripts/bench_stored_lists.py [--data ../shared/data] [--base 20000]
        [--adds 100] [-k 10] [--work DIR]

Builds an index of the first BASE articles of reuters21578 (with a title or body),
stores every related list (``related --all --store-lists``), then adds the next
ADDS articles one at a time (as a newsroom publishes), each add refreshing the
lists it affects. The same adds go to a copy of the index without stored lists;
the difference is the refresh's cost. Then every list is recomputed once
(``related_all``, one process, as the refresh uses one, on the same index state
and so with the same pinned lexical statistics) for comparison, and the
refreshed lists are compared with the recomputed ones: ids in order, and scores.

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
from recommender.encoders import HashingEncoder

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
            catalog = rec._state.catalog
            refreshed = catalog.stored_lists()
            names = dict(catalog.all_ids())
            started = time.perf_counter()
            # The full recompute on the same index state (same pinned statistics).
            recomputed = {aid: ms for aid, ms in rec.related_all(k=args.k)}
            full = time.perf_counter() - started
        with Recommender.open(work / "plain", encoder=encoder) as rec:
            without, _ = _add_one_by_one(rec, adds)
        refresh = with_lists - without
        stored = {names[o]: hits for o, hits in refreshed.items()}
        same_ids = sum(
            [names[i] for i, _ in stored.get(o, [])] == [m.id for m in ms]
            for o, ms in recomputed.items()
        )
        same_scores = sum(
            len(stored.get(o, [])) == len(ms)
            and all(
                names[i] == m.id and abs(s - m.score) <= 1e-6
                for (i, s), m in zip(stored[o], ms, strict=True)
            )
            for o, ms in recomputed.items()
        )
        print(
            f"{len(adds)} adds one at a time: {with_lists:.1f} s with stored lists, "
            f"{without:.1f} s without -> refresh {refresh:.1f} s "
            f"({refresh / len(adds) * 1000:.0f} ms per add)"
        )
        print(
            f"lists recomputed per add: mean {statistics.mean(refreshed_counts):.1f}, "
            f"median {statistics.median(refreshed_counts):.0f}, max {max(refreshed_counts)}"
        )
        print(
            f"full recompute of {len(recomputed)} lists (related_all, one process): {full:.1f} s "
            f"-> refreshing after {len(adds)} adds is {full / max(refresh, 1e-9):.1f}x faster "
            f"one at a time, {full / max(batch_refresh, 1e-9):.1f}x in one call"
        )
        total = len(recomputed)
        print(
            f"stored lists identical to the full recompute: ids in order {same_ids}/{total} "
            f"({100 * same_ids / total:.2f}%), ids and scores (1e-6) {same_scores}/{total} "
            f"({100 * same_scores / total:.2f}%); stored owners {len(stored)}, "
            f"recomputed owners {total}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


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
