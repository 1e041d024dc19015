#!/usr/bin/env bash
# The health checks' contract, as Patroni's REST API documentation states it (README "Health
# checks" lists where raftpg differs on purpose): every path x method x member state, one check
# per cell of the table below, and the GET body's key fields per state. One three-member cluster
# is brought through the states in turn:
#   primary   the Raft leader, PostgreSQL running as primary
#   quorum    a standby in ANY 1 (A, B): one of two voters
#   sync      the only voter left once B is tagged nosync (ANY 1 of 1: every commit needs it)
#   async     B, tagged nosync (reloaded with SIGHUP)
#   lagging   B with replay paused (pg_wal_replay_pause()) and 3 MB written on the primary
#   stopped   B's PostgreSQL stopped by hand in maintenance mode
#   leaderpg  the leader's PostgreSQL stopped by hand in maintenance mode
#   orphan    A then: still the recorded sync standby, running, its WAL receiver without a primary
T_PG=1
source "$(dirname "$0")/lib.sh"
t_time_bound 170
t_pick_ports
for i in 1 2 3; do T_TAGS[$i]="zone: eu"; t_write_conf "$i" 3; t_start "$i"; done

# Method * is GET, HEAD and OPTIONS, one check each. HEAD and OPTIONS on /liveness and
# /readiness answer as GET does (Patroni answers them 503 whatever the state: README).
CONTRACT='
# path                                       method primary quorum sync async lagging stopped leaderpg orphan
/                                            *      200     503    503  503   503     503     503      503
/primary                                     *      200     503    503  503   503     503     503      503
/master                                      *      200     503    503  503   503     503     503      503
/read-write                                  *      200     503    503  503   503     503     503      503
/primary?tag_zone=us                         *      200     503    503  503   503     503     503      503
/leader                                      *      200     503    503  503   503     503     200      503
/leader?tag_zone=us                          *      200     503    503  503   503     503     200      503
/standby-leader                              *      503     503    503  503   503     503     503      503
/standby_leader                              *      503     503    503  503   503     503     503      503
/replica                                     *      503     200    200  200   200     503     503      200
/replica?lag=1MB                             *      503     200    200  200   503     503     503      200
/replica?lag=64MB                            *      503     200    200  200   200     503     503      200
/replica?replication_state=streaming         *      503     200    200  200   200     503     503      503
/replica?replication_state=in%20archive%20recovery * 503   503    503  503   503     503     503      503
/replica?tag_zone=eu                         *      503     200    200  200   200     503     503      200
/replica?tag_zone=us                         *      503     503    503  503   503     503     503      503
/read-only                                   *      200     200    200  200   200     503     503      200
/read-only?lag=1MB                           *      200     200    200  200   503     503     503      200
/read-only?tag_zone=us                       *      503     503    503  503   503     503     503      503
/sync                                        *      503     503    200  503   503     503     503      200
/synchronous                                 *      503     503    200  503   503     503     503      200
/quorum                                      *      503     200    503  503   503     503     503      503
/async                                       *      503     503    503  200   200     503     503      503
/asynchronous                                *      503     503    503  200   200     503     503      503
/async?lag=1MB                               *      503     503    503  200   503     503     503      503
/read-only-sync                              *      200     503    200  503   503     503     503      200
/read-only-synchronous                       *      200     503    200  503   503     503     503      200
/read-only-quorum                            *      200     200    503  503   503     503     503      503
/health                                      *      200     200    200  200   200     503     503      200
/health?tag_zone=us                          *      503     503    503  503   503     503     503      503
/liveness                                    *      200     200    200  200   200     200     200      200
/liveness?tag_zone=us                        *      200     200    200  200   200     200     200      200
/readiness                                   *      200     200    200  200   503     503     503      503
/readiness?tag_zone=us                       *      200     200    200  200   503     503     503      503
/readiness?lag=16MB                          *      200     200    200  200   200     503     503      503
/readiness?mode=write                        *      200     200    200  200   200     503     503      503
/replica?colour=red                          *      400     400    400  400   400     400     400      400
/replica?lag=garbage                         *      400     400    400  400   400     400     400      400
/replica?replication_state=recovering       *      400     400    400  400   400     400     400      400
/replica                                     POST   405     405    405  405   405     405     405      405
'
STATES=(primary quorum sync async lagging stopped leaderpg orphan)

# contract STATE NODE: node NODE answers every row as column STATE says.
contract() {
  local state=$1 i=$2 col=-1 c path method m want
  for c in "${!STATES[@]}"; do [ "${STATES[$c]}" = "$state" ] && col=$c; done
  [ "$col" -ge 0 ] || { t_fail "no column $state"; return; }
  while read -r path method rest; do
    case $path in '' | '#'*) continue ;; esac
    read -ra codes <<<"$rest"
    want=${codes[$col]}
    [ "$method" = "*" ] && method="GET HEAD OPTIONS"
    for m in $method; do
      t_check "$state node$i: $m $path is $want" t_eq "$(t_api_code "$i" "$m" "$path")" "$want"
    done
  done <<<"$CONTRACT"
}

# The key fields of a GET health check's body (Patroni's node document) on node I.
body() {
  curl -s -m 3 "http://$(t_api_addr "$1")/health" | jq -c '{state, role, xlog: (.xlog // {} | keys),
    replication_state,
    paused: .xlog.paused, behind: (if .xlog.received_location == null then null
      else .xlog.received_location - .xlog.replayed_location > 2000000 end),
    sync: (.sync_standby // false), quorum: (.quorum_standby // false), pause: (.pause // false)}'
}
member() { t_jq "$1" -c ".members[] | select(.name == \"node$2\") | $3"; }
# patroni_sync_standby and patroni_quorum_standby in node I's /metrics.
# metric_vals I NAME...: node I's values of the metrics NAME, space-separated, in that order.
metric_vals() {
  local m n out=""
  m=$(curl -s -m 3 "http://$(t_api_addr "$1")/metrics"); shift
  for n in "$@"; do out+="$(awk -v n="$n" 'index($1, n "{") == 1 { print $2 }' <<<"$m") "; done
  echo "${out% }"
}
kind_metrics() {
  curl -s -m 3 "http://$(t_api_addr "$1")/metrics" |
    awk '$1 ~ /^patroni_(sync|quorum)_standby[{]/ { sub(/[{].*/, "", $1); printf "%s=%s ", $1, $2 }'
}

t_wait 60 "a primary and two streaming standbys" t_pg_healthy 1 2 3
P=$(t_pg_primary 1); Pi=${P#node}
A=$((Pi % 3 + 1)); B=$((A % 3 + 1))
t_log "primary node$Pi, standbys node$A and node$B"
voters() { t_jq "$Pi" -c '[.sync.k, (.sync.voters | sort)]'; }
two_voters() { [ "$(voters)" = "[1,[\"node$A\",\"node$B\"]]" ] || [ "$(voters)" = "[1,[\"node$B\",\"node$A\"]]" ]; }
t_wait 20 "ANY 1 of both standbys recorded" two_voters
ssn() { t_psql "$Pi" -c 'SHOW synchronous_standby_names'; }
t_check "the primary's PostgreSQL waits for ANY 1 of both standbys ($(ssn))" \
  t_eq "$(ssn | grep -o 'node[0-9]' | sort | tr -d '\n')" "$(printf 'node%s\n' "$A" "$B" | sort | tr -d '\n')"

contract primary "$Pi"
contract quorum "$A"
contract quorum "$B"
t_check "primary body" t_eq "$(body "$Pi")" \
  '{"state":"running","role":"primary","xlog":["location"],"replication_state":null,"paused":null,"behind":null,"sync":false,"quorum":false,"pause":false}'
t_check "quorum standby body" t_eq "$(body "$A")" \
  '{"state":"running","role":"replica","xlog":["paused","received_location","replayed_location","replayed_timestamp"],"replication_state":"streaming","paused":false,"behind":false,"sync":false,"quorum":true,"pause":false}'
t_check "quorum standby metrics" \
  t_eq "$(kind_metrics "$A")" "patroni_sync_standby=0 patroni_quorum_standby=1 "
t_check "/cluster roles: leader and two quorum standbys" \
  t_eq "$(member "$Pi" "$Pi" .role) $(member "$Pi" "$A" .role) $(member "$Pi" "$B" .role)" \
  "leader quorum_standby quorum_standby"

# B tagged nosync: the set narrows to A alone, which every commit then needs.
T_TAGS[$B]="zone: eu, nosync: true"
t_write_conf "$B" 3
kill -HUP "${T_PIDS[$B]}"
t_wait 20 "ANY 1 of node$A alone recorded" bash -c "[ \"\$(\"$T_BIN\" ctl --api $(t_api_addr "$Pi") list --json | jq -c '[.sync.k, .sync.voters]')\" = '[1,[\"node$A\"]]' ]"
t_wait 10 "the primary's PostgreSQL waits for node$A alone" bash -c "[ \"\$(PGCONNECT_TIMEOUT=3 psql -X -A -t -h 127.0.0.1 -p $(t_pg_port "$Pi") -U postgres -d postgres -c 'SHOW synchronous_standby_names')\" = 'ANY 1 (\"node$A\")' ]"
contract sync "$A"
contract async "$B"
t_check "sync standby body" t_eq "$(body "$A" | jq -c '[.role, .sync, .quorum]')" '["replica",true,false]'
t_check "async standby body" t_eq "$(body "$B" | jq -c '[.role, .sync, .quorum]')" '["replica",false,false]'
t_check "sync standby metrics" \
  t_eq "$(kind_metrics "$A")" "patroni_sync_standby=1 patroni_quorum_standby=0 "
t_check "async standby metrics" \
  t_eq "$(kind_metrics "$B")" "patroni_sync_standby=0 patroni_quorum_standby=0 "
t_check "/cluster roles: sync_standby and replica" \
  t_eq "$(member "$Pi" "$A" .role) $(member "$Pi" "$B" .role)" "sync_standby replica"

# B's replay paused, 3 MB written on the primary: B receives it and does not replay it.
t_psql "$B" -c 'SELECT pg_wal_replay_pause()' >/dev/null
t_psql "$Pi" -c "CREATE TABLE pad AS SELECT g, repeat('x', 200) AS f FROM generate_series(1, 15000) g"
behind_pg() { [ "$(t_psql "$B" -c 'SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) > 2000000')" = t ]; }
t_wait 10 "node$B's PostgreSQL received 2 MB it has not replayed" behind_pg
behind_api() { [ "$(body "$B" | jq -r .behind)" = true ]; }
t_wait 5 "node$B's agent observed it" behind_api
contract lagging "$B"
t_check "lagging standby body" t_eq "$(body "$B")" \
  '{"state":"running","role":"replica","xlog":["paused","received_location","replayed_location","replayed_timestamp"],"replication_state":"streaming","paused":true,"behind":true,"sync":false,"quorum":false,"pause":false}'
lag_shown() { [ "$(member "$Pi" "$B" '[(.lag > 2000000), (.receive_lag < .replay_lag), (.replay_lag == .lag)]')" = '[true,true,true]' ]; }
t_wait 5 "/cluster shows node$B's replay lag" lag_shown
t_check "/cluster: node$B's lag is its replay lag, over 2 MB, above its receive lag" lag_shown

# A restart scheduled in the past: 422, counted as such (raftpg_api_requests_total).
PAST=$(t_iso $(($(t_now_ms) - 3600000)))
t_check "POST /restart scheduled an hour ago is 422" \
  t_eq "$(t_api "$B" POST /restart "{\"schedule\":\"$PAST\"}" | cut -d' ' -f1)" 422
t_check "raftpg_api_requests_total counts it as 422" \
  bash -c "curl -s -m 3 'http://$(t_api_addr "$B")/metrics' | grep -qF 'endpoint=\"/restart\",status=\"422\"} 1'"

# Maintenance mode: what the operator stops stays stopped.
"$T_BIN" ctl --api "$(t_api_addr "$Pi")" pause --wait >"$T_DIR/pause.out" 2>&1 ||
  t_fail "ctl pause --wait: $(cat "$T_DIR/pause.out")"
pg_stop() { "${T_RUNAS[@]}" "$T_PG_BIN/pg_ctl" stop -D "$T_DIR/node$1/pgdata" -m fast -w -t 20 >/dev/null; }
stopped_api() { [ "$(body "$1" | jq -r .state)" = stopped ]; }
pg_stop "$B"
t_check "node$B's postmaster is gone" t_status 1 t_pg_pid "$B"
t_wait 5 "node$B's agent sees its PostgreSQL stopped" stopped_api "$B"
contract stopped "$B"
t_check "stopped standby body" t_eq "$(body "$B" | jq -c '[.state, .pause]')" '["stopped",true]'
t_check "stopped standby metrics: not running, no start time, version, streaming or replay time" \
  t_eq "$(metric_vals "$B" patroni_postgres_running patroni_postmaster_start_time patroni_postgres_server_version patroni_postgres_streaming patroni_xlog_replayed_timestamp)" "0 0 0 0 0"
t_check "/cluster: node$B stopped, no lag" t_eq "$(member "$Pi" "$B" '[.state, .lag]')" '["stopped",null]'
pg_stop "$Pi"
t_check "node$Pi's postmaster is gone" t_status 1 t_pg_pid "$Pi"
t_wait 5 "node$Pi's agent sees its PostgreSQL stopped" stopped_api "$Pi"
contract leaderpg "$Pi"
t_check "stopped leader body" t_eq "$(body "$Pi" | jq -c '[.state, .pause]')" '["stopped",true]'
# A's WAL receiver has no primary to stream from (and no restore_command is set).
streams() { t_psql "$A" -c "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'"; }
not_streaming() { [ "$(streams)" = 0 ]; }
t_wait 10 "node$A's PostgreSQL stopped streaming" not_streaming
orphan_api() { [ "$(body "$A" | jq -c '[.replication_state, .sync]')" = '[null,true]' ]; }
t_wait 5 "node$A's agent sees it" orphan_api
contract orphan "$A"
t_check "standby without a primary: no replication_state (Patroni's without restore_command)" \
  t_eq "$(body "$A")" \
  '{"state":"running","role":"replica","xlog":["paused","received_location","replayed_location","replayed_timestamp"],"replication_state":null,"paused":false,"behind":false,"sync":true,"quorum":false,"pause":true}'
t_check "standby without a primary: patroni_postgres_streaming and _in_archive_recovery 0, still running" \
  t_eq "$(metric_vals "$A" patroni_postgres_streaming patroni_postgres_in_archive_recovery patroni_postgres_running)" "0 0 1"
t_check "an unknown replication_state's refusal names it" \
  t_contains "$(curl -s -m 3 "http://$(t_api_addr "$A")/replica?replication_state=recovering")" "replication_state=recovering"
# A 405 names the methods the path takes (RFC 9110's Allow), signed or not as the path needs.
allow_of() { # allow_of METHOD PATH [signed]: "STATUS ALLOW" of node A's answer
  local auth=()
  [ -z "${3:-}" ] || auth=(-H "Authorization: $("$T_BIN" ctl --api "$(t_api_addr "$A")" sign "$1" "$2" "")")
  curl -s -m 3 -o /dev/null -D - -X "$1" "${auth[@]}" -H "Content-Type: application/json" "http://$(t_api_addr "$A")$2" |
    awk 'NR == 1 { s = $2 } tolower($1) == "allow:" { sub(/^[^:]*: */, ""); sub(/\r$/, ""); a = $0 } END { print s, a }'
}
while IFS='|' read -r m path signed want; do
  [ -n "$m" ] || continue
  t_check "$m $path answers $want" t_eq "$(allow_of "$m" "$path" "$signed")" "$want"
done <<'ALLOW'
POST|/replica||405 GET, HEAD, OPTIONS
DELETE|/health||405 GET, HEAD, OPTIONS
OPTIONS|/cluster||405 GET, HEAD
POST|/metrics|signed|405 GET, HEAD
DELETE|/config|signed|405 GET, HEAD, PATCH, PUT
GET|/switchover||405 POST, DELETE
GET|/restart||405 POST, DELETE
GET|/reload||405 POST
GET|/members/node1||405 DELETE
ALLOW
# raftpg_api_requests_total: the aliases and these statuses apart, not "other".
counted() { curl -s -m 3 "http://$(t_api_addr "$A")/metrics" | grep '^raftpg_api_requests_total{' | grep -F "$1" >/dev/null; }
for c in 'endpoint="/standby_leader",status="503"}' 'endpoint="/read-only-synchronous",status="200"}' \
  'endpoint="/replica",status="405"}' 'endpoint="/replica",status="400"}'; do
  t_check "raftpg_api_requests_total has $c" counted "$c"
done
t_check "an unknown parameter's refusal names it" \
  t_contains "$(curl -s -m 3 "http://$(t_api_addr "$A")/replica?colour=red")" "unknown query parameter colour"
t_check "a malformed value's refusal names it" \
  t_contains "$(curl -s -m 3 "http://$(t_api_addr "$A")/replica?lag=garbage")" "query parameter lag=garbage"

for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_time_bound_stop
t_done
