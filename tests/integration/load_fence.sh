#!/usr/bin/env bash
# Benchmark (not a test; run by scripts/bench-load.sh): a healthy three-node cluster under
# stress-ng CPU and I/O load for LOAD_S seconds (default 600) while one client session and a
# psql-per-insert writer write through the primary. Prints, as one JSON object, what a healthy
# primary must not suffer: hard fences, failovers, elections, lost sessions; and how often the
# fence's soft layer paused the server (a pause costs the clients a delay, not an error).
T_PG=1
source "$(dirname "$0")/lib.sh"
LOAD_S=${LOAD_S:-600}
command -v stress-ng >/dev/null || { echo "load_fence: stress-ng is missing (apt-get install stress-ng)"; exit 1; }
t_pick_ports
# LOAD_AGENT_NICE=-5: each agent's loop thread runs that much above the load and PostgreSQL (as
# the unit's Nice= does: the agent gives its threads and programs the default back).
for i in 1 2 3; do
  t_write_conf "$i" 3; t_start "$i"
  if [ -n "${LOAD_AGENT_NICE:-}" ]; then
    renice -n $(( $(ps -o ni= -p "${T_PIDS[$i]}") + LOAD_AGENT_NICE )) -p "${T_PIDS[$i]}" >/dev/null
  fi
done
t_wait 90 "a primary and two streaming standbys" t_pg_healthy 1 2 3
P=$(t_pg_primary 1); Pi=${P#node}
PM=$(t_pg_pid "$Pi")
t_psql "$Pi" -c "CREATE TABLE load (id bigint PRIMARY KEY)"
at_start() { cat "$T_DIR"/node*.log | grep -c "$1" || true; }
HARD0=$(at_start 'fencing: postgresql may accept writes without a lease')
PROMOTE0=$(at_start 'promote: recorded as primary')
ELECT0=$(at_start 'starting an election')

# The primary's lease renewal histogram (raftpg_lease_renewal_seconds), as "LE COUNT" lines.
lease_buckets() {
  /usr/bin/python3 "$(dirname "$0")/metrics.py" "$(t_api_addr "$Pi")" itest "node$Pi" |
    awk '$1 ~ /^raftpg_lease_renewal_seconds_bucket[{]le=/ {
           le = $1; sub(/.*le=/, "", le); sub(/[}]$/, "", le); print le, $2 }'
}
lease_max() {
  /usr/bin/python3 "$(dirname "$0")/metrics.py" "$(t_api_addr "$Pi")" itest "node$Pi" |
    awk '$1 == "raftpg_lease_renewal_max_seconds" { print $2 * 1000 }'
}
LEASE0=$(lease_buckets)
LEASE_MAX=0
lease_max_sample() {
  local m; m=$(lease_max) || return 0
  LEASE_MAX=$(awk -v a="$LEASE_MAX" -v b="${m:-0}" 'BEGIN { print (b > a ? b : a) }')
}
t_session_start "$Pi"
ACKED="$T_DIR/acked"; : >"$ACKED"
ERRORS="$T_DIR/errors"; : >"$ERRORS"
writer() {
  local id=1 deadline=$((SECONDS + LOAD_S + 30))
  while [ $SECONDS -lt $deadline ] && [ ! -f "$T_DIR/stop" ]; do
    if timeout -s KILL 10 psql -X -q -A -t -h 127.0.0.1 -p "$(t_pg_port "$Pi")" -U postgres \
         -d postgres -c "INSERT INTO load VALUES ($id)" >/dev/null 2>>"$ERRORS"; then
      echo "$id" >>"$ACKED"
    fi
    id=$((id + 1))
    sleep 0.05
  done
}
writer & WPID=$!
trap 'touch "$T_DIR/stop"; wait "$WPID" 2>/dev/null || true; kill "$LOADPID" 2>/dev/null || true; t_cleanup' EXIT
stress-ng --cpu 2 --io 2 --hdd 1 --hdd-bytes 64M --timeout "${LOAD_S}s" --quiet &
LOADPID=$!
t_log "primary $P under stress-ng (cpu 2, io 2, hdd 1) for $LOAD_S s"
n=0
while kill -0 "$LOADPID" 2>/dev/null && [ $n -lt $((LOAD_S * 2 + 120)) ]; do
  t_session_send "INSERT INTO load VALUES (-$((n + 1)));" || true
  sleep 0.5
  n=$((n + 1))
  # The recent maximum covers one to two minutes: sampled twice a minute.
  [ $((n % 60)) -ne 0 ] || lease_max_sample
done
lease_max_sample
# The renewals during the load (bucket deltas): count, and p50/p99 interpolated within their
# bucket as Prometheus's histogram_quantile does (ms; the clock has millisecond resolution).
LEASE_FIG=$(paste -d' ' <(echo "$LEASE0") <(lease_buckets) | awk '
  { le[NR] = $1; c[NR] = $4 - $2; n = NR }
  function q(p,   r, i, lo, prev) {
    r = p * c[n]; prev = 0; lo = 0
    for (i = 1; i <= n; i++) {
      if (c[i] >= r) {
        if (le[i] == "+Inf") return lo * 1000
        return (lo + (le[i] - lo) * (c[i] > prev ? (r - prev) / (c[i] - prev) : 1)) * 1000
      }
      prev = c[i]; lo = le[i]
    }
  }
  END { b = ""; for (i = 1; i <= n; i++) b = b (i > 1 ? " " : "") le[i] ":" c[i]
        printf "\"lease_renewals\":%d,\"lease_renewal_p50_ms\":%.2f,\"lease_renewal_p99_ms\":%.2f,\"lease_renewal_buckets\":\"%s\"", c[n], q(0.5), q(0.99), b }')
wait "$LOADPID" 2>/dev/null || true
touch "$T_DIR/stop"; wait "$WPID" 2>/dev/null || true
t_session_send "SELECT 'backend ' || pg_backend_pid();" || true
sleep 1
b1=$(t_session_backend first)
b2=$(t_session_backend last)
now() { cat "$T_DIR"/node*.log | grep -c "$1" || true; }
printf '{"load_s":%s,"hard_fences":%s,"failovers":%s,"elections_started":%s,"soft_pauses":%s,"session_survived":%s,"postmaster_restarted":%s,"primary_changed":%s,"writer_acks":%s,"writer_errors":%s,%s,"lease_renewal_max_ms":%s}\n' \
  "$LOAD_S" "$(( $(now 'fencing: postgresql may accept writes without a lease') - HARD0 ))" \
  "$(( $(now 'promote: recorded as primary') - PROMOTE0 ))" "$(( $(now 'starting an election') - ELECT0 ))" \
  "$(now 'postgresql paused')" "$([ -n "$b1" ] && [ "$b1" = "$b2" ] && echo true || echo false)" \
  "$([ "$(t_pg_pid "$Pi")" = "$PM" ] && echo false || echo true)" \
  "$([ "$(t_pg_primary 1)" = "$P" ] && echo false || echo true)" "$(wc -l <"$ACKED")" \
  "$(grep -c . "$ERRORS" || true)" "$LEASE_FIG" "$LEASE_MAX"
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
