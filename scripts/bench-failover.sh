#!/usr/bin/env bash
# Benchmark (prints JSON, asserts nothing): time from kill -9 of the Raft leader to a new leader
# on loopback, over RUNS runs (default 10), and the resident memory of idle agents.
# Usage: scripts/bench-failover.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10}
scripts/install-deps.sh >/dev/null
BIN=$(scripts/build.sh 2>/dev/null | tail -n 1)
set -- "$BIN"
T_NAME=bench_failover
source tests/integration/lib.sh

status_of() { "$T_BIN" ctl --api "$(t_api_addr "$1")" --timeout 200 list --json 2>/dev/null; }
leader_of() { status_of "$1" | jq -r 'select(.raft.state_known) | .raft.leader // empty' 2>/dev/null || true; }
now_ms() { date +%s%3N; }

t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
has_leader() { [ -n "$(leader_of 1)" ]; }
t_wait 20 "first leader" has_leader
sleep 2
rss=(); anon=()
for i in 1 2 3; do
  rss+=("$(awk '/VmRSS/ {print $2}' "/proc/${T_PIDS[$i]}/status")")
  # Private memory; the rest of the RSS is shared library pages (libc, libpq's TLS stack).
  anon+=("$(awk '/RssAnon/ {print $2}' "/proc/${T_PIDS[$i]}/status")")
done

times=()
for run in $(seq 1 "$RUNS"); do
  L=""
  for _ in $(seq 1 100); do L=$(leader_of 1); [ -n "$L" ] && break; sleep 0.1; done
  # Every agent must agree before the kill, or the measurement would start mid-election.
  Li=${L#node}
  others=(); for i in 1 2 3; do [ "$i" = "$Li" ] || others+=("$i"); done
  t0=$(now_ms)
  t_kill "$Li" KILL
  got=""
  for _ in $(seq 1 1000); do
    a=$(leader_of "${others[0]}"); b=$(leader_of "${others[1]}")
    if [ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" != "$L" ]; then got=$a; break; fi
    sleep 0.01
  done
  t1=$(now_ms)
  [ -n "$got" ] || { echo "run $run: no new leader within the bound" >&2; exit 1; }
  times+=($((t1 - t0)))
  echo "run $run: $L killed, $got leads after $((t1 - t0)) ms" >&2
  t_start "$Li"
  for _ in $(seq 1 100); do
    [ "$(status_of "$Li" | jq -r '.raft.role' 2>/dev/null)" = follower ] && break; sleep 0.1
  done
  sleep 1
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(echo "$sorted" | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')
printf '{"runs": %d, "election_timeout_ms": %d, "leader_failover_ms": {"median": %s, "min": %s, "max": %s, "all": [%s]}, "idle_rss_kib": [%s], "idle_private_kib": [%s]}\n' \
  "$RUNS" "${T_ELECTION_TIMEOUT:-500}" "$median" "$(echo "$sorted" | head -n1)" "$(echo "$sorted" | tail -n1)" \
  "$(IFS=,; echo "${times[*]}")" "$(IFS=,; echo "${rss[*]}")" "$(IFS=,; echo "${anon[*]}")"
for i in 1 2 3; do [ -n "${T_PIDS[$i]:-}" ] && t_kill "$i" TERM; done
