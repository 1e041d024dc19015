#!/usr/bin/env bash
# A failover while paused (Patroni's manual failover in maintenance mode): with the primary's
# server killed and the cluster paused, nobody is promoted on their own; `ctl failover
# --candidate` promotes that standby (asked of PostgreSQL), with every acknowledged row; the other
# standby re-points to it, so that a synchronous write is acknowledged; the old primary stays
# down and the cluster stays paused until resume, after which the old primary rejoins.
T_PG=1
source "$(dirname "$0")/lib.sh"
t_time_bound 150
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 60 "a primary and two streaming standbys" t_pg_healthy 1 2 3
ctl() { "$T_BIN" ctl --api "$(t_api_addr 1)" --api "$(t_api_addr 2)" --api "$(t_api_addr 3)" "$@"; }
in_recovery() { t_psql "$1" -c 'SELECT pg_is_in_recovery()' 2>/dev/null; }
P="" A="" B=""
for i in 1 2 3; do
  if [ "$(in_recovery "$i")" = f ]; then P=$i; elif [ -z "$A" ]; then A=$i; else B=$i; fi
done
t_check "one primary and two standbys (asked of PostgreSQL)" test -n "$P" -a -n "$A" -a -n "$B"
t_log "primary node$P, standbys node$A and node$B"
t_psql "$P" -c "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100)"

ctl pause --wait >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl pause --wait ($(tail -1 "$T_DIR/out"))" t_eq "$rc" 0
# (With a healthy primary a failover is a switchover to the candidate, which pause allows:
# test_pg_switchover_paused.)

t_log "kill -9 of node$P's PostgreSQL while paused"
t_kill_pg "$P"
down() { [ "$(t_jq "$A" -r ".members[] | select(.name == \"node$P\") | .state")" != running ]; }
t_wait 10 "node$P's server seen stopped" down
sleep 2
t_check "2 s later node$A is still a standby (no failover on its own while paused)" t_eq "$(in_recovery "$A")" t
t_check "... and node$B too" t_eq "$(in_recovery "$B")" t

ctl failover --candidate node9 >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "a failover to a non-member is refused ($(cat "$T_DIR/out"))" grep -q "node9 is not a member" "$T_DIR/out"
T0=$(date +%s%3N)
ctl failover --candidate "node$A" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl failover --candidate node$A while paused ($(cat "$T_DIR/out"))" t_eq "$rc" 0
t_check "... says the cluster stays in maintenance mode" grep -q "stays in maintenance mode" "$T_DIR/out"
promoted() { [ "$(in_recovery "$A")" = f ]; }
t_wait 30 "node$A runs as primary (asked of PostgreSQL)" promoted
t_log "node$A promoted $(( $(date +%s%3N) - T0 )) ms after the request"
t_check "node$A is the primary (asked of PostgreSQL)" t_eq "$(in_recovery "$A")" f
t_check "node$A has every acknowledged row" t_eq "$(t_psql "$A" -c 'SELECT count(*) FROM t')" 100
t_check "node$B is still a standby" t_eq "$(in_recovery "$B")" t
pg_down() { ! t_psql "$1" -c 'SELECT 1' >/dev/null 2>&1; }
t_check "node$P's server is still down (nothing started it while paused)" pg_down "$P"
t_check "the cluster is still paused" bash -c "'$T_BIN' ctl --api $(t_api_addr "$A") list | grep -q '^Maintenance mode: on'"
# The other standby re-points to the new primary: a write is then acknowledged by the quorum.
streams_from_a() {
  [ "$(t_psql "$A" -c "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'node$B' AND state = 'streaming'")" = 1 ]
}
t_wait 20 "node$B streams from node$A" streams_from_a
t_check "a write on node$A is acknowledged" t_eq "$(PGOPTIONS='-c statement_timeout=10000' t_psql "$A" -c 'INSERT INTO t VALUES (101) RETURNING id')" 101
t_check "... and node$B has it" t_poll 10 bash -c "[ \"\$(PGCONNECT_TIMEOUT=3 psql -X -q -A -t -h 127.0.0.1 -p $(t_pg_port "$B") -U postgres -d postgres -c 'SELECT count(*) FROM t WHERE id = 101')\" = 1 ]"

ctl resume --wait >/dev/null
t_wait 60 "healthy again after resume (node$P rejoins)" t_pg_healthy 1 2 3
t_check "node$A is still the primary" t_eq "$(in_recovery "$A")" f
t_check "node$P is a standby of it with every row" t_poll 10 \
  bash -c "[ \"\$(PGCONNECT_TIMEOUT=3 psql -X -q -A -t -h 127.0.0.1 -p $(t_pg_port "$P") -U postgres -d postgres -c 'SELECT count(*) FROM t')\" = 101 ]"

for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_time_bound_stop
t_done
