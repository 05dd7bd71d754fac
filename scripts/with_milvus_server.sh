#!/usr/bin/env bash
# Run a command next to a throwaway Milvus server (PyPI's `milvus` package, milvus-server 2.3):
#   scripts/with_milvus_server.sh .venv/bin/python scripts/benchmark.py --sections milvus
# The tests do not need it: a pytest session starts its own server when a test needs one
# (tests/milvus_support.py), unless RECOMMENDER_MILVUS_URL is set, as it is here.
# The server and the command run in a private network namespace whose only interface is
# loopback, so nothing the server starts (proxy, coordinators, embedded etcd; some of them bind
# the machine's address by default) can be reached from outside; its components are also told
# to use 127.0.0.1. Its data lives in a temporary directory, removed afterwards. The command
# gets RECOMMENDER_MILVUS_URL=milvus://127.0.0.1:19530 and its exit status is returned.
# The server ignores SIGTERM for a long time: it is stopped by process group, SIGKILL after a
# short grace. Exit status 3 (and a message) when the server cannot start.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARG...]" >&2; exit 2; }

if [ -z "${_RECOMMENDER_IN_NETNS:-}" ]; then
  # A new network namespace (root, or a user namespace where the kernel allows it).
  if [ "$(id -u)" = 0 ]; then ns=(unshare --net); else ns=(unshare --map-root-user --net); fi
  if ! "${ns[@]}" true 2>/dev/null; then
    echo "with_milvus_server: cannot create a private network namespace (unshare --net);" \
      "the Milvus server is never started on the machine's own network" >&2
    exit 3
  fi
  exec "${ns[@]}" env _RECOMMENDER_IN_NETNS=1 bash "$0" "$@"
fi

ip link set lo up
server=${MILVUS_SERVER:-.venv/bin/milvus-server}
[ -x "$server" ] || { echo "with_milvus_server: $server not found (pip install milvus)" >&2; exit 3; }
data=$(mktemp -d "${TMPDIR:-/tmp}/milvus-server.XXXXXX")
pid=""

stop() {
  if [ -n "$pid" ]; then
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      kill -0 -- "-$pid" 2>/dev/null || break
      sleep 0.5
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$data"
}
trap stop EXIT

ips=()
for part in rootCoord proxy queryCoord queryNode indexNode dataCoord dataNode; do
  ips+=(--extra-config "$part.ip=127.0.0.1")
done
# setsid: the server (a Python launcher and the milvus binary it starts) gets its own
# process group, which stop() signals whole.
setsid "$server" --data "$data" "${ips[@]}" >"$data/server.log" 2>&1 &
pid=$!

ready=""
for _ in $(seq 1 360); do
  if ! kill -0 "$pid" 2>/dev/null; then break; fi
  if .venv/bin/python - <<'PY' 2>/dev/null; then ready=1; break; fi
import urllib.request
with urllib.request.urlopen("http://127.0.0.1:9091/healthz", timeout=2) as answer:
    raise SystemExit(0 if answer.status == 200 else 1)
PY
  sleep 0.5
done
if [ -z "$ready" ]; then
  echo "with_milvus_server: the Milvus server did not become healthy within 180 s; its log:" >&2
  tail -n 40 "$data/server.log" >&2 || true
  find "$data/logs" -name '*.log' -exec tail -n 20 {} + >&2 2>/dev/null || true
  exit 3
fi
echo "with_milvus_server: Milvus is up at 127.0.0.1:19530 (pid $pid, data $data)" >&2

set +e
RECOMMENDER_MILVUS_URL=milvus://127.0.0.1:19530 "$@"
status=$?
set -e
exit "$status"
