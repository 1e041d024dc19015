#!/usr/bin/env bash
# A data directory pg_rewind cannot bring back (its WAL deleted after a kill -9 of the primary
# node) is never deleted by default (README "Cloning again, the last resort"):
# 1. the first time it is moved aside (DATA_DIR.aside, the reason in DATA_DIR.aside.reason) and
#    the member cloned again;
# 2. the second time, with the first one still there, the agent refuses: the directory stays as
#    it is, the earlier one and its reason are untouched, the member does not stream, the log and
#    GET /status say what to do; once the operator removes the earlier one, it is cloned again;
# 3. with postgresql.remove_data_directory_on_rewind_failure: true (Patroni's key) it is deleted
#    and cloned again, nothing moved aside.
# Every time the member ends up streaming with every row.
T_PG=1
source "$(dirname "$0")/lib.sh"
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
ctl() { "$T_BIN" ctl --api "$(t_api_addr 1)" --api "$(t_api_addr 2)" --api "$(t_api_addr 3)" "$@"; }
t_wait 60 "a healthy cluster" t_pg_healthy 1 2 3
P=$(t_pg_primary 1); Pi=${P#node}
t_log "the member whose rewinds fail: $P"
O=1; [ "$O" = "$Pi" ] && O=2
t_psql "$Pi" -c "CREATE TABLE t (id int PRIMARY KEY)"
ROWS=0
add_rows() { t_psql "$1" -c "INSERT INTO t SELECT generate_series($((ROWS + 1)), $((ROWS + 100)))"; ROWS=$((ROWS + 100)); }
rows_on() { [ "$(t_psql "$1" -c 'SELECT count(*) FROM t' 2>/dev/null)" = "$ROWS" ]; }
streams() { [ "$(t_jq "$O" --arg n "$P" '.members[] | select(.name == $n) | .state')" = streaming ]; }
D="$T_DIR/node$Pi/pgdata"

# Kills $P (a primary) with its server, deletes its WAL, waits for another primary and adds rows
# there; the caller restarts it.
fail_rewind_of_p() {
  local np
  t_kill "$Pi" KILL; t_kill_pg "$Pi"
  rm -f "$D/pg_wal/"0000*
  np() { local p; p=$(t_pg_primary "$O"); [ -n "$p" ] && [ "$p" != "$P" ] && echo "$p"; }
  t_wait 60 "a primary other than $P" np
  NP=$(np); NPi=${NP#node}
  add_rows "$NPi"
  FROM=$(( $(wc -l <"$T_DIR/node$Pi.log") + 1 ))
}
since() { tail -n +"$FROM" "$T_DIR/node$Pi.log"; }
since_has() { since | grep -E "$1" >/dev/null; }
# Makes $P the primary again (a switchover to it), for its next kill.
p_primary_again() {
  local rc n
  t_wait 60 "a healthy cluster before the switchover" t_pg_healthy 1 2 3
  # A primary that has just recorded its synchronous set is not settled yet (503): asked again.
  for n in 1 2 3 4 5; do
    ctl switchover --candidate "$P" --force >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
    [ "$rc" = 0 ] || ! grep -q "settled primary" "$T_DIR/out" || { sleep 2; continue; }
    break
  done
  t_check "ctl switchover --candidate $P ($(tr '\n' ';' <"$T_DIR/out"))" t_eq "$rc" 0
  p_is_primary() { [ "$(t_pg_primary "$O")" = "$P" ]; }
  t_wait 60 "$P primary again" p_is_primary
  t_wait 60 "a healthy cluster" t_pg_healthy 1 2 3
}
add_rows "$Pi"
t_wait 30 "the standbys caught up" t_pg_healthy 1 2 3

# 1. Moved aside once.
fail_rewind_of_p
t_start "$Pi"
t_wait 90 "$P cloned again and streaming" streams
t_check "its rewind failed" since_has "rewind failed"
t_check "it was moved aside" since_has "reinit: data directory .* moved aside"
t_check "the moved directory is whole" test -f "$D.aside/PG_VERSION"
t_check "the reason is beside it" grep -qE "^reason: (pg_rewind|crash-recover) failed" "$D.aside.reason"
t_check "the clone has every row" t_poll 30 rows_on "$Pi"
REASON=$(sha256sum <"$D.aside.reason")
ASIDE_ID=$(stat -c %i "$D.aside")

# 2. Refused the second time, until the operator removes the first.
p_primary_again
fail_rewind_of_p
DIR_ID=$(stat -c %i "$D")
t_start "$Pi"
refused() { since_has "must clone again, but a data directory moved aside earlier is still there: .*: $D.aside$"; }
t_wait 90 "$P refusing a second move aside" refused
sleep 3
t_check "its directory is still in place, the same one" t_eq "$(stat -c %i "$D" 2>/dev/null)" "$DIR_ID"
since >"$T_DIR/second.log"
t_check "no clone and no removal after the refusal" \
  t_absent 'clone: pg_basebackup|moved aside to|reinit: removing' "$T_DIR/second.log"
t_check "the earlier directory is untouched" t_eq "$(stat -c %i "$D.aside")" "$ASIDE_ID"
t_check "its reason too" t_eq "$(sha256sum <"$D.aside.reason")" "$REASON"
t_check "$P does not stream" test "$(t_jq "$O" --arg n "$P" '.members[] | select(.name == $n) | .state')" != streaming
status_says() {
  curl -s -m 2 "http://$(t_api_addr "$Pi")/status" | jq -r '[.postgresql.rejoin.error, .postgresql.detail, .postgresql.rejoin_error] | join(" ")' |
    grep -q "look at it and remove it"
}
t_check "GET /status says what to do" t_poll 10 status_says
t_log "the operator removes the earlier directory"
rm -rf "$D.aside" "$D.aside.reason"
t_wait 90 "$P cloned again and streaming" streams
t_check "the second failed directory was moved aside in its turn" test -f "$D.aside/PG_VERSION"
t_check "the clone has every row" t_poll 30 rows_on "$Pi"

# 3. Under remove_data_directory_on_rewind_failure: deleted, nothing moved aside.
rm -rf "$D.aside" "$D.aside.reason"
p_primary_again
fail_rewind_of_p
sed -i "s|^  bin_dir: .*|&\n  remove_data_directory_on_rewind_failure: true|" "$T_DIR/node$Pi.yaml"
t_start "$Pi"
t_wait 90 "$P cloned again and streaming" streams
t_check "its directory was deleted under the key" \
  since_has "reinit: removing data directory .*\(postgresql.remove_data_directory_on_rewind_failure\)"
t_check "nothing was moved aside" test ! -e "$D.aside"
t_check "the clone has every row" t_poll 30 rows_on "$Pi"
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
