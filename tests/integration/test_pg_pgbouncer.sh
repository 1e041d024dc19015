#!/usr/bin/env bash
# postgresql.callbacks with the shipped pgbouncer hook (scripts/pgbouncer-hook) and a real
# pgbouncer in front of the cluster: the hook points pgbouncer at the primary when the cluster
# comes up, and at the new primary after a kill -9 of the primary's node, so that writes through
# pgbouncer resume with no acknowledged write lost and no hand edit. A hanging callback (on_restart
# after ctl restart) is killed at callback_timeout and reported; the agent goes on. on_reload runs
# on every member after a parameter change reloads its server.
T_PG=1
source "$(dirname "$0")/lib.sh"
command -v pgbouncer >/dev/null || { echo "FAIL: pgbouncer is not installed (scripts/install-deps.sh)"; exit 1; }
t_pick_ports
PGB=$((T_BASE + 35))
cp "$(dirname "$0")/../../scripts/pgbouncer-hook" "$T_DIR/pgbouncer-hook"
printf '#!/bin/sh\nexec sleep 60\n' >"$T_DIR/hang-hook"
mkdir "$T_DIR/reloads"
printf '#!/bin/sh\necho "$1 $2 $3 $(date +%%s.%%N)" >>"%s/reloads/$RAFTPG_NAME"\n' "$T_DIR" >"$T_DIR/reload-hook"
chmod 755 "$T_DIR/pgbouncer-hook" "$T_DIR/hang-hook" "$T_DIR/reload-hook"

# pgbouncer starts pointed nowhere: the hook must set it.
cat >"$T_DIR/pgbouncer.ini" <<EOF2
[databases]
appdb = host=127.0.0.1 port=1 dbname=postgres user=postgres password=$T_PG_PASSWORD

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB
unix_socket_dir =
auth_type = trust
auth_file = $T_DIR/pgbouncer.users
admin_users = postgres
pool_mode = transaction
server_login_retry = 1
server_connect_timeout = 2
logfile = $T_DIR/pgbouncer.log
EOF2
echo '"postgres" ""' >"$T_DIR/pgbouncer.users"
chmod 600 "$T_DIR/pgbouncer.ini" "$T_DIR/pgbouncer.users"
chown postgres:postgres "$T_DIR/pgbouncer.ini" "$T_DIR/pgbouncer.users" "$T_DIR/pgbouncer-hook" "$T_DIR/hang-hook" \
  "$T_DIR/reload-hook" "$T_DIR/reloads" 2>/dev/null || true
"${T_RUNAS[@]}" pgbouncer "$T_DIR/pgbouncer.ini" >/dev/null 2>&1 &
PGBOUNCER=$!
t_before_rm() { kill "$PGBOUNCER" 2>/dev/null; wait "$PGBOUNCER" 2>/dev/null; }

HOOK="$T_DIR/pgbouncer-hook --ini $T_DIR/pgbouncer.ini --database appdb --admin 127.0.0.1:$PGB --admin-user postgres"
T_CALLBACKS="{on_start: \"$HOOK\", on_role_change: \"$HOOK\", on_restart: \"$T_DIR/hang-hook\", on_reload: \"$T_DIR/reload-hook\"}"
T_CALLBACK_TIMEOUT=2
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 60 "a primary and two streaming standbys" t_pg_healthy 1 2 3
P=$(t_pg_primary 1); Pi=${P#node}
t_log "primary is $P"

via() { PGCONNECT_TIMEOUT=2 timeout -s KILL 6 psql -X -q -A -t -h 127.0.0.1 -p "$PGB" -U postgres -d appdb -c "$1" 2>/dev/null; }
points_at() { grep -q "^appdb = host=127.0.0.1 port=$(t_pg_port "$1") " "$T_DIR/pgbouncer.ini"; }
t_wait 15 "the hook pointed pgbouncer at $P" points_at "$Pi"
t_check "on_start primary pointed pgbouncer's appdb at $P" points_at "$Pi"
t_check "writes through pgbouncer reach the primary" t_eq "$(via 'SELECT pg_is_in_recovery()')" f
t_check "$P logged the callback" t_wait 10 "the line" grep -q "callback on_start primary done" "$T_DIR/$P.log"

# A parameter change reloads every server: each runs on_reload with its role, after the reload.
edit_at=$(date +%s.%N)
"$T_BIN" ctl --api "$(t_api_addr "$Pi")" edit-config -p work_mem=7MB >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl edit-config -p work_mem=7MB ($(tr '\n' ';' <"$T_DIR/out"))" t_eq "$rc" 0
reloaded() { # reloaded I ROLE: node I ran on_reload ROLE itest after edit_at, with work_mem in force
  awk -v k="$edit_at" -v r="$2" '$1 == "on_reload" && $2 == r && $3 == "itest" && $4 > k { f = 1 } END { exit !f }' \
    "$T_DIR/reloads/node$1" 2>/dev/null && [ "$(t_psql "$1" -c 'SHOW work_mem' 2>/dev/null)" = 7MB ]
}
for i in 1 2 3; do
  role=replica; [ "$i" = "$Pi" ] && role=primary
  t_wait 15 "node$i's on_reload $role" reloaded "$i" "$role"
  t_check "node$i reloaded work_mem=7MB and ran on_reload $role itest" reloaded "$i" "$role"
done

via 'CREATE TABLE t (id int PRIMARY KEY)' >/dev/null
ACKED="$T_DIR/acked"; : >"$ACKED"
writer() {
  local n=0 deadline=$((SECONDS + 40))
  while [ $n -lt 100000 ] && [ $SECONDS -lt $deadline ] && [ ! -f "$T_DIR/stop" ]; do
    n=$((n + 1))
    if via "INSERT INTO t VALUES ($n)" >/dev/null; then echo "$n $(date +%s.%N)" >>"$ACKED"; fi
  done
}
writer & WRITER=$!
acked() { [ "$(wc -l <"$ACKED")" -ge "$1" ]; }
t_wait 10 "writes acknowledged through pgbouncer before the kill" acked 20
t_log "kill -9 of $P's agent and PostgreSQL"
t_kill "$Pi" KILL; t_kill_pg "$Pi"
# From here no write can be acknowledged by the old primary: its server is gone.
killed_at=$(date +%s.%N)
new_primary() { local i p; for i in 1 2 3; do [ "$i" = "$Pi" ] && continue; p=$(t_pg_primary "$i"); [ -n "$p" ] && [ "$p" != "$P" ] && { echo "$p"; return 0; }; done; return 1; }
t_wait 30 "a new primary" new_primary
N=$(new_primary); Ni=${N#node}
t_wait 15 "the hook pointed pgbouncer at $N" points_at "$Ni"
t_check "on_role_change primary pointed pgbouncer at the new primary $N" points_at "$Ni"
after() { awk -v k="$killed_at" '$2 > k' "$ACKED" | head -n1 | cut -d' ' -f2; }
resumed() { [ -n "$(after)" ]; }
t_wait 20 "a write acknowledged through pgbouncer after the kill" resumed
t_check "writes through pgbouncer resume after the failover" resumed
t_log "first write through pgbouncer acknowledged by the new primary $(awk -v a="$(after)" -v k="$killed_at" 'BEGIN { printf "%.2f", a - k }') s after the kill"
touch "$T_DIR/stop"; wait "$WRITER"
t_check "pgbouncer reaches the new primary" t_eq "$(via 'SELECT pg_is_in_recovery()')" f
lost=$(via "SELECT count(*) FROM unnest(ARRAY[$(cut -d' ' -f1 "$ACKED" | paste -sd,)]::int[]) a(id) WHERE NOT EXISTS (SELECT 1 FROM t WHERE t.id = a.id)")
t_check "no acknowledged write lost (of $(wc -l <"$ACKED"))" t_eq "$lost" 0

# The old primary's agent restarts with its server stopped (the baseline), rewinds and starts it
# as a standby: on_start replica, which the hook ignores.
t_start "$Pi"
t_wait 60 "the old primary back as a standby" t_pg_healthy 1 2 3
rejoined() { grep -q "callback on_start replica done.*nothing to do" "$T_DIR/$P.log"; }
t_wait 10 "$P's on_start replica" rejoined
t_check "$P ran on_start replica after rejoining (the hook did nothing)" rejoined
t_check "pgbouncer still points at $N" points_at "$Ni"

# A hanging callback: on_restart after a standby's restart (no later event replaces it); it is
# killed at 2 s and reported, and the agent goes on.
S=$(( Ni % 3 + 1 ))
"$T_BIN" ctl --api "$(t_api_addr "$Ni")" restart "node$S" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "ctl restart node$S ($(tr '\n' ';' <"$T_DIR/out"))" t_eq "$rc" 0
hung() { grep -q "callback on_restart replica failed: .*timed out" "$T_DIR/node$S.log"; }
t_wait 15 "node$S's hanging on_restart killed" hung
t_check "a hanging callback is killed at callback_timeout and reported" hung
t_wait 30 "node$S streaming again" t_pg_healthy 1 2 3
t_check "the cluster is healthy again after the hanging callback" t_pg_healthy 1 2 3
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
