"""Related lists per second over HTTP, measured with wrk: configurations side by side.

    .venv/bin/python scripts/bench_http.py [--index indexes/ecbplus] [--seconds 15]
        [--connections 32] [--rounds 2] [--other CHECKOUT]

Serves a copy of the index with ``recommender serve`` on a free loopback port (this
checkout's code, or ``--other``'s with ``PYTHONPATH``), then runs Debian's ``wrk -t1
-cN -dS --latency`` with a Lua script that asks ``GET /v1/articles/{id}/related`` for random
ids of the index (seeded), and reads requests/s and the p50/p99 latency wrk reports. Each
configuration (workers 1 or 2; stored lists off or on, asked with ``fresh=false``; the list
cache off or on) runs ``--rounds`` times, alternating, so that on a shared, noisy machine
every configuration sees the same conditions; the table gives the median of its rounds.
wrk is a C program: the load generator takes little of the two cores, unlike a Python client.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_LUA = """
local ids = {}
for line in io.lines("%s") do ids[#ids + 1] = line end
math.randomseed(1)
request = function()
  return wrk.format("GET", "/v1/articles/" .. ids[math.random(#ids)] .. "/related%s")
end
"""


@dataclass(frozen=True)
class Setup:
    name: str
    workers: int
    stored: bool
    list_cache: int
    checkout: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(setup: Setup, index: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(setup.checkout)}
    env.pop("RECOMMENDER_API_TOKEN", None)
    command = [sys.executable, "-m", "recommender", "serve", "--index", str(index)]
    command += ["--port", str(port), "--workers", str(setup.workers), "--read-only"]
    command += ["--no-access-log"]
    if setup.checkout == ROOT:
        command += ["--list-cache", str(setup.list_cache)]
    # In the checkout: ``python -m`` puts the working directory first on sys.path.
    proc = subprocess.Popen(
        command,
        env=env,
        cwd=setup.checkout,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{setup.name}: the server did not come up")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _wrk(url: str, script: Path, seconds: int, connections: int) -> tuple[float, float, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw errors:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return rate, _latency(out, "50%"), _latency(out, "99%")


def _latency(out: str, percentile: str) -> float:
    value, unit = re.search(rf"{percentile}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _copies(index: Path, scratch: Path) -> dict[bool, Path]:
    plain, stored = scratch / "plain", scratch / "stored"
    shutil.copytree(index, plain)
    shutil.copytree(index, stored)
    subprocess.run(
        [sys.executable, "-m", "recommender", "related", "--all", "--store-lists", "--index",
         str(stored), "--quiet"],
        check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, cwd=ROOT,
    )  # fmt: skip
    return {False: plain, True: stored}


def _ids(index: Path, path: Path) -> None:
    catalog = next(index.glob("gen-*/catalog.sqlite3"))
    with sqlite3.connect(catalog) as db:
        ids = [row[0] for row in db.execute("SELECT id FROM articles ORDER BY int_id")]
    path.write_text("\n".join(ids) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=ROOT / "indexes" / "ecbplus")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--other", type=Path, default=None, help="a baseline checkout")
    args = parser.parse_args()
    setups = [
        Setup(f"{w} worker{'s' * (w > 1)}, stored lists {'on' if s else 'off'}, list cache "
              f"{'on' if c else 'off'}", w, s, c, ROOT)
        for w in (1, 2) for s in (False, True) for c in (0, 10_000)
    ]  # fmt: skip
    if args.other is not None:
        setups += [
            Setup(f"{w} worker{'s' * (w > 1)}, stored lists {'on' if s else 'off'}, "
                  f"{args.other.name}", w, s, 0, args.other.resolve())
            for w in (1, 2) for s in (False, True)
        ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        scratch = Path(tmp)
        indexes = _copies(args.index, scratch)
        ids = scratch / "ids.txt"
        _ids(args.index, ids)
        scripts = {}
        for stored in (False, True):
            scripts[stored] = scratch / f"random-{stored}.lua"
            scripts[stored].write_text(_LUA % (ids, "?fresh=false" if stored else ""))
        results: dict[str, list[tuple[float, float, float]]] = {s.name: [] for s in setups}
        for _ in range(args.rounds):
            for setup in setups:
                proc, url = _serve(setup, indexes[setup.stored])
                try:
                    _wrk(url, scripts[setup.stored], 3, args.connections)  # warm-up
                    results[setup.name].append(
                        _wrk(url, scripts[setup.stored], args.seconds, args.connections)
                    )
                finally:
                    _stop(proc)
    print(f"wrk -t1 -c{args.connections} -d{args.seconds}s, random ids of {args.index}, "
          f"median of {args.rounds} rounds")  # fmt: skip
    print(f"{'configuration':<58} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, runs in results.items():
        rate = statistics.median(r[0] for r in runs)
        p50 = statistics.median(r[1] for r in runs)
        p99 = statistics.median(r[2] for r in runs)
        each = " / ".join(f"{r[0]:.0f}" for r in runs)
        print(f"{name:<58} {rate:8.0f} {p50:8.2f} {p99:8.2f}   ({each})")


if __name__ == "__main__":
    main()
