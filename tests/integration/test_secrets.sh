#!/usr/bin/env bash
# No PostgreSQL password in any process's arguments or environment, nor in a log, while standbys
# clone (pg_basebackup) and an old primary rejoins (pg_rewind); the passwords reach them through
# the agent's private password file (pg_hba asks for SCRAM, so a clone without them fails); and
# another local user is not let in, neither over TCP without a password nor through the socket
# directory.
T_PG=1
# Every statement the agents send is in the servers' logs: none may carry a password.
T_PG_PARAMS="log_statement: all"
source "$(dirname "$0")/lib.sh"
t_pick_ports

# pg_basebackup and pg_rewind wait 1 s before they run, under the very arguments and environment
# the agent gave them, so that the process table is sampled while they are there; every other
# program is the real one.
REAL_BIN=$T_PG_BIN
T_PG_BIN="$T_DIR/bin"
mkdir -p "$T_PG_BIN"
for f in "$REAL_BIN"/*; do ln -s "$f" "$T_PG_BIN/${f##*/}"; done
for prog in pg_basebackup pg_rewind; do
  rm "$T_PG_BIN/$prog"
  printf '#!/bin/sh\nsleep 1\nexec %s/%s "$@"\n' "$REAL_BIN" "$prog" >"$T_PG_BIN/$prog"
  chmod 755 "$T_PG_BIN/$prog"
done
chmod 755 "$T_PG_BIN"

SAMPLES="$T_DIR/samples" LEAKS="$T_DIR/leaks" STOP="$T_DIR/sampler.stop"
: >"$SAMPLES"; : >"$LEAKS"
# The passwords as grep patterns in a file: on grep's command line they would be a leak.
PATTERNS="$T_DIR/passwords"
(umask 077; printf '%s\n%s\n' "$T_PG_PASSWORD" "$T_PG_REPL_PASSWORD" >"$PATTERNS")

# Looks for the passwords in every process's arguments (ps) and, for the programs that carry a
# conninfo, in /proc/PID/cmdline and /proc/PID/environ. At most 6000 rounds and 300 s.
sampler() {
  local deadline=$((SECONDS + 300)) n=0 table pid args f text
  while [ -d "$T_DIR" ] && [ ! -e "$STOP" ] && [ $n -lt 6000 ] && [ $SECONDS -lt $deadline ]; do
    n=$((n + 1))
    table=$(ps -eww -o pid=,args= 2>/dev/null) || true
    grep -F -f "$PATTERNS" <<<"$table" >>"$LEAKS" || true
    while read -r pid args; do
      echo "$args" >>"$SAMPLES"
      for f in cmdline environ; do
        text=$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/$f") || continue
        echo "read /proc/PID/$f of: $args" >>"$SAMPLES"
        if grep -qF -f "$PATTERNS" <<<"$text"; then
          echo "/proc/$pid/$f of: $args" >>"$LEAKS"
        fi
      done
    done < <(grep -E '^ *[0-9]+ (/bin/sh )?[^ ]*/(pg_basebackup|pg_rewind) ' <<<"$table" || true)
    sleep 0.02
  done
}
sampler &
T_PIDS["sampler"]=$! # t_cleanup kills it if the test ends early
stop_sampler() {
  local pid=${T_PIDS[sampler]} n=0
  touch "$STOP"
  while kill -0 "$pid" 2>/dev/null && [ $n -lt 100 ]; do sleep 0.05; n=$((n + 1)); done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "T_PIDS[sampler]"
}

for i in 1 2 3; do t_write_conf "$i" 3; t_start "$i"; done
t_wait 90 "a primary and two streaming standbys" t_pg_healthy 1 2 3
P=$(t_pg_primary 1)
Pi=${P#node}
t_log "primary is $P"
t_psql "$Pi" -c "CREATE TABLE t (id int PRIMARY KEY)" -c "INSERT INTO t SELECT generate_series(1, 1000)"

# The primary node dies; it rejoins as a standby through pg_rewind.
t_kill "$Pi" KILL
t_kill_pg "$Pi"
new_primary() {
  local i p
  for i in 1 2 3; do
    [ "$i" = "$Pi" ] && continue
    p=$(t_pg_primary "$i")
    [ -n "$p" ] && [ "$p" != "$P" ] && echo "$p" && return 0
  done
  return 1
}
t_wait 30 "a new primary" new_primary
NP=$(new_primary)
NPi=${NP#node}
t_psql "$NPi" -c "INSERT INTO t SELECT generate_series(1001, 2000)"
t_start "$Pi"
rejoined() { [ "$(t_jq "$NPi" --arg n "$P" '.members[] | select(.name == $n) | .state')" = streaming ]; }
t_wait 90 "$P rejoins as a streaming standby" rejoined
stop_sampler

t_check "the old primary ran pg_rewind" grep -q "rewind: pg_rewind from $NP" "$T_DIR/node$Pi.log"
# A negative check proves its probe ran: the sampler saw both programs and their conninfo.
t_check "the sampler saw pg_basebackup with its conninfo and password file" \
  grep -qE "/pg_basebackup .*-d host=127\.0\.0\.1 .*user='replicator' .*passfile=" "$SAMPLES"
t_check "the sampler saw pg_rewind with its conninfo and password file" \
  grep -qE "/pg_rewind .*--source-server=host=127\.0\.0\.1 .*user='postgres' .*passfile=" "$SAMPLES"
t_check "the sampler read the environment of pg_basebackup and of pg_rewind" \
  bash -c "grep -q 'read /proc/PID/environ of: .*/pg_basebackup ' '$SAMPLES' &&
           grep -q 'read /proc/PID/environ of: .*/pg_rewind ' '$SAMPLES'"
t_check "no password in any process's arguments or in those programs' environment" \
  t_eq "$(sort -u "$LEAKS")" ""
t_check "no conninfo in the process table names a password" \
  t_absent 'password=' "$SAMPLES"

logs=("$T_DIR"/node*.log "$T_DIR"/node*/pgdata.log)
t_check "no password in the agents' or the servers' logs" \
  t_status 1 grep -lF -f "$PATTERNS" "${logs[@]}"
t_check "the replication role's password is stored as a SCRAM verifier" \
  t_contains "$(t_psql "$NPi" -c "SELECT rolpassword FROM pg_authid WHERE rolname = 'replicator'")" 'SCRAM-SHA-256$'
t_check "the servers logged the agents' statements (log_statement = all)" \
  grep -q "statement: .*pg_replication_slots" "$T_DIR"/node*/pgdata.log
t_check "no password in raftpg.conf (primary_conninfo)" \
  t_status 1 grep -lF -f "$PATTERNS" "$T_DIR"/node*/pgdata/raftpg.conf
t_check "a standby's primary_conninfo names the password file" \
  t_contains "$(t_psql "$Pi" -c 'SHOW primary_conninfo')" "passfile='$T_DIR/node$Pi/pgdata.pgpass'"
if [ "$(id -u)" -eq 0 ]; then
  t_check "the password file is the agent's user's alone (mode 600)" \
    t_eq "$(stat -c '%U %a' "$T_DIR/node$Pi/pgdata.pgpass")" "postgres 600"
  t_check "the socket directory is the agent's user's alone (mode 700)" \
    t_eq "$(stat -c '%U %a' "$T_DIR/node$NPi")" "postgres 700"
  # Another local user: no password, no way in.
  as_nobody() {
    env -u PGPASSFILE setpriv --reuid=nobody --regid=nogroup --clear-groups -- \
      env PGCONNECT_TIMEOUT=3 psql -X -w -A -t -U postgres -d postgres -c 'SELECT 1' "$@" 2>&1 || true
  }
  t_check "another local user cannot log in over TCP without the password" \
    t_contains "$(cd / && as_nobody -h 127.0.0.1 -p "$(t_pg_port "$NPi")")" "no password supplied"
  t_check "another local user cannot reach the socket" \
    t_contains "$(cd / && as_nobody -h "$T_DIR/node$NPi" -p "$(t_pg_port "$NPi")")" "Permission denied"
fi

for i in 1 2 3; do [ -z "${T_PIDS[$i]:-}" ] || t_kill "$i" TERM; done
t_done
