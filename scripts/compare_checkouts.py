"""Paired timings of this checkout against another: build, related --all, HTTP related p50.

    .venv/bin/python scripts/compare_checkouts.py OTHER_CHECKOUT [--rounds 2]
        [--build FILE.jsonl] [--related-all INDEX] [--http INDEX] [--http-seconds 10]

Each measurement runs OTHER_CHECKOUT and this checkout alternately (``--rounds`` times each),
in fresh processes with ``PYTHONPATH`` set to the checkout, so the same interpreter and
packages run each side's code. On a shared, noisy machine only the ratio of the two medians
means anything; the script prints both medians and the ratio this/other (below 1: faster).

- ``--build FILE``: ``recommender build FILE`` into a fresh directory (the default model).
- ``--related-all INDEX``: ``recommender related --all`` over INDEX to /dev/null.
- ``--http INDEX``: ``recommender serve`` (one worker) over a copy of INDEX on a free loopback
  port, then ``wrk -t1 -c8`` for ``--http-seconds`` on ``GET /v1/articles/{id}/related`` with
  random ids of INDEX (Debian's ``wrk``); the p50 latency wrk reports.

``git worktree add --detach ../old <commit>`` makes OTHER_CHECKOUT.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
_WRK_SCRIPT = """
local ids = {}
for line in io.lines("%s") do ids[#ids + 1] = line end
math.randomseed(1)
request = function()
  return wrk.format("GET", "/v1/articles/" .. ids[math.random(#ids)] .. "/related")
end
"""


def _env(checkout: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(checkout), "HF_HUB_OFFLINE": "1"}


def _cli(checkout: Path, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [PYTHON, "-m", "recommender", *args],
        env=_env(checkout),
        check=True,
        capture_output=True,
        cwd=checkout,
    )
    return time.perf_counter() - started


def _build(source: Path) -> Callable[[Path], float]:
    def run(checkout: Path) -> float:
        with tempfile.TemporaryDirectory(prefix="cmp-build-") as tmp:
            return _cli(checkout, "build", str(source), "--index", f"{tmp}/idx", "--quiet")

    return run


def _related_all(index: Path) -> Callable[[Path], float]:
    def run(checkout: Path) -> float:
        return _cli(
            checkout, "related", "--all", "--index", str(index), "--quiet", "--output", os.devnull
        )

    return run


def _ids(index: Path) -> list[str]:
    manifest = json.loads((index / "manifest.json").read_text())
    conn = sqlite3.connect(index / manifest["generation"] / "catalog.sqlite3")
    try:
        return [row[0] for row in conn.execute("SELECT id FROM articles")]
    finally:
        conn.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not start")


def _p50_ms(wrk_output: str) -> float:
    match = re.search(r"^\s*50%\s+([\d.]+)(us|ms|s)\s*$", wrk_output, re.M)
    if match is None:
        raise RuntimeError(f"no p50 in wrk's output:\n{wrk_output}")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _http(index: Path, seconds: int) -> Callable[[Path], float]:
    def run(checkout: Path) -> float:
        with tempfile.TemporaryDirectory(prefix="cmp-http-") as tmp:
            copy = Path(tmp) / "idx"
            shutil.copytree(index, copy)
            ids_file = Path(tmp) / "ids.txt"
            ids_file.write_text("\n".join(_ids(copy)) + "\n")
            script = Path(tmp) / "related.lua"
            script.write_text(_WRK_SCRIPT % ids_file)
            port = _free_port()
            command = [PYTHON, "-m", "recommender", "serve", "--index", str(copy)]
            command += ["--port", str(port), "--read-only", "--no-access-log"]
            server = subprocess.Popen(
                command,
                env=_env(checkout),
                cwd=checkout,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                _wait_ready(port, server)
                url = f"http://127.0.0.1:{port}"
                wrk = ["wrk", "-t1", "-c8", f"-d{seconds}s", "--latency", "-s", str(script), url]
                out = subprocess.run(wrk, check=True, capture_output=True, text=True).stdout
                return _p50_ms(out)
            finally:
                server.terminate()
                server.wait(timeout=60)

    return run


def _paired(name: str, measure: Callable[[Path], float], other: Path, rounds: int) -> None:
    times: dict[str, list[float]] = {"other": [], "this": []}
    for _ in range(rounds):
        for side, checkout in (("other", other), ("this", ROOT)):
            times[side].append(measure(checkout))
    med = {side: statistics.median(values) for side, values in times.items()}
    shown = {side: ", ".join(f"{v:.3f}" for v in values) for side, values in times.items()}
    print(
        f"{name}: other {med['other']:.3f} ({shown['other']}), this {med['this']:.3f}"
        f" ({shown['this']}), ratio this/other {med['this'] / med['other']:.3f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("other", type=Path)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--build", type=Path)
    parser.add_argument("--related-all", type=Path)
    parser.add_argument("--http", type=Path)
    parser.add_argument("--http-seconds", type=int, default=10)
    args = parser.parse_args()
    other = args.other.resolve()
    if args.build:
        _paired("build s", _build(args.build.resolve()), other, args.rounds)
    if args.related_all:
        _paired("related --all s", _related_all(args.related_all.resolve()), other, args.rounds)
    if args.http:
        measure = _http(args.http.resolve(), args.http_seconds)
        _paired("HTTP related p50 ms", measure, other, args.rounds)


if __name__ == "__main__":
    main()
