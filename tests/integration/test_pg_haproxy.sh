#!/usr/bin/env bash
# The health checks as load balancers use them, through a real haproxy with three listeners:
# - template: Patroni's template verbatim (`option httpchk OPTIONS /master`, `http-check expect
#   status 200`, `default-server inter 3s fall 3 rise 2 on-marked-down shutdown-sessions`);
# - primary: `option httpchk` with no path (OPTIONS /), checks scaled down to 300 ms, fall 2, rise 1;
# - replicas: `option httpchk OPTIONS /replica`, the same fast checks.
# Writes go to the primary through both write listeners and reads to the standbys, before and
# after a kill -9 of the primary's node, with no acknowledged write lost and no write refused as
# read-only (SQLSTATE 25006, a standby behind the listener) through either write listener. Then
# Patroni's query filters on a standby whose replay is paused: ?lag= answers from replayed WAL,
# /cluster shows the lag, malformed queries are refused.
T_PG=1
source "$(dirname "$0")/lib.sh"
command -v haproxy >/dev/null || { echo "FAIL: haproxy is not installed (scripts/install-deps.sh)"; exit 1; }
t_pick_ports
RW=$((T_BASE + 31)) RO=$((T_BASE + 32)) TPL=$((T_BASE + 33))
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 60 "a primary and two streaming standbys" t_pg_healthy 1 2 3
P=$(t_pg_primary 1); Pi=${P#node}
t_log "primary is $P"

servers() {
  local i
  for i in 1 2 3; do
    echo "    server node$i $(t_pg_addr "$i") maxconn 100 check port $((T_BASE + 20 + i))"
  done
}
cat >"$T_DIR/haproxy.cfg" <<EOF
global
    maxconn 200
defaults
    mode tcp
    retries 2
    timeout client 30m
    timeout connect 2s
    timeout server 30m
    timeout check 2s
listen template
    bind 127.0.0.1:$TPL
    option httpchk OPTIONS /master
    http-check expect status 200
    default-server inter 3s fall 3 rise 2 on-marked-down shutdown-sessions
$(servers)
listen primary
    bind 127.0.0.1:$RW
    option httpchk
    http-check expect status 200
    default-server inter 300ms fall 2 rise 1 on-marked-down shutdown-sessions
$(servers)
listen replicas
    bind 127.0.0.1:$RO
    balance roundrobin
    option httpchk OPTIONS /replica
    http-check expect status 200
    default-server inter 300ms fall 2 rise 1 on-marked-down shutdown-sessions
$(servers)
EOF
haproxy -c -q -f "$T_DIR/haproxy.cfg" || { t_fail "haproxy rejects its configuration"; t_done; }
haproxy -db -f "$T_DIR/haproxy.cfg" >"$T_DIR/haproxy.log" 2>&1 &
HAPROXY=$!
WRITERS=()
t_before_rm() {
  touch "$T_DIR/stop"
  kill "$HAPROXY" "${WRITERS[@]}" 2>/dev/null
  wait "$HAPROXY" "${WRITERS[@]}" 2>/dev/null
}

via() { PGCONNECT_TIMEOUT=2 timeout -s KILL 5 psql -X -q -A -t -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2" 2>/dev/null; }
rw_is_primary() { [ "$(via "${1:-$RW}" 'SELECT pg_is_in_recovery()')" = f ]; }
# haproxy starts every server as up, to be taken out by its first failed check: wait until its
# own log says the standbys left both write listeners and the primary the read one.
checked() {
  local i
  for i in 1 2 3; do
    if [ "$i" = "$Pi" ]; then
      grep -q "Server replicas/node$i is DOWN" "$T_DIR/haproxy.log" || return 1
    else
      grep -q "Server primary/node$i is DOWN" "$T_DIR/haproxy.log" || return 1
      grep -q "Server template/node$i is DOWN" "$T_DIR/haproxy.log" || return 1
    fi
  done
}
t_wait 20 "haproxy's checks took the standbys out of the write listeners" checked
t_wait 15 "haproxy routes writes to the primary" rw_is_primary
t_check "writes through haproxy reach the primary" rw_is_primary
t_check "writes through Patroni's template reach the primary" rw_is_primary "$TPL"
t_check "reads through haproxy reach a standby" t_eq "$(via "$RO" 'SELECT pg_is_in_recovery()')" t
S=$(( Pi % 3 + 1 ))
t_api_codes <<EOF
$Pi OPTIONS /        200 the primary
$S  OPTIONS /        503 a standby
$S  GET     /        503 a standby
$S  HEAD    /replica 200 a standby
EOF

# Numbered writes through both write listeners while the primary's node dies: ids from 1 through
# the no-path listener, from 1000001 through the template's. Every failure's error is kept, with
# its SQLSTATE (VERBOSITY verbose), in ERRS; 25006 is a write that reached a standby.
via "$RW" 'CREATE TABLE t (id int PRIMARY KEY)' >/dev/null
ACKED="$T_DIR/acked"; : >"$ACKED"; ERRS="$T_DIR/write-errors"; : >"$ERRS"
ACKED_T="$T_DIR/acked-template"; : >"$ACKED_T"; ERRS_T="$T_DIR/write-errors-template"; : >"$ERRS_T"
insert() { # insert PORT ID: succeeds, or fails printing the error on one line
  local err
  err=$(PGCONNECT_TIMEOUT=2 timeout -s KILL 5 psql -X -q -A -t -h 127.0.0.1 -p "$1" -U postgres \
          -d postgres -c '\set VERBOSITY verbose' -c "INSERT INTO t VALUES ($2)" 2>&1 >/dev/null) ||
    { echo "${err//$'\n'/ }"; return 1; }
}
# The count below can see a write that reached a standby: one sent to a standby directly.
replayed_t() { [ "$(via "$(t_pg_port "$S")" "SELECT to_regclass('t') IS NOT NULL")" = t ]; }
t_wait 10 "table t on the standby node$S" replayed_t
t_check "a write sent to a standby is refused with SQLSTATE 25006" \
  t_contains "$(insert "$(t_pg_port "$S")" 0)" " 25006: "
writer() { # writer PORT FIRST_ID ACKED ERRS
  local n=$2 deadline=$((SECONDS + 120)) err
  while [ $n -lt $(($2 + 100000)) ] && [ $SECONDS -lt $deadline ] && [ ! -f "$T_DIR/stop" ]; do
    n=$((n + 1))
    if err=$(insert "$1" "$n"); then
      echo "$n" >>"$3"
    else
      echo "$n $err" >>"$4"
    fi
  done
}
writer "$RW" 0 "$ACKED" "$ERRS" & WRITER=$!
writer "$TPL" 1000000 "$ACKED_T" "$ERRS_T" & WRITER_T=$!
WRITERS=("$WRITER" "$WRITER_T")
acked() { [ "$(wc -l <"${2:-$ACKED}")" -ge "$1" ]; }
t_wait 30 "writes acknowledged through haproxy before the kill" acked 20
t_wait 30 "writes acknowledged through Patroni's template before the kill" acked 20 "$ACKED_T"
t_log "kill -9 of $P's agent and PostgreSQL"
t_kill "$Pi" KILL; t_kill_pg "$Pi"
new_primary() { local i; for i in 1 2 3; do [ "$i" = "$Pi" ] && continue; p=$(t_pg_primary "$i"); [ -n "$p" ] && [ "$p" != "$P" ] && return 0; done; return 1; }
t_wait 30 "a new primary" new_primary
t_promoted=$SECONDS
before=$(wc -l <"$ACKED") before_t=$(wc -l <"$ACKED_T")
acked_after() { [ "$(wc -l <"$ACKED")" -gt $((before + 20)) ]; }
acked_after_t() { [ "$(wc -l <"$ACKED_T")" -gt $((before_t + 20)) ]; }
t_wait 30 "writes acknowledged through haproxy after the failover" acked_after
# inter 3s, rise 2: the new primary is taken in two checks after its agent calls it primary;
# the dead one leaves after three failed checks (fall 3).
first_t() { [ "$(wc -l <"$ACKED_T")" -gt "$before_t" ]; }
t_wait 30 "a write acknowledged through Patroni's template after the failover" first_t
t_log "writes resumed through the template $((SECONDS - t_promoted)) s after the new primary was seen"
t_wait 30 "writes acknowledged through Patroni's template after the failover" acked_after_t
t_log "20 more acknowledged through the template $((SECONDS - t_promoted)) s after it"
touch "$T_DIR/stop"; wait "$WRITER" "$WRITER_T"
t_check "writes go on through haproxy after the failover ($(wc -l <"$ACKED") acknowledged)" acked_after
t_check "writes go on through Patroni's template after the failover ($(wc -l <"$ACKED_T") acknowledged)" acked_after_t
t_check "haproxy's write port reaches the new primary" rw_is_primary
t_check "Patroni's template reaches the new primary" rw_is_primary "$TPL"
ro=$(grep -c ' 25006: ' "$ERRS" || true)
t_check "no write through option httpchk (OPTIONS /) reached a standby: 0 of $(($(wc -l <"$ERRS") + $(wc -l <"$ACKED"))) refused as read-only (SQLSTATE 25006)" t_eq "$ro" 0
ro_t=$(grep -c ' 25006: ' "$ERRS_T" || true)
t_check "no write through Patroni's template reached a standby: 0 of $(($(wc -l <"$ERRS_T") + $(wc -l <"$ACKED_T"))) refused as read-only (SQLSTATE 25006)" t_eq "$ro_t" 0
[ "$ro" = 0 ] && [ "$ro_t" = 0 ] || grep ' 25006: ' "$ERRS" "$ERRS_T" | head -n 5
t_log "failed writes: $(wc -l <"$ERRS") through OPTIONS /, $(wc -l <"$ERRS_T") through the template (connections cut or refused during the failover)"
lost=$(via "$RW" "SELECT count(*) FROM unnest(ARRAY[$(cat "$ACKED" "$ACKED_T" | paste -sd,)]::int[]) a(id) WHERE NOT EXISTS (SELECT 1 FROM t WHERE t.id = a.id)")
t_check "no acknowledged write lost (of $(cat "$ACKED" "$ACKED_T" | wc -l))" t_eq "$lost" 0
t_start "$Pi"
t_wait 60 "the old primary back as a standby" t_pg_healthy 1 2 3
P2=$(t_pg_primary "$Pi"); P2i=${P2#node}

# Replay paused on a standby, 3 MB of WAL behind: ?lag= counts what it has not replayed.
S=$(( P2i % 3 + 1 ))
t_psql "$S" -c 'SELECT pg_wal_replay_pause()' >/dev/null
via "$RW" "CREATE TABLE pad AS SELECT g, repeat('x', 200) AS f FROM generate_series(1, 15000) g" >/dev/null
lagging() { [ "$(t_api_code "$S" GET '/replica?lag=1MB')" = 503 ]; }
t_wait 10 "node$S lags 1 MB by replay" lagging ||
  curl -s -m 3 "http://$(t_api_addr "$S")/status" | jq -c '.postgresql | {wal_position, replay_position}'
t_check "/replica?lag=1MB is 503 with replay paused 3 MB behind" lagging
# The primary's position may be newer than node$S's own observation of what it received (200 ms).
received_all() { [ "$(t_api_code "$S" GET '/readiness?mode=write')" = 200 ]; }
t_wait 5 "node$S's observation shows the WAL received" received_all || true
t_api_codes <<EOF
$S GET /replica                 200 no lag asked: still up
$S GET /replica?lag=64MB        200
$S GET /readiness               503 apply lag over 1 MB
$S GET /readiness?mode=write    200 everything received
EOF
# /cluster is built from observations up to a poll old (200 ms observer, 250 ms peer polls).
cluster_lag() { t_jq "$P2i" ".members[] | select(.name == \"node$S\") | .lag"; }
lag_shown() { [ "$(cluster_lag)" -gt 2000000 ] 2>/dev/null; }
t_wait 5 "/cluster on $P2 shows node$S's replay lag" lag_shown
lag=$(cluster_lag)
t_check "/cluster shows node$S's replay lag ($lag bytes) over 2 MB" test "${lag:-0}" -gt 2000000
# Patroni's node document and /cluster's fields while replay is paused.
doc() { curl -s -m 3 "http://$(t_api_addr "$1")/patroni"; }
t_check "/patroni on node$S: a paused, streaming replica" \
  t_eq "$(doc "$S" | jq -c '[.role, .state, .xlog.paused, .replication_state, (.xlog.received_location > .xlog.replayed_location), .patroni.scope]')" \
  '["replica","running",true,"streaming",true,"itest"]'
t_check "/patroni on the primary: role, location, two standbys, system identifier" \
  t_eq "$(doc "$P2i" | jq -c '[.role, (.xlog.location > 0), (.replication | length), (.database_system_identifier | length > 0), .cluster_unlocked, .server_version >= 150000]')" \
  '["primary",true,2,true,false,true]'
t_check "GET /replica's body is the /patroni document" \
  t_eq "$(curl -s -m 3 "http://$(t_api_addr "$S")/replica" | jq -r '.role')" replica
# The commit that made the lag was acknowledged by one voter of ANY 1, perhaps the other standby:
# node$S receives it on its own time, and /cluster shows that up to a poll later.
received() {
  t_cluster "$P2i" | jq -e ".members[] | select(.name == \"node$S\") | .receive_lag < .replay_lag" >/dev/null
}
t_wait 10 "/cluster on $P2 shows node$S received what it has not replayed" received
m=$(t_cluster "$P2i" | jq -c ".members[] | select(.name == \"node$S\")")
t_check "/cluster: node$S's receive_lag is below its replay_lag, tags shown" \
  t_eq "$(jq -c '[(.receive_lag < .replay_lag), .tags.nofailover, .tags.noloadbalance]' <<<"$m")" '[true,false,false]'
metric() { curl -s -m 3 "http://$(t_api_addr "$1")/metrics" | awk -v n="$2" '$1 ~ "^"n"[{]" { print $2; exit }'; }
t_check "patroni_xlog_paused is 1 on node$S" t_eq "$(metric "$S" patroni_xlog_paused)" 1
t_check "the primary reports node$S's replay lag per standby" \
  test "$(curl -s -m 3 "http://$(t_api_addr "$P2i")/metrics" | awk -v s="standby=\"node$S\"" '$1 ~ /^raftpg_standby_replay_lag_bytes/ && index($1, s) { printf "%d", $2 }')" -gt 2000000
t_check "the primary counts haproxy's checks (raftpg_api_requests_total, endpoint /, status 200)" \
  test "$(curl -s -m 3 "http://$(t_api_addr "$P2i")/metrics" | awk '$1 ~ /^raftpg_api_requests_total[{]/ && index($1, "endpoint=\"/\",status=\"200\"") { print int($2) }')" -gt 0
t_psql "$S" -c 'SELECT pg_wal_replay_resume()' >/dev/null
caught_up() { [ "$(t_api_code "$S" GET '/replica?lag=1MB')" = 200 ]; }
t_wait 20 "node$S caught up" caught_up
t_check "/replica?lag=1MB is 200 again once replayed" caught_up

# Patroni's other filters and paths, and bad queries.
t_api_codes <<EOF
$S   GET  /replica?lag=garbage                  400 refused
$S   GET  /replica?colour=red                   400 an unknown parameter is refused
$S   GET  /replica?tag_nosync=false             200
$S   GET  /replica?tag_zone=eu                  503 no such tag
$S   GET  /replica?replication_state=streaming  200
$P2i GET  /standby-leader                       503 no standby cluster
$P2i GET  /read-only-quorum                     200 the primary
$S   POST /replica                              405 refused
EOF
t_check "the refusal names the parameter" \
  t_contains "$(curl -s -m 3 "http://$(t_api_addr "$S")/replica?lag=garbage")" "lag=garbage"
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
