#!/usr/bin/env bash
# Benchmark (prints one JSON line, asserts nothing): the API server under haproxy-like health
# checks. Three agents (no PostgreSQL) form a cluster; after IDLE seconds the idle RSS of node1 is
# read, then POLLERS clients ask node1 `GET /primary` back to back for SECONDS, each on a new
# connection as haproxy's httpchk does, and the request rate and latency percentiles are printed.
# Usage: scripts/bench-api.sh [RAFTPG_BINARY] [SECONDS] [POLLERS] [IDLE]
#   (default binary: the one scripts/build.sh builds; give another build's to compare)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-}
SECS=${2:-10}
POLLERS=${3:-3}
IDLE=${4:-10}
if [ -z "$BIN" ]; then
  scripts/install-deps.sh >/dev/null
  BIN=$(scripts/build.sh 2>/dev/null | tail -n 1)
fi
set -- "$BIN"
T_NAME=bench_api
source tests/integration/lib.sh
t_pick_ports

has_leader() { [ -n "$(t_jq 1 '.raft.leader // empty')" ]; }
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 30 "a leader" has_leader >/dev/null || exit 1
sleep "$IDLE"
rss_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/${T_PIDS[1]}/status")

python3 - "$(t_api_addr 1)" "$SECS" "$POLLERS" "$rss_kib" <<'EOF'
import json, socket, sys, threading, time

addr, secs, pollers, rss = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
host, port = addr.rsplit(":", 1)
req = b"GET /primary HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
lat, errors, codes = [], [0], {}
lock = threading.Lock()

def poller(deadline):
    mine, errs, seen = [], 0, {}
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        try:
            with socket.create_connection((host, int(port)), timeout=2) as s:
                s.sendall(req)
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            code = int(data.split(b" ", 2)[1])
            seen[code] = seen.get(code, 0) + 1
            mine.append((time.monotonic() - t0) * 1000)
        except (OSError, ValueError, IndexError):
            errs += 1
    with lock:
        lat.extend(mine)
        errors[0] += errs
        for k, v in seen.items():
            codes[k] = codes.get(k, 0) + v

start = time.monotonic()
threads = [threading.Thread(target=poller, args=(start + secs,)) for _ in range(pollers)]
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.monotonic() - start
lat.sort()
pct = lambda p: round(lat[min(len(lat) - 1, int(p / 100 * len(lat)))], 3) if lat else None
print(json.dumps({"pollers": pollers, "seconds": round(elapsed, 1), "requests": len(lat),
                  "errors": errors[0], "status_codes": codes,
                  "requests_per_s": round(len(lat) / elapsed, 1), "p50_ms": pct(50),
                  "p99_ms": pct(99), "max_ms": round(lat[-1], 3) if lat else None,
                  "idle_rss_kib": rss}))
EOF
for i in 1 2 3; do t_kill "$i" TERM; done
