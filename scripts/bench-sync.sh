#!/usr/bin/env bash
# Benchmark (prints JSON, asserts nothing): commit latency and throughput of pgbench against the
# primary of a local 3-node cluster with the synchronous quorum (ANY 1 of 2 standbys), then with
# synchronous_mode off. Same machine, loopback, fsync off in the test configuration.
# Usage: scripts/bench-sync.sh [SECONDS] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
CLIENTS=${2:-4}
scripts/install-deps.sh >/dev/null
BIN=$(scripts/build.sh 2>/dev/null | tail -n 1)
set -- "$BIN"
T_NAME=bench_sync
T_PG=1
T_PG_FSYNC=on
source tests/integration/lib.sh
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 90 "a healthy cluster" t_pg_healthy 1 2 3 || exit 1
P=$(t_pg_primary 1); Pi=${P#node}
PGB="$T_PG_BIN/pgbench"
"$PGB" -h 127.0.0.1 -p "$(t_pg_port "$Pi")" -U postgres -i -s 5 -q postgres >/dev/null 2>&1
ssn() { t_psql "$Pi" -c 'SHOW synchronous_standby_names'; }
run() {
  "$PGB" -h 127.0.0.1 -p "$(t_pg_port "$Pi")" -U postgres -c "$CLIENTS" -j 2 -T "$SECS" -N postgres 2>/dev/null |
    awk '/^latency average/ {lat=$4} /^tps/ {tps=$3} END {printf "{\"tps\": %.1f, \"latency_ms\": %.3f}", tps, lat}'
}
sync_value=$(ssn)
sync_result=$(run)
"$T_BIN" ctl --api "$(t_api_addr "$Pi")" edit-config -s synchronous_mode=off >/dev/null
async_ok() { [ -z "$(ssn)" ]; }
t_wait 30 "asynchronous" async_ok || exit 1
async_result=$(run)
printf '{"seconds": %d, "clients": %d, "synchronous": {"synchronous_standby_names": "%s", "pgbench": %s}, "asynchronous": {"pgbench": %s}}\n' \
  "$SECS" "$CLIENTS" "${sync_value//\"/\\\"}" "$sync_result" "$async_result"
for i in 1 2 3; do [ -n "${T_PIDS[$i]:-}" ] && t_kill "$i" TERM; done
