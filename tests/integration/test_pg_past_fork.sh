#!/usr/bin/env bash
# A standby whose WAL went past the point where the primary's timeline forked from its own: its
# server fetches the new timeline's history, refuses to follow ("new timeline N forked off
# current database system timeline M before current recovery point") and tries again for ever,
# its WAL receiver "streaming" the old timeline again and again. Seen in the chaos suite (a
# standby that had received a record the new primary never got), where it left a one-voter
# synchronous set without a standby. Made here for certain: the old primary, after a failover,
# is started by hand once as a primary (its end-of-recovery checkpoint is WAL past the fork),
# then by hand as a standby of the new primary; then its agent is started. The agent must stop
# it and rewind it (the server's own history file and replay position say it cannot follow),
# and it must stream from the new primary with every row.
T_PG=1
source "$(dirname "$0")/lib.sh"
t_pick_ports
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 60 "a primary and two streaming standbys" t_pg_healthy 1 2 3
P=$(t_pg_primary 1); Pi=${P#node}
t_log "primary is $P"
t_psql "$Pi" -c "CREATE TABLE t (id int)" -c "INSERT INTO t SELECT generate_series(1, 100)"
rows_on() { [ "$(t_psql "$1" -c 'SELECT count(*) FROM t' 2>/dev/null)" = "$2" ]; }
O=1; [ "$O" = "$Pi" ] && O=2
t_wait 20 "the rows on node$O" rows_on "$O" 100

t_log "killing $P's agent and postgresql"
t_kill "$Pi" KILL
t_kill_pg "$Pi"
new_primary() { local p; p=$(t_pg_primary "$O"); [ -n "$p" ] && [ "$p" != "$P" ] && echo "$p"; }
t_wait 60 "a new primary" new_primary
N=$(new_primary); Ni=${N#node}
t_psql "$Ni" -c "INSERT INTO t SELECT generate_series(101, 200)"
t_log "new primary is $N; starting $P by hand, once as a primary, then as a standby of $N"
D=$T_DIR/node$Pi/pgdata
# Its guard stopped the server when the agent died; the lock file goes with the postmaster.
pm_gone() { [ ! -f "$D/postmaster.pid" ] || ! kill -0 "$(head -n1 "$D/postmaster.pid")" 2>/dev/null; }
t_wait 30 "$P's postmaster gone" pm_gone || ps -o pid,ppid,stat,cmd -p "$(head -n1 "$D/postmaster.pid")"
pgctl() { "${T_RUNAS[@]}" "$T_PG_BIN/pg_ctl" -D "$D" -l "$T_DIR/node$Pi.manual.log" -w -t 60 "$@" >/dev/null; }
rm -f "$D/standby.signal"
pgctl start
pgctl stop -m fast
"${T_RUNAS[@]}" touch "$D/standby.signal"
"${T_RUNAS[@]}" bash -c "echo \"primary_conninfo = 'host=127.0.0.1 port=$(t_pg_port "$Ni") user=replicator password=$T_PG_REPL_PASSWORD application_name=$P'\" >>'$D/postgresql.auto.conf'"
pgctl start
stuck() { grep -q "forked off current database system timeline" "$T_DIR/node$Pi.manual.log" "$D/log/"* 2>/dev/null; }
t_wait 30 "$P's server refuses to follow the new timeline" stuck
t_check "$P's server is stuck past the fork" stuck

t_log "starting $P's agent"
LINES=$(wc -l <"$T_DIR/node$Pi.log")
t_start "$Pi"
streaming() { [ "$(t_jq "$Ni" --arg n "$P" '.members[] | select(.name == $n) | .state')" = streaming ] && rows_on "$Pi" 200; }
t_wait 60 "$P streams from $N with every row" streaming
tail -n +$((LINES + 1)) "$T_DIR/node$Pi.log" >"$T_DIR/after.log"
t_check "the agent saw the server past the fork and stopped it" \
  grep -qE "replayed timeline [0-9]+ up to .* past .* where timeline [0-9]+ of $N forked from it: it cannot follow, stopping to rewind" "$T_DIR/after.log"
t_check "it rewound the directory" grep -q "rewind: done, starting as a standby of $N" "$T_DIR/after.log"
t_check "it was not cloned" t_eq "$(grep -cE 'clone: pg_basebackup|moved aside' "$T_DIR/after.log" || true)" 0
t_check "$P streams from $N with every row" streaming
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
