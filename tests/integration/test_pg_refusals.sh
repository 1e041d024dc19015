#!/usr/bin/env bash
# What the agents refuse to do, on real PostgreSQL on 127.0.0.1: a member tagged nofailover never
# becomes primary; a leader whose PostgreSQL will not start reports why, stays up and hands
# leadership to a healthy member; a data directory of another cluster is refused and left as is.
T_PG=1
source "$(dirname "$0")/lib.sh"
t_pick_ports
T_NOFAILOVER[3]=true
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done

t_wait 60 "a primary and two streaming standbys" t_pg_healthy 1 2 3
P=$(t_pg_primary 1); Pi=${P#node}
t_log "primary is $P"
t_check "the nofailover member is not the primary" t_ne "$P" node3
t_check "the primary holds raft leadership" t_eq "$(t_jq 1 '.raft.leader')" "$P"
t_psql "$Pi" -c "CREATE TABLE t (id int)" -c "INSERT INTO t SELECT generate_series(1, 100)"
rows_on() { [ "$(t_psql "$1" -c 'SELECT count(*) FROM t' 2>/dev/null)" = "$2" ]; }

# Leader's PostgreSQL cannot start any more: its port is taken (ALTER SYSTEM wins over the
# agent's settings, and the port chosen is the agent's own API port, which is in use).
O=1; [ "$O" = "$Pi" ] && O=2
t_log "breaking the primary's port and killing its postmaster"
t_psql "$Pi" -c "ALTER SYSTEM SET port = $((T_BASE + 20 + Pi))"
t_kill_pg "$Pi"
new_primary() {
  local p; p=$(t_pg_primary "$O")
  [ -n "$p" ] && [ "$p" != "$P" ] && echo "$p"
}
t_wait 60 "a new primary after the old leader gives up" new_primary
NP=$(new_primary); NPi=${NP#node}
t_check "the new primary is the other failover-eligible member" t_eq "$NP" "node$O"
t_check "the agent whose postgresql failed is still running" t_alive "$Pi"
t_check "it logged the start failures" grep -q "start_primary failed" "$T_DIR/node$Pi.log"
# The kill and the failed starts count together (three within 60 s hand over), before three
# failed starts alone would.
t_check "it handed leadership over" \
  grep -q "transfer node$O: postgresql crashed or failed to start 3 times within 60 s" "$T_DIR/node$Pi.log"
t_check "the failure reason names the server's error" grep -qE "could not (bind|create)" "$T_DIR/node$Pi.log"
t_check "the new primary has every row" rows_on "$NPi" 100
# pg_rewind brings the new primary's configuration along, so the old node recovers as a standby.
back() { [ "$(t_jq "$NPi" --arg n "$P" '.members[] | select(.name == $n) | .state')" = streaming ]; }
t_wait 60 "the old leader rejoins as a standby" back
t_check "it rejoined through pg_rewind" grep -q "rewind: done, starting as a standby of $NP" "$T_DIR/node$Pi.log"
t_check "the nofailover member still is not primary" t_ne "$(t_pg_primary 3)" node3

# A data directory of another cluster: the agent refuses it and leaves it alone.
F=3; [ "$NPi" = 3 ] && F=$Pi
t_log "replacing node$F's data directory with another cluster's"
t_kill "$F" TERM
rm -rf "$T_DIR/node$F/pgdata"
"${T_RUNAS[@]}" "$T_PG_BIN/initdb" -D "$T_DIR/node$F/pgdata" -U postgres >/dev/null
foreign_id=$("${T_RUNAS[@]}" "$T_PG_BIN/pg_controldata" -D "$T_DIR/node$F/pgdata" | awk -F: '/system identifier/ {gsub(/ /, "", $2); print $2}')
t_start "$F"
detail_of() { t_jq "$1" --arg n "node$2" '.members[] | select(.name == $n) | .detail // empty'; }
refused() { detail_of "$F" "$F" | grep "belongs to another cluster" >/dev/null; }
t_wait 30 "node$F reports the foreign data directory" refused
t_check "the refusal names both system identifiers" t_contains "$(detail_of "$F" "$F")" \
  "system identifier $foreign_id, the cluster's is $(t_jq "$NPi" '.system_id')"
seen_by_primary() { detail_of "$NPi" "$F" | grep "belongs to another cluster" >/dev/null; }
t_wait 10 "the primary's view of node$F shows the refusal" seen_by_primary
t_check "other members show the refusal too" t_contains "$(detail_of "$NPi" "$F")" \
  "belongs to another cluster"
not_started() { t_eq "$(t_pg_pid "$1")" "" && t_pg_port_free "$1"; }
t_check "the foreign data directory was not started" not_started "$F"
t_check "the foreign data directory is untouched" \
  t_eq "$("${T_RUNAS[@]}" "$T_PG_BIN/pg_controldata" -D "$T_DIR/node$F/pgdata" | awk -F: '/system identifier/ {gsub(/ /, "", $2); print $2}')" "$foreign_id"
t_check "the refusal is in the log" grep -q "refusing to act: data directory belongs to another cluster" "$T_DIR/node$F.log"

# pg_rewind cannot work without the old primary's WAL: the agent falls back to a fresh clone.
O2=$Pi
t_log "killing primary $NP and deleting its WAL"
t_kill "$NPi" KILL
t_kill_pg "$NPi"
rm -f "$T_DIR/node$NPi/pgdata/pg_wal/"0000*
primary_again() {
  local p; p=$(t_pg_primary "$O2")
  [ -n "$p" ] && [ "$p" != "$NP" ] && echo "$p"
}
t_wait 60 "a primary again" primary_again
P3=$(primary_again); P3i=${P3#node}
t_psql "$P3i" -c "INSERT INTO t SELECT generate_series(101, 200)"
t_start "$NPi"
recloned() { [ "$(t_jq "$P3i" --arg n "$NP" '.members[] | select(.name == $n) | .state')" = streaming ] && rows_on "$NPi" 200; }
t_wait 90 "$NP back as a streaming standby" recloned
t_check "pg_rewind failed on the damaged data directory" grep -q "rewind failed" "$T_DIR/node$NPi.log"
t_check "the agent fell back to a fresh clone" grep -q "reinit: data directory .* moved aside" "$T_DIR/node$NPi.log"
t_check "the damaged data directory was moved aside, not deleted" test -f "$T_DIR/node$NPi/pgdata.aside/PG_VERSION"
# The guard may stop the orphaned server cleanly before t_kill_pg does (pg_rewind then fails on
# the missing WAL) or not (the crash recovery before pg_rewind fails on it): both name the stage.
t_check "the reason is beside it" grep -qE "reason: (pg_rewind|crash-recover) failed" "$T_DIR/node$NPi/pgdata.aside.reason"
t_check "the re-cloned node has every row" rows_on "$NPi" 200

# The same damage with remove_data_directory_on_diverged_timelines (Patroni's key): the directory
# pg_rewind cannot bring back is deleted, nothing is moved aside.
# $NP must first be a recorded synchronous voter: until then only $P3 provably holds every
# acknowledged commit and no failover may happen (rule 6).
np_voter() { [ "$(t_jq "$P3i" --arg n "$NP" 'if .sync.k > 0 and (.sync.voters | index($n)) != null then "yes" else "no" end')" = yes ]; }
t_wait 30 "$NP recorded as a synchronous voter" np_voter
t_log "killing primary $P3 and deleting its WAL; it may delete its data directory"
t_kill "$P3i" KILL
t_kill_pg "$P3i"
rm -f "$T_DIR/node$P3i/pgdata/pg_wal/"0000*
T_REMOVE_DIVERGED=1 t_write_conf "$P3i" 3
primary_not_p3() { local p; p=$(t_pg_primary "$NPi"); [ -n "$p" ] && [ "$p" != "$P3" ] && echo "$p"; }
t_wait 60 "a primary other than $P3" primary_not_p3
P4=$(primary_not_p3); P4i=${P4#node}
t_psql "$P4i" -c "INSERT INTO t SELECT generate_series(201, 300)"
t_start "$P3i"
recloned3() { [ "$(t_jq "$P4i" --arg n "$P3" '.members[] | select(.name == $n) | .state')" = streaming ] && rows_on "$P3i" 300; }
t_wait 90 "$P3 back as a streaming standby" recloned3
t_check "its directory was deleted under the key" \
  grep -q "reinit: removing data directory .*(postgresql.remove_data_directory_on_diverged_timelines)" "$T_DIR/node$P3i.log"
t_check "nothing was moved aside for it" test ! -e "$T_DIR/node$P3i/pgdata.aside"

# A control file that cannot be read for a reason not understood (permission denied) is
# reported and the directory left alone (also under remove_data_directory_on_diverged_timelines:
# this is no divergence); once readable again the member comes back. $P3 is a standby of $P4 now.
S=$P3i
t_log "node$S's agent and postgresql stopped; its pg_control made unreadable"
t_kill "$S" KILL; t_kill_pg "$S"
chmod 000 "$T_DIR/node$S/pgdata/global/pg_control"
LINES=$(wc -l <"$T_DIR/node$S.log")
t_start "$S"
reported() { tail -n +$((LINES + 1)) "$T_DIR/node$S.log" | grep "Permission denied: the data directory is left as it is" >/dev/null; }
t_wait 20 "the permission error reported" reported
sleep 2
t_check "the unreadable data directory is left in place" test -f "$T_DIR/node$S/pgdata/PG_VERSION"
t_check "nothing was moved aside or removed for it" \
  t_eq "$(tail -n +$((LINES + 1)) "$T_DIR/node$S.log" | grep -cE 'reinit|moved aside|clone:' || true)" 0
chmod 600 "$T_DIR/node$S/pgdata/global/pg_control"
back() { [ "$(t_jq "$P4i" --arg n "node$S" '.members[] | select(.name == $n) | .state')" = streaming ]; }
t_wait 60 "node$S streaming again once its control file is readable" back

# postgresql.use_pg_rewind: false (Patroni's key): the old primary is cloned again, never rewound;
# with remove_data_directory_on_diverged_timelines its directory is deleted first.
s_voter() { [ "$(t_jq "$P4i" --arg n "node$S" 'if .sync.k > 0 and (.sync.voters | index($n)) != null then "yes" else "no" end')" = yes ]; }
t_wait 30 "node$S recorded as a synchronous voter" s_voter
t_log "killing primary $P4 and restarting it with use_pg_rewind: false"
t_kill "$P4i" KILL
t_kill_pg "$P4i"
T_NO_REWIND=1 T_REMOVE_DIVERGED=1 t_write_conf "$P4i" 3
primary_not_p4() { local p; p=$(t_pg_primary "$S"); [ -n "$p" ] && [ "$p" != "$P4" ] && echo "$p"; }
t_wait 60 "a primary other than $P4" primary_not_p4
P5=$(primary_not_p4); P5i=${P5#node}
t_psql "$P5i" -c "INSERT INTO t SELECT generate_series(301, 400)"
LINES=$(wc -l <"$T_DIR/node$P4i.log")
t_start "$P4i"
recloned4() { [ "$(t_jq "$P5i" --arg n "$P4" '.members[] | select(.name == $n) | .state')" = streaming ] && rows_on "$P4i" 400; }
t_wait 90 "$P4 back as a streaming standby" recloned4
tail -n +$((LINES + 1)) "$T_DIR/node$P4i.log" >"$T_DIR/since4.log"
t_check "use_pg_rewind off: the former primary is cloned again" grep -q "use_pg_rewind is off: re-cloning" "$T_DIR/since4.log"
t_check "use_pg_rewind off: pg_rewind never ran" t_eq "$(grep -c 'rewind: pg_rewind' "$T_DIR/since4.log" || true)" 0
t_check "its directory was deleted under the diverged-timelines key" \
  grep -q "reinit: removing data directory .*(postgresql.remove_data_directory_on_diverged_timelines)" "$T_DIR/since4.log"

[ -z "${T_PAUSE:-}" ] || sleep "$T_PAUSE"
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
