#!/usr/bin/env bash
# A local 3-node raftpg cluster on 127.0.0.1, from conf/node{1,2,3}.yaml.
#   scripts/cluster.sh [start]   install packages, build, start, wait until healthy, show status
#   scripts/cluster.sh status    show 'raftpg ctl list'
#   scripts/cluster.sh stop      stop the agents (data is kept)
#   scripts/cluster.sh clean     stop and delete the data directory
# Drills on one node (N = 1, 2 or 3):
#   scripts/cluster.sh start N | stop N | restart N
#   scripts/cluster.sh kill N    kill -9 of the node's agent and PostgreSQL (a lost node)
#   scripts/cluster.sh ctl ...   raftpg ctl against the demo cluster (switchover, pause, ...)
# Running start again while the cluster runs is harmless: running nodes are left alone.
# Data, logs and PID files live under $RAFTPG_DEMO_DIR (default /tmp/raftpg-demo).
# As root, the agents run as the postgres user.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO=${RAFTPG_DEMO_DIR:-/tmp/raftpg-demo}
NODES=(1 2 3)

# As root the agents run as postgres (PostgreSQL refuses to run as root). An array, not a
# function: a backgrounded function runs in a subshell and $! would name the subshell.
RUNAS=()
if [ "$(id -u)" -eq 0 ]; then
  RUNAS=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi

ctl() { "$DEMO/bin/raftpg" ctl -c "$DEMO/node1.yaml" "$@"; }

running() { [ -f "$DEMO/node$1.pid" ] && kill -0 "$(cat "$DEMO/node$1.pid")" 2>/dev/null; }

do_stop() {
  local NODES=("${@:-${NODES[@]}}")
  for i in "${NODES[@]}"; do
    if running "$i"; then
      kill -TERM "$(cat "$DEMO/node$i.pid")"
    fi
  done
  for i in "${NODES[@]}"; do
    local n=0
    # The agent stops its PostgreSQL first (fast, then immediate after 10 s).
    while running "$i" && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
    if running "$i"; then kill -KILL "$(cat "$DEMO/node$i.pid")"; fi
    rm -f "$DEMO/node$i.pid"
    # A postmaster left by a killed agent is stopped through its own PID file.
    local pm="$DEMO/node$i/pgdata/postmaster.pid"
    if [ -f "$pm" ] && kill -0 "$(head -n1 "$pm")" 2>/dev/null; then
      kill -INT "$(head -n1 "$pm")" 2>/dev/null || true
    fi
  done
  echo "stopped node${NODES[*]} (data kept in $DEMO)"
}

# kill -9 of node N's agent, then of its postmaster: what losing the machine looks like to the
# others (the agent's guard finds its server gone and exits).
do_kill() {
  local i=$1 pm="$DEMO/node$1/pgdata/postmaster.pid"
  if running "$i"; then kill -KILL "$(cat "$DEMO/node$i.pid")"; fi
  rm -f "$DEMO/node$i.pid"
  if [ -f "$pm" ] && kill -0 "$(head -n1 "$pm")" 2>/dev/null; then
    kill -KILL "$(head -n1 "$pm")" 2>/dev/null || true
  fi
  echo "killed node$i (agent and PostgreSQL); start it again: scripts/cluster.sh start $i"
}

do_start() {
  local NODES=("${@:-${NODES[@]}}")
  scripts/install-deps.sh
  bin=$(scripts/build.sh | tail -n 1)
  mkdir -p "$DEMO/bin"
  # A new file renamed over the old: running agents keep theirs ("Text file busy" otherwise).
  cp "$bin" "$DEMO/bin/raftpg.new"
  mv -f "$DEMO/bin/raftpg.new" "$DEMO/bin/raftpg"
  chmod 755 "$DEMO" "$DEMO/bin" "$DEMO/bin/raftpg"
  # The Raft transport's secret (raft.secret_file in conf/node*.yaml), one for the three members.
  [ -e "$DEMO/raft.secret" ] || "$DEMO/bin/raftpg" gen-secret "$DEMO/raft.secret"
  # PostgreSQL's passwords, random, made on the first start and kept: the first initdb sets them.
  if [ ! -e "$DEMO/pg.passwords" ]; then
    (umask 077
     for role in superuser replication; do
       echo "$role $(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
     done >"$DEMO/pg.passwords")
  fi
  local su_pw repl_pw
  su_pw=$(awk '$1 == "superuser" {print $2}' "$DEMO/pg.passwords")
  repl_pw=$(awk '$1 == "replication" {print $2}' "$DEMO/pg.passwords")
  for i in "${NODES[@]}"; do
    if running "$i"; then echo "node$i is already running (pid $(cat "$DEMO/node$i.pid"))"; continue; fi
    # The node's directory holds PostgreSQL's socket: only the agents' user may enter it.
    mkdir -p "$DEMO/node$i"
    chmod 700 "$DEMO/node$i"
    (umask 077
     sed -e "s|/tmp/raftpg-demo|$DEMO|g" -e "s|demo-superuser-password|$su_pw|" \
       -e "s|demo-replication-password|$repl_pw|" "conf/node$i.yaml" >"$DEMO/node$i.yaml")
    "$DEMO/bin/raftpg" check-config "$DEMO/node$i.yaml" >/dev/null
    api=$(grep -A1 '^restapi:' "$DEMO/node$i.yaml" | sed -n 's/.*listen: *\([0-9.:]*\).*/\1/p')
    pgaddr=$(sed -n '/^postgresql:/,/^[a-z]/ s/^  listen: *\([0-9.:]*\).*/\1/p' "$DEMO/node$i.yaml")
    for addr in "$api" $pgaddr; do
      if ss -ltnH | awk '{print $4}' | grep -qx "$addr"; then
        echo "cannot start node$i: $addr is already in use" >&2; exit 1
      fi
    done
  done
  [ "$(id -u)" -ne 0 ] || chown -R postgres:postgres "$DEMO"
  # A password file for the operator's psql, owned by whoever runs this script.
  (umask 077; echo "*:*:*:postgres:$su_pw" >"$DEMO/operator.pgpass")
  chown "$(id -u):$(id -g)" "$DEMO/operator.pgpass"
  for i in "${NODES[@]}"; do
    running "$i" && continue
    "${RUNAS[@]}" "$DEMO/bin/raftpg" run -c "$DEMO/node$i.yaml" >>"$DEMO/node$i.log" 2>&1 </dev/null &
    echo $! >"$DEMO/node$i.pid"
  done
  echo "waiting for a primary and two streaming standbys in its synchronous set (up to 120 s)..."
  local healthy=0
  for _ in $(seq 1 1200); do
    # jq -e on empty input succeeds, so the answer is checked for a non-empty "yes". With
    # synchronous mode on, the standbys count once the primary waits for them (not degraded).
    if [ "$(ctl list --json 2>/dev/null | jq -r '
          ([.members[] | select(.role == "leader" and .pg_role == "primary" and .state == "running")] | length) == 1
          and ([.members[] | select(.state == "streaming")] | length) == 2
          and ((.sync.mode // "off") == "off" or (.sync.degraded == false and (.sync.voters | length) == 2))
          | if . then "yes" else "no" end' 2>/dev/null)" = yes ]; then
      healthy=1
      break
    fi
    sleep 0.1
  done
  ctl list || true
  echo
  if [ $healthy -eq 0 ]; then
    echo "the cluster did not become healthy in time: see $DEMO/node{1,2,3}.log" >&2
    exit 1
  fi
  local primary
  primary=$(ctl list --json 2>/dev/null | jq -r '.members[] | select(.pg_role == "primary") | "-h \(.host) -p \(.port)"' | head -n1)
  echo "write to the primary: PGPASSFILE=$DEMO/operator.pgpass psql $primary -U postgres    (standbys: ports 5433-5435)"
  echo "logs: $DEMO/node{1,2,3}.log, postgresql logs: $DEMO/node{1,2,3}/pgdata.log"
  echo "status: scripts/cluster.sh status    stop: scripts/cluster.sh stop    delete: scripts/cluster.sh clean"
}

node_arg() {
  case "${1:-}" in
    1|2|3) ;;
    *) echo "scripts/cluster.sh $2: expected a node number 1, 2 or 3, got '${1:-}'" >&2; exit 2 ;;
  esac
}

cmd=${1:-start}
[ $# -eq 0 ] || shift
case "$cmd" in
  start) if [ $# -gt 0 ]; then node_arg "$1" start; fi; do_start "$@" ;;
  status) ctl list ;;
  stop) if [ $# -gt 0 ]; then node_arg "$1" stop; fi; do_stop "$@" ;;
  restart) node_arg "${1:-}" restart; do_stop "$1"; do_start "$1" ;;
  kill) node_arg "${1:-}" kill; do_kill "$1" ;;
  ctl) ctl "$@" ;;
  clean) do_stop; rm -rf "$DEMO"; echo "removed $DEMO" ;;
  *) echo "usage: scripts/cluster.sh [start [N]|status|stop [N]|restart N|kill N|ctl ARGS|clean]" >&2; exit 2 ;;
esac
