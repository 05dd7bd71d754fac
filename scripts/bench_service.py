"""Load-test `recommender serve` over loopback: throughput and latency per query kind.

    .venv/bin/python scripts/bench_service.py [--index indexes/ecbplus] [--seconds 20]
        [--clients 1,4] [--workers 1] [--in-place]

Serves a copy of the index (writes would change it) on a free loopback port, then
runs, each for a bounded time: related-by-id and similar-by-text with each client
count, then related-by-id readers while a writer PUTs one new article per request.
Prints requests/s, p50/p95/p99 latency and error counts, then checks that every
acknowledged write is readable, and reports each server process's memory (PSS).
Build the default index first if it is missing (about 70 s):

    .venv/bin/recommender build ../shared/data/ecbplus/ecbplus_docs.jsonl --index indexes/ecbplus
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


@dataclass
class Tally:
    """What a set of client threads saw."""

    latencies: list[float] = field(default_factory=list)
    server_errors: int = 0  # 5xx
    connection_errors: int = 0
    other_errors: int = 0  # any other non-200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, seconds: float, status: int | None) -> None:
        with self.lock:
            if status == 200:
                self.latencies.append(seconds)
            elif status is None:
                self.connection_errors += 1
            elif status >= 500:
                self.server_errors += 1
            else:
                self.other_errors += 1


Request = Callable[[httpx.Client, random.Random], httpx.Response]


def main() -> None:
    args = _parse_args()
    index = Path(args.index)
    if not (index / "manifest.json").is_file():
        sys.exit(
            f"no index at {index}; build it with:\n  .venv/bin/recommender build "
            f"../shared/data/ecbplus/ecbplus_docs.jsonl --index {index}"
        )
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        served = index if args.in_place else _copy_index(index, Path(tmp) / "index")
        ids, texts = _sample(served, args.sample)
        token = secrets.token_urlsafe(16)
        port = _free_port()
        server = _start_server(served, port, args.workers, token)
        try:
            _run(args, server, port, token, ids, texts)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)


def _run(
    args: argparse.Namespace,
    server: subprocess.Popen[bytes],
    port: int,
    token: str,
    ids: list[str],
    texts: list[str],
) -> None:
    base = f"http://{HOST}:{port}"
    _wait_ready(base, server)

    def related(http: httpx.Client, rnd: random.Random) -> httpx.Response:
        return http.get(f"/v1/articles/{rnd.choice(ids)}/related", params={"k": 10})

    def similar(http: httpx.Client, rnd: random.Random) -> httpx.Response:
        return http.post("/v1/similar", json={"text": rnd.choice(texts), "k": 10})

    # Each worker loads the model on its first similar query: keep that out of the figures.
    _load(base, similar, clients=2 * args.workers, seconds=3.0)
    _load(base, related, clients=2, seconds=1.0)
    info = httpx.get(f"{base}/v1/info").json()
    print(
        f"index {args.index}: {info['counts']['articles']} articles, model {info['model']['id']}; "
        f"{args.workers} worker(s); {os.cpu_count()} CPUs shared by server and clients"
    )
    print(_HEADER)
    results = []
    for name, request in (("related-by-id", related), ("similar-by-text", similar)):
        for clients in args.clients:
            tally, elapsed = _load(base, request, clients=clients, seconds=args.seconds)
            results.append(_row(name, clients, tally, elapsed))
    mixed_clients = max(args.clients)
    acked: list[str] = []
    writes = Tally()
    stop = threading.Event()
    writer = threading.Thread(
        target=_write_loop, args=(base, token, texts, acked, writes, stop), daemon=True
    )
    writer.start()
    tally, elapsed = _load(base, related, clients=mixed_clients, seconds=args.mixed_seconds)
    stop.set()
    writer.join()
    results.append(_row("related + writer", mixed_clients, tally, elapsed))
    results.append(_row("  writer (PUT 1)", 1, writes, elapsed))
    missing = _check_writes(base, acked)
    print(f"acknowledged writes: {len(acked)}; not readable afterwards: {missing}")
    memory = _memory(server.pid)
    for pid, role, pss, rss in memory:
        print(f"memory {role} pid {pid}: PSS {pss / 1024:.0f} MiB, RSS {rss / 1024:.0f} MiB")
    if args.json:
        report = {"results": results, "acknowledged_writes": len(acked), "missing": missing}
        report["memory_kib"] = [
            {"pid": pid, "role": role, "pss": pss, "rss": rss} for pid, role, pss, rss in memory
        ]
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


_HEADER = (
    f"{'load':<18} {'clients':>7} {'requests':>8} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7}"
    f" {'p99 ms':>7} {'max ms':>7} {'5xx':>4} {'conn':>4} {'4xx':>4}"
)


def _row(name: str, clients: int, tally: Tally, elapsed: float) -> dict[str, object]:
    lat = sorted(tally.latencies)
    row: dict[str, object] = {
        "load": name,
        "clients": clients,
        "requests": len(lat),
        "per_second": len(lat) / elapsed if elapsed else 0.0,
        "p50_ms": _percentile(lat, 50),
        "p95_ms": _percentile(lat, 95),
        "p99_ms": _percentile(lat, 99),
        "max_ms": lat[-1] * 1000 if lat else 0.0,
        "mean_ms": statistics.fmean(lat) * 1000 if lat else 0.0,
        "server_errors": tally.server_errors,
        "connection_errors": tally.connection_errors,
        "other_errors": tally.other_errors,
    }
    print(
        f"{name:<18} {clients:>7} {len(lat):>8} {row['per_second']:>8.1f}"
        f" {row['p50_ms']:>7.1f} {row['p95_ms']:>7.1f} {row['p99_ms']:>7.1f}"
        f" {row['max_ms']:>7.1f} {tally.server_errors:>4} {tally.connection_errors:>4}"
        f" {tally.other_errors:>4}",
        flush=True,
    )
    return row


def _percentile(sorted_seconds: list[float], pct: float) -> float:
    if not sorted_seconds:
        return 0.0
    rank = min(len(sorted_seconds) - 1, round(pct / 100 * (len(sorted_seconds) - 1)))
    return sorted_seconds[rank] * 1000


def _load(base: str, request: Request, *, clients: int, seconds: float) -> tuple[Tally, float]:
    """``clients`` threads, each with its own keep-alive connection, for ``seconds``."""
    tally = Tally()
    deadline = time.perf_counter() + seconds

    def client(seed: int) -> None:
        rnd = random.Random(seed)
        with httpx.Client(base_url=base, timeout=30) as http:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    status: int | None = request(http, rnd).status_code
                except httpx.TransportError:
                    status = None
                tally.record(time.perf_counter() - started, status)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally, time.perf_counter() - started


def _write_loop(
    base: str,
    token: str,
    texts: list[str],
    acked: list[str],
    tally: Tally,
    stop: threading.Event,
) -> None:
    """PUT one new article per request until ``stop``; remember those acknowledged."""
    rnd = random.Random(7)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, timeout=120, headers=headers) as http:
        n = 0
        while not stop.is_set():
            article_id = f"bench-write-{os.getpid()}-{n}"
            record = {"id": article_id, "title": "Bench update", "body": rnd.choice(texts)}
            started = time.perf_counter()
            try:
                response = http.put("/v1/articles", json=[record])
                status: int | None = response.status_code
            except httpx.TransportError:
                status = None
            tally.record(time.perf_counter() - started, status)
            if status == 200:
                acked.append(article_id)
            n += 1


def _check_writes(base: str, acked: list[str]) -> int:
    with httpx.Client(base_url=base, timeout=30) as http:
        return sum(http.get(f"/v1/articles/{aid}").status_code != 200 for aid in acked)


# -- the server ----------------------------------------------------------------------------


def _copy_index(index: Path, target: Path) -> Path:
    manifest = json.loads((index / "manifest.json").read_text())
    target.mkdir(parents=True)
    shutil.copy2(index / "manifest.json", target / "manifest.json")
    shutil.copytree(index / manifest["generation"], target / manifest["generation"])
    return target


def _sample(index: Path, size: int) -> tuple[list[str], list[str]]:
    """Article ids to query, and story texts (title and lead) for similar-by-text."""
    sys.path.insert(0, str(ROOT))
    from recommender import Recommender

    with Recommender.open(index) as rec:
        ids = sorted(rec.field_values("title"))
        picked = random.Random(1).sample(ids, min(size, len(ids)))
        texts = []
        for aid in picked:
            article = rec.get(aid)
            texts.append(f"{article.title}\n{' '.join(article.body.split()[:120])}")
    return ids, texts


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _start_server(index: Path, port: int, workers: int, token: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "recommender", "serve", "--index", str(index)]
    command += ["--host", HOST, "--port", str(port), "--workers", str(workers)]
    command += ["--no-access-log"]
    env = {**os.environ, "RECOMMENDER_API_TOKEN": token, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(command, env=env, cwd=ROOT)


def _wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server exited with status {server.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    sys.exit("the server did not answer /healthz within 120 s")


def _memory(pid: int) -> list[tuple[int, str, int, int]]:
    """(pid, role, PSS KiB, RSS KiB) of the server and its worker processes."""
    out = []
    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    # The supervisor's children are the workers, and multiprocessing's resource tracker.
    roles = [("server", pid)] + [(_child_role(c), c) for c in children]
    for role, proc in roles:
        values = {}
        for line in Path(f"/proc/{proc}/smaps_rollup").read_text().splitlines()[1:]:
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0])
        if children and role == "server":
            role = "supervisor"
        out.append((proc, role, values["Pss"], values["Rss"]))
    return out


def _child_role(pid: int) -> str:
    command = Path(f"/proc/{pid}/cmdline").read_bytes()
    return "helper" if b"resource_tracker" in command else "worker"


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", default="indexes/ecbplus")
    parser.add_argument("--seconds", type=float, default=20.0, help="per read-only run")
    parser.add_argument("--mixed-seconds", type=float, help="the read+write run [--seconds]")
    parser.add_argument("--clients", default="1,4", help="comma-separated client counts")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--sample", type=int, default=200, help="texts for similar-by-text")
    parser.add_argument("--in-place", action="store_true", help="serve (and write to) --index")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    args.clients = [int(c) for c in args.clients.split(",")]
    args.mixed_seconds = args.mixed_seconds or args.seconds
    return args


if __name__ == "__main__":
    main()
