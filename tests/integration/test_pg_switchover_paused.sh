#!/usr/bin/env bash
# A switchover while paused (Patroni: allowed in maintenance mode when the candidate is named):
# without a candidate it is refused and nothing moves; `ctl switchover --candidate` makes that
# standby the primary (asked of PostgreSQL) with every acknowledged row, the old primary comes
# back as a standby of it and the other standby re-points, a synchronous write is acknowledged,
# and the cluster stays paused; a scheduled one is refused in pause, and one scheduled before the
# pause does not run at its time. A failover to a named
# standby with a healthy primary is that switchover. An abandoned switchover in
# pause (the candidate's agent stopped) starts the old primary again as the primary. Never two
# servers answer as primary at once.
T_PG=1
source "$(dirname "$0")/lib.sh"
t_time_bound 200
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 60 "a primary and two streaming standbys" t_pg_healthy 1 2 3
ctl() { "$T_BIN" ctl --api "$(t_api_addr 1)" --api "$(t_api_addr 2)" --api "$(t_api_addr 3)" "$@"; }
in_recovery() { t_psql "$1" -c 'SELECT pg_is_in_recovery()' 2>/dev/null; }
# Which servers answer as primary now ("1 3": two, which must never be seen).
primaries() {
  local i out=""
  for i in 1 2 3; do [ "$(in_recovery "$i")" = f ] && out+="$i "; done
  echo "${out% }"
}
# A sampler in the background: every 0.1 s (at most 1200 rounds), which servers answer as primary.
# The three servers are asked at once, so that a round takes as long as the slowest answer.
primaries_now() {
  local i
  for i in 1 2 3; do in_recovery "$i" >"$T_DIR/round.$i" & done
  wait
  for i in 1 2 3; do [ "$(cat "$T_DIR/round.$i")" = f ] && printf ' %s' "$i"; done
  echo
}
sample_start() {
  SAMPLE_T0=$(t_now_ms)
  ( for _ in $(seq 1 1200); do echo "$(date +%s%3N)$(primaries_now)"; sleep 0.1; done ) >"$T_DIR/samples" 2>/dev/null &
  SAMPLER=$!
}
sample_stop() { SAMPLE_T1=$(t_now_ms); kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; }
# The samples cover the sampled time: the first and the last within 1.5 s of the start and of
# the stop, and no two more than 1.5 s apart (a slow psql stretches a round).
sample_gaps() {
  awk -v t0="$SAMPLE_T0" -v t1="$SAMPLE_T1" '
    { if (NR == 1) { gap = $1 - t0 } else if ($1 - prev > gap) { gap = $1 - prev }; prev = $1 }
    END { if (t1 - prev > gap) gap = t1 - prev; print NR " samples, longest gap " gap " ms"; exit !(NR >= 5 && gap <= 1500) }' "$T_DIR/samples"
}
never_two() { ! awk 'NF > 2 { found = 1; print "  two primaries at " $1 ": " $2 " " $3 } END { exit !found }' "$T_DIR/samples"; }
P="" A="" B=""
for i in 1 2 3; do
  if [ "$(in_recovery "$i")" = f ]; then P=$i; elif [ -z "$A" ]; then A=$i; else B=$i; fi
done
t_check "one primary and two standbys (asked of PostgreSQL)" test -n "$P" -a -n "$A" -a -n "$B"
t_log "primary node$P, standbys node$A and node$B"
t_psql "$P" -c "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100)"

# A switchover scheduled before the pause, due during it: it must wait for resume (no scheduled
# action runs while paused), also while the leader holds a takeover permit.
T1=$(($(t_now_ms) + 9000))
ctl switchover --candidate "node$B" --scheduled "$(t_iso "$T1")" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "a switchover to node$B scheduled 9 s ahead ($(cat "$T_DIR/out"))" t_eq "$rc" 0
ctl pause --wait >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl pause --wait ($(tail -1 "$T_DIR/out"))" t_eq "$rc" 0
sample_start

ctl switchover --force >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "a switchover without a candidate is refused in pause ($(cat "$T_DIR/out"))" t_ne "$rc" 0
t_check "... naming the reason" grep -q "maintenance mode: a switchover needs a candidate" "$T_DIR/out"
at=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%S+00:00)
ctl switchover --candidate "node$A" --scheduled "$at" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "a scheduled switchover is refused in pause ($(cat "$T_DIR/out"))" t_ne "$rc" 0
t_check "... naming maintenance mode" grep -q "maintenance mode" "$T_DIR/out"
t_check "node$P is still the primary (asked of PostgreSQL)" t_eq "$(primaries)" "$P"

# With a healthy primary, Patroni's failover is a switchover: the same path as ctl switchover
# --candidate (used for the abandon below).
T0=$(date +%s%3N)
ctl failover --candidate "node$A" --force >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl failover --candidate node$A with a healthy primary while paused ($(cat "$T_DIR/out"))" t_eq "$rc" 0
t_check "... is a switchover" grep -q "switched over from node$P to node$A" "$T_DIR/out"
promoted() { [ "$(in_recovery "$A")" = f ]; }
t_wait 30 "node$A runs as primary (asked of PostgreSQL)" promoted
t_log "node$A promoted $(($(date +%s%3N) - T0)) ms after the request"
t_check "node$A has every acknowledged row" t_eq "$(t_psql "$A" -c 'SELECT count(*) FROM t')" 100
# Both standbys stream from the new primary: the old one rejoined, the other re-pointed.
streams_from_a() {
  [ "$(t_psql "$A" -c "SELECT count(*) FROM pg_stat_replication WHERE application_name IN ('node$P', 'node$B') AND state = 'streaming'")" = 2 ]
}
t_wait 40 "node$P and node$B stream from node$A" streams_from_a
t_check "node$P is a standby (asked of PostgreSQL)" t_eq "$(in_recovery "$P")" t
t_check "node$B is a standby (asked of PostgreSQL)" t_eq "$(in_recovery "$B")" t
t_check "a write on node$A is acknowledged" t_eq "$(PGOPTIONS='-c statement_timeout=10000' t_psql "$A" -c 'INSERT INTO t VALUES (101) RETURNING id')" 101
has_row() { [ "$(t_psql "$1" -c 'SELECT count(*) FROM t WHERE id = 101')" = 1 ]; }
t_wait 10 "node$P has the new row" has_row "$P"
t_check "node$P has the new row" has_row "$P"
t_check "the cluster is still paused" bash -c "'$T_BIN' ctl --api $(t_api_addr "$A") list | grep -q '^Maintenance mode: on'"
# PostgreSQL streams before the agent's next look sees it: wait for the line.
t_check "node$P's agent logged its rejoin in maintenance mode" \
  t_wait 10 "the rejoin line" grep -q "rejoin: streaming" "$T_DIR/node$P.log"
wait_ms=$((T1 + 2000 - $(t_now_ms)))
[ "$wait_ms" -le 0 ] || sleep "$(awk -v d="$wait_ms" 'BEGIN { printf "%.3f", d / 1000 }')"
t_check "2 s after the scheduled time node$A is still the only primary (asked of PostgreSQL)" \
  t_eq "$(primaries)" "$A"
t_check "... and the schedule is still recorded ($(t_jq "$A" -c '.scheduled_switchover'))" \
  t_eq "$(t_jq "$A" -r '.scheduled_switchover.at_ms // "none"')" "$T1"
ctl flush switchover >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl flush switchover cancels it ($(cat "$T_DIR/out"))" t_eq "$rc" 0

# An abandoned switchover in pause: the candidate's agent is stopped, so it never reports the
# final WAL; the old primary (now node$A) starts again as the primary.
leads() { [ "$(t_pg_primary "$A")" = "node$A" ]; }
t_wait 30 "node$A leads and is recorded primary" leads
before=$(t_psql "$A" -c "SELECT pg_postmaster_start_time()")
t_stop_during "$T_DIR/node$A.log" "switchover node$A -> node$B: stopping the primary" "$B" "$T_DIR/out" \
  ctl switchover --candidate "node$B" --force && rc=0 || rc=$?
t_check "a switchover whose candidate stops answering is abandoned ($(cat "$T_DIR/out"))" \
  grep -q "abandoned (waiting for the candidate to receive the last WAL)" "$T_DIR/out"
back() { [ "$(in_recovery "$A")" = f ]; }
t_wait 30 "node$A runs as primary again (asked of PostgreSQL)" back
t_check "node$A is the primary again" t_eq "$(in_recovery "$A")" f
after=$(t_psql "$A" -c "SELECT pg_postmaster_start_time()")
t_check "... after a restart (it was stopped: $before, then $after)" t_ne "$after" "$before"
t_check "node$A has every row" t_eq "$(t_psql "$A" -c 'SELECT count(*) FROM t')" 101
t_check "the cluster is still paused" bash -c "'$T_BIN' ctl --api $(t_api_addr "$A") list | grep -q '^Maintenance mode: on'"

sample_stop
t_check "never two servers answered as primary at once ($(wc -l <"$T_DIR/samples") samples)" never_two
t_check "the sampler ran throughout ($(sample_gaps))" sample_gaps

ctl resume --wait >/dev/null
t_wait 60 "healthy after resume" t_pg_healthy 1 2 3
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_time_bound_stop
t_done
