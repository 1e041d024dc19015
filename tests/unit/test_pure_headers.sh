#!/usr/bin/env bash
# The deciders' headers are pure (issue 13): neither they nor anything they include pulls in
# libuv or libraft, so the decision code compiles and reads without the loop or Raft. The
# compiler's own dependency list is asked, header by header.
# Usage: tests/unit/test_pure_headers.sh [RAFTPG_BINARY, unused]
set -uo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../assert.sh
source "$SRC/tests/assert.sh"
CC=${CC:-cc}
pure=(fsm_state pg_state ha sync quorum failover history schedule core fence fence_step peer_status peer_book storage health
      err log timing restart_check switchover_step)
for h in "${pure[@]}"; do
  rc=0
  deps=$(printf '#include "raftpg/%s.h"\n' "$h" | "$CC" -M -I "$SRC/include" -x c - 2>&1) || rc=$?
  t_check "$h.h compiles on its own" t_eq "$rc" 0
  # grep's 1: it ran over the list and found no libuv or libraft header in it.
  t_check "$h.h includes neither uv.h nor raft.h, directly or not" \
    t_status 1 grep -qE '(^|[ /])(uv|raft)\.h|/raft/' <<<"$deps"
  t_check "$h.h's dependency list names itself (the probe ran)" t_contains "$deps" "raftpg/$h.h"
done
t_summary
