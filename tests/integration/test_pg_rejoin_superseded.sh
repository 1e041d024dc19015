#!/usr/bin/env bash
# A rejoin superseded by a plain start, made to happen (README "The rejoin pipeline"): the killed
# old primary's pg_rewind stops before changing anything and backs off, and while it does the
# member becomes the Raft leader and starts its directory as a standby of nobody to learn its WAL
# position. It must never run as a primary, the member with the newer timeline must become the
# primary again, and the old primary must end up streaming on that timeline with every
# acknowledged row, by a rewind or, if its WAL never went past the fork, without one.
# How it is made: node3 is nofailover, so the old primary P's only successor is the other member
# NP. P's bin_dir holds a pg_rewind that fails as pg_rewind does against a source still starting
# ("the database system is starting up": stopped before changing anything) until the test lets
# the real one run. A voter grants no vote while it follows a live leader, and refuses a candidate
# whose Raft log is behind its own: node3's agent is killed and a change committed without it,
# then NP's agent is frozen and node3's started again, so that node3's log is behind P's and no
# leader can bring it up to date; when NP's node is then killed, node3 cannot win and votes for
# P.
T_PG=1
source "$(dirname "$0")/lib.sh"
t_pick_ports
T_NOFAILOVER[3]=true
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 60 "a healthy cluster" t_pg_healthy 1 2 3
P=$(t_pg_primary 1); Pi=${P#node}
NPi=1; [ "$Pi" = 1 ] && NPi=2
NP=node$NPi
t_log "primary is $P, its successor will be $NP"
t_check "the nofailover member is not the primary" t_ne "$P" node3
t_psql "$Pi" -c "CREATE TABLE w (id bigint PRIMARY KEY)"

# P's bin_dir: the real programs, but a pg_rewind that stops before changing anything until
# $T_DIR/rewind.real exists.
mkdir -p "$T_DIR/pgbin"
for f in "$T_PG_BIN"/*; do ln -s "$f" "$T_DIR/pgbin/${f##*/}"; done
rm "$T_DIR/pgbin/pg_rewind"
cat >"$T_DIR/pgbin/pg_rewind" <<EOF
#!/bin/sh
[ -f "$T_DIR/rewind.real" ] && exec "$T_PG_BIN/pg_rewind" "\$@"
echo "pg_rewind: a first line of the stand-in's output" >&2
echo "pg_rewind: error: connection to server at \"127.0.0.1\", port 1 failed: FATAL:  the database system is starting up" >&2
exit 1
EOF
chmod 755 "$T_DIR/pgbin/pg_rewind"

: >"$T_DIR/acked"
t_writer w 600 &
WPID=$!
# P's server as PostgreSQL reports it, every 200 ms: "t" (in recovery), "f" (a primary) or
# nothing (not running), each change with the time.
watch_p() {
  local last="" r deadline=$((SECONDS + 400))
  while [ $SECONDS -lt $deadline ] && [ ! -f "$T_DIR/stop" ]; do
    r=$(t_psql "$Pi" -c "SELECT pg_is_in_recovery()" 2>/dev/null || true)
    if [ "$r" != "$last" ]; then echo "$(date +%T.%3N) ${r:-down}" >>"$T_DIR/p.recovery"; last=$r; fi
    sleep 0.2
  done
}
: >"$T_DIR/p.recovery"
stop_bg() { touch "$T_DIR/stop"; wait "$WPID" 2>/dev/null || true; [ -z "${WATCH:-}" ] || wait "$WATCH" 2>/dev/null || true; }
trap 'stop_bg; t_cleanup' EXIT
acked() { wc -l <"$T_DIR/acked"; }
acked_after() { [ "$(acked)" -gt "$1" ]; }
t_wait 30 "writes acknowledged" acked_after 10
has_every_row() { t_writer_complete "$1" w; }
# Kills node $1's server, then its agent (before its guard could stop the server cleanly). The
# agent is stopped first for 200 ms: the Raft entries it sent reach both others, so that neither
# survivor's log is ahead of the other's (a voter refuses a candidate whose log is behind).
kill_node() {
  local pgpid
  kill -STOP "${T_PIDS[$1]}"
  sleep 0.2
  pgpid=$(t_pg_pid "$1") || pgpid=""
  [ -n "$pgpid" ] && kill -KILL "$pgpid"
  t_kill "$1" KILL; t_kill_pg "$1"
}

# 1. The primary's node dies; NP takes over.
kill_node "$Pi"
np() { [ "$(t_pg_primary 3)" = "$NP" ]; }
t_wait 60 "$NP the new primary" np
t_wait 30 "a write acknowledged by $NP" acked_after "$(acked)"

# 2. P comes back with the pg_rewind that stops before changing anything: it backs off.
sed -i "s|^  bin_dir: .*|  bin_dir: $T_DIR/pgbin|" "$T_DIR/node$Pi.yaml"
log_from=$(( $(wc -l <"$T_DIR/node$Pi.log") + 1 ))
t_start "$Pi"
WATCH=""
watch_p &
WATCH=$!
since() { tail -n +"$log_from" "$T_DIR/node$Pi.log"; }
since_has() { since | grep -E "$1" >/dev/null; }
backing_off() { since | grep -q 'pg_rewind stopped before changing anything [0-9]* times\? in a row: trying again'; }
t_wait 60 "$P's pg_rewind backing off" backing_off
t_check "$P logged the stop before changing anything" since_has "rejoin: stopped at rewind before changing"
# The failed program's whole output, not its last line alone.
t_check "$P logged pg_rewind's whole output" \
  since_has "rewind failed; its whole output follows \(stage rewind, pg_rewind\)"
t_check "its first line too" since_has "  pg_rewind: pg_rewind: a first line of the stand-in's output$"

# 3. NP's node dies: P, backing off, wins the election and, leader, starts its directory as a
# standby of nobody: the plain start that supersedes the rejoin. First node3's log falls behind.
applied() { t_state_of "$1" | cut -d' ' -f1; }
t_kill 3 KILL
before_change=$(applied "$Pi")
ctl() { "$T_BIN" ctl --api "$(t_api_addr 1)" --api "$(t_api_addr 2)" --api "$(t_api_addr 3)" "$@"; }
ctl edit-config -p log_min_duration_statement=60000 --force -q >"$T_DIR/out" 2>&1 ||
  t_fail "ctl edit-config: $(cat "$T_DIR/out")"
applied_past() { [ "$(applied "$Pi")" -gt "$1" ] 2>/dev/null; }
t_wait 30 "$P applying the change" applied_past "${before_change:-0}"
kill -STOP "${T_PIDS[$NPi]}"
sleep 0.2
t_start 3
node3_started() { [ -n "$(applied 3)" ] && [ "$(applied 3)" != null ]; }
t_wait 30 "node3's agent answering" node3_started
t_log "applied Raft index: $P $(applied "$Pi"), node3 $(applied 3) (not yet caught up)"
lead_from=$(( $(wc -l <"$T_DIR/node$Pi.log") + 1 ))
kill_node "$NPi"
p_leads() { tail -n +"$lead_from" "$T_DIR/node$Pi.log" | grep -q "raft role candidate -> leader"; }
t_wait 30 "$P the Raft leader" p_leads
plain_start() { tail -n +"$lead_from" "$T_DIR/node$Pi.log" | grep -q "start_standby: starting as a standby to learn the wal position"; }
t_check "$P, leader while its rewind backed off, started its directory as a standby" \
  t_poll 30 plain_start
tail -n +"$log_from" "$T_DIR/node$Pi.log" | sed '/start_standby: starting as a standby to learn the wal position/q' >"$T_DIR/before_start.log"
t_check "its rewind had not run: no rewind done before that start" t_absent "rewind: done" "$T_DIR/before_start.log"
in_recovery() { [ "$(t_psql "$Pi" -c "SELECT pg_is_in_recovery()" 2>/dev/null)" = t ]; }
t_check "$P's server runs, in recovery" t_poll 30 in_recovery
sleep 2
t_check "no member is primary without $NP ($(t_pg_primary 3))" test -z "$(t_pg_primary 3)"
touch "$T_DIR/rewind.real"

# 4. NP's node comes back: the newer timeline wins, P follows it.
t_start "$NPi"
t_wait 120 "a healthy cluster again" t_pg_healthy 1 2 3
NOW=$(t_pg_primary 3)
t_log "primary now: $NOW"
t_check "the primary is $NP again" t_eq "$NOW" "$NP"
tl=$(t_psql "$NPi" -c "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int")
rtl=$(t_psql "$Pi" -c "SELECT received_tli FROM pg_stat_wal_receiver WHERE status = 'streaming'")
t_check "$P streams on $NP's timeline ($rtl, $NP's $tl)" t_eq "$rtl" "$tl"
t_wait 30 "a write acknowledged after the return" acked_after "$(acked)"
touch "$T_DIR/stop"; stop_bg
t_check "$NP has every acknowledged row ($(acked))" t_poll 30 has_every_row "$NPi"
t_check "$P has every acknowledged row" t_poll 30 has_every_row "$Pi"
t_log "$P's server as PostgreSQL reported it: $(tr '\n' ' ' <"$T_DIR/p.recovery")"
t_check "$P's server never ran as a primary" t_absent ' f$' "$T_DIR/p.recovery"
since >"$T_DIR/since.log"
t_check "$P was not cloned again" t_absent 'clone: pg_basebackup|reinit:|moved aside' "$T_DIR/since.log"
if since | grep -q "rewind: done"; then
  t_log "$P was rewound after the plain start: $(since | sed '1,/start_standby: starting as a standby to learn the wal position/d' | grep -m1 -E 'stopping to rewind|rewind node[0-9]+: ' | cut -c1-250)"
else
  t_log "$P followed $NP without a rewind (its WAL did not go past the fork)"
fi
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
