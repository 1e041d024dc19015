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

trap '' PIPE
mkfifo "$T_DIR/session.in"
psql -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(t_pg_port "$Pi")" -U postgres -d postgres \
  <"$T_DIR/session.in" >"$T_DIR/session.out" 2>&1 &
SESSION=$!
exec 3>"$T_DIR/session.in"
echo "SELECT 'backend ' || pg_backend_pid();" >&3
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
trap 'touch "$T_DIR/stop"; wait "$WPID" 2>/dev/null || true; kill "$LOADPID" 2>/dev/null || true; exec 3>&- 2>/dev/null || true; kill "$SESSION" 2>/dev/null || true; t_cleanup' EXIT
stress-ng --cpu 2 --io 2 --hdd 1 --hdd-bytes 64M --timeout "${LOAD_S}s" --quiet &
LOADPID=$!
t_log "primary $P under stress-ng (cpu 2, io 2, hdd 1) for $LOAD_S s"
n=0
while kill -0 "$LOADPID" 2>/dev/null && [ $n -lt $((LOAD_S * 2 + 120)) ]; do
  echo "INSERT INTO load VALUES (-$((n + 1)));" >&3 2>/dev/null || true
  sleep 0.5
  n=$((n + 1))
done
wait "$LOADPID" 2>/dev/null || true
touch "$T_DIR/stop"; wait "$WPID" 2>/dev/null || true
echo "SELECT 'backend ' || pg_backend_pid();" >&3 2>/dev/null || true
sleep 1
b1=$(grep '^backend ' "$T_DIR/session.out" | head -1)
b2=$(grep '^backend ' "$T_DIR/session.out" | tail -1)
now() { cat "$T_DIR"/node*.log | grep -c "$1" || true; }
printf '{"load_s":%s,"hard_fences":%s,"failovers":%s,"elections_started":%s,"soft_pauses":%s,"session_survived":%s,"postmaster_restarted":%s,"primary_changed":%s,"writer_acks":%s,"writer_errors":%s}\n' \
  "$LOAD_S" "$(( $(now 'fencing: postgresql may accept writes without a lease') - HARD0 ))" \
  "$(( $(now 'promote: recorded as primary') - PROMOTE0 ))" "$(( $(now 'starting an election') - ELECT0 ))" \
  "$(now 'postgresql paused')" "$([ -n "$b1" ] && [ "$b1" = "$b2" ] && echo true || echo false)" \
  "$([ "$(t_pg_pid "$Pi")" = "$PM" ] && echo false || echo true)" \
  "$([ "$(t_pg_primary 1)" = "$P" ] && echo false || echo true)" "$(wc -l <"$ACKED")" \
  "$(grep -c . "$ERRORS" || true)"
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
