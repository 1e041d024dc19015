#!/usr/bin/env bash
# What the agent knows of its server comes from the server and the process table (DESIGN.md rule
# 10), checked against the world:
# 1. After a failover and a change of the synchronous set, the new primary's data directory holds
#    no standby.signal, and its guard still fences it when its agent is killed.
# 2. The primary's postmaster and all its children stopped with SIGSTOP for FREEZE_S seconds
#    (default 20), then continued: the agent stays up, at no sampled moment do two servers
#    accept writes, and no acknowledged row is lost.
# 3. The running primary's postmaster.pid deleted: no second postmaster is started, the data
#    directory is left alone, and no second primary appears.
T_PG=1
source "$(dirname "$0")/lib.sh"
FREEZE_S=${FREEZE_S:-20}
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 90 "a primary and two streaming standbys" t_pg_healthy 1 2 3

# Servers that say they accept writes right now; a server that does not answer does not.
writable_count() {
  local i n=0
  for i in 1 2 3; do
    [ "$(PGCONNECT_TIMEOUT=1 timeout -s KILL 2 psql -X -q -A -t -h 127.0.0.1 -p "$(t_pg_port "$i")" \
          -U postgres -d postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ] && n=$((n + 1))
  done
  echo "$n"
}
# The postmasters working in node I's data directory (postmaster.pid or not).
postmasters_of() {
  local dir pid ppid
  dir=$(realpath "$T_DIR/node$1/pgdata")
  for pid in $(pgrep -x postgres); do
    [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$dir" ] || continue
    ppid=$(awk '{print $4}' "/proc/$pid/stat" 2>/dev/null) || continue
    [ "$(readlink "/proc/$ppid/cwd" 2>/dev/null)" = "$dir" ] && [ "$(cat "/proc/$ppid/comm" 2>/dev/null)" = postgres ] && continue
    echo "$pid"
  done
}

# ---- 1. no standby.signal in a promoted primary ----
P=$(t_pg_primary 1); Pi=${P#node}
t_log "kill -9 of $P (agent and postgresql)"
t_kill "$Pi" KILL; t_kill_pg "$Pi"
O=1; [ "$O" = "$Pi" ] && O=2
np() { local p; p=$(t_pg_primary "$O"); [ -n "$p" ] && [ "$p" != "$P" ] && echo "$p"; }
t_wait 60 "a new primary" np
NP=$(np); NPi=${NP#node}
t_start "$Pi"
# The old primary comes back as a standby: the new primary widens its synchronous set.
t_wait 90 "the old primary back as a standby" t_pg_healthy 1 2 3
t_check "the new primary changed its synchronous set after the failover" \
  grep -q "synchronous quorum: synchronous_standby_names = .*$P" "$T_DIR/$NP.log"
t_check "the new primary's data directory holds no standby.signal" \
  test ! -e "$T_DIR/$NP/pgdata/standby.signal"
t_check "the new primary is out of recovery" t_eq "$(t_psql "$NPi" -c 'SELECT pg_is_in_recovery()')" f
PGPID=$(t_pg_pid "$NPi")
t_log "kill -9 of $NP's agent only: its guard must stop postgresql $PGPID"
t_kill "$NPi" KILL
gone=no
for _ in $(seq 1 100); do t_pid_running "$PGPID" || { gone=yes; break; }; sleep 0.02; done
t_check "the guard fenced the promoted primary" t_eq "$gone" yes
t_start "$NPi"
t_wait 90 "a healthy cluster again" t_pg_healthy 1 2 3

# ---- 2. a frozen primary PostgreSQL ----
P=$(t_pg_primary 1); Pi=${P#node}
t_psql "$Pi" -c "CREATE TABLE world (id bigint PRIMARY KEY)"
ACKED="$T_DIR/acked"; : >"$ACKED"
writer() {
  local id=1 deadline=$((SECONDS + 120)) i
  while [ $SECONDS -lt $deadline ] && [ ! -f "$T_DIR/stop" ]; do
    for i in 1 2 3; do
      if PGCONNECT_TIMEOUT=1 timeout -s KILL 4 psql -X -q -A -t -h 127.0.0.1 -p "$(t_pg_port "$i")" \
           -U postgres -d postgres -c "INSERT INTO world VALUES ($id)" >/dev/null 2>&1; then
        echo "$id" >>"$ACKED"; break
      fi
    done
    id=$((id + 1)) # a killed insert may have committed: never the same id twice
    sleep 0.02
  done
}
writer & WPID=$!
trap 'touch "$T_DIR/stop"; wait "$WPID" 2>/dev/null || true; t_cleanup' EXIT
t_wait 10 "acknowledged writes" test -s "$ACKED"
PM=$(t_pg_pid "$Pi")
pids() { echo "$PM"; pgrep -P "$PM"; }
t_log "SIGSTOP of $P's postmaster $PM and its children for $FREEZE_S s"
# shellcheck disable=SC2046
kill -STOP $(pids)
two=0
end=$((SECONDS + FREEZE_S))
while [ $SECONDS -lt $end ]; do
  [ "$(writable_count)" -le 1 ] || two=$((two + 1))
  sleep 0.2
done
# shellcheck disable=SC2046
kill -CONT $(pids) 2>/dev/null || true
for _ in $(seq 1 25); do [ "$(writable_count)" -le 1 ] || two=$((two + 1)); sleep 0.2; done
t_check "the agent of the frozen primary stayed up" t_alive "$Pi"
t_check "at no sampled moment did two servers accept writes" t_eq "$two" 0
t_wait 90 "a healthy cluster after the freeze" t_pg_healthy 1 2 3
touch "$T_DIR/stop"; wait "$WPID" 2>/dev/null || true
NP=$(t_pg_primary 1)
t_check "no acknowledged row lost ($(wc -l <"$ACKED") acknowledged)" t_acked_all "$ACKED" "${NP#node}" world
t_check "no agent crashed" t_absent 'Assertion' "$T_DIR"/node*.log

# ---- 3. postmaster.pid of the running primary deleted ----
P=$(t_pg_primary 1); Pi=${P#node}
PM=$(t_pg_pid "$Pi")
t_log "deleting $P's postmaster.pid (postmaster $PM)"
LOG_AT=$(wc -l <"$T_DIR/$P.log")
rm -f "$T_DIR/$P/pgdata/postmaster.pid"
more=0 two=0 n=0
end=$((SECONDS + 10))
# PostgreSQL itself stops a postmaster whose lock file is gone within a minute (then the agent
# may start it again, which is fine): the window checked is the 10 s after the deletion.
while [ $SECONDS -lt $end ] && [ $n -lt 100 ]; do
  [ "$(postmasters_of "$Pi" | wc -l)" -le 1 ] || more=$((more + 1))
  [ "$(writable_count)" -le 1 ] || two=$((two + 1))
  sleep 0.25
  n=$((n + 1))
done
LOG_END=$(wc -l <"$T_DIR/$P.log")
t_check "no second postmaster was started over the running one" t_eq "$more" 0
t_check "the data directory was left alone" test -f "$T_DIR/$P/pgdata/PG_VERSION"
t_check "no second primary" t_eq "$two" 0
attempts=$(sed -n "$((LOG_AT + 1)),${LOG_END}p" "$T_DIR/$P.log" | grep -cE 'start_primary|start_standby|reinit|clone:|a postmaster runs already' || true)
if t_pid_running "$PM"; then
  t_check "the agent never tried to start, remove or re-clone over it" t_eq "$attempts" 0
else
  # It stopped itself (its lock file gone) within the window: what follows may start it again.
  t_log "postmaster $PM stopped itself within the window; $attempts start attempts after it"
  t_check "nothing was removed or re-cloned" t_eq "$(sed -n "$((LOG_AT + 1)),${LOG_END}p" "$T_DIR/$P.log" | grep -cE 'reinit|clone:' || true)" 0
fi
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
