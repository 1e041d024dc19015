#!/usr/bin/env bash
# Switchovers through a real pgbouncer with the shipped hook (issue: a switchover pauses clients
# for a moment and shows them no error). Runs tests/integration/test_pg_pgbouncer_switchover.sh
# with N switchovers in a row (argument, default 20), one client writing numbered rows through
# pgbouncer all along, and prints its JSON line: the median and longest write pause and the client
# errors; the run fails if an acknowledged row is missing. Needs pgbouncer
# (scripts/install-deps.sh installs it); root.
# usage: scripts/bench-pgbouncer.sh [N]   (after scripts/build.sh)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/build/raftpg
[ -x "$BIN" ] || { echo "bench-pgbouncer: $BIN not found: run scripts/build.sh first" >&2; exit 1; }
PGB_SWITCHOVERS=${1:-20} PGB_ONLY_SWITCHOVERS=1 \
    bash "$ROOT/tests/integration/test_pg_pgbouncer_switchover.sh" "$BIN" | grep -E '^\{|FAIL|longest write pause'
