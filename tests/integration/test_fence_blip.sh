#!/usr/bin/env bash
# A blip never demotes a healthy primary (DESIGN.md rule 2): the primary's agent is stopped with
# SIGSTOP for BLIP_MS (default 200) ms every 2 s (BLIP_RUNS times, default 15; 60 is the
# two-minute version) while one client session writes through it. With the test's election timeout
# of 500 ms no other node can be elected in that time (nor up to about 250 ms), so the session
# must survive, the postmaster must not restart and the primary must not change; at most the
# fence's soft layer pauses the server for a moment.
T_PG=1
source "$(dirname "$0")/lib.sh"
RUNS=${BLIP_RUNS:-15}
BLIP_MS=${BLIP_MS:-200}
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 90 "a primary and two streaming standbys" t_pg_healthy 1 2 3
P=$(t_pg_primary 1); Pi=${P#node}
t_psql "$Pi" -c "CREATE TABLE blip (id bigint PRIMARY KEY, at timestamptz DEFAULT now())"
PM=$(t_pg_pid "$Pi")
t_log "primary $P, postmaster $PM; $RUNS blips of $BLIP_MS ms, 2 s apart"

t_session_start "$Pi"
BACKEND=$(t_session_backend first)

id=0
for run in $(seq 1 "$RUNS"); do
  kill -STOP "${T_PIDS[$Pi]}"
  sleep "$(printf "0.%03d" "$BLIP_MS")"
  kill -CONT "${T_PIDS[$Pi]}"
  for _ in $(seq 1 18); do
    id=$((id + 1))
    t_session_send "INSERT INTO blip (id) VALUES ($id);" || break
    sleep 0.1
  done
  t_pid_running "$T_SESSION" || { t_log "the session ended during blip $run"; break; }
done
t_session_send "SELECT 'backend ' || pg_backend_pid();" || true
t_session_send "SELECT 'rows ' || count(*) FROM blip;" || true
t_wait 10 "the session's last answer" grep -q '^rows ' "$T_DIR/session.out" || true

t_check "the client session survived every blip" t_eq "$(t_session_backend last)" "$BACKEND"
t_check "every insert was acknowledged" t_eq "$(grep '^rows ' "$T_DIR/session.out")" "rows $id"
t_check "the postmaster never restarted" t_eq "$(t_pg_pid "$Pi")" "$PM"
t_check "the primary never changed" t_eq "$(t_pg_primary 1)" "$P"
t_check "no hard fence on the primary" t_eq "$(grep -c 'fencing: postgresql may accept writes without a lease' "$T_DIR/$P.log")" 0
t_log "soft-layer pauses on $P: $(grep -c 'postgresql paused' "$T_DIR/$P.log"); resumes: $(grep -c 'postgresql resumed' "$T_DIR/$P.log")"
t_session_stop
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
