#!/usr/bin/env bash
# PostgreSQL parameters through the dynamic configuration (ctl edit-config -p, PATCH and PUT
# /config): a reload parameter is in force on every member within seconds; a member's own
# postgresql.parameters win over a dynamic value, except for a cluster-wide parameter; a
# restart parameter shows as pending until ctl restart --pending; parameters raftpg owns, names
# PostgreSQL does not know, values it would not read, bad names and values with a line break
# are refused and change nothing; null removes one; PUT replaces the set. A pg_hba list replaces
# pg_hba.conf on every member whose file has none: a role it rejects is refused by each server.
T_PG=1
# No postgresql.pg_hba in the members' files: the dynamic configuration's applies.
T_NO_PG_HBA=1
source "$(dirname "$0")/lib.sh"
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 60 "a primary and two streaming standbys" t_pg_healthy 1 2 3
P=$(t_pg_primary 1); Pi=${P#node}
t_log "primary is $P"
ctl() { "$T_BIN" ctl --api "$(t_api_addr 1)" --api "$(t_api_addr 2)" --api "$(t_api_addr 3)" "$@"; }
show() { t_psql "$1" -c "SHOW $2" 2>/dev/null; }
all_show() { local i; for i in 1 2 3; do [ "$(show "$i" "$1")" = "$2" ] || return 1; done; }
param_of() { curl -s -m 3 "http://$(t_api_addr "$1")/config" | jq -r ".postgresql.parameters[\"$2\"] // \"(none)\""; }

t_check "work_mem starts at PostgreSQL's default" all_show work_mem 4MB
ctl edit-config -p work_mem=8MB --pg shared_buffers=32MB >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl edit-config -p work_mem=8MB --pg shared_buffers=32MB succeeds ($(tr '\n' ';' <"$T_DIR/out"))" t_eq "$rc" 0
t_check "edit-config prints the parameters in force" grep -q '^    work_mem: 8MB$' "$T_DIR/out"
t0=$(date +%s%N)
t_wait 10 "SHOW work_mem is 8MB on every member" all_show work_mem 8MB
t_log "work_mem in force everywhere after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
# shared_buffers is in each member's own postgresql.parameters (16MB): the file wins.
for i in 1 2 3; do
  t_check "node$i keeps its own shared_buffers (16MB), not pending a restart" \
    t_eq "$(t_psql "$i" -c "SELECT setting::int * 8 / 1024 || 'MB ' || pending_restart FROM pg_settings WHERE name = 'shared_buffers'")" "16MB false"
  t_check "node$i's GET /config has work_mem 8MB" t_eq "$(param_of "$i" work_mem)" 8MB
done
t_check "ctl show-config lists work_mem" bash -c "'$T_BIN' ctl --api $(t_api_addr 2) show-config | grep -qx '    work_mem: 8MB'"

# Refused before commit, with the key and the reason; nothing changes.
refused() { # refused WHAT EXPECTED ARGS...
  local what=$1 want=$2 out rc=0; shift 2
  out=$(ctl edit-config "$@" 2>&1) || rc=$?
  [ $rc -eq 1 ] || { echo "  $what: exit $rc: $out"; return 1; }
  t_contains "$out" "$want"
}
t_check "synchronous_standby_names is refused" refused sync \
  "postgresql.parameters.synchronous_standby_names: not settable here: raftpg manages it" -p "synchronous_standby_names=*"
t_check "primary_conninfo is refused" refused conninfo "postgresql.parameters.primary_conninfo: not settable here" -p primary_conninfo=x
t_check "a name PostgreSQL does not know is refused" refused unknown \
  "postgresql.parameters.work_mme: unrecognized configuration parameter" -p work_mme=8MB
t_check "a value PostgreSQL would not read is refused" refused value \
  'postgresql.parameters.work_mem: invalid value "8 apples": expected an integer in units of kB' -p "work_mem=8 apples"
t_check "an enum value PostgreSQL does not have is refused" refused enum \
  'postgresql.parameters.wal_level: invalid value "full" (expected one of: minimal|replica|logical)' -p wal_level=full
t_check "a value below the setting's minimum is refused" refused min \
  'postgresql.parameters.work_mem: invalid value "32kB": 32 kB is outside the valid range 64 .. 2147483647 kB' -p work_mem=32kB
t_check "a value above the setting's maximum is refused" refused max \
  'postgresql.parameters.checkpoint_timeout: invalid value "2d": 172800 s is outside the valid range 30 .. 86400 s' -p checkpoint_timeout=2d
t_check "a name with a space is refused" refused name 'parameter "work mem": name is not a lower-case identifier' -p "work mem=1MB"
t_check "a value with a line break is refused" refused newline \
  "parameter work_mem: value holds a control character (byte 3 is 0x0a)" -p "work_mem=1MB
port = 1"
patch() { # patch BODY: the status of a signed PATCH /config to the primary's agent, body in $T_DIR/body
  curl -s -o "$T_DIR/body" -m 3 -w '%{http_code}' -X PATCH -H 'Content-Type: application/json' \
    -H "Authorization: $("$T_BIN" ctl --api "$(t_api_addr "$Pi")" sign PATCH /config "$1")" -d "$1" "http://$(t_api_addr "$Pi")/config"
}
many=$(jq -cn '{postgresql: {parameters: ([range(33)] | map({key: "ext.p\(.)", value: "1"}) | from_entries)}}')
code=$(patch "$many")
t_check "33 more parameters are refused (400: $(cat "$T_DIR/body"))" \
  t_eq "$code:$(jq -r .error "$T_DIR/body" | cut -d'(' -f1)" \
  "400:postgresql.parameters: at most 32 parameters in the dynamic configuration "
for i in 1 2 3; do
  t_check "node$i: still work_mem 8MB in /config and in PostgreSQL" t_eq "$(param_of "$i" work_mem):$(show "$i" work_mem)" 8MB:8MB
done

# A cluster-wide parameter that needs a restart: the dynamic value wins over the file's 10.
ctl edit-config -p max_wal_senders=12 >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl edit-config -p max_wal_senders=12 succeeds ($(tr '\n' ';' <"$T_DIR/out"))" t_eq "$rc" 0
pending() { [ "$(t_psql "$1" -c "SELECT setting || ' ' || pending_restart FROM pg_settings WHERE name = 'max_wal_senders'")" = "10 true" ]; }
agent_sees_pending() { [ "$(curl -s -m 3 "http://$(t_api_addr "$1")/patroni" | jq -r '.pending_restart')" = true ]; }
for i in 1 2 3; do
  t_wait 10 "node$i: max_wal_senders pending a restart in pg_settings" pending "$i"
  t_wait 10 "node$i's agent reports pending_restart" agent_sees_pending "$i"
done
pending_metric() { curl -s -m 3 "http://$(t_api_addr "$1")/metrics" | awk 'index($1, "patroni_pending_restart{") == 1 { print $2 }'; }
for i in 1 2 3; do t_check "node$i's patroni_pending_restart is 1" t_eq "$(pending_metric "$i")" 1; done
# Every member's view shows every member pending (Patroni's /cluster flag and list column).
cluster_pending() { [ "$(t_jq "$1" -c '[.members[] | .pending_restart == true] | all')" = true ]; }
for i in 1 2 3; do
  t_wait 5 "node$i's /cluster shows every member pending a restart" cluster_pending "$i"
done
list_pending() {
  ctl list -f tsv >"$T_DIR/list" 2>&1 &&
    [ "$(awk -F'\t' 'NR == 1 { for (c = 1; c <= NF; c++) if ($c == "Pending restart") col = c }
                     NR > 1 && col && $col == "*" { n++ } END { print n + 0 }' "$T_DIR/list")" = 3 ]
}
t_check "ctl list has a Pending restart column with * on all three members" list_pending
ctl restart --pending >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl restart --pending restarts every member ($(tr '\n' ';' <"$T_DIR/out"))" \
  t_eq "$rc:$(grep -c 'restarted in' "$T_DIR/out")" 0:3
t_check "max_wal_senders is 12 on every member" all_show max_wal_senders 12
t_wait 30 "a primary and two streaming standbys after the restart" t_pg_healthy 1 2 3
t_check "work_mem is still 8MB after the restart" all_show work_mem 8MB
no_pending_column() { ctl list -f tsv >"$T_DIR/list" 2>&1 && ! head -n 1 "$T_DIR/list" | grep -q "Pending restart"; }
t_wait 10 "ctl list without a Pending restart column once nothing waits" no_pending_column
t_check "ctl list has no Pending restart column once nothing waits" no_pending_column
for i in 1 2 3; do
  t_check "node$i's patroni_pending_restart is 0, as pg_settings has" \
    t_eq "$(pending_metric "$i") $(t_psql "$i" -c 'SELECT count(*) FROM pg_settings WHERE pending_restart')" "0 0"
done
# A standby whose agent stops (and stops its server) starts again with the cluster's values.
S=$(( Pi % 3 + 1 ))
t_kill "$S" TERM
t_check "node$S's server stopped with its agent" t_pg_port_free "$S"
t_start "$S"
t_wait 30 "node$S streams again" t_pg_healthy 1 2 3
t_check "node$S started with max_wal_senders 12, nothing pending" \
  t_eq "$(t_psql "$S" -c "SELECT setting || ' ' || pending_restart FROM pg_settings WHERE name = 'max_wal_senders'"):$(show "$S" work_mem)" "12 false:8MB"

# null removes: PostgreSQL's value comes back.
ctl edit-config -p work_mem=null >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl edit-config -p work_mem=null succeeds ($(tr '\n' ';' <"$T_DIR/out"))" t_eq "$rc" 0
t_wait 10 "SHOW work_mem is back to 4MB on every member" all_show work_mem 4MB
t_check "GET /config no longer has work_mem" t_eq "$(param_of 1 work_mem)" "(none)"

# pg_hba through the cluster: every server refuses the role the new list rejects.
t_psql "$Pi" -c "CREATE ROLE app LOGIN" >/dev/null
as_app() { PGCONNECT_TIMEOUT=3 psql -X -q -A -t -h 127.0.0.1 -p "$(t_pg_port "$1")" -U app -d postgres -c 'SELECT 1' 2>&1 || true; }
app_everywhere() { local i; for i in 1 2 3; do [ "$(as_app "$i")" = 1 ] || return 1; done; }
rejects_app() { local i; for i in 1 2 3; do grep -q 'pg_hba.conf rejects connection' <<<"$(as_app "$i")" || return 1; done; }
t_wait 10 "role app connects to every member under initdb's pg_hba.conf" app_everywhere
code=$(patch '{"postgresql":{"pg_hba":["hosts all all 0.0.0.0/0 trust"]}}')
t_check "a pg_hba line without a connection type is refused (400: $(cat "$T_DIR/body"))" \
  t_eq "$code:$(jq -r .error "$T_DIR/body")" \
  '400:postgresql.pg_hba[0]: a line begins with local, host, hostssl, hostnossl, hostgssenc or hostnogssenc, got "hosts"'
t_check "role app still connects everywhere" app_everywhere
hba='{"postgresql":{"pg_hba":["local all all trust","host all postgres 127.0.0.1/32 trust","host replication all 127.0.0.1/32 trust","host all app 127.0.0.1/32 reject"]}}'
code=$(patch "$hba")
t_check "PATCH /config with a pg_hba list is 200 ($(cat "$T_DIR/body"))" t_eq "$code" 200
t_wait 10 "every member's server rejects role app" rejects_app
t_check "the superuser still connects to every member" all_show max_wal_senders 12
"$T_BIN" ctl --api "$(t_api_addr 3)" show-config >"$T_DIR/out" 2>&1 || true
t_check "ctl show-config lists the pg_hba lines" grep -qx "  - 'host all app 127.0.0.1/32 reject'" "$T_DIR/out"
t_wait 30 "the standbys still stream" t_pg_healthy 1 2 3

# PUT replaces the whole set: shared_buffers goes, effective_cache_size comes.
body='{"synchronous_mode":"quorum","postgresql":{"parameters":{"max_wal_senders":12,"effective_cache_size":"200MB"}}}'
code=$(curl -s -o "$T_DIR/body" -m 3 -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
  -H "Authorization: $("$T_BIN" ctl --api "$(t_api_addr "$Pi")" sign PUT /config "$body")" -d "$body" "http://$(t_api_addr "$Pi")/config")
t_check "PUT /config is 200 ($(cat "$T_DIR/body"))" t_eq "$code" 200
params_are() { [ "$(curl -s -m 3 "http://$(t_api_addr "$1")/config" | jq -c '.postgresql.parameters')" = "$2" ]; }
for i in 1 2 3; do
  t_wait 5 "node$i's GET /config has exactly the parameters PUT gave" \
    params_are "$i" '{"effective_cache_size":"200MB","max_wal_senders":"12"}'
done
t_wait 10 "SHOW effective_cache_size is 200MB on every member" all_show effective_cache_size 200MB
t_check "PUT without pg_hba leaves every pg_hba.conf as last written (app still rejected)" rejects_app
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
