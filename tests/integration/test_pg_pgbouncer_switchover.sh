#!/usr/bin/env bash
# A switchover behind a real pgbouncer (pool_mode=transaction) with the shipped hook on
# on_start, on_role_change, on_switchover and on_switchover_abandoned: one client connection
# writing numbered rows in autocommit all along sees no error at all, only a pause (the longest
# is printed); no acknowledged row is missing on the new primary; pgbouncer's own SHOW DATABASES
# points at the new primary and is not paused. Then a switchover whose PAUSE cannot finish (a
# transaction runs through pgbouncer longer than --pause-timeout) is abandoned before the
# primary is touched, and pgbouncer is resumed: the client again sees no error. Last, a
# switchover abandoned after the primary stopped (its candidate's agent SIGSTOPped) leaves
# pgbouncer resumed and pointed at the old primary, which takes writes again.
# PGB_SWITCHOVERS=N (default 1) repeats the first switchover N times, each to the next node, and
# prints the pauses as JSON (scripts/bench-pgbouncer.sh); PGB_ONLY_SWITCHOVERS=1 stops there.
T_PG=1
source "$(dirname "$0")/lib.sh"
RUNS=${PGB_SWITCHOVERS:-1}
[[ "$RUNS" =~ ^[1-9][0-9]?$ ]] || { echo "FAIL: PGB_SWITCHOVERS must be 1..99, got \"$RUNS\""; exit 1; }
command -v pgbouncer >/dev/null || { echo "FAIL: pgbouncer is not installed (scripts/install-deps.sh)"; exit 1; }
t_pick_ports
PGB=$((T_BASE + 35))
cp "$(dirname "$0")/../../scripts/pgbouncer-hook" "$T_DIR/pgbouncer-hook"
chmod 755 "$T_DIR/pgbouncer-hook"

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
chown postgres:postgres "$T_DIR/pgbouncer.ini" "$T_DIR/pgbouncer.users" "$T_DIR/pgbouncer-hook" 2>/dev/null || true
"${T_RUNAS[@]}" pgbouncer "$T_DIR/pgbouncer.ini" >/dev/null 2>&1 &
PGBOUNCER=$!
WRITER=""
t_before_rm() {
  [ -z "$WRITER" ] || { kill "$WRITER" 2>/dev/null; wait "$WRITER" 2>/dev/null; }
  kill "$PGBOUNCER" 2>/dev/null; wait "$PGBOUNCER" 2>/dev/null
}

HOOK="$T_DIR/pgbouncer-hook --ini $T_DIR/pgbouncer.ini --database appdb --admin 127.0.0.1:$PGB --admin-user postgres --pause-timeout 2"
T_CALLBACKS="{on_start: \"$HOOK\", on_role_change: \"$HOOK\", on_switchover: \"$HOOK\", on_switchover_abandoned: \"$HOOK\"}"
T_CALLBACK_TIMEOUT=10
for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 60 "a primary and two streaming standbys" t_pg_healthy 1 2 3
ctl() { "$T_BIN" ctl --api "$(t_api_addr 1)" --api "$(t_api_addr 2)" --api "$(t_api_addr 3)" "$@"; }
P=$(t_pg_primary 1); Pi=${P#node}
t_log "primary is $P"

via() { PGCONNECT_TIMEOUT=2 timeout -s KILL 6 psql -X -q -A -t -h 127.0.0.1 -p "$PGB" -U postgres -d appdb "$@"; }
# Column NAME of appdb's row in pgbouncer's SHOW DATABASES (pgbouncer's live view, not the file).
pgb_db() {
  PGCONNECT_TIMEOUT=2 timeout -s KILL 6 psql -X -q -A -h 127.0.0.1 -p "$PGB" -U postgres -d pgbouncer \
    -c 'SHOW DATABASES' 2>/dev/null |
    awk -F'|' -v col="$1" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next } $1 == "appdb" && c { print $c }'
}
points_at() { [ "$(pgb_db port)" = "$(t_pg_port "$1")" ] && [ "$(pgb_db host)" = 127.0.0.1 ]; }
not_paused() { t_eq "$(pgb_db paused)" 0; }
t_wait 15 "the hook pointed pgbouncer at $P" points_at "$Pi"
via -c 'CREATE TABLE t (id int PRIMARY KEY)'

# One client connection through pgbouncer, autocommit, one INSERT at a time: each answer is
# read before the next statement is sent. Anything but the row's own number is an error.
ACKED="$T_DIR/acked" ERRORS="$T_DIR/errors"; : >"$ACKED"; : >"$ERRORS"
writer() {
  local n=0 line deadline=$((SECONDS + 60 + RUNS * 30))
  coproc W { PGCONNECT_TIMEOUT=2 psql -X -q -A -t -v VERBOSITY=terse -h 127.0.0.1 -p "$PGB" -U postgres -d appdb 2>&1; }
  while [ $n -lt 1000000 ] && [ $SECONDS -lt $deadline ] && [ ! -f "$T_DIR/stop" ]; do
    n=$((n + 1))
    echo "INSERT INTO t VALUES ($n) RETURNING id;" >&"${W[1]}"
    if ! IFS= read -r -t 15 line <&"${W[0]}"; then echo "$n no answer within 15 s" >>"$ERRORS"; break; fi
    if [ "$line" = "$n" ]; then echo "$n $(date +%s.%N)" >>"$ACKED"; else echo "$n $line" >>"$ERRORS"; fi
  done
  exec {W[1]}>&-
  wait "$W_PID" 2>/dev/null || true
}
writer & WRITER=$!
acked() { [ "$(wc -l <"$ACKED")" -ge "$1" ]; }
t_wait 10 "writes acknowledged through pgbouncer" acked 20
# Longest gap between two consecutive acknowledgements after FROM (seconds).
gap() { awk -v a="$1" '$2 >= a { if (p) { d = $2 - p; if (d > m) m = d } p = $2 } END { printf "%.2f", m }' "$ACKED"; }

# Settled: both standbys stream on the primary's timeline (a switchover is refused before).
settled() {
  t_pg_healthy 1 2 3 || return 1
  [ "$(t_jq 1 '[.members[].timeline] | unique | length')" = 1 ]
}

# 1. A switchover: pgbouncer paused before the old primary stops, resumed by the new primary.
PAUSES=()
for run in $(seq 1 "$RUNS"); do
  [ "$run" = 1 ] || { t_wait 60 "the cluster settled ($P streams again)" settled; P=$C; Pi=$Ci; }
  C=node$(( Pi % 3 + 1 )); Ci=${C#node}
  # This run's lines: each node's log has one more of them than before.
  SW_LINE="callback on_switchover primary done.*appdb paused"
  RC_LINE="callback on_role_change primary done.*reloaded and resumed"
  sw0=$(grep -c "$SW_LINE" "$T_DIR/$P.log" || true); rc0=$(grep -c "$RC_LINE" "$T_DIR/$C.log" || true)
  t0=$(date +%s.%N)
  ctl switchover --leader "$P" --candidate "$C" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
  t_check "switchover $P -> $C ($(cat "$T_DIR/out"))" t_eq "$rc" 0
  t_check "$C's server is out of recovery" t_eq "$(t_psql "$Ci" -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" f
  t_wait 10 "pgbouncer points at $C" points_at "$Ci"
  t_check "pgbouncer's SHOW DATABASES points appdb at $C" points_at "$Ci"
  t_wait 10 "pgbouncer resumed" not_paused
  t_check "pgbouncer is not paused after the switchover" not_paused
  n0=$(wc -l <"$ACKED")
  t_wait 10 "writes acknowledged after the switchover" acked $((n0 + 20))
  ran() { [ "$(grep -c "$1" "$2" || true)" -gt "$3" ]; }
  t_check "$P ran on_switchover and pgbouncer paused" t_wait 10 "the line" ran "$SW_LINE" "$T_DIR/$P.log" "$sw0"
  t_check "$C ran on_role_change primary and resumed pgbouncer" \
    t_wait 10 "the line" ran "$RC_LINE" "$T_DIR/$C.log" "$rc0"
  PAUSES+=("$(gap "$t0")")
  t_log "switchover $run $P -> $C: longest write pause through pgbouncer ${PAUSES[-1]} s"
  t_check "no client error through pgbouncer ($(head -3 "$ERRORS" | tr '\n' ';'))" t_eq "$(wc -l <"$ERRORS")" 0
done
if [ "$RUNS" -gt 1 ] || [ -n "${PGB_ONLY_SWITCHOVERS:-}" ]; then
  printf '%s\n' "${PAUSES[@]}" | sort -n | awk -v errs="$(wc -l <"$ERRORS")" \
    '{ p[NR] = $1 } END { m = (NR % 2) ? p[(NR + 1) / 2] : (p[NR / 2] + p[NR / 2 + 1]) / 2
       printf "{\"switchovers\":%d,\"pause_median_s\":%.2f,\"pause_max_s\":%.2f,\"client_errors\":%d}\n", NR, m, p[NR], errs }'
fi
if [ -n "${PGB_ONLY_SWITCHOVERS:-}" ]; then
  touch "$T_DIR/stop"; wait "$WRITER"; WRITER=""
  t_check "no acknowledged row missing on $C (of $(wc -l <"$ACKED"))" t_acked_all "$ACKED" "$Ci" t
  for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
  t_done
  exit
fi

# 2. A transaction through pgbouncer outlives --pause-timeout (2 s): PAUSE cannot finish, the hook
# resumes pgbouncer and fails, the switchover is abandoned and the primary never stopped.
t_wait 60 "the cluster settled ($P streams again)" settled
pm=$(t_pg_pid "$Ci")
PGCONNECT_TIMEOUT=2 timeout -s KILL 20 psql -X -q -A -t -h 127.0.0.1 -p "$PGB" -U postgres -d appdb \
  -c 'BEGIN' -c 'SELECT pg_sleep(5)' -c 'COMMIT' >"$T_DIR/long.out" 2>&1 & LONG=$!
sleeping() { [ "$(t_psql "$Ci" -c "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(5)'" 2>/dev/null)" = 1 ]; }
t_wait 5 "the long transaction runs on $C" sleeping
t1=$(date +%s.%N)
ctl switchover --leader "$C" >"$T_DIR/out" 2>&1 && rc=0 || rc=$?
t_check "a switchover whose PAUSE times out fails" t_ne "$rc" 0
t_check "... naming the callback ($(cat "$T_DIR/out"))" grep -q "abandoned (running the on_switchover callback): the on_switchover callback failed" "$T_DIR/out"
t_check "pgbouncer is not paused after the abandoned switchover" not_paused
t_check "$C's postmaster never stopped" t_eq "$(t_pg_pid "$Ci")" "$pm"
t_check "$C is still the primary" t_eq "$(t_pg_primary "$Ci")" "$C"
t_check "the hook said why" grep -q "PAUSE appdb on 127.0.0.1:$PGB failed: .*resumed it" "$T_DIR/$C.log"
# The answer comes as the switchover is abandoned, with on_switchover_abandoned just started.
abandoned_once() { grep -q "callback on_switchover_abandoned primary done" "$T_DIR/$C.log"; }
t_wait 10 "$C's on_switchover_abandoned" abandoned_once
t_check "$C ran on_switchover_abandoned" abandoned_once
n1=$(wc -l <"$ACKED")
t_wait 10 "writes acknowledged after the abandoned switchover" acked $((n1 + 20))
wait "$LONG" && rc=0 || rc=$?
t_check "the long transaction committed ($(tr '\n' ';' <"$T_DIR/long.out"))" t_eq "$rc" 0
t_log "abandoned switchover: longest write pause through pgbouncer $(gap "$t1") s"
t_check "no client error through pgbouncer in both switchovers ($(head -3 "$ERRORS" | tr '\n' ';'))" t_eq "$(wc -l <"$ERRORS")" 0

# 3. Abandoned after the stop: the candidate's agent stops answering once the primary stops, the
# final WAL is never reported, the switchover is abandoned, the hook resumes pgbouncer and the
# old primary starts again (its on_start points pgbouncer at it again). Clients may see errors
# in the moment between the RESUME and that start: counted, not checked.
t_wait 60 "the cluster settled" settled
Di=$(( Ci % 3 + 1 ))
e0=$(wc -l <"$ERRORS")
t_stop_during "$T_DIR/$C.log" "switchover $C -> node$Di: stopping the primary" "$Di" "$T_DIR/out" \
  ctl switchover --candidate "node$Di" && rc=0 || rc=$?
t_check "a switchover whose candidate stops answering is abandoned ($(cat "$T_DIR/out"))" \
  grep -q "abandoned (waiting for the candidate to receive the last WAL)" "$T_DIR/out"
# Started is enough: the old primary's start right after may kill it as a newer event (on_start,
# which resumes pgbouncer itself: checked below).
abandoned_twice() { [ "$(grep -c "callback on_switchover_abandoned primary started" "$T_DIR/$C.log")" = 2 ]; }
t_wait 10 "$C's second on_switchover_abandoned" abandoned_twice
t_check "$C ran on_switchover_abandoned after the stop" abandoned_twice
back() { [ "$(t_pg_primary "$Ci")" = "$C" ] && [ "$(t_psql "$Ci" -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; }
t_wait 20 "$C takes writes again" back
t_wait 10 "pgbouncer resumed" not_paused
t_check "pgbouncer is not paused after the switchover abandoned after the stop" not_paused
t_check "pgbouncer still points at $C" points_at "$Ci"
n1=$(wc -l <"$ACKED")
t_wait 10 "writes acknowledged through pgbouncer again" acked $((n1 + 20))
t_log "abandoned after the stop: $(( $(wc -l <"$ERRORS") - e0 )) client errors ($(tail -n +$((e0 + 1)) "$ERRORS" | head -2 | tr '\n' ';'))"

touch "$T_DIR/stop"; wait "$WRITER"; WRITER=""
t_check "no acknowledged row missing on $C (of $(wc -l <"$ACKED"))" t_acked_all "$ACKED" "$Ci" t
for i in 1 2 3; do t_alive "$i" && t_kill "$i" TERM; done
t_done
