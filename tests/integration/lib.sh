# Helpers for integration tests: real agents on 127.0.0.1, started as the postgres user when
# run as root, every process tracked by PID and cleaned up on exit.
# shellcheck shell=bash
set -euo pipefail

T_BIN_SRC=${1:?usage: test.sh PATH_TO_RAFTPG}
T_NAME=$(basename "$0" .sh)
T_DIR=$(mktemp -d "/tmp/raftpg-${T_NAME}.XXXXXX")
chmod 755 "$T_DIR"
cp "$T_BIN_SRC" "$T_DIR/raftpg"
T_BIN="$T_DIR/raftpg"
declare -A T_PIDS=()
# shellcheck source=../assert.sh
source "$(dirname "${BASH_SOURCE[0]}")/../assert.sh"

if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || { echo "FAIL: user postgres is missing (install postgresql-15)"; exit 1; }
  chown postgres:postgres "$T_DIR"
  T_RUNAS=(setpriv --reuid=postgres --regid=postgres --init-groups --)
else
  T_RUNAS=()
fi

# PostgreSQL passwords, random per run so that a leak check cannot pass by chance: every
# connection but the server's own over its socket authenticates with SCRAM. The tests' own psql
# (as root) finds them in PGPASSFILE; the agents never inherit it, so theirs come from the
# configuration alone.
T_PG_PASSWORD=${T_PG_PASSWORD:-su-$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')}
T_PG_REPL_PASSWORD=${T_PG_REPL_PASSWORD:-repl-$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')}
export PGPASSFILE="$T_DIR/pgpass.tests"
(umask 077; printf '*:*:*:postgres:%s\n' "$T_PG_PASSWORD" >"$PGPASSFILE")

t_log() { printf '%s [%s] %s\n' "$(date +%T.%3N)" "$T_NAME" "$*"; }

t_cleanup() {
  local rc=$?
  # A time bound left running would hold the test's output open (ctest waits for it).
  t_time_bound_stop
  [ -z "$T_SESSION" ] || kill "$T_SESSION" 2>/dev/null || true
  t_session_stop
  for n in "${!T_PIDS[@]}"; do
    kill -KILL "${T_PIDS[$n]}" 2>/dev/null || true
  done
  for n in "${!T_PIDS[@]}"; do
    wait "${T_PIDS[$n]}" 2>/dev/null || true
  done
  t_kill_all_pg
  if [ $rc -ne 0 ] || [ $T_FAILED -ne 0 ]; then
    for f in "$T_DIR"/*.log; do
      [ -f "$f" ] || continue
      echo "----- $f (last 40 lines)"
      tail -n 40 "$f"
    done
  fi
  # A test's own teardown that must come after every process is gone (unmounting, say).
  if declare -F t_before_rm >/dev/null; then t_before_rm || true; fi
  if [ -n "${T_KEEP:-}" ]; then echo "kept $T_DIR"; else rm -rf "$T_DIR"; fi
}
trap t_cleanup EXIT
# set -e ends a test at a failed command outside a check (an answer that had to be there, say
# t_pg_primary after a wait): say which, so that the end is not silent.
trap 't_fail "line $LINENO: \"$BASH_COMMAND\" failed; $T_NAME stops here"' ERR

# Picks a base port with 40 free ports above it (127.0.0.1 only).
# Concurrent runs can still race for a range; CI runs the integration tests one at a time.
t_pick_ports() {
  local tries=0
  while [ $tries -lt 50 ]; do
    # Below the kernel's ephemeral range (32768 and up by default), so no outgoing connection
    # can hold one of these ports when an agent binds it.
    T_BASE=$((20000 + (RANDOM % 1200) * 10))
    if ! ss -ltnH 2>/dev/null | awk '{print $4}' | grep -E ":($T_BASE|$((T_BASE + 1))[0-9]|$((T_BASE + 2))[0-9]|$((T_BASE + 3))[0-9])\$" >/dev/null; then
      return 0
    fi
    tries=$((tries + 1))
  done
  echo "FAIL: no free port range found"; exit 1
}

t_raft_addr() { echo "127.0.0.1:$((T_BASE + $1))"; }
t_pg_port() { echo $((T_BASE + 10 + $1)); }
t_pg_addr() { echo "127.0.0.1:$(t_pg_port "$1")"; }
T_PG_BIN=${T_PG_BIN:-/usr/lib/postgresql/15/bin}
declare -A T_NOFAILOVER=()
t_api_addr() { echo "127.0.0.1:$((T_BASE + 20 + $1))"; }

# The cluster secret every node's Raft transport uses (raft.secret_file), created once, owned by
# the agents' user with mode 0600. T_NO_SECRET=1 leaves it out (the plain libraft transport);
# T_SECRET_FILE[I] and T_SECRET_PREVIOUS[I] override node I's files.
T_SECRET="$T_DIR/raft.secret"
declare -A T_SECRET_FILE=() T_SECRET_PREVIOUS=()
t_gen_secret() { "${T_RUNAS[@]}" "$T_BIN" gen-secret "$1"; }

# t_write_conf I N_INITIAL: writes node I's file; members 1..N_INITIAL are the initial members.
t_write_conf() {
  local i=$1 n=$2 f="$T_DIR/node$1.yaml"
  if [ -z "${T_NO_SECRET:-}" ] && [ ! -e "$T_SECRET" ]; then t_gen_secret "$T_SECRET"; fi
  # raftpg ctl signs changes with it (the API refuses unsigned ones when a secret is set).
  if [ -z "${T_NO_SECRET:-}" ]; then export RAFTPG_SECRET_FILE="$T_SECRET"; fi
  {
    echo "scope: itest"
    echo "name: node$i"
    echo "raft:"
    echo "  listen: $(t_raft_addr "$i")"
    echo "  data_dir: $T_DIR/node$i/raft"
    echo "  election_timeout: ${T_ELECTION_TIMEOUT:-500}"
    echo "  heartbeat_timeout: ${T_HEARTBEAT_TIMEOUT:-100}"
    if [ -z "${T_NO_SECRET:-}" ]; then
      echo "  secret_file: ${T_SECRET_FILE[$i]:-$T_SECRET}"
      [ -z "${T_SECRET_PREVIOUS[$i]:-}" ] || echo "  secret_file_previous: ${T_SECRET_PREVIOUS[$i]}"
    fi
    echo "  members:"
    for j in $(seq 1 "$n"); do
      echo "    - {name: node$j, raft: \"$(t_raft_addr "$j")\", api: \"$(t_api_addr "$j")\"}"
    done
    echo "restapi:"
    echo "  listen: $(t_api_addr "$i")"
    # restapi.authentication (HTTP basic for changes): "user:password".
    [ -z "${T_API_AUTH:-}" ] || echo "  authentication: {username: \"${T_API_AUTH%%:*}\", password: \"${T_API_AUTH#*:}\"}"
    if [ -n "${T_PG:-}" ]; then
      echo "postgresql:"
      echo "  bin_dir: $T_PG_BIN"
      echo "  data_dir: $T_DIR/node$i/pgdata"
      echo "  listen: $(t_pg_addr "$i")"
      echo "  parameters: {shared_buffers: 16MB, max_connections: 30, max_wal_senders: 10,"
      # T_PG_PARAMS: more parameters, as flow-mapping entries ("log_statement: all").
      echo "               max_replication_slots: 10, wal_keep_size: 64MB, fsync: \"${T_PG_FSYNC:-off}\"${T_PG_PARAMS:+, $T_PG_PARAMS}}"
      # T_NO_PG_HBA=1: no postgresql.pg_hba (initdb's trust file, or the dynamic configuration's).
      if [ -z "${T_NO_PG_HBA:-}" ]; then
        echo "  pg_hba:"
        echo "    - local all all scram-sha-256"
        echo "    - host all all 127.0.0.1/32 scram-sha-256"
        echo "    - host replication all 127.0.0.1/32 scram-sha-256"
      fi
      [ -z "${T_MAX_RATE:-}" ] || echo "  basebackup: {max-rate: $T_MAX_RATE}"
      [ -z "${T_REMOVE_DIVERGED:-}" ] || echo "  remove_data_directory_on_diverged_timelines: true"
      [ -z "${T_NO_REWIND:-}" ] || echo "  use_pg_rewind: false"
      [ -z "${T_RESTORE_COMMAND:-}" ] || echo "  recovery_conf: {restore_command: \"$T_RESTORE_COMMAND\"}"
      # postgresql.callbacks as a YAML flow mapping, and their time-out.
      [ -z "${T_CALLBACKS:-}" ] || echo "  callbacks: $T_CALLBACKS"
      [ -z "${T_CALLBACK_TIMEOUT:-}" ] || echo "  callback_timeout: $T_CALLBACK_TIMEOUT"
      echo "  authentication:"
      echo "    superuser: {username: postgres, password: \"$T_PG_PASSWORD\"}"
      echo "    replication: {username: replicator, password: \"$T_PG_REPL_PASSWORD\"}"
      # T_TAGS[i]: more tags for node i, as flow-mapping entries ("datacenter: west").
      echo "tags: {nofailover: ${T_NOFAILOVER[$i]:-false}${T_TAGS[$i]:+, ${T_TAGS[$i]}}}"
    fi
  } >"$f"
  chmod 600 "$f"
  [ "$(id -u)" -ne 0 ] || chown postgres:postgres "$f"
}

t_start() {
  local i=$1
  env -u PGPASSFILE "${T_RUNAS[@]}" "$T_BIN" run -c "$T_DIR/node$i.yaml" >>"$T_DIR/node$i.log" 2>&1 &
  T_PIDS[$i]=$!
}

# t_kill I [SIGNAL]: KILL and TERM also reap the process; after TERM the agent must have
# shut down cleanly (exit 0, which also means no leak report under LeakSanitizer).
t_kill() {
  local i=$1 sig=${2:-KILL} rc=0
  kill "-$sig" "${T_PIDS[$i]}"
  if [ "$sig" = KILL ] || [ "$sig" = TERM ]; then
    wait "${T_PIDS[$i]}" 2>/dev/null || rc=$?
    unset "T_PIDS[$i]"
    if [ "$sig" = TERM ] && [ $rc -ne 0 ]; then
      t_fail "node$i exited with status $rc after SIGTERM"
    fi
  fi
}

# t_stop_during LOG LINE I OUT CMD...: runs CMD in the background (output to OUT), stops node I's
# agent with SIGSTOP as soon as LOG gains a line matching LINE (within 10 s), waits for CMD, then
# lets the agent go on (SIGCONT). Returns CMD's status. A switchover whose candidate stops
# answering right after the primary began to stop is the case it was written for.
t_stop_during() {
  local log=$1 line=$2 i=$3 out=$4 n0 cpid rc=0
  shift 4
  n0=$(grep -c -- "$line" "$log" || true)
  "$@" >"$out" 2>&1 &
  cpid=$!
  for _ in $(seq 1 2000); do
    [ "$(grep -c -- "$line" "$log" || true)" -gt "$n0" ] && break
    sleep 0.005
  done
  kill -STOP "${T_PIDS[$i]}"
  wait "$cpid" || rc=$?
  kill -CONT "${T_PIDS[$i]}"
  return $rc
}

# True while PID runs: a zombie (killed, not yet reaped by its parent) does not.
t_pid_running() {
  local st
  kill -0 "$1" 2>/dev/null || return 1
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# The postmaster PID of node I, from its postmaster.pid, if that process is alive.
t_pg_pid() {
  local f="$T_DIR/node$1/pgdata/postmaster.pid" pid
  [ -f "$f" ] || return 1
  pid=$(head -n1 "$f" 2>/dev/null) || return 1
  [ -n "$pid" ] && t_pid_running "$pid" && echo "$pid"
}

# Kills node I's postmaster (and so its whole server) with SIGKILL and waits until it is gone.
t_kill_pg() {
  local pid n=0
  pid=$(t_pg_pid "$1") || return 0
  kill -KILL "$pid" 2>/dev/null || true
  while t_pid_running "$pid" && [ $n -lt 100 ]; do sleep 0.05; n=$((n + 1)); done
  # Backends of a killed postmaster exit on their own; wait for the port to be free.
  n=0
  while ss -ltnH 2>/dev/null | awk '{print $4}' | grep -x "$(t_pg_addr "$1")" >/dev/null && [ $n -lt 100 ]; do
    sleep 0.05; n=$((n + 1))
  done
}

t_kill_all_pg() {
  local d
  for d in "$T_DIR"/node*; do
    [ -d "$d" ] || continue
    t_kill_pg "${d##*/node}"
  done
}

# psql as the superuser against node I's PostgreSQL; extra arguments go to psql.
t_psql() {
  local i=$1; shift
  PGCONNECT_TIMEOUT=3 psql -X -q -A -t -h 127.0.0.1 -p "$(t_pg_port "$i")" -U postgres -d postgres "$@"
}

# Numbered writes into TABLE (one bigint column) for at most SECONDS, until $T_DIR/stop exists:
# one INSERT per psql call against whichever node accepts it; an id goes to $T_DIR/acked only once
# its commit was acknowledged. Run it in the background.
t_writer() {
  local table=$1 id=1 deadline=$((SECONDS + $2)) i
  while [ $SECONDS -lt $deadline ] && [ ! -f "$T_DIR/stop" ]; do
    for i in 1 2 3; do
      if PGCONNECT_TIMEOUT=1 timeout -s KILL 4 psql -X -q -A -t -h 127.0.0.1 \
           -p "$(t_pg_port "$i")" -U postgres -d postgres \
           -c "INSERT INTO $table VALUES ($id)" >/dev/null 2>&1; then
        echo "$id" >>"$T_DIR/acked"
        break
      fi
    done
    id=$((id + 1))
    sleep 0.01
  done
}

# t_acked_missing FILE I TABLE: the acknowledged ids in FILE (the first field of each line) that
# TABLE (its column id) on node I lacks, comma-separated, "" when none. A query that fails, or
# answers without its marker, fails the call: an empty answer never passes for "none".
t_acked_missing() {
  local ids out
  ids=$(cut -d' ' -f1 "$1" | sort -n | paste -sd,)
  out=$(t_psql "$2" -v ON_ERROR_STOP=1 -c "SELECT 'missing:' || coalesce(string_agg(a::text, ',' ORDER BY a), '') FROM unnest(ARRAY[${ids:-0}]::bigint[]) a WHERE a <> 0 AND NOT EXISTS (SELECT 1 FROM $3 WHERE id = a)") || return 1
  case $out in
  missing:*) printf '%s\n' "${out#missing:}" ;;
  *) return 1 ;;
  esac
}
# t_acked_all FILE I TABLE: node I's TABLE holds every id acknowledged in FILE; says what it lacks,
# or that the query failed.
t_acked_all() {
  local m
  m=$(t_acked_missing "$@") || { echo "  the query for the acknowledged ids failed on node $2"; return 1; }
  [ -z "$m" ] || { echo "  node $2 lacks acknowledged ids: $(cut -c1-300 <<<"$m")"; return 1; }
}
# t_writer_missing I TABLE: t_acked_missing for t_writer's ids.
t_writer_missing() {
  t_acked_missing "$T_DIR/acked" "$@"
}
# t_writer_complete I TABLE: node I's TABLE holds every acknowledged id (a failed query: no).
t_writer_complete() {
  local m
  m=$(t_writer_missing "$1" "$2" 2>/dev/null) || return 1
  [ -z "$m" ]
}

# One long-lived client session to node I's PostgreSQL, fed through a FIFO on fd 3; its answers
# go to $T_DIR/session.out. It stops at the first error; t_session_send then fails instead of
# killing the test (SIGPIPE ignored). t_cleanup ends it.
T_SESSION=
t_session_start() {
  trap '' PIPE
  mkfifo "$T_DIR/session.in"
  psql -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(t_pg_port "$1")" -U postgres -d postgres \
    <"$T_DIR/session.in" >"$T_DIR/session.out" 2>&1 &
  T_SESSION=$!
  exec 3>"$T_DIR/session.in"
  t_session_send "SELECT 'backend ' || pg_backend_pid();"
  t_wait 10 "the session's first answer" grep -q '^backend ' "$T_DIR/session.out"
}
t_session_send() { echo "$1" >&3 2>/dev/null; }
# The session's backend as first answered (first) or as last asked (last).
t_session_backend() {
  local b; b=$(grep '^backend ' "$T_DIR/session.out" 2>/dev/null) || return 0
  if [ "$1" = first ]; then head -n 1 <<<"$b"; else tail -n 1 <<<"$b"; fi
}
# Ends the session at its input's end (after what was sent is answered).
t_session_stop() {
  [ -n "$T_SESSION" ] || return 0
  exec 3>&- 2>/dev/null || true
  wait "$T_SESSION" 2>/dev/null || true
  T_SESSION=
}

# Nothing listens on node I's PostgreSQL port: ss ran, and does not list it.
t_pg_port_free() {
  local out
  out=$(ss -ltnH 2>&1) || { echo "  ss failed: $out"; return 1; }
  if awk '{print $4}' <<<"$out" | grep -xF "$(t_pg_addr "$1")" >/dev/null; then
    echo "  something listens on $(t_pg_addr "$1")"
    return 1
  fi
}

t_alive() { [ -n "${T_PIDS[$1]:-}" ] && kill -0 "${T_PIDS[$1]}" 2>/dev/null; }

# JSON of GET /cluster from node I, or nothing.
t_cluster() { "$T_BIN" ctl --api "$(t_api_addr "$1")" --timeout 500 list --json 2>/dev/null || true; }

# t_now_ms: the wall clock in milliseconds since the epoch; t_iso MS: that time in ISO 8601,
# UTC, with milliseconds (the form scheduled actions take).
t_now_ms() { date +%s%3N; }
t_iso() { date -u -d "@$(($1 / 1000)).$(printf '%03d' $(($1 % 1000)))" +%Y-%m-%dT%H:%M:%S.%3N+00:00; }

# t_api I METHOD PATH [BODY]: node I's answer to a request signed with the cluster secret, as
# "STATUS BODY".
t_api() {
  local auth
  auth=$("$T_BIN" ctl --api "$(t_api_addr "$1")" sign "$2" "$3" "${4:-}")
  curl -s -m 5 -X "$2" -H "Authorization: $auth" -H 'Content-Type: application/json' ${4:+-d "$4"} \
    -w ' %{http_code}' "http://$(t_api_addr "$1")$3" | awk '{ code = $NF; $NF = ""; print code, $0 }'
}

# t_jq I [jq options] FILTER: FILTER over node I's GET /cluster; fails, printing nothing, when the
# node does not answer or FILTER yields nothing (t_jqs).
t_jq() { local i=$1; shift; t_jqs "$(t_cluster "$i")" "$@"; }

# t_api_code I METHOD PATH: the HTTP status node I's API answers (000 when none); a POST, PUT,
# PATCH or DELETE says it is JSON, as the API requires of them.
t_api_code() {
  local opt=(-X"$2")
  [ "$2" != HEAD ] || opt=(-I)
  case $2 in POST | PUT | PATCH | DELETE) opt+=(-H 'Content-Type: application/json') ;; esac
  curl -s -o /dev/null -m 3 -w '%{http_code}' "${opt[@]}" "http://$(t_api_addr "$1")$3"
}

# t_api_codes: one check per line of stdin, "I METHOD PATH STATUS [WHY]": node I's API answers
# METHOD PATH with STATUS. Blank lines and lines starting with # are skipped.
t_api_codes() {
  local i m path want why
  while read -r i m path want why <&3; do
    case $i in '' | '#'*) continue ;; esac
    t_check "$m $path is $want on node$i${why:+ ($why)}" t_eq "$(t_api_code "$i" "$m" "$path")" "$want"
  done 3<&0
}

# t_psql_refused I SQLSTATE SQL: node I's server took the statement and refused it with SQLSTATE
# (a standby's 25006 for a write): a server that cannot be reached fails the check.
t_psql_refused() {
  local out rc=0
  out=$(t_psql "$1" -v VERBOSITY=verbose -c "$3" 2>&1) || rc=$?
  [ $rc -ne 0 ] || { echo "  node$1 accepted: $3"; return 1; }
  t_contains "$out" "ERROR:  $2:"
}

t_done() {
  t_check "no sanitizer report in an agent log" t_no_sanitizer_report "$T_DIR"/*.log
  t_summary
}

# The member that node I reports as running primary PostgreSQL (role leader, state running).
t_pg_primary() {
  t_jq "$1" '[.members[] | select(.role == "leader" and .pg_role == "primary" and .state == "running")] | if length == 1 then .[0].name else empty end'
}

# Every node answers, one primary, and every other node's PostgreSQL is a streaming standby.
t_pg_healthy() {
  local i p
  p=$(t_pg_primary "$1")
  [ -n "$p" ] || return 1
  for i in "$@"; do
    [ "$(t_pg_primary "$i")" = "$p" ] || return 1
    [ "$(t_jq "$1" '[.members[] | select(.state == "streaming")] | length')" = $(($# - 1)) ] || return 1
  done
  # With synchronous replication on, healthy also means the quorum is recorded: until then no
  # member provably holds every acknowledged commit and a failover would wait (rule 6).
  [ "$(t_jq "$1" 'if (.sync.mode // "off") == "off" or .sync.k > 0 then "yes" else "no" end')" = yes ]
}

# Replicated state of node I as "applied_index checksum diverged" (GET /status), or nothing.
t_state_of() {
  curl -s -m 2 "http://$(t_api_addr "$1")/status" |
    jq -r '"\(.state.applied_index) \(.state.checksum) \(.state.diverged)"' 2>/dev/null || true
}

# t_same_index I...: reads the states of nodes I... in one round into T_STATE[I]; true when all
# are at the same applied index (entries keep being applied between rounds), not 0.
declare -A T_STATE=()
t_same_index() {
  local i first=''
  for i in "$@"; do T_STATE[$i]=$(t_state_of "$i"); done
  for i in "$@"; do
    [ -n "${T_STATE[$i]}" ] || return 1
    [ -n "$first" ] || first=${T_STATE[$i]%% *}
    [ "${T_STATE[$i]%% *}" = "$first" ] || return 1
  done
  [ -n "$first" ] && [ "$first" != 0 ] && [ "$first" != null ]
}

# t_check_states I...: checks that nodes I... reach the same applied index (within 30 s) with the
# same state checksum, none reports a divergence and no agent logged one.
t_check_states() {
  local i same=yes div='' shown=''
  t_wait 30 "all members at the same applied index" t_same_index "$@" || true
  for i in "$@"; do
    shown+="node$i [${T_STATE[$i]:-}] "
    [ -n "${T_STATE[$i]:-}" ] && [ "${T_STATE[$i]}" = "${T_STATE[$1]}" ] || same=no
    div+="${T_STATE[$i]##* }"
  done
  t_log "states: $shown"
  t_check "all members' state checksums equal" t_eq "$same" yes
  t_check "no member reports a divergence" t_eq "$div" "$(for i in "$@"; do printf false; done)"
  t_check "no member logged a divergence" \
    t_eq "$(cat "$T_DIR"/node*.log | grep -c 'replicated state diverged' || true)" 0
}

# t_metric I NAME: the value of metric NAME (whatever its labels) on node I's GET /metrics, or
# nothing.
t_metric() {
  curl -s -m 2 "http://$(t_api_addr "$1")/metrics" |
    awk -v n="$2" 'index($0, n "{") == 1 || $1 == n { print $NF; exit }' || true
}
