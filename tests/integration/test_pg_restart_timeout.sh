#!/usr/bin/env bash
# POST /restart "timeout" (Patroni's: a primary that does not start within it is failed over):
# a bad timeout is refused naming the key; a standby restarted with a timeout it meets answers
# 200; the primary restarted with post_auth_delay in its postgresql.auto.conf (its server starts
# but accepts no session for 60 s) gets 503 once the timeout has passed, its agent stops it and
# a standby becomes primary with every committed row; the old primary rejoins as a standby once
# the delay is gone.
T_PG=1
source "$(dirname "$0")/lib.sh"
t_time_bound 240
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 60 "a primary and two streaming standbys" t_pg_healthy 1 2 3
in_recovery() { t_psql "$1" -c 'SELECT pg_is_in_recovery()' 2>/dev/null; }
# restart I BODY: node I's answer to a signed POST /restart, "STATUS BODY" (waits up to 40 s).
restart() {
  local auth
  auth=$("$T_BIN" ctl --api "$(t_api_addr "$1")" sign POST /restart "$2")
  curl -s -m 40 -X POST -H "Authorization: $auth" -H 'Content-Type: application/json' -d "$2" \
    -w ' %{http_code}' "http://$(t_api_addr "$1")/restart" | awk '{ code = $NF; $NF = ""; print code, $0 }'
}
P="" A="" B=""
for i in 1 2 3; do
  if [ "$(in_recovery "$i")" = f ]; then P=$i; elif [ -z "$A" ]; then A=$i; else B=$i; fi
done
t_check "one primary and two standbys (asked of PostgreSQL)" test -n "$P" -a -n "$A" -a -n "$B"
t_log "primary node$P, standbys node$A and node$B"

for body in '{"timeout":0}' '{"timeout":-3}' '{"timeout":"soon"}' '{"timeout":true}' '{"timeout":"90000"}'; do
  out=$(t_api "$P" POST /restart "$body")
  t_check "$body is refused with 400 ($out)" t_eq "${out%% *}" 400
  t_check "... naming timeout" t_contains "$out" "timeout: "
done
"$T_BIN" ctl --api "$(t_api_addr "$A")" restart "node$A" --timeout 5x >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl restart --timeout 5x is refused (exit 2: $(cat "$T_DIR/out"))" t_eq "$rc" 2
t_check "... naming --timeout" t_contains "$(cat "$T_DIR/out")" "--timeout: "

# A standby meets its timeout: the ordinary answer.
out=$(restart "$A" '{"timeout":"30s"}')
t_check "a standby restarted with timeout 30s answers 200 ($out)" t_eq "${out%% *}" 200
t_check "... restarted as a standby" t_contains "$out" "as a standby"
t_wait 30 "the cluster is healthy again" t_pg_healthy 1 2 3
# A scheduled restart keeps its timeout (ctl sends it), shown with the schedule; then cancelled.
"$T_BIN" ctl --api "$(t_api_addr "$B")" restart "node$B" --scheduled "$(t_iso $(($(t_now_ms) + 600000)))" --timeout 2min >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl restart --scheduled --timeout 2min ($(cat "$T_DIR/out"))" t_eq "$rc" 0
t_wait 5 "node$A's /cluster shows node$B's schedule with timeout 120" \
  eval '[ "$(t_jq '"$A"' -r ".members[] | select(.name == \"node'"$B"'\") | .scheduled_restart.timeout")" = 120 ]'
"$T_BIN" ctl --api "$(t_api_addr "$B")" flush restart "node$B" >/dev/null 2>&1
t_wait 5 "the schedule is gone" \
  eval '[ "$(t_jq '"$A"' -r ".members[] | select(.name == \"node'"$B"'\") | .scheduled_restart.schedule // \"none\"")" = none ]'

t_psql "$P" -c "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 1000)"
# Read at the next start only: the server starts, but every session waits 60 s to begin.
t_psql "$P" -c "ALTER SYSTEM SET post_auth_delay = '60s'"
T0=$(t_now_ms)
out=$(restart "$P" '{"timeout":3}')
T1=$(t_now_ms)
t_log "POST /restart {\"timeout\": 3} on node$P answered after $((T1 - T0)) ms: $out"
t_check "the primary's restart answers 503 ($out)" t_eq "${out%% *}" 503
t_check "... saying it did not start within the timeout" t_contains "$out" "did not accept connections within the timeout (3 s)"
t_check "... not before 3 s" test $((T1 - T0)) -ge 3000
newp() { local i; for i in "$A" "$B"; do [ "$(in_recovery "$i")" != f ] || { echo "$i"; return 0; }; done; return 1; }
t_wait 30 "a standby becomes primary" newp
N=$(newp)
t_log "node$N is primary $(($(t_now_ms) - T0)) ms after the request"
t_check "node$P's agent stopped its server for the hand-over" \
  grep -q "did not start within the restart's timeout: stopping it so that node" "$T_DIR/node$P.log"
t_check "node$N has every committed row" t_eq "$(t_psql "$N" -c 'SELECT count(*) FROM t')" 1000
t_check "node$N takes writes" t_psql "$N" -c "INSERT INTO t VALUES (1001)"

# Without the delay (its file edited, the server told to read it) node P rejoins as a standby.
conf="$T_DIR/node$P/pgdata/postgresql.auto.conf"
sed -i '/^post_auth_delay/d' "$conf"
pm=$(t_pg_pid "$P" || true)
[ -z "$pm" ] || kill -HUP "$pm"
t_wait 90 "node$P streams from node$N again" t_pg_healthy 1 2 3
t_check "node$P is a standby" t_eq "$(in_recovery "$P")" t
t_wait 20 "node$P has the row written after the hand-over" \
  eval '[ "$(t_psql '"$P"' -c "SELECT count(*) FROM t")" = 1001 ]'
t_done
