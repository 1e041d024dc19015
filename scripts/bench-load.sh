#!/usr/bin/env bash
# A healthy cluster under CPU and I/O load must not fail over or drop sessions (issue: a blip
# never demotes a healthy primary). Runs tests/integration/load_fence.sh for LOAD_S seconds
# (argument, default 600) and prints its JSON line: hard fences, failovers, elections, soft-layer
# pauses, whether the client session survived. Installs stress-ng (Debian) when missing; root.
# usage: scripts/bench-load.sh [SECONDS]   (after scripts/build.sh)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/build/raftpg
[ -x "$BIN" ] || { echo "bench-load: $BIN not found: run scripts/build.sh first" >&2; exit 1; }
if ! command -v stress-ng >/dev/null; then
    [ "$(id -u)" -eq 0 ] || { echo "bench-load: install stress-ng (apt-get install stress-ng)" >&2; exit 1; }
    apt-get install -y -q --no-install-recommends stress-ng >/dev/null ||
        { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends stress-ng >/dev/null; }
fi
LOAD_S=${1:-600} bash "$ROOT/tests/integration/load_fence.sh" "$BIN" | grep -E '^\{|FAIL'
