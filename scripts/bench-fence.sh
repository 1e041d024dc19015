#!/usr/bin/env bash
# Failover figures in the network-namespace testbed (root only): runs the chaos tests that
# isolate, pause and kill the primary RUNS times each (default 10) and prints, per fault, the
# median and maximum of
#   first_vip_ack_ms  from the fault to the first write acknowledged through the VIP
#   gap_ms            from the old primary's last acknowledged write to the new primary's first
#   vip_gap_ms        the same, through the VIP only
# and how many runs failed a check, as one JSON object. The raw FIGURES lines are kept in
# RAFTPG_BENCH_OUT (default: a temporary file, named at the end); RAFTPG_BENCH_TESTS picks the
# tests (default: test_fence_isolate test_fence_pause test_fence_kill).
# usage: scripts/bench-fence.sh [RUNS]   (after scripts/build.sh)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-10}
BIN=$ROOT/build/raftpg
[ -x "$BIN" ] || { echo "bench-fence: $BIN not found: run scripts/build.sh first" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "bench-fence: needs root (network namespaces)" >&2; exit 1; }
OUT=${RAFTPG_BENCH_OUT:-$(mktemp /tmp/raftpg-bench-fence.XXXXXX)}
: >"$OUT"
for t in ${RAFTPG_BENCH_TESTS:-test_fence_isolate test_fence_pause test_fence_kill}; do
    for ((r = 1; r <= RUNS; r++)); do
        log=$(mktemp /tmp/raftpg-bench-fence-run.XXXXXX)
        rc=0
        timeout 900 bash "$ROOT/tests/chaos/$t.sh" "$BIN" >"$log" 2>&1 || rc=$?
        grep '^FIGURES ' "$log" | sed "s/^FIGURES /{\"test\":\"$t\",\"run\":$r,\"rc\":$rc,\"f\":/; s/\$/}/" >>"$OUT" || true
        echo "bench-fence: $t run $r/$RUNS exit $rc" >&2
        rm -f "$log"
    done
done
python3 - "$OUT" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
out = {}
for r in rows:
    f = r["f"]
    k = out.setdefault(f["fault"], {"runs": 0, "failed_runs": set(), "first_vip_ack_ms": [],
                                     "gap_ms": [], "vip_gap_ms": []})
    k["runs"] += 1
    if r["rc"] != 0:
        k["failed_runs"].add((r["test"], r["run"]))
    for key in ("first_vip_ack_ms", "gap_ms", "vip_gap_ms"):
        if f.get(key) is not None:
            k[key].append(f[key])
res = {}
for fault, k in out.items():
    e = {"runs": k["runs"], "runs_with_a_failed_check": len(k["failed_runs"])}
    for key in ("first_vip_ack_ms", "gap_ms", "vip_gap_ms"):
        v = k[key]
        e[key] = {"median": round(statistics.median(v), 1), "max": round(max(v), 1),
                  "n": len(v)} if v else None
    res[fault] = e
print(json.dumps(res))
EOF
echo "bench-fence: raw figures in $OUT" >&2
