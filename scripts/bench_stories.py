"""What placing an added article in its story costs at archive scale (issue 23).

    PYTHONPATH=. .venv/bin/python scripts/bench_stories.py \\
        [--index /tmp/scale/scale-100000] [--adds 100] [--warm 5] [--work DIR]

``--index``: a large index to copy; ``scripts/bench_scale.py --sizes 100000 --keep DIR``
writes a 100k-article one (real Reuters term counts and blurred real embeddings). Two
copies are made: one whose stories are grouped and stored (``regroup_stories``, timed: what
a build adds), two without stored stories, which an add leaves alone, one of them also
without the pool statistics of an add's nearest articles computed again (``unscored``: the
add path of the commit before). Then ADDS articles are added one at a time to all three, in
turn (a newsroom publishing): each is a follow-up of a random indexed article (its title, a
real Reuters body, its vector moved by noise, given as precomputed embeddings so that no model
runs). Printed: add time of each (median, mean, p90, max), the paired differences, and the
story step alone (the ``StoryKeeper.after_write`` call inside the add), after WARM uncounted
adds to each, and the model check a write makes once the archive has grown by 2% (on the
grouped copy, twice). ``--compare-workers`` first times the whole archive's ranking (what a
regrouping spends most of its time on) in one process and in two.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from recommender import Article, Recommender
from recommender.embedding.precomputed import write_embeddings
from recommender.ranking.calibration import StoryModel
from recommender.stories.keeper import StoryKeeper
from recommender.writes import update

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, default=Path("/tmp/scale/scale-100000"))
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--adds", type=int, default=100)
    parser.add_argument("--warm", type=int, default=5)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument(
        "--compare-workers",
        action="store_true",
        help="first time the whole archive's ranking in one process and in two, twice each",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-stories-", dir=args.work))
    try:
        figures = run(args.index, args.data, args.adds, args.warm, work, args.compare_workers)
        print(json.dumps(figures, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(
    index: Path, data: Path, adds: int, warm: int, work: Path, compare: bool = False
) -> dict[str, Any]:
    for name in ("stories", "plain", "unscored"):
        shutil.copytree(index, work / name)
    out: dict[str, Any] = {"index": str(index)}
    with Recommender.open(work / "stories") as rec:
        out["articles"] = len(rec)
        if compare:
            out["ranking_s_by_workers"] = _ranking_times(rec)
        started = time.perf_counter()
        rec.regroup_stories()
        out["regroup_s"] = round(time.perf_counter() - started, 1)
        out["stories"] = len(rec.stories())
        out["model_check_s"], out["model_drifted"] = _model_check(rec)
        articles, embeddings = _follow_ups(rec, data, warm + adds, work)
    nearest = update._NEAREST_STATS
    step: list[tuple[int, float]] = []
    keep = StoryKeeper.after_write

    def timed(self: StoryKeeper, before: Mapping[int, str]) -> set[int]:
        started = time.perf_counter()
        try:
            return keep(self, before)
        finally:
            step.append((id(self), time.perf_counter() - started))

    StoryKeeper.after_write = timed  # type: ignore[method-assign]
    names = ("unscored", "plain", "stories")
    times: dict[str, list[float]] = {name: [] for name in names}
    with (
        Recommender.open(work / "stories") as stories,
        Recommender.open(work / "plain") as plain,
        Recommender.open(work / "unscored") as unscored,
    ):
        for n, item in enumerate(articles):
            for name, rec in zip(names, (unscored, plain, stories), strict=True):
                # "unscored": without the pool statistics of the nearest articles.
                update._NEAREST_STATS = 0 if name == "unscored" else nearest
                started = time.perf_counter()
                rec.upsert([item], embeddings=embeddings)
                times[name].append(time.perf_counter() - started)
            if n == warm - 1:
                times = {name: [] for name in names}
                del step[:]
        update._NEAREST_STATS = nearest
        placed = sum(1 for a in articles if stories.story(a.id).id != a.id)
        mine = id(stories._stories.keeper)
    StoryKeeper.after_write = keep  # type: ignore[method-assign]
    story_step = [s for owner, s in step if owner == mine][-adds:]
    diffs = [s - p for s, p in zip(times["stories"], times["plain"], strict=True)]
    rescored = [p - u for p, u in zip(times["plain"], times["unscored"], strict=True)]
    out.update(
        adds=adds,
        add_ms_unscored=_summary(times["unscored"]),
        add_ms_plain=_summary(times["plain"]),
        add_ms_stories=_summary(times["stories"]),
        nearest_stats_difference_ms=_summary(rescored),
        paired_difference_ms=_summary(diffs),
        story_step_ms=_summary(story_step),
        joined_a_story=placed,
    )
    return out


def _model_check(rec: Recommender) -> tuple[list[float], bool]:
    """Seconds of the drift check a write makes once per 2% growth (twice), and its answer
    (right after a regrouping: no drift)."""
    meta = rec._index.state.catalog.stories_meta() or {}
    model = StoryModel.from_dict(meta["model"]) if meta.get("model") else None
    seconds, drifted = [], False
    for _ in range(2):
        started = time.perf_counter()
        drifted = rec._stories.keeper._checked({**meta, "checked": 0}, model)[1]
        seconds.append(round(time.perf_counter() - started, 2))
    return seconds, drifted


def _ranking_times(rec: Recommender) -> dict[int, list[float]]:
    """Seconds to rank every article's story neighbours, by worker processes (1, 2, 1, 2)."""
    ids = [i for i, _ in rec._index.state.catalog.all_ids()]
    times: dict[int, list[float]] = {1: [], 2: []}
    for workers in (1, 2, 1, 2):
        started = time.perf_counter()
        rec._stories.keeper.ranked(ids, workers=workers)
        times[workers].append(round(time.perf_counter() - started, 1))
    return times


def _follow_ups(rec: Recommender, data: Path, count: int, work: Path) -> tuple[list[Article], Path]:
    """``count`` follow-ups of random indexed articles, and their vectors as embeddings."""
    rng = np.random.default_rng(23)
    catalog = rec._index.state.catalog
    ids = [i for i, _ in catalog.all_ids()]
    picks = [int(i) for i in rng.choice(ids, count, replace=False)]
    rows = catalog.rows(picks)
    dimension = rec.manifest["model"]["dimension"]
    vectors = catalog.vectors(picks, dimension)
    bodies = _bodies(data / "reuters21578" / "reuters21578_all.jsonl", count)
    articles, moved = [], []
    for n, pick in enumerate(picks):
        articles.append(Article(id=f"follow-{n}", title=rows[pick].title, body=bodies[n]))
        vector = vectors[pick] + rng.normal(0, 0.02, dimension).astype(np.float32)
        moved.append(vector / np.linalg.norm(vector))
    path = work / "embeddings"
    write_embeddings(articles, np.stack(moved).astype(np.float32), rec._index.embedder(), path)
    return articles, path


def _bodies(path: Path, count: int) -> list[str]:
    out = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            body = (json.loads(line).get("body") or "").strip()
            if body:
                out.append(body)
            if len(out) == count:
                break
    return out


def _summary(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {
        "median": round(statistics.median(ms), 1),
        "mean": round(statistics.fmean(ms), 1),
        "p90": round(ms[int(0.9 * (len(ms) - 1))], 1),
        "max": round(ms[-1], 1),
    }


if __name__ == "__main__":
    main()
