"""Refreshing stored related lists after adds, against recomputing every list.

    .venv/bin/python scripts/bench_stored_lists.py [--data ../shared/data] [--base 20000]
        [--adds 100] [-k 10] [--work DIR]

Builds an index of the first BASE articles of reuters21578 (with a title or body),
stores every related list (``related --all --store-lists``), then adds the next
ADDS articles one at a time (as a newsroom publishes), each add refreshing the
lists it affects. The same adds go to a copy of the index without stored lists;
the difference is the refresh's cost. Then every list is recomputed once
(``store_lists``, one process, as the refresh uses one) for comparison, and the
refreshed lists are compared with the recomputed ones.

The encoder is the built-in ``hashing:384`` (no model): on this machine's two
shared cores the real model would take about an hour to embed 20k articles, and
neither side being compared embeds anything but the added articles, which both
embed alike. The ranking work measured is the real one.
"""

from __future__ import annotations

import argparse
import json
import shutil
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
            with_lists = _add_one_by_one(rec, adds)
            catalog = rec._state.catalog
            refreshed = catalog.stored_lists()
            started = time.perf_counter()
            recomputed_count = rec.store_lists(k=args.k)
            full = time.perf_counter() - started
            recomputed = catalog.stored_lists()
            int_of = {aid: i for i, aid in catalog.all_ids()}
        with Recommender.open(work / "plain", encoder=encoder) as rec:
            without = _add_one_by_one(rec, adds)
        refresh = with_lists - without
        same = sum(
            [i for i, _ in refreshed.get(o, [])] == [i for i, _ in hits]
            for o, hits in recomputed.items()
        )
        members = sum(
            {i for i, _ in refreshed.get(o, [])} == {i for i, _ in hits}
            for o, hits in recomputed.items()
        )
        print(
            f"{len(adds)} adds one at a time: {with_lists:.1f} s with stored lists, "
            f"{without:.1f} s without -> refresh {refresh:.1f} s "
            f"({refresh / len(adds) * 1000:.0f} ms per add)"
        )
        print(
            f"full recompute of {recomputed_count} lists: {full:.1f} s "
            f"-> refreshing after {len(adds)} adds is {full / max(refresh, 1e-9):.1f}x faster "
            f"one at a time, {full / max(batch_refresh, 1e-9):.1f}x in one call"
        )
        print(
            f"refreshed lists equal to the recompute: {same}/{len(recomputed)} in order, "
            f"{members}/{len(recomputed)} as sets"
        )
        added = {int_of[str(r["id"])] for r in adds}
        missed = 0
        for owner, hits in recomputed.items():
            kept = {i for i, _ in refreshed.get(owner, [])}
            missed += bool(({i for i, _ in hits} - kept) & added)
        print(
            f"of the {len(recomputed) - members} lists that differ as sets, {missed} miss an "
            f"added article; the rest differ at the cut"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _add_one_by_one(rec: Recommender, adds: list[dict[str, object]]) -> float:
    started = time.perf_counter()
    for record in adds:
        rec.upsert([record])
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
