#!/usr/bin/env bash
# A primary whose PostgreSQL keeps crashing with free space (a PANIC loop, a postmaster killed
# again and again): a single crash gets a plain restart as primary, HA_CRASHES_MAX (3) crashes
# within HA_CRASH_WINDOW_MS (60 s) hand over to a standby that holds every acknowledged commit.
# The crashes are real: a killer sends SIGKILL to the primary's postmaster (its PID from
# postmaster.pid, checked alive in the process table) each time it serves as primary again
# (pg_is_in_recovery() = f), bounded in count and time. Under numbered writes: another server
# becomes primary, no acknowledged row is lost, and once the killer stops the old primary
# rejoins as a standby.
T_PG=1
source "$(dirname "$0")/lib.sh"
trap 'touch "$T_DIR/stop" "$T_DIR/stop_killer"; wait "${WPID:-0}" "${KPID:-0}" 2>/dev/null || true; t_cleanup' EXIT
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 90 "a healthy cluster" t_pg_healthy 1 2 3
P=$(t_pg_primary 1); Pi=${P#node}
t_psql "$Pi" -c "CREATE TABLE crash (id bigint PRIMARY KEY)"

ACKED="$T_DIR/acked"
: >"$ACKED"
writer() {
  local id=1 deadline=$((SECONDS + 300)) i
  while [ $SECONDS -lt $deadline ] && [ ! -f "$T_DIR/stop" ]; do
    for i in 1 2 3; do
      if PGCONNECT_TIMEOUT=1 timeout -s KILL 4 psql -X -q -A -t -h 127.0.0.1 \
           -p "$(t_pg_port "$i")" -U postgres -d postgres \
           -c "INSERT INTO crash VALUES ($id)" >/dev/null 2>&1; then
        echo "$id" >>"$ACKED"
        break
      fi
    done
    id=$((id + 1))
    sleep 0.01
  done
}
writer &
WPID=$!
acked_more() { [ "$(wc -l <"$ACKED")" -gt "$1" ]; }
t_wait 30 "writes acknowledged" acked_more 20

# The killer: at most 8 kills within 120 s, each of a postmaster that serves as primary on P's
# port and was not killed before (so every kill after the first proves a restart as primary).
KILLS="$T_DIR/kills"
: >"$KILLS"
killer() {
  local deadline=$((SECONDS + 120)) n=0 pid last=0 rec
  while [ $SECONDS -lt $deadline ] && [ $n -lt 8 ] && [ ! -f "$T_DIR/stop_killer" ]; do
    pid=$(t_pg_pid "$Pi" 2>/dev/null) || pid=0
    if [ "$pid" != 0 ] && [ "$pid" != "$last" ]; then
      rec=$(PGCONNECT_TIMEOUT=1 timeout -s KILL 3 psql -X -q -A -t -h 127.0.0.1 \
        -p "$(t_pg_port "$Pi")" -U postgres -d postgres -c "SELECT pg_is_in_recovery()" \
        2>/dev/null) || rec=''
      # Read postmaster.pid again: the answer must come from the server of that postmaster.
      if [ "$rec" = f ] && [ "$(t_pg_pid "$Pi" 2>/dev/null || echo 0)" = "$pid" ]; then
        kill -KILL "$pid" 2>/dev/null || true
        last=$pid
        n=$((n + 1))
        echo "$(date +%s%N) $pid" >>"$KILLS"
      fi
    fi
    sleep 0.1
  done
}
killer &
KPID=$!
started_at=$(date +%s%N)
kills() { wc -l <"$KILLS"; }
two_kills() { [ "$(kills)" -ge 2 ]; }
t_wait 60 "a second kill (the first crash got a restart as primary)" two_kills
t_check "after one crash $P was started again as primary (a second postmaster served as primary)" \
  t_eq "$(awk '{print $2}' "$KILLS" | sort -u | wc -l | tr -d ' ')" "$(kills | tr -d ' ')"

new_primary() { local p; p=$(t_pg_primary "$1"); [ -n "$p" ] && [ "$p" != "$P" ] && echo "$p"; }
O=1; [ "$O" = "$Pi" ] && O=2
t_wait 90 "a new primary while $P keeps crashing" new_primary "$O"
touch "$T_DIR/stop_killer"; wait "$KPID" 2>/dev/null || true
NP=$(new_primary "$O"); NPi=${NP#node}
took_ms=$(( ($(date +%s%N) - started_at) / 1000000 ))
t_log "new primary $NP after $(kills) kills of $P's postmaster, $took_ms ms after the killer began"
grep -E "postgresql crashed|TRANSFER|start failed" "$T_DIR/$P.log" | cut -c1-220 || true
t_check "the new primary $NP answers pg_is_in_recovery() = f" \
  t_eq "$(t_psql "$NPi" -c 'SELECT pg_is_in_recovery()')" f
# 3 crashes hand over without a restart; one more kill is allowed for a postmaster killed before
# the agent saw it serve (pg_ctl start returned, its callback not yet run).
t_check "$P was killed 4 times or fewer (no endless restarts)" test "$(kills)" -le 4
t_check "$P was killed at least 3 times (no handover before the bound)" test "$(kills)" -ge 3
t_check "$P logged each crash" grep -q "postgresql crashed: the postmaster (pid=[0-9]*) that ran as primary is" \
  "$T_DIR/$P.log"
t_check "the handover names the cause" \
  grep -q "postgresql crashed or failed to start 3 times within 60 s" "$T_DIR/$P.log"
t_check "$P's metric raftpg_postgres_crashes shows the crashes" \
  test "$(t_metric "$Pi" raftpg_postgres_crashes)" -ge 3
n=$(wc -l <"$ACKED")
t_wait 30 "a write acknowledged by the new primary" acked_more "$n"

# The fault is over: the old primary rejoins as a standby of the new one.
t_wait 90 "the old primary back as a standby" t_pg_healthy 1 2 3
t_check "$P's server is a standby (pg_is_in_recovery() = t)" \
  t_eq "$(t_psql "$Pi" -c 'SELECT pg_is_in_recovery()')" t
touch "$T_DIR/stop"; wait "$WPID" 2>/dev/null || true
acked_now=$(sort -n "$ACKED" | tr '\n' ',' | sed 's/,$//')
missing=$(t_psql "$NPi" -c "SELECT string_agg(a::text, ',') FROM unnest(ARRAY[${acked_now:-0}]::bigint[]) a WHERE a <> 0 AND NOT EXISTS (SELECT 1 FROM crash WHERE id = a)")
t_check "no acknowledged row lost ($(wc -l <"$ACKED") acknowledged)" t_eq "$missing" ""
t_check_states 1 2 3
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
