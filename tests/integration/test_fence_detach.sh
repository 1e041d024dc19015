#!/usr/bin/env bash
# The second fence (DESIGN.md rule 4) with a standby whose replay is paused. node3 (nofailover)
# pauses replay with pg_wal_replay_pause(): told to follow a new primary, its WAL receiver keeps
# streaming from the old one until replay asks for WAL again. The primary's agent is stopped with
# SIGSTOP, so neither the lease nor the guard fences its PostgreSQL; only synchronous replication
# can stop it acknowledging commits. The new primary must promote only after node3 really
# stopped streaming from the old primary (node3's agent restarts it within the detach bound), so:
# - no write is acknowledged by the old primary after the new primary's first acknowledged write;
# - every row the old primary acknowledged is on the new primary;
# - the new primary's log names the member it waited for.
# DETACH_BLOCK=conflict (test_fence_detach_conflict.sh) stops replay on node3 with a hot-standby
# conflict instead: a query on node3 holds a lock whose exclusive form the primary then takes,
# and max_standby_streaming_delay = -1 lets replay wait for it without end.
DETACH_BLOCK=${DETACH_BLOCK:-pause}
case $DETACH_BLOCK in pause | conflict) ;; *) echo "DETACH_BLOCK must be pause or conflict" >&2; exit 2 ;; esac
T_PG=1
source "$(dirname "$0")/lib.sh"
T_NOFAILOVER[3]=true
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 90 "a primary and two streaming standbys" t_pg_healthy 1 2 3
P=$(t_pg_primary 1); Pi=${P#node}
C=1; [ "$Pi" = 1 ] && C=2
t_log "primary is $P, candidate node$C, node3's replay stopped by: $DETACH_BLOCK"
t_psql "$Pi" -c "CREATE TABLE detach (id bigint PRIMARY KEY, node text)" -c "CREATE TABLE hold (id int)"
t_wait 20 "the table on node3" t_psql 3 -c "SELECT 1 FROM detach, hold LIMIT 0"

HOLDER=
if [ "$DETACH_BLOCK" = pause ]; then
  t_psql 3 -c "SELECT pg_wal_replay_pause()" >/dev/null
  replay_paused() { [ "$(t_psql 3 -c 'SELECT pg_get_wal_replay_pause_state()')" = paused ]; }
  t_wait 10 "node3's replay paused" replay_paused
else
  t_psql 3 -c "ALTER SYSTEM SET max_standby_streaming_delay = -1" -c "SELECT pg_reload_conf()" >/dev/null
  no_delay() { [ "$(t_psql 3 -c 'SHOW max_standby_streaming_delay')" = -1 ]; }
  t_wait 10 "node3 lets replay wait for its queries" no_delay
  timeout -s KILL 120 psql -X -q -h 127.0.0.1 -p "$(t_pg_port 3)" -U postgres -d postgres \
    -c "BEGIN" -c "SELECT count(*) FROM hold" -c "SELECT pg_sleep(110)" -c "COMMIT" >/dev/null 2>&1 &
  HOLDER=$!
  trap '[ -z "$HOLDER" ] || kill -KILL "$HOLDER" 2>/dev/null; t_cleanup' EXIT
  holding() { [ "$(t_psql 3 -c "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'hold' AND l.granted")" -ge 1 ]; }
  t_wait 10 "a query on node3 holds a lock on hold" holding
  t_psql "$Pi" -c "BEGIN" -c "LOCK TABLE hold IN ACCESS EXCLUSIVE MODE" -c "COMMIT" >/dev/null
  replay_blocked() { [ "$(t_psql 3 -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'startup' AND wait_event_type = 'Lock'")" = 1 ]; }
  t_wait 10 "node3's replay waits for the query's lock" replay_blocked
fi

# Writers: one INSERT per psql call, killed after 3 s (never a statement_timeout: a cancelled
# synchronous-replication wait reports the local commit as success). An acknowledgement is
# logged with the time psql returned.
ACK_OLD="$T_DIR/ack_old" ACK_NEW="$T_DIR/ack_new"
: >"$ACK_OLD"; : >"$ACK_NEW"
insert() { # PORT ID NODE
  timeout -s KILL 3 psql -X -q -A -t -h 127.0.0.1 -p "$1" -U postgres -d postgres \
    -c "INSERT INTO detach VALUES ($2, '$3')" >/dev/null 2>&1
}
writer_old() {
  local id=1 deadline=$((SECONDS + 60))
  while [ $SECONDS -lt $deadline ] && [ ! -f "$T_DIR/stop" ]; do
    if PGCONNECT_TIMEOUT=1 insert "$(t_pg_port "$Pi")" "$id" "$P" 2>/dev/null; then
      echo "$(date +%s%N) $id" >>"$ACK_OLD"
    fi
    id=$((id + 1))
    sleep 0.005
  done
}
writer_new() {
  local id=1000000 deadline=$((SECONDS + 60))
  while [ $SECONDS -lt $deadline ] && [ ! -f "$T_DIR/stop" ]; do
    if PGCONNECT_TIMEOUT=1 insert "$(t_pg_port "$C")" "$id" "node$C" 2>/dev/null; then
      echo "$(date +%s%N) $id" >>"$ACK_NEW"
    fi
    id=$((id + 1))
    sleep 0.005
  done
}
writer_old & WOLD=$!
writer_new & WNEW=$!
stop_writers() {
  touch "$T_DIR/stop"; wait "$WOLD" "$WNEW" 2>/dev/null || true
  if [ -n "$HOLDER" ]; then kill -KILL "$HOLDER" 2>/dev/null || true; wait "$HOLDER" 2>/dev/null || true; HOLDER=; fi
}
trap 'stop_writers; t_cleanup' EXIT

t_wait 10 "writes acknowledged by $P" test -s "$ACK_OLD"
t_log "SIGSTOP of $P's agent (its postgresql and guard stay up)"
t_kill "$Pi" STOP
new_primary() { [ -s "$ACK_NEW" ]; }
t_wait 60 "the first write acknowledged by node$C" new_primary
sleep 2
stop_writers

first_new=$(head -n1 "$ACK_NEW" | cut -d' ' -f1)
late=$(awk -v t="$first_new" '$1 > t' "$ACK_OLD" | wc -l)
t_log "$P acknowledged $(wc -l <"$ACK_OLD") writes, node$C $(wc -l <"$ACK_NEW") after its promotion"
t_check "no write acknowledged by the old primary after the new primary's first" t_eq "$late" 0
acked=$(cut -d' ' -f2 "$ACK_OLD" | tr '\n' ',' | sed 's/,$//')
missing=$(t_psql "$C" -c "SELECT count(*) FROM unnest(ARRAY[${acked:-0}]::bigint[]) a WHERE a <> 0 AND NOT EXISTS (SELECT 1 FROM detach WHERE id = a)")
t_check "every write the old primary acknowledged is on the new primary" t_eq "$missing" 0
t_check "the new primary waited for node3 to detach" \
  grep -qE "waiting: waiting before promoting: (the WAL receiver of node3 (still streams from|is connecting)|postgresql of node3 is starting)" "$T_DIR/node$C.log"
t_check "node3 restarted its standby whose receiver stayed on the old primary" \
  grep -q "the WAL receiver still streams from" "$T_DIR/node3.log"

t_log "SIGCONT of $P's agent: it must fence and rejoin"
t_kill "$Pi" CONT
t_wait 90 "the old primary back as a standby" t_pg_healthy 1 2 3
t_check "the new primary is still node$C" t_eq "$(t_pg_primary 1)" "node$C"
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
