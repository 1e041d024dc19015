#!/usr/bin/env bash
# Benchmark (prints JSON lines, asserts nothing): the cost of the authenticated, encrypted Raft
# transport against libraft's plain TCP one.
#  1. Commit latency of Raft barriers and of entries of 4 KiB and 64 KiB, and the CPU time per
#     commit, with three libraft servers in one process on loopback (tests/bench/bench_transport.c),
#     ROUNDS rounds of each transport, alternating.
#  2. CPU of three idle agents (heartbeats and lease barriers) over SECONDS, with and without
#     raft.secret_file.
# Usage: scripts/bench-transport.sh [COUNT] [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-2000}
ROUNDS=${2:-3}
SECS=${3:-20}
scripts/install-deps.sh >/dev/null
BIN=$(scripts/build.sh 2>/dev/null | tail -n 1)
BENCH=$(dirname "$BIN")/tests/bench_transport
set -- "$BIN"
T_NAME=bench_transport
source tests/integration/lib.sh
t_pick_ports

for size in 4096 65536; do
  for round in $(seq 1 "$ROUNDS"); do
    for mode in plain secret; do
      d=$(mktemp -d "$T_DIR/bench.XXXXXX")
      timeout 300 "$BENCH" "$mode" "$d" $((T_BASE + 30)) "$COUNT" "$size" |
        sed "s/^{/{\"round\": $round, /" || echo "{\"round\": $round, \"mode\": \"$mode\", \"error\": \"the benchmark failed\"}"
      rm -rf "$d"
    done
  done
done

has_leader() { [ -n "$(t_jq 1 '.raft.leader // empty')" ]; }
# Clock ticks of utime + stime of a process.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
idle_cpu() {
  local label=$1 before=() after=() i total=0
  for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
  t_wait 30 "a leader" has_leader || exit 1
  sleep 2 # let the start-up settle; the window below is what is measured
  for i in 1 2 3; do before[i]=$(cpu_ticks "${T_PIDS[$i]}"); done
  sleep "$SECS"
  for i in 1 2 3; do after[i]=$(cpu_ticks "${T_PIDS[$i]}"); total=$((total + after[i] - before[i])); done
  awk -v l="$label" -v t="$total" -v hz="$(getconf CLK_TCK)" -v s="$SECS" \
    'BEGIN {printf "{\"idle_agents\": \"%s\", \"seconds\": %d, \"cpu_ms_per_agent_per_second\": %.2f}\n", l, s, t * 1000 / hz / 3 / s}'

  for i in 1 2 3; do t_kill "$i" TERM; done
  rm -rf "$T_DIR"/node[123]
}
T_NO_SECRET=1 idle_cpu "plain libraft tcp"
idle_cpu "authenticated+encrypted"
