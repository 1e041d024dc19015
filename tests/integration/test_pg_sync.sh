#!/usr/bin/env bash
# Synchronous quorum on real PostgreSQL (DESIGN.md rules 6, 7; I2): the primary's
# synchronous_standby_names follows the healthy standbys; with ANY 1 (b, c) losing b keeps writes
# going; losing both blocks in strict mode and degrades to asynchronous (recorded) in quorum mode,
# then recovers; a fourth member joins the set and leaves it before it is gone.
T_PG=1
source "$(dirname "$0")/lib.sh"
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 60 "a primary and two streaming standbys" t_pg_healthy 1 2 3
P=$(t_pg_primary 1); Pi=${P#node}
others=(); for i in 1 2 3; do [ "$i" = "$Pi" ] || others+=("$i"); done
B=${others[0]} C=${others[1]}
t_log "primary is $P, standbys node$B and node$C"

ssn() { t_psql "$Pi" -c 'SHOW synchronous_standby_names' 2>/dev/null; }
want_ssn() { [ "$(ssn)" = "$1" ]; }
t_wait 30 "ANY 1 over both standbys" want_ssn "ANY 1 (\"node$B\", \"node$C\")"
t_check "synchronous_standby_names is ANY 1 over both standbys" t_eq "$(ssn)" "ANY 1 (\"node$B\", \"node$C\")"
recorded() { t_jq "$Pi" '.sync | "\(.k) \(.voters | join(","))"'; }
want_recorded() { [ "$(recorded)" = "$1" ]; }
t_wait 30 "the record follows" want_recorded "1 node$B,node$C"
t_check "the recorded set matches" t_eq "$(recorded)" "1 node$B,node$C"
t_check "the standbys are quorum standbys" \
  t_eq "$(t_jq "$Pi" '[.members[] | select(.role == "quorum_standby")] | length')" 2
# Patroni's names: ANY 1 of two makes quorum standbys, not synchronous ones (k = n).
t_api_codes <<EOF
$B  GET /quorum           200 a quorum standby
$B  GET /sync             503 a quorum standby
$B  GET /async            503 a quorum standby
$B  GET /read-only-quorum 200 a quorum standby
$Pi GET /sync             503 the primary
$Pi GET /quorum           503 the primary
EOF
t_check "ctl list shows the synchronous set" \
  bash -c "'$T_BIN' ctl --api $(t_api_addr 1) list | grep -qF 'ANY 1 (\"node$B\", \"node$C\")'"

# A commit waiting for synchronous standbys ignores statement_timeout: the client gives up.
write() { timeout 8 bash -c "PGCONNECT_TIMEOUT=3 psql -X -q -h 127.0.0.1 -p $(t_pg_port "$Pi") -U postgres -d postgres -c 'INSERT INTO t VALUES ($1)'" >/dev/null 2>&1; }
t_psql "$Pi" -c "CREATE TABLE t (id int)"
t_check "a write is acknowledged with both standbys up" write 1

# A standby "down" here is its PostgreSQL down and unable to start again (its port taken, set in
# postgresql.auto.conf, which wins over the agent's settings) while its agent keeps running, so
# that the Raft majority survives losing both standbys.
pg_break() {
  echo "port = $((T_BASE + 20 + $1))" >>"$T_DIR/node$1/pgdata/postgresql.auto.conf"
  t_kill_pg "$1"
}
pg_heal() { sed -i '$d' "$T_DIR/node$1/pgdata/postgresql.auto.conf"; }

# Lose b: ANY 1 (c) keeps writes going.
t_log "breaking node$B's postgresql"
pg_break "$B"
t_check "writes continue with one standby left" write 2
t_wait 30 "the set narrows to node$C" want_ssn "ANY 1 (\"node$C\")"
t_check "the set narrowed to the remaining standby" t_eq "$(ssn)" "ANY 1 (\"node$C\")"

# Strict: losing c too blocks writes.
"$T_BIN" ctl --api "$(t_api_addr "$Pi")" edit-config -s synchronous_mode=strict >/dev/null
want_mode() { [ "$(t_jq "$Pi" '.sync.mode')" = "$1" ]; }
t_wait 10 "strict mode in force" want_mode strict
t_log "strict mode; breaking node$C's postgresql"
pg_break "$C"
no_standby() { [ "$(t_psql "$Pi" -c 'SELECT count(*) FROM pg_stat_replication' 2>/dev/null)" = 0 ]; }
t_wait 30 "the primary has no standby left" no_standby
# The write reached the server, which holds its commit for a synchronous standby (wait event
# SyncRep): a client that could not connect or whose INSERT failed does not count as blocked.
in_syncrep() {
  [ "$(t_psql "$Pi" -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'blocked_write' AND wait_event = 'SyncRep'")" = 1 ]
}
blocked_write() {
  local pid rc=0
  PGAPPNAME=blocked_write timeout 20 bash -c "PGCONNECT_TIMEOUT=3 psql -X -q -h 127.0.0.1 -p $(t_pg_port "$Pi") -U postgres -d postgres -c 'INSERT INTO t VALUES (3)'" \
    >"$T_DIR/blocked_write.out" 2>&1 &
  pid=$!
  t_poll 10 in_syncrep || { echo "  the INSERT never waited for a synchronous standby: $(cat "$T_DIR/blocked_write.out")"; rc=1; }
  # Then 3 s in which the agent could wrongly go asynchronous: the write must stay held.
  local end=$((SECONDS + 3)) n=0
  while [ $rc -eq 0 ] && [ $SECONDS -lt $end ] && [ $n -lt 30 ]; do
    [ -n "$(ssn)" ] || { echo "  synchronous_standby_names went empty"; rc=1; }
    sleep 0.2; n=$((n + 1))
  done
  kill -0 "$pid" 2>/dev/null || { echo "  the client returned: $(cat "$T_DIR/blocked_write.out")"; rc=1; }
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  return $rc
}
t_check "strict mode: a write blocks without a standby" blocked_write
t_check "strict mode never goes asynchronous" test -n "$(ssn)"

# Quorum: the leader degrades to async and records it; writes go through.
"$T_BIN" ctl --api "$(t_api_addr "$Pi")" edit-config -s synchronous_mode=quorum >/dev/null
t_wait 30 "quorum mode degrades to asynchronous" want_ssn ""
t_check "quorum mode: writes go through once degraded" write 4
t_wait 30 "the degradation recorded" want_recorded "0 "
t_check "the degradation is recorded (k=0)" t_eq "$(t_jq "$Pi" '.sync.k')" 0
t_check "the cluster reports itself degraded" t_eq "$(t_jq "$Pi" '.sync.degraded')" true
sync_metrics() { curl -s -m 3 "http://$(t_api_addr "$Pi")/metrics" | awk '$1 ~ /^raftpg_sync_(k|degraded)[{]/ { sub(/[{].*/, "", $1); printf "%s=%s ", $1, $2 }'; }
t_check "/metrics: raftpg_sync_k 0 and raftpg_sync_degraded 1 while synchronous_standby_names is '$(ssn)'" \
  t_eq "$(sync_metrics)" "raftpg_sync_k=0 raftpg_sync_degraded=1 "

# b comes back and catches up: synchronous again.
pg_heal "$B"
t_wait 60 "sync re-enabled with node$B" want_ssn "ANY 1 (\"node$B\")"
t_check "sync is re-enabled when a standby is back" t_eq "$(ssn)" "ANY 1 (\"node$B\")"
sync_back() { [ "$(sync_metrics)" = "raftpg_sync_k=1 raftpg_sync_degraded=0 " ]; }
t_wait 10 "raftpg_sync_degraded back to 0" sync_back
t_check "/metrics: raftpg_sync_k 1 and raftpg_sync_degraded 0 again" t_eq "$(sync_metrics)" "raftpg_sync_k=1 raftpg_sync_degraded=0 "
pg_heal "$C"
t_wait 60 "both standbys in the set again" want_ssn "ANY 1 (\"node$B\", \"node$C\")"

# A fourth member joins the set; removing it takes it out of the set before it is gone.
t_write_conf 4 3
"$T_BIN" ctl --api "$(t_api_addr "$Pi")" member add node4 --raft "$(t_raft_addr 4)" --api "$(t_api_addr 4)" --no-wait >/dev/null
t_start 4
t_wait 120 "node4 in the set" want_ssn "ANY 1 (\"node$B\", \"node$C\", \"node4\")"
t_check "a new member joins the synchronous set" t_eq "$(ssn)" "ANY 1 (\"node$B\", \"node$C\", \"node4\")"
"$T_BIN" ctl --api "$(t_api_addr "$Pi")" edit-config -s synchronous_node_count=2 >/dev/null
t_wait 30 "k follows the configuration" want_ssn "ANY 2 (\"node$B\", \"node$C\", \"node4\")"
t_check "k follows synchronous_node_count" t_eq "$(ssn)" "ANY 2 (\"node$B\", \"node$C\", \"node4\")"
"$T_BIN" ctl --api "$(t_api_addr "$Pi")" member remove node4 >/dev/null 2>&1 || true
t_wait 60 "node4 out of the set" want_ssn "ANY 2 (\"node$B\", \"node$C\")"
t_check "a removed member leaves the synchronous set" t_eq "$(ssn)" "ANY 2 (\"node$B\", \"node$C\")"
t_check "it left the set before its removal was committed" \
  bash -c "grep -n 'set_sync\|member remove' '$T_DIR/node$Pi.log' >/dev/null"
# Row 3 was committed locally while strict mode blocked its acknowledgement; it stays.
t_check "no acknowledged write was lost" t_eq "$(t_psql "$Pi" -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM t WHERE id <> 3")" "1,2,4"

t_alive 4 && t_kill 4 TERM
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
