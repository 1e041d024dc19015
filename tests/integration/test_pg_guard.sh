#!/usr/bin/env bash
# The guard (include/raftpg/guard.h): kill -9 of the primary's agent alone, its PostgreSQL left
# running, the node staying up. The guard must stop that PostgreSQL within the lease (it sees the
# agent's pipe end at once), so that the new primary, promoted no earlier than lease + margin
# after the old leader was last heard, is never a second writer. Also: the guard ignores the
# signals a terminal sends, and leaves with its agent on a clean shutdown.
T_PG=1
source "$(dirname "$0")/lib.sh"
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done

t_wait 60 "a primary and two streaming standbys" t_pg_healthy 1 2 3
P=$(t_pg_primary 1)
Pi=${P#node}
others=(); for i in 1 2 3; do [ "$i" = "$Pi" ] || others+=("$i"); done
S1=${others[0]}
t_log "primary is $P"

# The guard of node I: the one child of its agent started as "raftpg guard".
guard_pid() { pgrep -P "${T_PIDS[$1]}" -f "raftpg guard" | head -1; }
t_check "each agent runs a guard" bash -c "[ -n \"\$1\" ] && [ -n \"\$2\" ] && [ -n \"\$3\" ]" _ \
  "$(guard_pid 1)" "$(guard_pid 2)" "$(guard_pid 3)"
G=$(guard_pid "$Pi")
# The kernel's own record: SigIgn has SIGHUP (bit 0), SIGINT (1) and SIGTERM (14). The kernel
# drops an ignored signal when it is sent, so the guard runs on at once after the kills.
ignores() {
  local m
  m=$(awk '/^SigIgn:/ {print $2}' "/proc/$1/status") || return 1
  [ -n "$m" ] || { echo "  no SigIgn for pid $1"; return 1; }
  [ $((0x$m & 0x4003)) = $((0x4003)) ] || { echo "  SigIgn $m lacks HUP, INT or TERM"; return 1; }
}
t_check "the guard ignores SIGINT, SIGTERM and SIGHUP (SigIgn)" ignores "$G"
kill -INT "$G"; kill -TERM "$G"; kill -HUP "$G"
t_check "the guard runs on after SIGINT, SIGTERM and SIGHUP" t_pid_running "$G"

PGPID=$(t_pg_pid "$Pi")
t_log "kill -9 of $P's agent only (postgresql pid $PGPID stays)"
t0=$(date +%s%N)
t_kill "$Pi" KILL
gone=never
for _ in $(seq 1 300); do
  if ! t_pid_running "$PGPID"; then gone=$((($(date +%s%N) - t0) / 1000000)); break; fi
  sleep 0.01
done
t_log "the old primary's postgresql was gone $gone ms after the kill"
lease=$("$T_BIN" check-config "$T_DIR/node$S1.yaml" | sed -n 's/^fencing: lease=\([0-9]*\)ms.*/\1/p')
t_check "the guard stops the orphaned primary within the lease (${lease:-?} ms): $gone ms" \
  bash -c "[ \"\$1\" != never ] && [ -n \"\$2\" ] && [ \"\$1\" -le \"\$2\" ]" _ "$gone" "$lease"
t_check "the guard says what it did" grep -q "guard: the agent is gone while postgresql may accept writes" \
  "$T_DIR/node$Pi.log"
# True once none of the PIDs runs, within 5 s.
all_gone() {
  local pid n alive
  for n in $(seq 1 100); do
    alive=0
    for pid in "$@"; do t_pid_running "$pid" && alive=1; done
    [ $alive -eq 0 ] && return 0
    sleep 0.05
  done
  return 1
}
t_check "the guard leaves once done" all_gone "$G"

NP=""
for _ in $(seq 1 150); do
  NP=$(t_pg_primary "$S1") || true
  [ -n "$NP" ] && [ "$NP" != "$P" ] && break
  sleep 0.2
done
t_check "another node becomes primary" bash -c "[ -n \"\$1\" ] && [ \"\$1\" != \"\$2\" ]" _ "$NP" "$P"

t_start "$Pi"
t_wait 60 "the old primary back as a standby" t_pg_healthy 1 2 3
t_check "the old primary is a standby now" t_eq "$(t_psql "$Pi" -c 'SELECT pg_is_in_recovery()')" t

# A guard that dies is replaced while its agent runs.
OG=$(guard_pid "$S1")
kill -KILL "$OG"
NG=""
for _ in $(seq 1 50); do
  NG=$(guard_pid "$S1" || true) # none for a moment: pgrep finds nothing
  [ -n "$NG" ] && [ "$NG" != "$OG" ] && break
  sleep 0.1
done
t_check "a guard killed with kill -9 is replaced" \
  bash -c "[ -n \"\$1\" ] && [ \"\$1\" != \"\$2\" ]" _ "$NG" "$OG"
t_check "the agent says it restarted its guard" \
  t_wait 5 "the restart line" grep -q "guard restarted" "$T_DIR/node$S1.log"

mapfile -t guards < <(for i in 1 2 3; do guard_pid "$i"; done)
t_check "three guards before the shutdown" t_eq "${#guards[@]}" 3
for i in 1 2 3; do t_kill "$i" TERM; done
t_check "no guard outlives a clean shutdown" all_gone "${guards[@]}"
t_done
