#!/usr/bin/env bash
# ctl failover --candidate without a healthy primary, as Patroni's manual failover: the operator's
# choice is promoted whatever its lag. maximum_lag_on_failover (16 MiB) and asynchronous
# replication come from the members' files alone. One standby is tagged nofailover, the other's
# WAL receiver is stopped (SIGSTOP) while tens of MB are written; the primary's agent and server
# are killed: nobody is promoted (the limit), until `ctl failover --candidate` names the lagging
# standby: it is promoted with the limit still set, its answer says by how much it lagged, and
# the other standby follows it.
T_PG=1
source "$(dirname "$0")/lib.sh"
t_time_bound 180
t_pick_ports
write_conf() {
  t_write_conf "$1" 3
  printf 'synchronous_mode: "off"\nmaximum_lag_on_failover: 16777216\n' >>"$T_DIR/node$1.yaml"
}
for i in 1 2 3; do write_conf "$i"; t_start "$i"; done
t_wait 60 "a primary and two streaming standbys" t_pg_healthy 1 2 3
ctl() { "$T_BIN" ctl --api "$(t_api_addr 1)" --api "$(t_api_addr 2)" --api "$(t_api_addr 3)" "$@"; }
in_recovery() { t_psql "$1" -c 'SELECT pg_is_in_recovery()' 2>/dev/null; }
lag_of() { curl -s -m 3 "http://$(t_api_addr "$1")/config" | jq -r '.maximum_lag_on_failover // "none"'; }
P="" A="" B=""
for i in 1 2 3; do
  if [ "$(in_recovery "$i")" = f ]; then P=$i; elif [ -z "$A" ]; then A=$i; else B=$i; fi
done
t_check "one primary and two standbys (asked of PostgreSQL)" test -n "$P" -a -n "$A" -a -n "$B"
t_log "primary node$P, standbys node$A (tagged nofailover) and node$B (to lag)"
for i in 1 2 3; do
  t_wait 10 "node$i's GET /config has the files' limit" eval '[ "$(lag_of '"$i"')" = 16777216 ]'
done
t_wait 10 "no synchronous standby on the primary (synchronous_mode off from the files)" \
  eval '[ -z "$(t_psql '"$P"' -c "SHOW synchronous_standby_names")" ]'

T_NOFAILOVER[$A]=true
write_conf "$A"
ctl reload "node$A" >"$T_DIR/out" 2>&1 || true
t_wait 10 "node$A is tagged nofailover in /cluster" \
  eval '[ "$(t_jq '"$P"' -r ".members[] | select(.name == \"node'"$A"'\") | .tags.nofailover // false")" = true ]'

t_psql "$P" -c "CREATE TABLE t (id int, pad text)"
t_wait 20 "node$B replayed the table" eval '[ "$(t_psql '"$B"' -c "SELECT count(*) FROM t" 2>/dev/null)" = 0 ]'
bpm=$(t_pg_pid "$B")
wr=$(ps -o pid=,args= --ppid "$bpm" | awk '/walreceiver/ { print $1 }')
t_check "node$B has a WAL receiver process" test -n "$wr"
kill -STOP "$wr"
t_psql "$P" -c "INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 200000) g"
plsn=$(t_psql "$P" -c "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
blsn=$(t_psql "$B" -c "SELECT COALESCE(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) - '0/0'::pg_lsn")
t_log "primary at $plsn, node$B received up to $blsn: $((plsn - blsn)) bytes behind"
t_check "node$B is more than 16 MiB behind the primary" test $((plsn - blsn)) -gt 16777216
rlag() { t_jq "$P" -r ".members[] | select(.name == \"node$B\") | .receive_lag // 0"; }
t_wait 5 "node$P's /cluster has node$B more than 16 MiB behind" eval '[ "$(rlag)" -gt 16777216 ]'
# The members poll every 250 ms: let them see the primary's position.
sleep 1.5

# The primary's walsenders can outlive its postmaster (a guard's fast stop has them send all
# they have first): one still running would feed the resumed receiver the WAL it must lack.
# They die with it, as in a crash of the host.
senders=$(ps -o pid=,args= --ppid "$(t_pg_pid "$P")" | awk '/walsender/ { print $1 }')
t_check "node$P has walsenders to kill" test -n "$senders"
t_kill "$P" KILL
t_kill_pg "$P"
for s in $senders; do kill -KILL "$s" 2>/dev/null || true; done
senders_gone() { for s in $senders; do ! t_pid_running "$s" || return 1; done; }
t_wait 5 "node$P's walsenders are gone" senders_gone
# The receiver may still read what its socket holds; that is less than the lag.
kill -CONT "$wr" 2>/dev/null || true
T0=$SECONDS
held() { grep -h "more than maximum_lag_on_failover (16777216)" "$T_DIR/node$A.log" "$T_DIR/node$B.log" | grep -q "node$B, the member furthest ahead"; }
t_wait 20 "the leader says node$B lags more than maximum_lag_on_failover" held
promoted=""
while [ $((SECONDS - T0)) -lt 4 ]; do
  for i in "$A" "$B"; do [ "$(in_recovery "$i")" != f ] || promoted="$promoted node$i"; done
  sleep 0.5
done
t_check "no member was promoted by itself while node$B lags past the limit" t_eq "$promoted" ""

# The nofailover standby is refused; the lagging one is promoted, the limit unchanged.
ctl failover --candidate "node$A" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl failover --candidate node$A (nofailover) fails ($(cat "$T_DIR/out"))" test "$rc" -ne 0
t_check "... saying why" t_contains "$(cat "$T_DIR/out")" "node$A may not be promoted"
T1=$SECONDS
ctl failover --candidate "node$B" --force >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_log "$(cat "$T_DIR/out")"
t_check "ctl failover --candidate node$B succeeds" t_eq "$rc" 0
t_check "... saying it lags more than the limit and is promoted as asked" grep -Eq \
  "it lags [0-9]+ bytes behind the last position of primary node$P \([0-9]+\), more than maximum_lag_on_failover \(16777216\): promoted as asked" \
  "$T_DIR/out"
t_wait 30 "node$B is promoted" eval '[ "$(in_recovery '"$B"')" = f ]'
t_log "node$B runs as primary $((SECONDS - T1)) s after the request"
for i in "$A" "$B"; do
  t_check "node$i's GET /config still has the limit" t_eq "$(lag_of "$i")" 16777216
done
a_streams() {
  [ "$(in_recovery "$A")" = t ] && [ "$(t_psql "$B" -c "SELECT count(*) FROM pg_stat_replication
    WHERE application_name = 'node$A' AND state = 'streaming'" 2>/dev/null)" = 1 ]
}
t_wait 30 "node$A runs as a standby streaming from node$B" a_streams
t_psql "$B" -c "INSERT INTO t VALUES (-1, 'after')"
t_wait 20 "node$A replays a row written on node$B" \
  eval '[ "$(t_psql '"$A"' -c "SELECT count(*) FROM t WHERE id = -1" 2>/dev/null)" = 1 ]'
t_check "node$B is the only primary" t_eq "$(in_recovery "$A")$(in_recovery "$B")" tf
t_done
