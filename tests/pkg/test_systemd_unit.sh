#!/usr/bin/env bash
# raftpg.service as built (ExecStart pointed at the binary under test): systemd-analyze verify
# finds nothing to say, systemd-analyze security scores it at most RAFTPG_UNIT_EXPOSURE (2.4
# today, threshold 3.0), the settings the service relies on are there; then the agent under a
# stand-in notification socket: READY=1 and WATCHDOG=1 at half WATCHDOG_USEC, STOPPING=1 on
# SIGTERM, and nothing from any other process (PostgreSQL must not report to the unit).
# Usage: test_systemd_unit.sh RAFTPG_BINARY UNIT_FILE
UNIT_SRC=${2:?usage: test_systemd_unit.sh RAFTPG_BINARY UNIT_FILE}
# shellcheck source=../integration/lib.sh
source "$(dirname "$0")/../integration/lib.sh"
command -v systemd-analyze >/dev/null || { echo "FAIL: systemd-analyze is missing (install systemd)"; exit 1; }

unit="$T_DIR/raftpg.service"
sed "s|^ExecStart=[^ ]*|ExecStart=$T_BIN|" "$UNIT_SRC" >"$unit"

verify_clean() {
  local out
  # --man=no: the man page is installed by the package, not in the build tree.
  out=$(systemd-analyze verify --man=no "$unit" 2>&1) || { echo "$out"; return 1; }
  [ -z "$out" ] || { echo "  systemd-analyze verify said: $out"; return 1; }
}
t_check "systemd-analyze verify accepts the unit without a warning" verify_clean

score=$(systemd-analyze security --offline=true "$unit" 2>/dev/null | sed -n 's/.*Overall exposure level for raftpg.service: \([0-9.]*\).*/\1/p')
t_log "systemd-analyze security: exposure $score"
threshold=${RAFTPG_UNIT_EXPOSURE:-3.0}
within_threshold() {
  systemd-analyze security --offline=true --threshold="$(awk -v t="$threshold" 'BEGIN{print int(t*10)}')" \
    "$unit" >/dev/null 2>&1
}
t_check "exposure $score is at most $threshold" within_threshold

has() { grep -qx -- "$1" "$unit" || { echo "  $unit lacks the line: $1"; return 1; }; }
for line in Type=notify User=postgres KillMode=process ProtectSystem=strict \
            "AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW" \
            "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW" NoNewPrivileges=yes \
            "ExecStart=$T_BIN run -c /etc/raftpg/raftpg.yaml" StateDirectory=raftpg \
            Restart=on-failure WatchdogSec=10 SystemCallFilter=@system-service Nice=-10; do
  t_check "the unit has $line" has "$line"
done

# The agent with PostgreSQL, one member (it bootstraps at once), under a notification socket.
t_pick_ports
T_PG=1
t_write_conf 1 1
python3 "$(dirname "$0")/notify_listen.py" "$T_DIR/notify" 120 >"$T_DIR/notify.out" 2>&1 &
T_PIDS[listener]=$!
t_wait 10 "the notification socket" grep -q listening "$T_DIR/notify.out"
chmod 666 "$T_DIR/notify"
# As root, at the unit's Nice=-10 (absolute, whatever this test's own nice).
if [ ${#T_RUNAS[@]} -gt 0 ]; then
  T_RUNAS=(nice -n $(( -10 - $(nice) )) "${T_RUNAS[@]}")
fi
NOTIFY_SOCKET="$T_DIR/notify" WATCHDOG_USEC=400000 t_start 1
agent=${T_PIDS[1]}
t_wait 10 "READY=1" grep -q " READY=1\$" "$T_DIR/notify.out"
# PostgreSQL itself says it is a primary: it ran with the agent's environment.
t_wait 90 "a primary PostgreSQL" bash -c "[ \"\$(PGCONNECT_TIMEOUT=3 psql -X -q -A -t -h 127.0.0.1 -p $(t_pg_port 1) -U postgres -d postgres -c 'select pg_is_in_recovery()')\" = f ]"
if [ ${#T_RUNAS[@]} -gt 0 ]; then
  # The loop thread keeps the priority; what the agent starts runs at nice 0 (SCHED_RESET_ON_FORK).
  nice_of() { ps -o ni= -p "$1" | tr -d ' '; }
  t_check "the agent's loop thread runs at nice -10" t_eq "$(nice_of "$agent")" -10
  t_check "its PostgreSQL runs at nice 0" t_eq "$(nice_of "$(t_pg_pid 1)")" 0
  guard=$(pgrep -P "$agent" -f ' guard ' | head -1)
  t_check "its guard runs at nice 0" t_eq "$(nice_of "${guard:-0}")" 0
fi
watchdog_pings() { [ "$(grep -c " WATCHDOG=1\$" "$T_DIR/notify.out")" -ge "$1" ]; }
t_wait 10 "ten watchdog pings" watchdog_pings 10
t_kill 1 TERM
t_wait 5 "STOPPING=1 received" grep -q " STOPPING=1\$" "$T_DIR/notify.out"
kill "${T_PIDS[listener]}" 2>/dev/null || true
wait "${T_PIDS[listener]}" 2>/dev/null || true
unset "T_PIDS[listener]"

first() { awk '$3 != "" {print $3; exit}' "$T_DIR/notify.out"; }
t_check "the first notification is READY=1" t_eq "$(first)" READY=1
n_watchdog=$(grep -c " WATCHDOG=1\$" "$T_DIR/notify.out" || true)
t_log "notifications: $(grep -c . "$T_DIR/notify.out") lines, $n_watchdog watchdog pings"
# The run lasts several seconds; with WATCHDOG_USEC=400 ms a ping comes every 200 ms.
t_check "watchdog pings ($n_watchdog) every 200 ms" test "$n_watchdog" -ge 10
t_check "STOPPING=1 on SIGTERM" grep -q " STOPPING=1\$" "$T_DIR/notify.out"
others() { awk -v p="$agent" 'NR > 1 && $2 != p' "$T_DIR/notify.out"; }
t_check "every notification came from the agent (pid $agent), none from PostgreSQL" t_eq "$(others)" ""
t_done
