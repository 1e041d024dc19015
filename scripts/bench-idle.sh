#!/usr/bin/env bash
# Idle cost of the agent (prints figures, asserts nothing; run as root or as a user that can
# start PostgreSQL). Starts a three-node cluster with PostgreSQL on 127.0.0.1 the way the
# integration tests do (tests/integration/lib.sh), waits until it is healthy and then SETTLE
# seconds more, and samples every process by PID over SECONDS:
#   cpu_pct      the agent's CPU time (utime + stime of /proc/PID/stat) as a share of one core
#   wakeups_s    the agent's context switches per second, voluntary + involuntary, all threads
#                (/proc/PID/task/*/status; a thread that ends inside the window is not counted)
#   loop_wakeups_s  the same for the main (event loop) thread alone
#   pg_cpu_pct   the node's PostgreSQL: the postmaster, its live children and its reaped
#                children (cutime + cstime), as a share of one core
# per node, leader and followers apart, then one JSON line. Every process is stopped by PID at
# the end (the harness's cleanup).
#
# usage: scripts/bench-idle.sh [--seconds N] [--settle N] [--binary PATH]
#   --seconds  the sampling window (default 30)
#   --settle   seconds to wait after the cluster is healthy (default 10)
#   --binary   the agent (default build/raftpg of this tree; run scripts/build.sh first)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
seconds=30 settle=10 bin=$SRC/build/raftpg
while [ $# -gt 0 ]; do
  case $1 in
  --seconds) seconds=${2:?--seconds needs a value}; shift 2 ;;
  --settle) settle=${2:?--settle needs a value}; shift 2 ;;
  --binary) bin=${2:?--binary needs a value}; shift 2 ;;
  -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "bench-idle: unknown argument \"$1\" (see --help)" >&2; exit 2 ;;
  esac
done
for v in seconds settle; do
  [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -le 3600 ] ||
    { echo "bench-idle: --$v must be a number of seconds from 0 to 3600, not \"${!v}\"" >&2; exit 2; }
done
[ "$seconds" -ge 1 ] || { echo "bench-idle: --seconds must be at least 1" >&2; exit 2; }
[ -x "$bin" ] || { echo "bench-idle: $bin is not an executable: run scripts/build.sh first" >&2; exit 2; }

set -- "$bin"
T_PG=1
# shellcheck source=../tests/integration/lib.sh
source "$SRC/tests/integration/lib.sh"
# The whole run is bounded: start, health, settle and the window, with room to spare.
t_time_bound $((180 + settle + seconds))
HZ=$(getconf CLK_TCK)

t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 120 "a primary and two streaming standbys" t_pg_healthy 1 2 3 || exit 1
leader=$(t_jq 1 '.raft.leader')
t_log "healthy, leader $leader; settling ${settle} s, then sampling ${seconds} s"
sleep "$settle"

# CPU ticks of PID: utime + stime (fields 14 and 15 of /proc/PID/stat, counted after the command
# name, which may hold spaces); with "all", also its reaped children's (cutime + cstime).
ticks() {
  local s f
  s=$(cat "/proc/$1/stat") || return 1
  read -r -a f <<<"${s##*) }"
  if [ "${2:-}" = all ]; then echo $((f[11] + f[12] + f[13] + f[14])); else echo $((f[11] + f[12])); fi
}
# The PostgreSQL tree of postmaster PID: its own time, its reaped children's and every live
# child's (a child reaped inside the window moves from the last to the second).
tree_ticks() {
  local t c
  t=$(ticks "$1" all) || return 1
  for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
    t=$((t + $(ticks "$c" 2>/dev/null || echo 0)))
  done
  echo "$t"
}
# Context switches of PID: all threads, and the main thread.
switches() {
  awk '/^(non)?voluntary_ctxt_switches/ {n += $2} END {print n + 0}' /proc/"$1"/task/*/status
}
loop_switches() { awk '/^(non)?voluntary_ctxt_switches/ {n += $2} END {print n + 0}' /proc/"$1"/status; }

declare -A c0=() w0=() l0=() p0=() pg=()
for i in 1 2 3; do
  pg[$i]=$(t_pg_pid "$i" || true)
  [ -n "${pg[$i]}" ] || { echo "bench-idle: node$i's postmaster is not running" >&2; exit 1; }
done
t_start_ns=$(date +%s%N)
for i in 1 2 3; do
  c0[$i]=$(ticks "${T_PIDS[$i]}"); w0[$i]=$(switches "${T_PIDS[$i]}")
  l0[$i]=$(loop_switches "${T_PIDS[$i]}"); p0[$i]=$(tree_ticks "${pg[$i]}")
done
sleep "$seconds"
t_end_ns=$(date +%s%N)
json=''
role_of() { if [ "node$1" = "$leader" ]; then echo leader; else echo follower; fi; }
for i in 1 2 3; do
  t_alive "$i" || { echo "bench-idle: node$i's agent ended during the window" >&2; exit 1; }
  [ "$(t_pg_pid "$i" || true)" = "${pg[$i]}" ] || { echo "bench-idle: node$i's postmaster changed during the window" >&2; exit 1; }
  c=$(ticks "${T_PIDS[$i]}"); w=$(switches "${T_PIDS[$i]}"); l=$(loop_switches "${T_PIDS[$i]}")
  p=$(tree_ticks "${pg[$i]}")
  line=$(awk -v ns=$((t_end_ns - t_start_ns)) -v hz="$HZ" -v c=$((c - c0[$i])) -v w=$((w - w0[$i])) \
    -v l=$((l - l0[$i])) -v p=$((p - p0[$i])) -v n="node$i" -v r="$(role_of "$i")" 'BEGIN {
      s = ns / 1e9
      printf "{\"node\":\"%s\",\"role\":\"%s\",\"cpu_pct\":%.2f,\"wakeups_s\":%.1f,\"loop_wakeups_s\":%.1f,\"pg_cpu_pct\":%.2f}",
        n, r, 100 * c / hz / s, w / s, l / s, 100 * p / hz / s }')
  json+=${json:+,}$line
  echo "$line" | jq -r '"\(.node) \(.role): agent \(.cpu_pct) % of a core, \(.wakeups_s) wakeups/s (loop thread \(.loop_wakeups_s)), PostgreSQL \(.pg_cpu_pct) %"'
done
echo "{\"seconds\":$seconds,\"settle\":$settle,\"leader\":\"$leader\",\"nodes\":[$json]}"
[ "$(t_jq 1 '.raft.leader')" = "$leader" ] || echo "bench-idle: the leader changed during the window (the figures mix roles)" >&2
for i in 1 2 3; do t_kill "$i" TERM; done
