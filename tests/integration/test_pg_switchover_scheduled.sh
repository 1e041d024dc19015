#!/usr/bin/env bash
# Scheduled switchovers (POST /switchover {"scheduled_at"}, ctl switchover --scheduled): refusals
# name their key; a schedule is shown by ctl list, /cluster and /status on every member; a second
# one is refused; DELETE /switchover and ctl flush switchover cancel it (the primary then stays
# when the time passes); a schedule survives a leader change (an immediate switchover to another
# member) and the new leader runs it at, not before, its time; a schedule whose primary no longer
# is the primary at its time is dropped with a log line, as in Patroni; one refused at its time (the
# candidate does not answer) is cleared and not tried again. Who is primary is asked of PostgreSQL
# (pg_is_in_recovery).
T_PG=1
source "$(dirname "$0")/lib.sh"
t_time_bound 240
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 60 "a primary and two streaming standbys" t_pg_healthy 1 2 3
ctl() { "$T_BIN" ctl --api "$(t_api_addr 1)" --api "$(t_api_addr 2)" --api "$(t_api_addr 3)" "$@"; }
# in_recovery I: node I's PostgreSQL's own answer (t or f); psql's error goes to
# $T_DIR/psql_error.I.
in_recovery() { t_psql "$1" -c 'SELECT pg_is_in_recovery()' 2>"$T_DIR/psql_error.$1"; }
is_pg_primary() { [ "$(in_recovery "$1")" = f ]; }
# The member whose PostgreSQL says it is not in recovery, asked of all three (one, or nothing;
# the answers go to stderr then). A server that does not answer says nothing either way, so it is
# asked up to three times, 0.2 s apart, and its last error is shown.
pg_primary() {
  local i a try found="" n=0 answers=""
  for i in 1 2 3; do
    for try in 1 2 3; do
      a=$(in_recovery "$i") || true
      [ -z "$a" ] || break
      [ "$try" = 3 ] || sleep 0.2
    done
    if [ -n "$a" ]; then answers+="node$i=$a "
    else answers+="node$i=none ($(tr '\n' ' ' <"$T_DIR/psql_error.$i")) "; fi
    if [ "$a" = f ]; then found=node$i; n=$((n + 1)); fi
  done
  # Two at once is I1 broken, whatever a wait around this makes of it: kept for the last check.
  [ "$n" -lt 2 ] || echo "$(t_now_ms) $answers" >>"$T_DIR/two_primaries"
  if [ "$n" != 1 ]; then echo "  pg_is_in_recovery: $answers" >&2; return 1; fi
  echo "$found"
}
settled() {
  t_pg_healthy 1 2 3 || return 1
  [ "$(t_jq 1 '[.members[].timeline] | unique | length')" = 1 ]
}
sched_at() { t_jq "$1" -r '.scheduled_switchover.at_ms // "none"'; }

P=$(pg_primary); Pi=${P#node}; A=node$((Pi % 3 + 1)); B=node$(((Pi + 1) % 3 + 1))
t_log "primary $P (asked of PostgreSQL), standbys $A and $B"

# Refusals, each naming its key, nothing recorded.
out=$(t_api "$Pi" POST /switchover "{\"candidate\":\"$A\",\"scheduled_at\":\"$(t_iso $(($(t_now_ms) - 60000)))\"}")
t_check "a time in the past is refused with 412 ($out)" t_eq "${out%% *}" 412
t_check "... naming scheduled_at" t_contains "$out" "scheduled_at: "
out=$(t_api "$Pi" POST /switchover '{"scheduled_at":"2099-01-01T10:00:00"}')
t_check "a time without a zone is refused with 400 ($out)" t_eq "${out%% *}" 400
t_check "... saying a zone is required" t_contains "$out" "scheduled_at: \\\"2099-01-01T10:00:00\\\": a time zone is required"
out=$(t_api "$Pi" POST /switchover '{"scheduled_at":"next tuesday"}')
t_check "a time that does not parse is refused with 400 ($out)" t_contains "$out" "expected ISO 8601"
out=$(t_api "$Pi" POST /switchover "{\"leader\":\"$A\",\"scheduled_at\":\"2099-01-01T10:00:00Z\"}")
t_check "a leader that is not the primary is refused with 412 ($out)" t_eq "${out%% *}" 412
t_check "... naming it" t_contains "$out" "leader: $A is not the primary ($P is)"
out=$(t_api "$Pi" POST /switchover '{"candidate":"node9","scheduled_at":"2099-01-01T10:00:00Z"}')
t_check "an unknown candidate is refused ($out)" t_contains "$out" "candidate: node9 is not a member"
out=$(t_api "$Pi" POST /switchover "{\"candidate\":\"$P\",\"scheduled_at\":\"2099-01-01T10:00:00Z\"}")
t_check "the primary as candidate is refused ($out)" t_contains "$out" "candidate: $P is the primary already"
code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d '{"scheduled_at":"2099-01-01T10:00:00Z"}' "http://$(t_api_addr "$Pi")/switchover")
t_check "an unsigned request is refused (401)" t_eq "$code" 401
code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' -X DELETE -H 'Content-Type: application/json' "http://$(t_api_addr "$Pi")/switchover")
t_check "an unsigned DELETE is refused (401)" t_eq "$code" 401
t_check "nothing was recorded" t_eq "$(sched_at "$Pi")" none
out=$(t_api "$Pi" DELETE /switchover)
t_check "DELETE /switchover with none scheduled is 404 ($out)" t_eq "${out%% *}" 404
t_check "ctl flush switchover with none: says so" t_eq "$(ctl flush switchover 2>&1)" "No pending scheduled switchover"

# Cancelled twice (DELETE, then ctl flush): when the times pass, the primary is the same.
T1=$(($(t_now_ms) + 4000))
out=$(t_api "$Pi" POST /switchover "{\"candidate\":\"$A\",\"scheduled_at\":\"$(t_iso "$T1")\"}")
t_check "a switchover is scheduled through the API: 202 ($out)" t_eq "${out%% *}" 202
t_check "... Switchover scheduled" t_contains "$out" '"message":"Switchover scheduled"'
# A standby applies the entry at the leader's next heartbeat.
shows() { [ "$(sched_at "$1")" = "$2" ]; }
t_wait 5 "$A's /cluster shows it" shows "${A#node}" "$T1"
t_check "$A's /cluster shows it" t_eq "$(sched_at "${A#node}")" "$T1"
out=$(t_api "$Pi" DELETE /switchover)
t_check "DELETE /switchover cancels it: 200 ($out)" t_eq "${out%% *}" 200
t_check "... scheduled switchover deleted" t_contains "$out" "scheduled switchover deleted"
t_check "no schedule left in /cluster" t_eq "$(sched_at "$Pi")" none
T2=$(($(t_now_ms) + 3000))
ctl switchover --candidate "$B" --scheduled "$(t_iso "$T2")" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl switchover --scheduled ($(cat "$T_DIR/out"))" t_eq "$rc" 0
t_check "ctl flush switchover cancels it" t_eq "$(ctl flush switchover 2>&1)" "Success: scheduled switchover deleted"
t_check "no schedule left in /cluster" t_eq "$(sched_at "$Pi")" none
last=$((T1 > T2 ? T1 : T2))
t_poll 10 bash -c "[ \$(date +%s%3N) -gt $((last + 2000)) ]" || true
t_check "2 s after the cancelled times, $P's PostgreSQL is still the primary" t_eq "$(pg_primary)" "$P"
t_check "... and $A's and $B's are standbys" t_eq "$(in_recovery "${A#node}")$(in_recovery "${B#node}")" tt

# A schedule without a leader, to B, survives an immediate switchover to A: A, the new leader,
# runs it at its time.
T3=$(($(t_now_ms) + 14000))
ctl switchover --candidate "$B" --scheduled "$(t_iso "$T3")" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl switchover --scheduled to $B ($(cat "$T_DIR/out"))" t_eq "$rc" 0
t_check "... says when and to whom" t_contains "$(cat "$T_DIR/out")" "Switchover scheduled at $(t_iso "$T3") (from the primary then to $B)"
# ctl list asks node1 first, which may be a standby applying the entry at the next heartbeat.
listed() { ctl list >"$T_DIR/list" 2>&1 && grep -qxF "Switchover scheduled at: $1" "$T_DIR/list"; }
t_wait 5 "ctl list shows the schedule" listed "$(t_iso "$T3")"
t_check "ctl list: Switchover scheduled at $(t_iso "$T3")" grep -qxF "Switchover scheduled at: $(t_iso "$T3")" "$T_DIR/list"
t_check "ctl list: to $B" grep -qxF "                      to: $B" "$T_DIR/list"
t_check "ctl list: no from (any primary)" t_status 1 grep -q "  from: " "$T_DIR/list"
t_wait 5 "$B's /cluster shows it" shows "${B#node}" "$T3"
t_check "$B's /cluster: at and to" t_eq "$(t_jq "${B#node}" -c '.scheduled_switchover | [.at, .to, .from]')" "[\"$(t_iso "$T3")\",\"$B\",null]"
status_at() { curl -s -m 3 "http://$(t_api_addr "$1")/status" | jq -r '.scheduled_switchover.at_ms // "none"'; }
status_shows() { [ "$(status_at "$1")" = "$2" ]; }
t_wait 5 "$A's /status shows it" status_shows "${A#node}" "$T3"
t_check "$A's /status shows it" t_eq "$(status_at "${A#node}")" "$T3"
out=$(t_api "$Pi" POST /switchover "{\"candidate\":\"$A\",\"scheduled_at\":\"$(t_iso $((T3 + 60000)))\"}")
t_check "a second schedule is refused with 409 ($out)" t_eq "${out%% *}" 409
t_check "... saying one is scheduled" t_contains "$out" "a switchover is already scheduled at $(t_iso "$T3")"
t_wait 60 "settled before the immediate switchover" settled
ctl switchover --candidate "$A" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "an immediate switchover to $A ($(cat "$T_DIR/out"))" t_eq "$rc" 0
# The old primary restarts as a standby meanwhile: ask until one server answers as primary.
sole_primary() { [ "$(pg_primary)" = "$1" ]; }
t_wait 5 "$A's PostgreSQL the only primary" sole_primary "$A"
t_check "$A's PostgreSQL is the primary" t_eq "$(pg_primary)" "$A"
sees_leader() { [ "$(t_jq "${A#node}" -r '.raft.leader')" = "$A" ]; }
t_wait 10 "$A leads Raft" sees_leader
t_check "the schedule survived the leader change: $A's /cluster still has it" t_eq "$(sched_at "${A#node}")" "$T3"
if [ "$(t_now_ms)" -lt $((T3 - 2000)) ]; then
  t_wait $(((T3 - $(t_now_ms)) / 1000)) "settled before the scheduled time" settled
fi
# Just before the time: nothing has moved yet.
before=$((T3 - 700))
[ "$(t_now_ms)" -ge "$before" ] || sleep "$(awk -v d=$((before - $(t_now_ms))) 'BEGIN { printf "%.3f", d / 1000 }')"
t_check "0.7 s before the time $A is still the primary and $B a standby (now $(t_now_ms), at $T3)" \
  t_eq "$(in_recovery "${A#node}")$(in_recovery "${B#node}")" ft
promoted=""
for _ in $(seq 1 300); do
  if [ "$(in_recovery "${B#node}")" = f ]; then promoted=$(t_now_ms); break; fi
  sleep 0.1
done
t_check "$B's PostgreSQL left recovery" t_ne "$promoted" ""
t_check "... not before the scheduled time ($promoted >= $T3)" test "${promoted:-0}" -ge "$T3"
t_check "... within 15 s of it ($((${promoted:-0} - T3)) ms after)" test $((${promoted:-0} - T3)) -lt 15000
t_check "$B is the only primary (asked of PostgreSQL)" t_eq "$(pg_primary)" "$B"
t_check "$A ran it: its log says so" grep -q "scheduled switchover at $(t_iso "$T3"): starting" "$T_DIR/$A.log"
t_check "no schedule left" t_eq "$(sched_at "${B#node}")" none

# A schedule from a member that is no longer the primary at its time is dropped (Patroni).
t_wait 60 "settled" settled
T4=$(($(t_now_ms) + 9000))
ctl switchover --leader "$B" --candidate "$P" --scheduled "$(t_iso "$T4")" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "a schedule from $B to $P ($(cat "$T_DIR/out"))" t_eq "$rc" 0
ctl switchover --candidate "$A" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "an immediate switchover to $A ($(cat "$T_DIR/out"))" t_eq "$rc" 0
dropped() { grep -q "the switchover scheduled at $(t_iso "$T4") is from $B, which is not the primary ($A is): dropped" "$T_DIR/$A.log"; }
t_wait $(((T4 - $(t_now_ms)) / 1000 + 10)) "$A drops the schedule" dropped
t_check "$A logged the drop" dropped
t_check "no schedule left" t_eq "$(sched_at "${A#node}")" none
t_check "$A is still the primary (asked of PostgreSQL)" t_eq "$(pg_primary)" "$A"

# A schedule refused at its time (its candidate's agent stopped answering) is cleared and not
# tried again once the candidate is back.
T5=$(($(t_now_ms) + 5000))
ctl switchover --candidate "$B" --scheduled "$(t_iso "$T5")" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "a schedule to $B ($(cat "$T_DIR/out"))" t_eq "$rc" 0
sleep "$(awk -v d=$((T5 - 3000 - $(t_now_ms))) 'BEGIN { printf "%.3f", (d > 0 ? d : 0) / 1000 }')"
kill -STOP "${T_PIDS[${B#node}]}"
not_done() { grep -q "scheduled switchover at $(t_iso "$T5") not done: $B does not answer" "$T_DIR/$A.log"; }
t_wait 15 "$A refuses the switchover to $B at its time" not_done
kill -CONT "${T_PIDS[${B#node}]}"
t_check "$A logged why it was not done" not_done
t_check "no schedule left" t_eq "$(sched_at "${A#node}")" none
t_poll 3 false || true
t_check "3 s later $A is still the primary (asked of PostgreSQL)" t_eq "$(pg_primary)" "$A"
t_check "... and it was started once only" \
  t_eq "$(grep -c "scheduled switchover at $(t_iso "$T5"): starting" "$T_DIR/$A.log")" 1

for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_time_bound_stop
t_check "no two servers ever answered as primaries at once" \
  t_status 1 test -e "$T_DIR/two_primaries"
t_done
