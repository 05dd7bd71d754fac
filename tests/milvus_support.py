"""Where the Milvus-backed tests find an engine: a Lite file, or a real Milvus server.

The server is ``$RECOMMENDER_MILVUS_URL`` when it is set (scripts/with_milvus_server.sh sets
it). Otherwise the first test that needs a server starts one for the session
(:class:`SessionServer`): PyPI's ``milvus-server`` in a private network namespace whose only
interface is loopback, exactly as the script runs it, its data in a temporary directory. A
helper process (this file run as a script) holds a listening socket on the machine's
127.0.0.1, on a port the kernel picked, and forwards its connections to the server inside the
namespace, so nothing the server binds is reachable from outside, and sessions running side
by side never compete for ports. The test session's end stops it (tests/conftest.py); so does
the helper itself when the test process dies without stopping it. The URL is put into
``os.environ``, so the commands and services the tests start reach the same server.

Without ``milvus-server``, or where no network namespace can be made (root or user
namespaces needed), the server tests skip with the reason; under CI (``$CI`` set) they fail,
so a server that did not start can never pass silently.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ENV_URL = "RECOMMENDER_MILVUS_URL"
STORES = ("faiss", "milvus-lite", "milvus-server")
_reachable: dict[str, str | None] = {}

# Inside the server's own network namespace its default ports are always free.
_PROXY_PORT = 19530
_HEALTH_URL = "http://127.0.0.1:9091/healthz"
_START_TIMEOUT_S = 180.0
# The components advertise the machine's first address to each other unless told otherwise.
_COMPONENTS = (
    "rootCoord",
    "proxy",
    "queryCoord",
    "queryNode",
    "indexNode",
    "dataCoord",
    "dataNode",
)


def server_url() -> str:
    """The URL of the test server, or skip (fail under CI) when there is none.

    ``$RECOMMENDER_MILVUS_URL`` when set; otherwise the session's own server, started by the
    first call.
    """
    problem = None if os.environ.get(ENV_URL) else SESSION_SERVER.start()
    url = os.environ.get(ENV_URL)
    if url and problem is None:
        if url not in _reachable:
            _reachable[url] = _probe(url)
        problem = _reachable[url]
    if problem is None:
        assert url is not None
        return url
    if os.environ.get("CI"):
        pytest.fail(f"no Milvus server for the integration tests: {problem}")
    pytest.skip(f"no Milvus server: {problem}")


def _probe(url: str) -> str | None:
    from recommender.errors import StoreError
    from recommender.stores.milvus import MilvusStore

    try:
        MilvusStore(0, url=url, collection="").close()
    except StoreError as exc:
        return str(exc)
    return None


def store_url(kind: str, tmp_path: Path) -> str:
    """The ``--store`` value of one kind of store, for a test."""
    if kind == "faiss":
        return "faiss"
    if kind == "milvus-lite":
        return f"milvus://{tmp_path / 'milvus.db'}"
    if kind == "milvus-server":
        return server_url()
    raise ValueError(f"unknown store kind {kind!r}; expected one of {list(STORES)}")


def unique_collection() -> str:
    return f"test_{secrets.token_hex(6)}"


class SessionServer:
    """The test session's own Milvus server: started by the first test that needs one."""

    def __init__(self) -> None:
        self.url: str | None = None
        self.problem: str | None = None
        self.started_in: float | None = None
        self._helper: subprocess.Popen[bytes] | None = None
        self._group: int | None = None  # the server's process group, the helper's child
        self._home: Path | None = None

    def start(self) -> str | None:
        """Start the server unless that was done (or tried) before; why it is not running."""
        if self.url is None and self.problem is None:
            began = time.monotonic()
            try:
                self.problem = self._launch()
            except Exception as exc:
                self.problem = f"the Milvus server did not start: {exc}"
            except BaseException:  # Ctrl-C while it starts: leave nothing behind
                self.stop()
                raise
            if self.problem is None:
                self.started_in = time.monotonic() - began
            else:
                self.stop()
        return self.problem

    def _launch(self) -> str | None:
        server = _executable()
        if server is None:
            return (
                "milvus-server not found (the `milvus` package of the test extra: "
                "pip install -c constraints.txt -e '.[test]')"
            )
        if shutil.which("unshare") is None:
            return "unshare (util-linux) not found: the server only runs in a private network"
        self._home = home = Path(tempfile.mkdtemp(prefix="recommender-milvus-"))
        # Root makes the namespace itself; anyone else through a user namespace.
        unshare = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "-r", "--net"]
        with socket.socket() as listener, open(home / "helper.log", "wb") as log:
            listener.bind(("127.0.0.1", 0))
            listener.listen(64)
            port = listener.getsockname()[1]
            fd = listener.fileno()
            self._helper = subprocess.Popen(
                [*unshare, sys.executable, __file__, str(fd), str(home), server],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                pass_fds=(fd,),
                start_new_session=True,
            )
        assert self._helper.stdout is not None
        # The helper says "group N" (the server's process group), then "ready" or why not.
        status = self._helper.stdout.readline().decode()
        if status.startswith("group "):
            self._group = int(status.split()[1])
            status = self._helper.stdout.readline().decode()
        if status == "ready\n":
            self.url = f"milvus://127.0.0.1:{port}"
            os.environ[ENV_URL] = self.url
            return None
        why = (status + self._helper.stdout.read().decode()).strip()
        if not why:  # the helper never ran: unshare failed, and said why on its stderr
            stderr = (home / "helper.log").read_text(errors="replace").strip()[-2000:]
            why = f"no private network namespace (root or user namespaces needed): {stderr}"
        return f"the Milvus server did not start: {why}"

    def stop(self) -> None:
        """Stop the server (its whole process group) and the helper; remove its data."""
        helper, self._helper = self._helper, None
        if helper is not None:
            # SIGTERM: the helper kills the server's group, waits for it, removes its data.
            helper.terminate()
            try:
                clean = helper.wait(timeout=30) == 0
            except subprocess.TimeoutExpired:
                clean = False
            if not clean:
                for group in (self._group, helper.pid):
                    if group is not None:
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.killpg(group, signal.SIGKILL)
                helper.wait()
            for pipe in (helper.stdin, helper.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
        if self.url is not None and os.environ.get(ENV_URL) == self.url:
            del os.environ[ENV_URL]
        self.url = None
        if self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = None

    def summary(self) -> str | None:
        """A line for the end of the run, when this session started a server."""
        if self.started_in is None:
            return None
        started = f"started in {self.started_in:.1f} s"
        return f"milvus-server for the server tests: {started}, stopped at the end of the session"


SESSION_SERVER = SessionServer()


def _executable() -> str | None:
    """milvus-server: $MILVUS_SERVER, else beside this Python (the venv), else on PATH."""
    named = os.environ.get("MILVUS_SERVER")
    if named:
        return named if os.access(named, os.X_OK) else None
    beside = Path(sys.executable).with_name("milvus-server")
    return str(beside) if os.access(beside, os.X_OK) else shutil.which("milvus-server")


# -- The helper: this file run as a script, inside the server's network namespace ---------------


def _serve(listen_fd: int, home: str, server: str) -> None:
    """Run milvus-server here, forward the test session's connections to it, until stopped.

    Stopped by SIGTERM (the session's end), or by the end of its standard input: the test
    process died without stopping it, and the helper removes what it would have removed.
    """
    for stop in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, _exit)
    listener = socket.socket(fileno=listen_fd)  # on the machine's loopback, made before unshare
    data = os.path.join(home, "data")
    os.makedirs(data)
    launcher = None
    orphaned = False
    try:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        args = [server, "--data", data]
        for component in _COMPONENTS:
            args += ["--extra-config", f"{component}.ip=127.0.0.1"]
        log = os.path.join(data, "server.log")
        with open(log, "wb") as out:
            # A group of its own (the launcher and the milvus binary it starts), killed whole.
            launcher = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
            )
        _say(f"group {launcher.pid}")
        problem = _wait_healthy(launcher)
        if problem is not None:
            with open(log, errors="replace") as text:
                tail = "".join(text.readlines()[-20:]).strip()
            _say(f"{problem}; its log ends:\n{tail}" if tail else problem)
            return
        threading.Thread(target=_accept, args=(listener,), daemon=True).start()
        _say("ready")
        sys.stdin.buffer.read()
        orphaned = True
    except (OSError, subprocess.CalledProcessError) as exc:
        _say(f"{exc}")
    finally:
        if launcher is not None:
            _kill_group(launcher)
        shutil.rmtree(home if orphaned else data, ignore_errors=True)


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _say(line: str) -> None:
    with contextlib.suppress(OSError):  # the test process may be gone
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _wait_healthy(launcher: subprocess.Popen[bytes]) -> str | None:
    # No proxy from the environment: this is the namespace's own loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if launcher.poll() is not None:
            return f"milvus-server exited with status {launcher.returncode}"
        with contextlib.suppress(OSError), opener.open(_HEALTH_URL, timeout=2) as answer:
            if answer.status == 200:
                return None
        time.sleep(0.25)
    return f"milvus-server did not become healthy within {_START_TIMEOUT_S:.0f} s"


def _kill_group(launcher: subprocess.Popen[bytes]) -> None:
    # SIGKILL at once: the data is thrown away, and the server ignores SIGTERM for a long time.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(launcher.pid, signal.SIGKILL)
    launcher.wait()
    # The milvus binary is the launcher's child: wait (a little) until init has reaped it.
    for _ in range(50):
        try:
            os.killpg(launcher.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def _accept(listener: socket.socket) -> None:
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_bridge, args=(client,), daemon=True).start()


def _bridge(client: socket.socket) -> None:
    with client:
        try:
            upstream = socket.create_connection(("127.0.0.1", _PROXY_PORT))
        except OSError:
            return
        with upstream:
            for end in (client, upstream):  # gRPC's small frames: no Nagle delays
                end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
            back.start()
            _pump(client, upstream)
            back.join()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(1 << 16):
            sink.sendall(chunk)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


if __name__ == "__main__":
    _serve(int(sys.argv[1]), sys.argv[2], sys.argv[3])
