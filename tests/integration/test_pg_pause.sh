#!/usr/bin/env bash
# Maintenance mode (ctl pause / resume, Patroni's PATCH /config {"pause": ...}): while paused, a
# kill -9 of the primary's PostgreSQL is neither failed over nor restarted, and every endpoint
# says so; after resume the cluster acts again, with no acknowledged row lost.
T_PG=1
source "$(dirname "$0")/lib.sh"
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 60 "a primary and two streaming standbys" t_pg_healthy 1 2 3
P=$(t_pg_primary 1); Pi=${P#node}
t_log "primary is $P"
ctl() { "$T_BIN" ctl --api "$(t_api_addr 1)" --api "$(t_api_addr 2)" --api "$(t_api_addr 3)" "$@"; }
t_psql "$Pi" -c "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100)"

# ctl's other views of the same cluster.
ctl version >"$T_DIR/out" 2>&1
t_check "ctl version names every member's raftpg and PostgreSQL ($(tr '\n' ';' <"$T_DIR/out"))" \
  t_eq "$(grep -cE '^node[123]: raftpg [0-9.]+ PostgreSQL 15\.' "$T_DIR/out")" 3
t_check "ctl list --format tsv: a header and three rows of eleven fields" \
  t_eq "$(ctl list --format tsv | awk -F'\t' 'NF == 11' | wc -l)" 4
t_check "ctl topology puts the primary first" t_eq "$(ctl topology | sed -n 2p | cut -d' ' -f1)" "$P"
t_check "ctl topology lists both standbys beneath it" t_eq "$(ctl topology | grep -c '^+ node')" 2
standbys=$(for i in 1 2 3; do [ "node$i" = "$P" ] || echo "node$i"; done)
topo=$(ctl topology --format json)
t_check "ctl topology --format json: the primary first, streaming from nobody" \
  t_eq "$(jq -r '.primary + " " + .members[0].name + " " + (.members[0].upstream | tostring)' <<<"$topo")" "$P $P null"
t_check "ctl topology --format json: the two standbys beneath it, streaming from it" \
  t_eq "$(jq -r --arg p "$P" '.members[1:][] | select(.upstream == $p) | .name' <<<"$topo" | sort)" "$standbys"
t_check "ctl topology --format tsv: a header and three rows of six fields, the primary first" \
  t_eq "$(ctl topology --format tsv | awk -F'\t' 'NF == 6 { n++ } NR == 2 { p = $1 } END { print n, p }')" "4 $P"
# YAML, read back by PyYAML (a reader users have): the same document as the JSON format. Members'
# names, roles and upstreams are compared (lag and times move between the two calls).
yaml_json() { python3 -c 'import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))'; }
stable='[.scope, .primary, ([.members[] | [.name, .role, .upstream]] | sort)]'
topo_yaml=$(ctl topology --format yaml | yaml_json)
t_check "ctl topology --format yaml reads back as its JSON document" \
  t_eq "$(jq -c "$stable" <<<"$topo_yaml")" "$(jq -c "$stable" <<<"$topo")"
lstable='[.scope, ([.members[] | [.name, .role, .id, .timeline]] | sort)]'
t_check "ctl list --format yaml reads back as its JSON document" \
  t_eq "$(ctl list --format yaml | yaml_json | jq -c "$lstable")" "$(ctl list --format json | jq -c "$lstable")"
# Every string stays a string (an address, a time or a number in text read back as a number, a
# date or a boolean would drop out of this list).
spaths='[paths(type == "string")] | sort'
t_check "... every string value read back as a string ($(ctl list --format json | jq "$spaths | length") of them)" \
  t_eq "$(ctl list --format yaml | yaml_json | jq -c "$spaths")" "$(ctl list --format json | jq -c "$spaths")"
ctl topology --format xml >/dev/null 2>&1 && rc=0 || rc=$?
t_check "ctl topology --format xml is a usage error" t_eq "$rc" 2

ctl pause --wait >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl pause --wait succeeds ($(cat "$T_DIR/out"))" t_eq "$rc" 0
t_check "ctl pause says so" grep -q 'Maintenance mode: on' "$T_DIR/out"
t_check "ctl list says Maintenance mode: on" bash -c "'$T_BIN' ctl --api $(t_api_addr 1) list | grep -q '^Maintenance mode: on'"
for i in 1 2 3; do
  t_check "node$i's /patroni says pause" t_eq "$(curl -s -m 3 "http://$(t_api_addr "$i")/patroni" | jq -r .pause)" true
done
t_check "patroni_is_paused is 1" t_eq "$(curl -s -m 3 "http://$(t_api_addr "$Pi")/metrics" | awk '$1 ~ /^patroni_is_paused[{]/ { print $2 }')" 1
code() { curl -s -o /dev/null -m 3 -w '%{http_code}' -X PATCH -H 'Content-Type: application/json' \
  -H "Authorization: $("$T_BIN" ctl --api "$(t_api_addr "$1")" sign PATCH /config "$2")" -d "$2" "http://$(t_api_addr "$1")/config"; }
t_check "PATCH /config {\"pause\": \"yes\"} is refused (400)" t_eq "$(code "$Pi" '{"pause":"yes"}')" 400
t_check "pause with another key is refused (400)" t_eq "$(code "$Pi" '{"pause":true,"synchronous_mode":"off"}')" 400

t_log "kill -9 of $P's PostgreSQL while paused"
t_kill_pg "$Pi"
sleep 5
still_standby() { [ "$(t_psql "$1" -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = t ]; }
for i in 1 2 3; do
  [ "$i" = "$Pi" ] && continue
  t_check "node$i is still a standby 5 s later (no failover while paused)" still_standby "$i"
done
t_check "$P's PostgreSQL was not restarted while paused" t_pg_port_free "$Pi"
t_check "$P logged maintenance mode" grep -q "maintenance mode on" "$T_DIR/$P.log"
t_check "$P's /status says why it waits" \
  t_contains "$(curl -s -m 3 "http://$(t_api_addr "$Pi")/status" | jq -r .postgresql.why)" "maintenance mode"

ctl resume --wait >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl resume --wait succeeds ($(cat "$T_DIR/out"))" t_eq "$rc" 0
t_wait 60 "a primary and two streaming standbys after resume" t_pg_healthy 1 2 3
t_check "the cluster acts again after resume" t_pg_healthy 1 2 3
N=$(t_pg_primary 1); Ni=${N#node}
t_check "no row lost" t_eq "$(t_psql "$Ni" -c 'SELECT count(*) FROM t')" 100
# ctl answered with the member list, and it has no maintenance line.
no_maintenance_shown() {
  local out
  out=$("$T_BIN" ctl --api "$(t_api_addr 1)" list 2>&1) || { echo "  ctl list failed: $out"; return 1; }
  t_contains "$out" "$N" && t_status 1 grep -q 'Maintenance mode' <<<"$out"
}
t_check "ctl list no longer says maintenance" no_maintenance_shown

# Rolling restart (ctl restart --pending): nothing waits for a restart yet, so nothing restarts;
# then a parameter that needs one, on every member: standbys first, the primary last, each back
# in its role, the setting in force.
started() { t_psql "$1" -c 'SELECT pg_postmaster_start_time()' 2>/dev/null; }
ctl restart --pending >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl restart --pending with nothing pending skips every member ($(tr '\n' ';' <"$T_DIR/out"))" \
  t_eq "$rc:$(grep -c 'skipped: restart conditions are not satisfied' "$T_DIR/out")" 0:3
declare -A before=()
for i in 1 2 3; do
  t_psql "$i" -c "ALTER SYSTEM SET max_connections = 40" -c "SELECT pg_reload_conf()" >/dev/null
  before[$i]=$(started "$i")
done
pending() { [ "$(t_psql "$1" -c "SELECT pending_restart FROM pg_settings WHERE name = 'max_connections'")" = t ]; }
t_wait 10 "max_connections pending on $N" pending "$Ni"
# Each agent decides from its own observation, which follows the server's at its next poll:
# wait for every agent to report the pending restart (GET /patroni), not for the servers only.
agent_sees_pending() {
  [ "$(curl -s -m 3 "http://$(t_api_addr "$1")/patroni" | jq -r '.pending_restart')" = true ]
}
for i in 1 2 3; do t_wait 10 "node$i's agent sees the pending restart" agent_sees_pending "$i"; done
ctl restart --pending >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl restart --pending restarts every member ($(tr '\n' ';' <"$T_DIR/out"))" \
  t_eq "$rc:$(grep -c 'restarted in' "$T_DIR/out")" 0:3
t_check "the primary was restarted last" t_eq "$(grep 'restarted in' "$T_DIR/out" | tail -n1 | cut -d: -f1)" "$N"
for i in 1 2 3; do
  t_check "node$i runs again with max_connections 40, started anew" \
    t_eq "$(t_psql "$i" -c 'SHOW max_connections'):$([ "$(started "$i")" != "${before[$i]}" ] && echo new)" 40:new
done
t_check "the primary is still $N" t_eq "$(t_pg_primary 1)" "$N"
t_check "the primary takes writes after its restart" t_psql "$Ni" -c "INSERT INTO t VALUES (101)"
t_check "ctl restart --role primary of a standby is skipped" \
  bash -c "'$T_BIN' ctl --api $(t_api_addr 1) restart node$(( Ni % 3 + 1 )) --role primary | grep -q 'skipped: restart conditions are not satisfied: this member is a replica'"
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
