"""The HTTP service: every route and error path in-process, then one real server process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi.testclient import TestClient

from recommender import (
    Article,
    ArticleNotFoundError,
    IndexLockedError,
    IndexNotFoundError,
    InvalidArgumentError,
    ModelMismatchError,
    Recommender,
    StoreError,
)
from recommender.embedding.encoders import HashingEncoder
from recommender.serving.app import create_app, is_loopback

from .conftest import JSON_ROUTES
from .milvus_support import store_url

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["faiss", "milvus-lite"])
def built(
    request: pytest.FixtureRequest, tmp_path: Path, corpus: list[Article], encoder: HashingEncoder
) -> Path:
    """The test index on FAISS and on Milvus Lite: the service runs unchanged on either."""
    path = tmp_path / "idx"
    store = store_url(str(request.param), tmp_path)
    Recommender.build(corpus, path, encoder=encoder, store=store).close()
    return path


@pytest.fixture
def rec(built: Path, encoder: HashingEncoder) -> Iterator[Recommender]:
    with Recommender.open(built, encoder=encoder) as opened:
        yield opened


@pytest.fixture
def client(rec: Recommender) -> Iterator[TestClient]:
    with TestClient(create_app(rec, token=TOKEN, max_body_bytes=4096, max_k=20)) as c:
        yield c


def _several_processes(index: Path) -> None:
    """Skip on Milvus Lite: its file is served to one process (tests and server here are two)."""
    if "milvus.db" in json.loads((index / "manifest.json").read_text())["store_options"].get(
        "url", ""
    ):
        pytest.skip("Milvus Lite serves one process; FAISS and a Milvus server serve several")


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert {"type", "message", "field"} <= set(error)
    return error


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["related"]]


# -- reads -------------------------------------------------------------------------------


def test_healthz_and_info(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    info = client.get("/v1/info").json()
    assert info["counts"] == {"articles": 14, "vectors": 14}
    assert info["model"]["id"] == "hashing:256"


def test_related_shape_and_filters(client: TestClient) -> None:
    response = client.get("/v1/articles/port-0/related", params={"k": 3})
    body = response.json()
    assert body["id"] == "port-0"
    assert sorted(item["id"] for item in body["related"]) == ["port-1", "port-2", "port-3"]
    assert set(body["related"][0]) == {
        "id",
        "title",
        "url",
        "published_at",
        "section",
        "score",
        "explanation",
    }
    assert body["related"][0]["explanation"] is None

    english = _ids(client.get("/v1/articles/port-0/related", params={"language": "en"}))
    assert english and "port-3" not in english  # port-3 is in French
    both = _ids(
        client.get(
            "/v1/articles/port-0/related",
            params=[("section", "world"), ("section", "local"), ("exclude", "quake-1")],
        )
    )
    assert both and "quake-1" not in both
    assert all(i.startswith(("quake", "budget")) for i in both)
    dated = _ids(
        client.get(
            "/v1/articles/port-0/related", params={"since": "2026-03-12", "until": "2026-03-12"}
        )
    )
    assert dated and all(i.endswith("-2") for i in dated)


def test_related_unknown_id_is_404(client: TestClient) -> None:
    error = _error(client.get("/v1/articles/nope/related"), 404)
    assert error["type"] == "ArticleNotFoundError"
    assert "nope" in error["message"]


@pytest.mark.parametrize("k", ["21", "0", "ten", "1.5"])
def test_bad_k_is_422_naming_k(client: TestClient, k: str) -> None:
    error = _error(client.get("/v1/articles/port-0/related", params={"k": k}), 422)
    assert (error["field"], error["in"]) == ("k", "query")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"since": "2026-03-12", "until": "2026-03-11"}, "until"),
    ],
)
def test_bad_dates_are_422_naming_the_field(
    client: TestClient, params: dict[str, str], field: str
) -> None:
    error = _error(client.get("/v1/articles/port-0/related", params=params), 422)
    assert error["field"] == field
    assert error["type"] == "InvalidArgumentError" and error["in"] == "query"


def test_similar_by_text_and_by_title_body(client: TestClient) -> None:
    by_text = client.post("/v1/similar", json={"text": "earthquake rubble rescue aftershock"})
    assert by_text.json()["id"] is None
    assert _ids(by_text)[0].startswith("quake")
    by_parts = client.post(
        "/v1/similar",
        json={"title": "Council budget", "body": "mayor taxes deficit", "k": 2, "section": "local"},
    )
    assert [i.split("-")[0] for i in _ids(by_parts)] == ["budget", "budget"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"text": "a", "title": "b"}, "text"),
        ({"text": "   "}, "text"),
        ({}, "text"),
        ({"text": 5}, "text"),
        ({"text": "port", "k": 21}, "k"),
        ({"text": "port", "since": "soon"}, "since"),
        ({"text": "port", "published_at": "2026-02-30"}, "published_at"),
        ({"text": "port", "sections": ["x"]}, "sections"),
    ],
)
def test_similar_bad_input_is_422_naming_the_field(
    client: TestClient, payload: dict[str, Any], field: str
) -> None:
    error = _error(client.post("/v1/similar", json=payload), 422)
    assert (error["field"], error["in"]) == (field, "body")


def test_bad_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/v1/similar", content=b'{"text": "a",', headers={"content-type": "application/json"}
    )
    error = _error(response, 422)
    assert error["in"] == "body" and "invalid JSON" in error["message"]
    error = _error(client.post("/v1/similar", json=["not", "an", "object"]), 422)
    assert error["in"] == "body"


def test_get_article(client: TestClient, rec: Recommender) -> None:
    assert client.get("/v1/articles/port-1").json() == rec.get("port-1").to_dict()
    assert _error(client.get("/v1/articles/nope"), 404)["type"] == "ArticleNotFoundError"


def test_unknown_route_and_method_are_json(client: TestClient) -> None:
    assert _error(client.get("/v2/nothing"), 404)["type"] == "NotFound"
    assert _error(client.post("/healthz"), 405)["type"] == "MethodNotAllowed"


# -- writes ------------------------------------------------------------------------------

NEW = {
    "id": "port-new",
    "title": "Port strike widens",
    "body": "harbor dockworkers strike valdora port cranes union wages spread",
    "section": "business",
    "published_at": "2026-03-11T10:00:00Z",
}


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}]
)
def test_writes_need_the_token(client: TestClient, headers: dict[str, str]) -> None:
    error = _error(client.put("/v1/articles", json=[NEW], headers=headers), 401)
    assert error["type"] == "Unauthorized"
    response = client.delete("/v1/articles/port-0", headers=headers)
    assert _error(response, 401)["type"] == "Unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"
    assert "port-new" not in _ids(client.get("/v1/articles/port-0/related"))
    assert client.get("/v1/articles/port-0").status_code == 200


def test_put_reports_each_bad_record_and_writes_the_good_ones(client: TestClient) -> None:
    batch = [
        NEW,
        {"id": "no-body"},
        {"body": "no id"},
        {"id": "bad-date", "body": "x", "published_at": "someday"},
        "not an object",
        dict(NEW),
    ]
    response = client.put("/v1/articles", json=batch, headers=AUTH)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["added"], report["total"]) == (1, 15)
    reasons = {r["line"]: r["reason"] for r in report["rejected"]}
    assert set(reasons) == {2, 3, 4, 5, 6}
    assert "missing body" in reasons[2]
    assert "missing id" in reasons[3]
    assert "unparseable date" in reasons[4]
    assert "JSON object" in reasons[5]
    assert "duplicate id" in reasons[6]
    assert "port-new" in _ids(client.get("/v1/articles/port-0/related"))
    assert client.get("/v1/articles/port-new").json()["title"] == NEW["title"]


def test_put_envelope_and_update(client: TestClient) -> None:
    first = client.put("/v1/articles", json={"articles": [NEW]}, headers=AUTH).json()
    assert first["added"] == 1
    changed = {**NEW, "section": "world"}
    second = client.put("/v1/articles", json=[changed, NEW | {"id": "feed/1"}], headers=AUTH)
    assert second.json()["metadata_updated"] == 1
    # Ids may hold slashes (feeds use URLs as ids).
    assert client.get("/v1/articles/feed/1").json()["id"] == "feed/1"
    assert client.get("/v1/articles/feed/1/related").json()["id"] == "feed/1"


@pytest.mark.parametrize("body", [{"id": "x", "body": "y"}, "text", None])
def test_put_needs_a_list(client: TestClient, body: Any) -> None:
    response = client.put("/v1/articles", content=json.dumps(body), headers=AUTH)
    assert _error(response, 422)["in"] == "body"


def test_delete(client: TestClient) -> None:
    response = client.delete("/v1/articles/port-1", headers=AUTH)
    assert response.status_code == 200, response.text
    assert (response.json()["removed"], response.json()["total"]) == (1, 13)
    assert "port-1" not in _ids(client.get("/v1/articles/port-0/related", params={"k": 20}))
    assert _error(client.get("/v1/articles/port-1"), 404)
    assert _error(client.delete("/v1/articles/port-1", headers=AUTH), 404)["type"] == (
        "ArticleNotFoundError"
    )


def test_a_rebuilt_index_is_served_without_a_restart(
    client: TestClient, built: Path, encoder: HashingEncoder
) -> None:
    assert client.get("/v1/articles/port-0/related").status_code == 200
    fresh = [{"id": f"new-{n}", "body": f"harbor strike port cranes {n}"} for n in range(3)]
    Recommender.build(fresh, built, encoder=encoder).close()
    assert client.get("/v1/info").json()["counts"]["articles"] == 3
    assert _error(client.get("/v1/articles/port-0/related"), 404)
    assert sorted(_ids(client.get("/v1/articles/new-0/related"))) == ["new-1", "new-2"]
    assert client.get("/v1/articles/new-1").json()["id"] == "new-1"


def test_read_only_refuses_writes(rec: Recommender) -> None:
    with TestClient(create_app(rec, token=TOKEN, allow_writes=False)) as client:
        assert _error(client.put("/v1/articles", json=[NEW], headers=AUTH), 403)
        assert _error(client.delete("/v1/articles/port-0", headers=AUTH), 403)
        assert client.get("/v1/articles/port-0/related").status_code == 200


def test_without_a_token_writes_are_open(rec: Recommender) -> None:
    with TestClient(create_app(rec, token=None)) as client:
        assert client.put("/v1/articles", json=[NEW]).json()["added"] == 1


def test_body_over_the_limit_is_413(client: TestClient) -> None:
    big = [{"id": f"a{i}", "body": "word " * 50} for i in range(40)]
    error = _error(client.put("/v1/articles", json=big, headers=AUTH), 413)
    assert error["type"] == "PayloadTooLarge"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
        yield b'{"text": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    response = client.post(
        "/v1/similar", content=chunks(), headers={"content-type": "application/json"}
    )
    assert _error(response, 413)["type"] == "PayloadTooLarge"
    assert client.get("/v1/info").json()["counts"]["articles"] == 14


# -- errors from the library -------------------------------------------------------------


class _Failing:
    """Stands in for a Recommender whose queries raise ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def related(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error

    def __len__(self) -> int:
        return 0


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidArgumentError("k must be positive"), 422),
        (ArticleNotFoundError("x"), 404),
        (IndexLockedError("busy"), 503),
        (ModelMismatchError("other model"), 409),
        (IndexNotFoundError("gone"), 500),
        (RuntimeError("boom /secret/path"), 500),
    ],
)
def test_library_errors_map_to_statuses(error: Exception, status: int) -> None:
    app = create_app(cast(Recommender, _Failing(error)), token=TOKEN)
    with TestClient(app, raise_server_exceptions=False) as client:
        body = _error(client.get("/v1/articles/x/related"), status)
    if isinstance(error, RuntimeError):
        assert body == {
            "type": "InternalError",
            "message": "internal server error",
            "field": None,
            "in": None,
        }
    else:
        assert body["type"] == type(error).__name__


@pytest.mark.parametrize("error", [IndexLockedError("busy"), StoreError("milvus is down")])
def test_a_503_says_when_to_retry(error: Exception) -> None:
    app = create_app(cast(Recommender, _Failing(error)), token=TOKEN)
    with TestClient(app) as client:
        response = client.get("/v1/articles/x/related")
    _error(response, 503)
    # Documented: "Retry-After: 5" (seconds); a lock is held for a write, not for minutes.
    assert response.headers["retry-after"] == "5"


# -- operations --------------------------------------------------------------------------


def test_metrics(client: TestClient) -> None:
    client.get("/v1/articles/port-0/related")
    client.get("/v1/articles/nope/related")
    client.get("/no/such/path")
    text = client.get("/metrics").text
    route = 'route="/v1/articles/{article_id}/related"'
    assert f'recommender_http_requests_total{{method="GET",{route},status="200"}} 1.0' in text
    assert f'recommender_http_requests_total{{method="GET",{route},status="404"}} 1.0' in text
    assert 'route="unmatched"' in text
    assert f'recommender_http_request_duration_seconds_count{{method="GET",{route}}} 2.0' in text
    assert "recommender_articles 14.0" in text


def test_each_app_has_its_own_metrics(rec: Recommender) -> None:
    one, two = TestClient(create_app(rec, token=None)), TestClient(create_app(rec, token=None))
    one.get("/healthz")
    assert 'route="/healthz"' in one.get("/metrics").text
    assert 'route="/healthz"' not in two.get("/metrics").text


def test_openapi_lists_the_routes(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) == JSON_ROUTES
    assert set(schema["paths"]["/v1/articles/{article_id}"]) == {"get", "delete"}
    related = schema["paths"]["/v1/articles/{article_id}/related"]["get"]
    ok = related["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/RelatedList"}
    k = next(p for p in related["parameters"] if p["name"] == "k")
    assert k["schema"]["maximum"] == 20
    assert "HTTPBearer" in json.dumps(schema["paths"]["/v1/articles"]["put"]["security"])
    assert "ErrorResponse" in schema["components"]["schemas"]


def test_reads_run_while_writes_land(client: TestClient) -> None:
    failures: list[str] = []

    def read() -> None:
        for _ in range(15):
            response = client.get("/v1/articles/port-0/related")
            if response.status_code != 200:
                failures.append(response.text)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for thread in readers:
        thread.start()
    for n in range(5):
        response = client.put("/v1/articles", json=[NEW | {"id": f"w{n}"}], headers=AUTH)
        assert response.status_code == 200, response.text
    for thread in readers:
        thread.join()
    assert not failures
    assert client.get("/v1/info").json()["counts"]["articles"] == 19


def test_is_loopback() -> None:
    for host in ("127.0.0.1", "127.5.0.1", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "10.0.0.1", "example.test", ""):
        assert not is_loopback(host), host


def test_service_import_is_light() -> None:
    code = (
        "import sys, recommender.serving.app; "
        "heavy = {'torch', 'faiss', 'numpy', 'sentence_transformers'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# -- the real server ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(
    index: Path, port: int, env: dict[str, str], workers: int = 1
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "recommender", "serve", "--index", str(index)]
    command += ["--port", str(port), "--workers", str(workers), "--no-access-log"]
    # A session of its own, so that kill -9 can take the workers down with it.
    return subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_ready(http: httpx.Client, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = proc.stdout.read().decode() if proc.stdout else ""
            raise AssertionError(f"server exited with {proc.returncode}:\n{output}")
        try:
            if http.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not become ready in 60 s")


def _stop(proc: subprocess.Popen[bytes]) -> str:
    """SIGTERM, as a process manager sends it; the server's output."""
    proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal for the exit status.
    assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    output = proc.stdout.read().decode() if proc.stdout else ""
    assert "Application shutdown complete" in output, output
    return output


@pytest.mark.usefixtures("loopback_only")
def test_real_server_keeps_every_acknowledged_write_through_kill_9(built: Path) -> None:
    _several_processes(built)
    port = _free_port()
    env = {**os.environ, "RECOMMENDER_API_TOKEN": TOKEN}
    acknowledged: list[str] = []
    stop = threading.Event()

    def write_stream(http: httpx.Client) -> None:
        for n in range(10_000):
            if stop.is_set():
                return
            record = NEW | {"id": f"stream-{n}", "title": f"Port strike update {n}"}
            try:
                response = http.put("/v1/articles", json=[record], headers=AUTH)
            except httpx.TransportError:
                return  # the server died mid-request: this write was never acknowledged
            if response.status_code == 200:
                acknowledged.append(record["id"])

    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        proc = _start(built, port, env)
        try:
            _wait_ready(http, proc)
            assert _ids(http.get("/v1/articles/port-0/related"))[0].startswith("port")
            assert http.put("/v1/articles", json=[NEW]).status_code == 401
            writer = threading.Thread(target=write_stream, args=(http,))
            writer.start()
            deadline = time.monotonic() + 60
            while len(acknowledged) < 5 and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # no shutdown code runs, mid-stream
            proc.wait(timeout=30)
            stop.set()
        writer.join(timeout=60)
        assert len(acknowledged) >= 5
        proc = _start(built, port, env)
        try:
            _wait_ready(http, proc)
            for article_id in acknowledged:
                assert http.get(f"/v1/articles/{article_id}").status_code == 200, article_id
            assert acknowledged[0] in _ids(
                http.get("/v1/articles/port-0/related", params={"k": 50})
            )
        finally:
            _stop(proc)


@pytest.mark.usefixtures("loopback_only")
def test_every_worker_sees_every_acknowledged_write(built: Path, tmp_path: Path) -> None:
    _several_processes(built)
    port = _free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {
        **os.environ,
        "RECOMMENDER_API_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    base = f"http://127.0.0.1:{port}"
    proc = _start(built, port, env, workers=2)
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            _wait_ready(http, proc)
        for n in range(6):
            # A new connection per request: the kernel spreads them over both workers.
            record = NEW | {"id": f"w-{n}"}
            put = httpx.put(f"{base}/v1/articles", json=[record], headers=AUTH, timeout=30)
            assert put.json()["added"] == 1, put.text
            for _ in range(4):
                assert httpx.get(f"{base}/v1/articles/w-{n}", timeout=30).status_code == 200
                related = httpx.get(f"{base}/v1/articles/port-0/related?k=50", timeout=30)
                assert f"w-{n}" in _ids(related)
            deleted = httpx.delete(f"{base}/v1/articles/w-{n}", headers=AUTH, timeout=30)
            assert deleted.json()["removed"] == 1
            for _ in range(4):
                assert httpx.get(f"{base}/v1/articles/w-{n}", timeout=30).status_code == 404
        # Both workers answered requests (each writes its own counter file) ...
        writers = {path.stem.rpartition("_")[2] for path in metrics_dir.glob("counter_*.db")}
        assert len(writers) == 2, writers
        # ... and every scrape, whichever worker answers it, counts all of them.
        series = (
            'recommender_http_requests_total{method="GET",'
            'route="/v1/articles/{article_id}",status="200"} '
        )
        for _ in range(6):
            metrics = httpx.get(f"{base}/metrics", timeout=30).text.splitlines()
            assert [line.split()[-1] for line in metrics if line.startswith(series)] == ["24.0"]
            assert "recommender_articles 14.0" in metrics
    finally:
        output = _stop(proc)
    assert output.count("Application shutdown complete") == 2, output


def test_the_shared_listener_is_tcp() -> None:
    """Accepted sockets inherit proto; asyncio sets TCP_NODELAY only for IPPROTO_TCP."""
    from recommender.serving._uvicorn import TcpConfig

    sock = TcpConfig("recommender.serving.app:app_from_env", host="127.0.0.1", port=0).bind_socket()
    with sock:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.family == socket.AF_INET


def test_refuses_open_writes_on_a_public_address(built: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RECOMMENDER_API_TOKEN"}
    command = [sys.executable, "-m", "recommender", "serve", "--index", str(built)]
    result = subprocess.run(
        [*command, "--host", "0.0.0.0", "--port", str(_free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("Error: refusing to serve writes on '0.0.0.0' without a token")
    assert len(result.stderr.strip().splitlines()) == 1


def _wait_connected(port: int, timeout: float = 60.0) -> None:
    """Wait until a TCP connection to 127.0.0.1:``port`` is established."""
    deadline = time.monotonic() + timeout
    remote = f"0100007F:{port:04X}"
    while time.monotonic() < deadline:
        with open("/proc/net/tcp") as table:
            # Columns: sl, local address, remote address, state (01 = ESTABLISHED).
            if any(f[2] == remote and f[3] == "01" for f in (line.split() for line in table)):
                return
        time.sleep(0.01)
    raise AssertionError(f"no connection to port {port} within {timeout} s")


# The child runs the real `recommender serve`, with Recommender.upsert held at a gate: it
# says when the write has started and waits for the test to release it.
_GATED_SERVE = """
import pathlib, sys, time
from recommender import Recommender
from recommender.cli import main

gate = pathlib.Path(sys.argv.pop(1))
upsert = Recommender.upsert

def gated(self, *args, **kwargs):
    (gate / "started").touch()
    while not (gate / "release").exists():
        time.sleep(0.005)
    return upsert(self, *args, **kwargs)

Recommender.upsert = gated
sys.argv[0] = "recommender"
main()
"""


@pytest.mark.usefixtures("loopback_only")
def test_sigterm_lets_an_in_flight_write_finish(built: Path, tmp_path: Path) -> None:
    _several_processes(built)
    port = _free_port()
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {**os.environ, "RECOMMENDER_API_TOKEN": TOKEN}
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-c", _GATED_SERVE, str(gate), "serve", "--index", str(built)]
    command += ["--port", str(port), "--no-access-log"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    batch = [NEW | {"id": f"bulk-{n}", "body": f"{NEW['body']} item{n}"} for n in range(3)]
    done: dict[str, Any] = {}
    output: list[str] = []
    shutting_down = threading.Event()

    def put() -> None:
        done["response"] = httpx.put(f"{base}/v1/articles", json=batch, headers=AUTH, timeout=120)

    def read_output() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line.decode("utf-8", "replace"))
            if "Shutting down" in output[-1]:
                shutting_down.set()

    reader = threading.Thread(target=read_output)
    reader.start()
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            _wait_ready(http, proc)
        writer = threading.Thread(target=put)
        writer.start()
        deadline = time.monotonic() + 60
        while not (gate / "started").exists():  # the write is in the server, held
            assert time.monotonic() < deadline and writer.is_alive(), "the write never started"
            time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        assert shutting_down.wait(timeout=60), "".join(output)
        assert "response" not in done  # still in flight when the server began to stop
        (gate / "release").touch()
        writer.join(timeout=120)
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    finally:
        (gate / "release").touch()
        if proc.poll() is None:
            proc.kill()
        reader.join(timeout=30)
    log = "".join(output)
    assert done["response"].status_code == 200, done["response"].text
    assert done["response"].json()["added"] == 3
    assert "Waiting for connections to close" in log, log
    assert "Application shutdown complete" in log, log
    with Recommender.open(built) as rec:
        assert len(rec) == 14 + 3
