#!/usr/bin/env bash
# maximum_lag_on_failover and Patroni's interval keys in the dynamic configuration: validated
# (each refusal names its key), replicated, shown by GET /config on every member and by ctl
# show-config. A standby whose WAL receiver was stopped (SIGSTOP) falls tens of MB behind; when
# the primary dies, it is not promoted (the other standby is tagged nofailover): PostgreSQL on
# both stays in recovery and the leader says why. Once the limit is removed, that standby is
# promoted: the limit was what held it back.
T_PG=1
source "$(dirname "$0")/lib.sh"
t_time_bound 240
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 60 "a primary and two streaming standbys" t_pg_healthy 1 2 3
ctl() { "$T_BIN" ctl --api "$(t_api_addr 1)" --api "$(t_api_addr 2)" --api "$(t_api_addr 3)" "$@"; }
in_recovery() { t_psql "$1" -c 'SELECT pg_is_in_recovery()' 2>/dev/null; }
lag_of() { curl -s -m 3 "http://$(t_api_addr "$1")/config" | jq -r '.maximum_lag_on_failover // "none"'; }
P="" A="" B=""
for i in 1 2 3; do
  if [ "$(in_recovery "$i")" = f ]; then P=$i; elif [ -z "$A" ]; then A=$i; else B=$i; fi
done
t_check "one primary and two standbys (asked of PostgreSQL)" test -n "$P" -a -n "$A" -a -n "$B"
t_log "primary node$P, standbys node$A (to be tagged nofailover) and node$B (to lag)"

# Refusals, each naming its key; nothing changes.
for body in '{"maximum_lag_on_failover":-1}' '{"maximum_lag_on_failover":"1MB"}' \
  '{"maximum_lag_on_failover":1.5}'; do
  out=$(t_api "$P" PATCH /config "$body")
  t_check "$body is refused with 400 ($out)" t_eq "${out%% *}" 400
  t_check "... naming maximum_lag_on_failover" t_contains "$out" "maximum_lag_on_failover: expected a number of bytes"
done
for key in loop_wait ttl retry_timeout; do
  out=$(t_api "$P" PATCH /config "{\"$key\":10,\"maximum_lag_on_failover\":5}")
  t_check "$key is refused with 422 ($out)" t_eq "${out%% *}" 422
  t_check "... naming $key and why" t_contains "$out" "$key: not settable: "
done
t_check "nothing was set" t_eq "$(lag_of "$A")" none

# Asynchronous replication, so that no synchronous rule holds the failover; and the limit.
out=$(t_api "$P" PATCH /config '{"synchronous_mode":"off","maximum_lag_on_failover":16777216}')
t_check "PATCH synchronous_mode off and maximum_lag_on_failover 16 MiB ($out)" t_eq "${out%% *}" 200
for i in 1 2 3; do
  t_wait 10 "node$i's GET /config has maximum_lag_on_failover 16777216" eval '[ "$(lag_of '"$i"')" = 16777216 ]'
done
# PUT /config with GET's document keeps it; the same document without it removes it.
doc=$(curl -s -m 3 "http://$(t_api_addr "$P")/config")
out=$(t_api "$P" PUT /config "$(jq -c 'del(.maximum_lag_on_failover)' <<<"$doc")")
t_check "PUT /config without maximum_lag_on_failover ($out)" t_eq "${out%% *}" 200
t_check "... removes it" t_eq "$(jq -r '.maximum_lag_on_failover // "none"' <<<"${out#* }")" none
out=$(t_api "$P" PUT /config "$doc")
t_check "PUT /config with GET's document ($out)" t_eq "${out%% *}" 200
for i in 1 2 3; do
  t_wait 10 "node$i's GET /config has it again" eval '[ "$(lag_of '"$i"')" = 16777216 ]'
done
t_check "ctl show-config prints it" bash -c "'$T_BIN' ctl --api $(t_api_addr "$B") show-config | grep -qx 'maximum_lag_on_failover: 16777216'"
no_sync_set() { [ "$(t_jq "$P" -r '"\(.sync.k) \(.sync.voters | length)"')" = "0 0" ]; }
t_wait 10 "no synchronous set recorded" no_sync_set
t_wait 10 "no synchronous standby on the primary" \
  eval '[ -z "$(t_psql '"$P"' -c "SHOW synchronous_standby_names")" ]'

# node A may not be promoted (tags reload at once).
T_NOFAILOVER[$A]=true
t_write_conf "$A" 3
ctl reload "node$A" >"$T_DIR/out" 2>&1 || true
t_wait 10 "node$A is tagged nofailover in /cluster" \
  eval '[ "$(t_jq '"$P"' -r ".members[] | select(.name == \"node'"$A"'\") | .tags.nofailover // false")" = true ]'

t_psql "$P" -c "CREATE TABLE t (id int, pad text)"
t_wait 20 "node$B replayed the table" eval '[ "$(t_psql '"$B"' -c "SELECT count(*) FROM t" 2>/dev/null)" = 0 ]'
# Stop node B's WAL receiver: it stays a running standby, and receives nothing more.
bpm=$(t_pg_pid "$B")
wr=$(ps -o pid=,args= --ppid "$bpm" | awk '/walreceiver/ { print $1 }')
t_check "node$B has a WAL receiver process" test -n "$wr"
kill -STOP "$wr"
t_psql "$P" -c "INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 200000) g"
plsn=$(t_psql "$P" -c "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
blsn=$(t_psql "$B" -c "SELECT COALESCE(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) - '0/0'::pg_lsn")
t_log "primary at $plsn, node$B received up to $blsn: $((plsn - blsn)) bytes behind"
t_check "node$B is more than 16 MiB behind the primary" test $((plsn - blsn)) -gt 16777216
# /readiness without ?lag= takes the limit, as Patroni's: node B is not ready with 16 MiB, is
# with 1 GiB (each asked with the limit in force on node B).
ready() { curl -s -o /dev/null -m 3 -w '%{http_code}' "http://$(t_api_addr "$B")/readiness"; }
t_wait 5 "node$B's /readiness is 503 (lag past 16 MiB)" eval '[ "$(ready)" = 503 ]'
out=$(t_api "$P" PATCH /config '{"maximum_lag_on_failover":1073741824}')
t_check "PATCH maximum_lag_on_failover 1 GiB ($out)" t_eq "${out%% *}" 200
t_wait 5 "node$B's /readiness is 200 with the limit at 1 GiB" eval '[ "$(ready)" = 200 ]'
out=$(t_api "$P" PATCH /config '{"maximum_lag_on_failover":16777216}')
t_check "PATCH maximum_lag_on_failover back to 16 MiB ($out)" t_eq "${out%% *}" 200
t_wait 5 "node$B applied it" eval '[ "$(lag_of '"$B"')" = 16777216 ]'
t_check "node$B's /readiness is 503 again" t_eq "$(ready)" 503
# The members poll every 250 ms: let them see the primary's position.
sleep 1.5

t_kill "$P" KILL
t_kill_pg "$P"
# The receiver may still read what its socket holds; that is less than the lag.
kill -CONT "$wr" 2>/dev/null || true
T0=$SECONDS
held() { grep -h "more than maximum_lag_on_failover (16777216)" "$T_DIR/node$A.log" "$T_DIR/node$B.log" | grep -q "node$B, the member furthest ahead"; }
t_wait 20 "the leader says node$B lags more than maximum_lag_on_failover" held
grep -h "maximum_lag_on_failover (16777216)" "$T_DIR/node$A.log" "$T_DIR/node$B.log" | tail -n 1 | sed 's/^/  /'
# Not promoted over 8 s: both servers still in recovery each time they are asked.
promoted=""
while [ $((SECONDS - T0)) -lt 8 ]; do
  for i in "$A" "$B"; do [ "$(in_recovery "$i")" != f ] || promoted="$promoted node$i"; done
  sleep 0.5
done
t_check "no member was promoted while node$B lags past the limit" t_eq "$promoted" ""
blsn2=$(t_psql "$B" -c "SELECT COALESCE(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) - '0/0'::pg_lsn")
t_check "node$B is still more than 16 MiB behind ($((plsn - blsn2)) bytes)" test $((plsn - blsn2)) -gt 16777216

# Without the limit, node B is promoted (asynchronous replication loses what it lacks).
"$T_BIN" ctl --api "$(t_api_addr "$A")" --api "$(t_api_addr "$B")" edit-config -s maximum_lag_on_failover=null >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl edit-config -s maximum_lag_on_failover=null ($(tr '\n' ';' <"$T_DIR/out"))" t_eq "$rc" 0
for i in "$A" "$B"; do
  t_wait 5 "node$i's GET /config has no limit any more" eval '[ "$(lag_of '"$i"')" = none ]'
done
t_wait 30 "node$B is promoted" eval '[ "$(in_recovery '"$B"')" = f ]'
t_wait 30 "node$A runs as a standby (of node$B)" eval '[ "$(in_recovery '"$A"')" = t ]'
t_check "node$B is the only primary" t_eq "$(in_recovery "$A")$(in_recovery "$B")" tf
t_done
