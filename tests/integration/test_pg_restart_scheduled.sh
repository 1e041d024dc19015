#!/usr/bin/env bash
# Scheduled restarts (POST /restart {"schedule"}, ctl restart --scheduled, DELETE /restart, ctl
# flush restart): refusals name their key; a schedule is shown by ctl list and by /cluster on
# another member; at its time the standby restarts, not before (its PostgreSQL's own
# pg_postmaster_start_time() moves to a time at or after the schedule); a cancelled one and one
# whose condition no longer holds then (role primary on a standby) restart nothing and are gone.
T_PG=1
source "$(dirname "$0")/lib.sh"
t_time_bound 120
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 60 "a primary and two streaming standbys" t_pg_healthy 1 2 3
ctl() { "$T_BIN" ctl --api "$(t_api_addr 1)" --api "$(t_api_addr 2)" --api "$(t_api_addr 3)" "$@"; }
# started I: node I's postmaster start time as its PostgreSQL says, in ms since the epoch.
started() { t_psql "$1" -c 'SELECT (extract(epoch FROM pg_postmaster_start_time()) * 1000)::bigint'; }
in_recovery() { t_psql "$1" -c 'SELECT pg_is_in_recovery()' 2>/dev/null; }
# sched I NAME: the schedule of member NAME in node I's /cluster, or none.
sched() { t_jq "$1" -r ".members[] | select(.name == \"$2\") | .scheduled_restart.schedule // \"none\""; }

P="" A="" B=""
for i in 1 2 3; do
  if [ "$(in_recovery "$i")" = f ]; then P=$i; elif [ -z "$A" ]; then A=$i; else B=$i; fi
done
t_check "one primary and two standbys (asked of PostgreSQL)" test -n "$P" -a -n "$A" -a -n "$B"
t_log "primary node$P, standbys node$A and node$B"
SA=$(started "$A"); SB=$(started "$B"); SP=$(started "$P")

# Refusals, each naming its key; nothing is kept.
out=$(t_api "$A" POST /restart "{\"schedule\":\"$(t_iso $(($(t_now_ms) - 60000)))\"}")
t_check "a time in the past is refused with 422 ($out)" t_eq "${out%% *}" 422
t_check "... naming schedule" t_contains "$out" "schedule: "
out=$(t_api "$A" POST /restart '{"schedule":"2099-01-01T10:00:00"}')
t_check "a time without a zone is refused with 400 ($out)" t_eq "${out%% *}" 400
t_check "... saying a zone is required" t_contains "$out" "a time zone is required"
out=$(t_api "$A" POST /restart '{"schedule":"2099-01-01T10:00:00Z","postgres_version":"fifteen"}')
t_check "a bad postgres_version is refused with 400 ($out)" t_contains "$out" "postgres_version: "
code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' -X DELETE -H 'Content-Type: application/json' "http://$(t_api_addr "$A")/restart")
t_check "an unsigned DELETE is refused (401)" t_eq "$code" 401
out=$(t_api "$A" DELETE /restart)
t_check "DELETE /restart with none scheduled is 404 ($out)" t_eq "${out%% *}" 404
t_check "nothing was kept" t_eq "$(sched "$A" "node$A")" none

# Three schedules a few seconds ahead: node A (ctl, to run), node B with a condition that will
# not hold (role primary), the primary (to be cancelled).
T1=$(($(t_now_ms) + 8000))
ctl restart "node$A" --scheduled "$(t_iso "$T1")" --force >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl restart node$A --scheduled ($(cat "$T_DIR/out"))" t_eq "$rc" 0
t_check "... says it is scheduled" t_contains "$(cat "$T_DIR/out")" "node$A: Restart scheduled at $(t_iso "$T1")"
out=$(t_api "$A" POST /restart "{\"schedule\":\"$(t_iso "$T1")\"}")
t_check "a second schedule on node$A is refused with 409 ($out)" t_eq "${out%% *}" 409
out=$(t_api "$B" POST /restart "{\"schedule\":\"$(t_iso "$T1")\",\"role\":\"primary\"}")
t_check "node$B scheduled with role primary ($out)" t_eq "${out%% *}" 202
out=$(t_api "$P" POST /restart "{\"schedule\":\"$(t_iso "$T1")\"}")
t_check "the primary node$P scheduled ($out)" t_eq "${out%% *}" 202
shown() { [ "$(sched "$P" "node$A")" = "$(t_iso "$T1")" ] && [ "$(sched "$A" "node$B")" = "$(t_iso "$T1")" ]; }
t_wait 5 "the schedules are shown by other members' /cluster" shown
t_check "node$P's /cluster shows node$A's schedule" t_eq "$(sched "$P" "node$A")" "$(t_iso "$T1")"
t_check "node$A's /cluster shows node$B's role condition" \
  t_eq "$(t_jq "$A" -r ".members[] | select(.name == \"node$B\") | .scheduled_restart.role")" primary
ctl list >"$T_DIR/list" 2>&1
t_check "ctl list has the Scheduled restart column" grep -Eq "\| Scheduled restart +\|$" "$T_DIR/list"
t_check "... with node$A's time" grep -q "^| node$A .*| $(t_iso "$T1") |$" "$T_DIR/list"
ctl flush restart "node$P" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl flush restart node$P ($(cat "$T_DIR/out"))" t_eq "$rc" 0
t_check "... says so" t_contains "$(cat "$T_DIR/out")" "Success: flush scheduled restart for member node$P"
t_check "node$P's schedule is gone from /cluster" t_eq "$(sched "$P" "node$P")" none
t_check "node$A's is still there" t_eq "$(sched "$P" "node$A")" "$(t_iso "$T1")"

# Not before its time: one second before, node A's server runs since the same start.
sleep "$(awk -v d=$((T1 - 1000 - $(t_now_ms))) 'BEGIN { printf "%.3f", (d > 0 ? d : 0) / 1000 }')"
t_check "1 s before the time node$A was not restarted" t_eq "$(started "$A")" "$SA"
moved() { local s; s=$(started "$A" 2>/dev/null) && [ -n "$s" ] && [ "$s" != "$SA" ]; }
t_wait 20 "node$A's postmaster starts again" moved
SA2=$(started "$A")
t_log "node$A started again at $SA2 ms, scheduled at $T1 ms"
t_check "node$A started again at or after its time ($SA2 >= $T1)" test "$SA2" -ge "$T1"
t_check "... within 10 s of it" test "$SA2" -lt $((T1 + 10000))
t_check "node$A is a standby again (asked of PostgreSQL)" t_eq "$(in_recovery "$A")" t
t_wait 20 "the cluster is healthy again" t_pg_healthy 1 2 3
t_check "node$A's schedule is gone" t_eq "$(sched "$A" "node$A")" none
t_check "node$B's is gone too" t_eq "$(sched "$A" "node$B")" none
t_check "node$B logged that its condition did not hold" \
  grep -q "the scheduled restart did not run: restart conditions are not satisfied: this member is a replica, not a primary" "$T_DIR/node$B.log"
t_check "node$B was not restarted" t_eq "$(started "$B")" "$SB"
t_check "the primary node$P was not restarted" t_eq "$(started "$P")" "$SP"
t_check "node$P is still the primary (asked of PostgreSQL)" t_eq "$(in_recovery "$P")" f

for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_time_bound_stop
t_done
