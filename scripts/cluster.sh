#!/usr/bin/env bash
# A local 3-node raftpg cluster on 127.0.0.1, from conf/node{1,2,3}.yaml.
#   scripts/cluster.sh [start]   install packages, build, start, wait until healthy, show status
#   scripts/cluster.sh status    show 'raftpg ctl list'
#   scripts/cluster.sh stop      stop the agents (data is kept)
#   scripts/cluster.sh clean     stop and delete the data directory
# Data, logs and PID files live under $RAFTPG_DEMO_DIR (default /tmp/raftpg-demo).
# As root, the agents run as the postgres user.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO=${RAFTPG_DEMO_DIR:-/tmp/raftpg-demo}
NODES=(1 2 3)

runas() {
  if [ "$(id -u)" -eq 0 ]; then
    setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
  else
    "$@"
  fi
}

ctl() { "$DEMO/bin/raftpg" ctl -c "$DEMO/node1.yaml" "$@"; }

running() { [ -f "$DEMO/node$1.pid" ] && kill -0 "$(cat "$DEMO/node$1.pid")" 2>/dev/null; }

do_stop() {
  for i in "${NODES[@]}"; do
    if running "$i"; then
      kill -TERM "$(cat "$DEMO/node$i.pid")"
    fi
  done
  for i in "${NODES[@]}"; do
    local n=0
    while running "$i" && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
    if running "$i"; then kill -KILL "$(cat "$DEMO/node$i.pid")"; fi
    rm -f "$DEMO/node$i.pid"
  done
  echo "cluster stopped (data kept in $DEMO)"
}

do_start() {
  scripts/install-deps.sh
  bin=$(scripts/build.sh | tail -n 1)
  mkdir -p "$DEMO/bin"
  cp "$bin" "$DEMO/bin/raftpg"
  chmod 755 "$DEMO" "$DEMO/bin" "$DEMO/bin/raftpg"
  for i in "${NODES[@]}"; do
    if running "$i"; then echo "node$i is already running (pid $(cat "$DEMO/node$i.pid"))"; continue; fi
    sed "s|/tmp/raftpg-demo|$DEMO|g" "conf/node$i.yaml" >"$DEMO/node$i.yaml"
    "$DEMO/bin/raftpg" check-config "$DEMO/node$i.yaml" >/dev/null
    api=$(grep -A1 '^restapi:' "$DEMO/node$i.yaml" | sed -n 's/.*listen: *\([0-9.:]*\).*/\1/p')
    if ss -ltnH | awk '{print $4}' | grep -qx "$api"; then
      echo "cannot start node$i: $api is already in use" >&2; exit 1
    fi
  done
  [ "$(id -u)" -ne 0 ] || chown -R postgres:postgres "$DEMO"
  for i in "${NODES[@]}"; do
    running "$i" && continue
    runas setsid "$DEMO/bin/raftpg" run -c "$DEMO/node$i.yaml" >>"$DEMO/node$i.log" 2>&1 </dev/null &
    echo $! >"$DEMO/node$i.pid"
  done
  echo "waiting for the cluster to elect a leader..."
  for _ in $(seq 1 200); do
    if ctl list --json 2>/dev/null | jq -e '.raft.state_known and (.raft.leader != null)' >/dev/null 2>&1; then
      break
    fi
    sleep 0.1
  done
  ctl list
  echo
  echo "logs: $DEMO/node{1,2,3}.log"
  echo "status: scripts/cluster.sh status    stop: scripts/cluster.sh stop"
}

case "${1:-start}" in
  start) do_start ;;
  status) ctl list ;;
  stop) do_stop ;;
  clean) do_stop; rm -rf "$DEMO"; echo "removed $DEMO" ;;
  *) echo "usage: scripts/cluster.sh [start|status|stop|clean]" >&2; exit 2 ;;
esac
