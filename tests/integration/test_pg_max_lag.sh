#!/usr/bin/env bash
# maximum_lag_on_failover and Patroni's interval keys in the dynamic configuration: the first
# leader records its file's value (a bad one stops check-config, naming file, line and key);
# validated (each refusal names its key),
# replicated, shown by GET /config on every member and by ctl show-config. A standby whose WAL
# receiver was stopped (SIGSTOP) falls tens of MB behind: a switchover to it is refused, naming
# its lag and the limit, and nothing moves; when the primary dies, it is not promoted (the other
# standby is tagged nofailover): PostgreSQL on both stays in recovery and the leader says why.
# Once the limit is removed, that standby is promoted: the limit was what held it back.
T_PG=1
source "$(dirname "$0")/lib.sh"
t_time_bound 240
t_pick_ports
# The limit in each member's file: as Patroni writes it, under bootstrap.dcs with the keys raftpg
# has no use for and a dynamic parameter, on node1 and node2; at the top level on node3, with the
# parameter under bootstrap.dcs. Whichever member leads first records the same configuration.
write_conf() {
  t_write_conf "$1" 3
  if [ "$1" -lt 3 ]; then
    printf '%s\n' "bootstrap:" "  dcs:" "    ttl: 30" "    loop_wait: 10" "    retry_timeout: 10" \
      "    maximum_lag_on_failover: 16777216" "    postgresql:" "      use_pg_rewind: true" \
      "      parameters: {Work_Mem: 7MB}" >>"$T_DIR/node$1.yaml"
  else
    printf '%s\n' "maximum_lag_on_failover: 16777216" "bootstrap:" \
      "  dcs: {postgresql: {parameters: {work_mem: 7MB}}}" >>"$T_DIR/node$1.yaml"
  fi
}
for i in 1 2 3; do write_conf "$i"; t_start "$i"; done
t_wait 60 "a primary and two streaming standbys" t_pg_healthy 1 2 3
ctl() { "$T_BIN" ctl --api "$(t_api_addr 1)" --api "$(t_api_addr 2)" --api "$(t_api_addr 3)" "$@"; }
in_recovery() { t_psql "$1" -c 'SELECT pg_is_in_recovery()' 2>/dev/null; }
lag_of() { curl -s -m 3 "http://$(t_api_addr "$1")/config" | jq -r '.maximum_lag_on_failover // "none"'; }
recorded_of() { curl -s -m 3 "http://$(t_api_addr "$1")/config" | jq -r '.recorded'; }
P="" A="" B=""
for i in 1 2 3; do
  if [ "$(in_recovery "$i")" = f ]; then P=$i; elif [ -z "$A" ]; then A=$i; else B=$i; fi
done
t_check "one primary and two standbys (asked of PostgreSQL)" test -n "$P" -a -n "$A" -a -n "$B"
t_log "primary node$P, standbys node$A (to be tagged nofailover) and node$B (to lag)"
for i in 1 2 3; do
  t_wait 10 "node$i's GET /config has the file's maximum_lag_on_failover, recorded" \
    eval '[ "$(lag_of '"$i"') $(recorded_of '"$i"')" = "16777216 true" ]'
done
t_check "the first leader logged the recording" \
  grep -q "dynamic configuration recorded from this member's file: .* maximum_lag_on_failover=16777216 parameters=1 pg_hba_lines=0" \
  "$T_DIR/node1.log" "$T_DIR/node2.log" "$T_DIR/node3.log"
for i in 1 2 3; do
  t_check "node$i's GET /config has bootstrap.dcs's work_mem" t_eq \
    "$(curl -s -m 3 "http://$(t_api_addr "$i")/config" | jq -r '.postgresql.parameters.work_mem')" 7MB
  t_wait 10 "node$i's PostgreSQL runs with it (SHOW work_mem)" \
    eval '[ "$(t_psql '"$i"' -c "SHOW work_mem" 2>/dev/null)" = 7MB ]'
done
t_check "node1 logged bootstrap.dcs.ttl as ignored, with its position and why" grep -q \
  "WARNING .*node1.yaml:[0-9]*:10: bootstrap.dcs.ttl: ignored: raftpg has no leader key with a time to live" \
  "$T_DIR/node1.log"
# check-config: the keys without effect are named with their positions; a value given in both
# places must agree, else both places are named.
"${T_RUNAS[@]}" "$T_BIN" check-config "$T_DIR/node2.yaml" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "check-config of node2's Patroni-style file passes ($rc)" t_eq "$rc" 0
t_check "... warning about loop_wait and retry_timeout" bash -c \
  "grep -q '^warning: .*node2.yaml:[0-9]*:16: bootstrap.dcs.loop_wait: ignored: ' '$T_DIR/out' &&
   grep -q '^warning: .*node2.yaml:[0-9]*:20: bootstrap.dcs.retry_timeout: ignored: ' '$T_DIR/out'"
t_check "... and printing the dynamic configuration it seeds" grep -q \
  "^dynamic configuration (the first leader records it): synchronous_mode=quorum synchronous_node_count=1 synchronous_commit=on maximum_lag_on_failover=16777216 parameters=1 pg_hba_lines=0$" \
  "$T_DIR/out"
cp -p "$T_DIR/node3.yaml" "$T_DIR/both.yaml"
printf '%s\n' "  dcs: {maximum_lag_on_failover: 1048576}" >>"$T_DIR/both.yaml"
sed -i '/^  dcs: {postgresql/d' "$T_DIR/both.yaml"
"${T_RUNAS[@]}" "$T_BIN" check-config "$T_DIR/both.yaml" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "check-config of a file with two different limits fails ($(cat "$T_DIR/out"))" t_eq "$rc" 1
t_check "... naming both places" grep -Eq \
  "^$T_DIR/both.yaml:[0-9]+:34: bootstrap.dcs.maximum_lag_on_failover: 1048576 differs from maximum_lag_on_failover at $T_DIR/both.yaml:[0-9]+:26 \(16777216\): give it in one place$" \
  "$T_DIR/out"
# A bad value in a file is refused with the file, the position and the key.
cp -p "$T_DIR/node3.yaml" "$T_DIR/bad.yaml" # the limit at the top level
sed -i 's/^maximum_lag_on_failover: .*/maximum_lag_on_failover: 16MB/' "$T_DIR/bad.yaml"
"${T_RUNAS[@]}" "$T_BIN" check-config "$T_DIR/bad.yaml" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "check-config of a file with maximum_lag_on_failover: 16MB fails ($(cat "$T_DIR/out"))" t_eq "$rc" 1
t_check "... naming the file, line, key and what it expects" grep -Eq \
  "^$T_DIR/bad.yaml:[0-9]+:26: maximum_lag_on_failover: expected a number of bytes 0..4611686018427387904, or null \(no limit\), got \"16MB\"$" "$T_DIR/out"

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
t_check "nothing changed" t_eq "$(lag_of "$A")" 16777216

# Asynchronous replication, so that no synchronous rule holds the failover; the limit stays.
out=$(t_api "$P" PATCH /config '{"synchronous_mode":"off"}')
t_check "PATCH synchronous_mode off alone ($out)" t_eq "${out%% *}" 200
t_check "... keeps the limit" t_eq "$(jq -r '.maximum_lag_on_failover' <<<"${out#* }")" 16777216
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
write_conf "$A"
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
rlag() { t_jq "$P" -r ".members[] | select(.name == \"node$B\") | .receive_lag // 0"; }
t_wait 5 "node$P's /cluster has node$B more than 16 MiB behind" eval '[ "$(rlag)" -gt 16777216 ]'

# As Patroni's, a switchover to a standby further behind than the limit is refused at once,
# naming the candidate, its lag and the limit; without a candidate too (node A is nofailover).
pstart=$(t_psql "$P" -c "SELECT pg_postmaster_start_time()")
ctl switchover --candidate "node$B" --force >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_log "$(cat "$T_DIR/out")"
t_check "ctl switchover --candidate node$B fails" test "$rc" -ne 0
t_check "... with http 412" t_contains "$(cat "$T_DIR/out")" "refused (http 412)"
t_check "... naming node$B's lag and the limit" \
  grep -Eq "node$B lags [0-9]+ bytes behind primary node$P .*more than maximum_lag_on_failover \(16777216\)" "$T_DIR/out"
ctl switchover --force >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_log "$(cat "$T_DIR/out")"
t_check "ctl switchover without a candidate fails" test "$rc" -ne 0
t_check "... naming node$B's lag and the limit" \
  grep -Eq "no standby can take over: the one furthest ahead, node$B lags [0-9]+ bytes .*maximum_lag_on_failover \(16777216\)" "$T_DIR/out"
ctl failover --candidate "node$B" --force >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_log "$(cat "$T_DIR/out")"
t_check "ctl failover --candidate node$B with a healthy primary (a switchover) fails" test "$rc" -ne 0
t_check "... naming node$B's lag and the limit" \
  grep -Eq "node$B lags [0-9]+ bytes .*maximum_lag_on_failover \(16777216\)" "$T_DIR/out"
out=$(t_api "$P" POST /switchover "{\"candidate\":\"node$B\"}")
t_check "POST /switchover to node$B is 412 ($out)" t_eq "${out%% *}" 412
t_check "nothing moved: node$P still runs as primary, not restarted" \
  t_eq "$(in_recovery "$P") $(t_psql "$P" -c "SELECT pg_postmaster_start_time()")" "f $pstart"
t_check "node$A and node$B are still standbys" t_eq "$(in_recovery "$A")$(in_recovery "$B")" tt
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
# Asked of node A's server: in recovery already held while it followed node P, so wait for its
# WAL receiver to stream from node B (it may restart to get there).
streams_from_b() {
  [ "$(t_psql "$A" -c "SELECT sender_port FROM pg_stat_wal_receiver WHERE status = 'streaming'" 2>/dev/null)" = "$(t_pg_port "$B")" ]
}
t_wait 30 "node$A streams from node$B" streams_from_b
t_check "node$B is the only primary" t_eq "$(in_recovery "$A")$(in_recovery "$B")" tf
t_done
