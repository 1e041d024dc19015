#!/usr/bin/env bash
# A primary whose PostgreSQL keeps crashing with free space (a PANIC loop, a postmaster killed
# again and again): a single crash gets a plain restart as primary, HA_CRASHES_MAX (3) crashes
# within HA_CRASH_WINDOW_MS (60 s) hand over to a standby that holds every acknowledged commit.
# The crashes are real, by SIGKILL, bounded in count and time: of the primary's postmaster (its
# PID from postmaster.pid, checked alive in the process table), and of its walwriter, after
# which the postmaster reinitializes in place. Under numbered writes: another server becomes
# primary (pg_is_in_recovery() = f), no acknowledged row is lost, and once the killer stops the
# old primary rejoins as a standby.
T_PG=1
source "$(dirname "$0")/lib.sh"
trap 'touch "$T_DIR/stop" "$T_DIR/stop_killer"; wait "${WPID:-0}" "${KPID:-0}" 2>/dev/null || true; t_cleanup' EXIT
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 90 "a healthy cluster" t_pg_healthy 1 2 3
P=$(t_pg_primary 1); Pi=${P#node}
t_psql "$Pi" -c "CREATE TABLE crash (id bigint PRIMARY KEY)"

ACKED="$T_DIR/acked"
: >"$ACKED"
t_writer crash 300 &
WPID=$!
acked_more() { [ "$(wc -l <"$ACKED")" -gt "$1" ]; }
t_wait 30 "writes acknowledged" acked_more 20

# The killer, at most 8 kills within 120 s, each of a server that serves as primary on P's port
# in a run not hit before (postmaster and checkpointer PIDs), after 1 s in that run (an
# observation of the agent's). The first kill is of the postmaster (the agent must start it
# again), the second and third of its walwriter: the postmaster stays and reinitializes in place
# (restart_after_crash), as in a PANIC loop; later ones of the postmaster again.
KILLS="$T_DIR/kills"
: >"$KILLS"
# "POSTMASTER CHECKPOINTER" of P's server while it serves as primary, or a failure.
primary_run() {
  local pm rec
  pm=$(t_pg_pid "$Pi" 2>/dev/null) || return 1
  rec=$(PGCONNECT_TIMEOUT=1 timeout -s KILL 3 psql -X -q -A -t -h 127.0.0.1 \
    -p "$(t_pg_port "$Pi")" -U postgres -d postgres -c "SELECT pg_is_in_recovery()::text || ' ' ||
      coalesce((SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'), 0)" \
    2>/dev/null) || return 1
  # Read postmaster.pid again: the answer must come from the server of that postmaster.
  [ "${rec%% *}" = false ] && [ "$(t_pg_pid "$Pi" 2>/dev/null || echo 0)" = "$pm" ] || return 1
  echo "$pm ${rec#* }"
}
killer() {
  local deadline=$((SECONDS + 120)) n=0 run last='' target what
  while [ $SECONDS -lt $deadline ] && [ $n -lt 8 ] && [ ! -f "$T_DIR/stop_killer" ]; do
    run=$(primary_run) || run=''
    if [ -n "$run" ] && [ "$run" != "$last" ]; then
      sleep 1
      if [ "$(primary_run || true)" = "$run" ]; then
        what=postmaster target=${run%% *}
        if [ $n = 1 ] || [ $n = 2 ]; then
          what=walwriter
          target=$(ps --ppid "${run%% *}" -o pid=,args= | awk '/walwriter/ { print $1; exit }')
        fi
        if [ -n "$target" ] && kill -KILL "$target" 2>/dev/null; then
          last=$run
          n=$((n + 1))
          echo "$(date +%s%N) $run $what $target" >>"$KILLS"
        fi
      fi
    fi
    sleep 0.1
  done
}
killer &
KPID=$!
started_at=$(date +%s%N)
kills() { wc -l <"$KILLS" | tr -d ' '; }
two_kills() { [ "$(kills)" -ge 2 ]; }
t_wait 60 "a second kill (the first crash got a restart as primary)" two_kills
pm_of() { sed -n "${1}p" "$KILLS" | awk '{print $2}'; }
t_check "after one crash $P was started again as primary (a new postmaster served as primary)" \
  test "$(pm_of 1)" != "$(pm_of 2)"

new_primary() { local p; p=$(t_pg_primary "$1"); [ -n "$p" ] && [ "$p" != "$P" ] && echo "$p"; }
O=1; [ "$O" = "$Pi" ] && O=2
t_wait 90 "a new primary while $P keeps crashing" new_primary "$O"
touch "$T_DIR/stop_killer"; wait "$KPID" 2>/dev/null || true
NP=$(new_primary "$O"); NPi=${NP#node}
took_ms=$(( ($(date +%s%N) - started_at) / 1000000 ))
t_log "new primary $NP after $(kills) kills of $P's server, $took_ms ms after the killer began"
grep -E "postgresql crashed|TRANSFER|start failed" "$T_DIR/$P.log" | cut -c1-220 || true
t_check "the new primary $NP answers pg_is_in_recovery() = f" \
  t_eq "$(t_psql "$NPi" -c 'SELECT pg_is_in_recovery()')" f
# Each kill waits for an observation of the run it hits: the third crash hands over, no restart.
t_check "$P was killed 3 times (no handover before the bound, no restart after it)" \
  t_eq "$(kills)" 3
cat "$KILLS"
# Gone, or already replaced when the observation after the kill finds the agent's new start.
t_check "$P logged the postmaster's crash" \
  grep -qE "postgresql crashed: the postmaster \(pid=$(pm_of 1)\) that ran as primary is (gone|replaced)" \
  "$T_DIR/$P.log"
t_check "the walwriter kills left the postmaster in place" test "$(pm_of 2)" = "$(pm_of 3)"
t_check "$P counted both crashes in place (the postmaster reinitialized)" t_eq "$(grep -c \
  "postgresql crashed: the postmaster (pid=$(pm_of 2)) that ran as primary reinitialized" \
  "$T_DIR/$P.log")" 2
t_check "the handover names the cause" \
  grep -q "postgresql crashed or failed to start 3 times within 60 s" "$T_DIR/$P.log"
t_check "$P's metric raftpg_postgres_crashes shows the crashes" \
  test "$(t_metric "$Pi" raftpg_postgres_crashes)" -ge 3
n=$(wc -l <"$ACKED")
t_wait 30 "a write acknowledged by the new primary" acked_more "$n"

# The fault is over: the old primary rejoins as a standby of the new one.
t_wait 90 "the old primary back as a standby" t_pg_healthy 1 2 3
t_check "$P's server is a standby (pg_is_in_recovery() = t)" \
  t_eq "$(t_psql "$Pi" -c 'SELECT pg_is_in_recovery()')" t
touch "$T_DIR/stop"; wait "$WPID" 2>/dev/null || true
t_check "no acknowledged row lost ($(wc -l <"$ACKED") acknowledged)" t_acked_all "$ACKED" "$NPi" crash
t_check_states 1 2 3
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
