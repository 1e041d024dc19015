#!/usr/bin/env bash
# Benchmark (prints JSON, asserts nothing): on loopback, RUNS times (default 10), kill -9 the
# primary node (its agent and its PostgreSQL), then measure the time until the first write
# commits on the new primary, and count the rows acknowledged before the kill that are missing
# afterwards (with synchronous_mode quorum, the default, none may be missing; with it off a loss
# is possible and is what this measures).
# Usage: scripts/bench-pg-failover.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10}
scripts/install-deps.sh >/dev/null
BIN=$(scripts/build.sh 2>/dev/null | tail -n 1)
set -- "$BIN"
T_NAME=bench_pg_failover
T_PG=1
source tests/integration/lib.sh

now_ms() { date +%s%3N; }
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 90 "a healthy cluster" t_pg_healthy 1 2 3 || exit 1
P=$(t_pg_primary 1)
t_psql "${P#node}" -c "CREATE TABLE bench (id bigint PRIMARY KEY, at timestamptz DEFAULT now())"

times=(); lost_total=0; next_id=1
for run in $(seq 1 "$RUNS"); do
  t_wait 90 "a healthy cluster before run $run" t_pg_healthy 1 2 3 || exit 1
  P=$(t_pg_primary 1); Pi=${P#node}
  # Acknowledged writes right up to the kill: every id the primary confirmed is remembered.
  acked=()
  for _ in $(seq 1 50); do
    if t_psql "$Pi" -c "INSERT INTO bench (id) VALUES ($next_id)" >/dev/null 2>&1; then acked+=("$next_id"); fi
    next_id=$((next_id + 1))
  done
  t0=$(now_ms)
  t_kill "$Pi" KILL
  t_kill_pg "$Pi"
  others=(); for i in 1 2 3; do [ "$i" = "$Pi" ] || others+=("$i"); done
  done_ms=""
  for _ in $(seq 1 3000); do
    for i in "${others[@]}"; do
      if PGCONNECT_TIMEOUT=1 psql -X -q -A -t -h 127.0.0.1 -p "$(t_pg_port "$i")" -U postgres -d postgres \
           -c "INSERT INTO bench (id) VALUES ($next_id)" >/dev/null 2>&1; then
        done_ms=$(now_ms); NPi=$i; break 2
      fi
    done
    sleep 0.01
  done
  [ -n "$done_ms" ] || { echo "run $run: no write committed on a new primary" >&2; exit 1; }
  next_id=$((next_id + 1))
  times+=($((done_ms - t0)))
  present=$(t_psql "$NPi" -c "SELECT count(*) FROM bench WHERE id IN ($(IFS=,; echo "${acked[*]}"))")
  lost=$(( ${#acked[@]} - present )); lost_total=$((lost_total + lost))
  echo "run $run: killed $P, first commit on node$NPi after $((done_ms - t0)) ms, lost $lost of ${#acked[@]} acknowledged rows" >&2
  t_start "$Pi"
done
mode=$(t_jq "${NPi:-1}" '.sync.mode // "off"')
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(echo "$sorted" | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')
printf '{"runs": %d, "kill_to_first_commit_ms": {"median": %s, "min": %s, "max": %s, "all": [%s]}, "acknowledged_rows_lost": %d, "synchronous_mode": "%s"}\n' \
  "$RUNS" "$median" "$(echo "$sorted" | head -n1)" "$(echo "$sorted" | tail -n1)" "$(IFS=,; echo "${times[*]}")" "$lost_total" "$mode"
for i in 1 2 3; do [ -n "${T_PIDS[$i]:-}" ] && t_kill "$i" TERM; done
