#!/usr/bin/env bash
# scripts/bench's raftpg part (root; the chaos testbed of tests/chaos): a three-node cluster with
# default timings and the synchronous quorum, idle cost per node, then RUNS times the loss of the
# primary's node (every process killed, its link down) under continuous writes to each node's own
# address and through the VIP, the node started again after each; then SWITCHOVERS switchovers.
# Writes OUT_DIR/raftpg.json. (No libpq multi-host target: the writer connects without blocking,
# and libpq applies connect_timeout only to blocking connects, so a dead first host would hold
# the target for the kernel's SYN retries, a figure of the writer rather than of the cluster.)
# usage: failover_raftpg.sh RAFTPG_BINARY OUT_DIR RUNS SWITCHOVERS IDLE_SECONDS
set -uo pipefail
NAME=bench_raftpg
BIN=${1:?binary}; OUT=${2:?out dir}; RUNS=${3:?runs}; SWITCHOVERS=${4:?switchovers}; IDLE=${5:?idle s}
HERE=$(cd "$(dirname "$0")" && pwd)
export CHAOS_TEST_TIMEOUT=$((300 + RUNS * 150 + SWITCHOVERS * 90 + IDLE))
# shellcheck source-path=SCRIPTDIR source=../chaos/cluster.sh
source "$HERE/../chaos/cluster.sh"
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$HERE/common.sh"

cl_init "$BIN"
cl_up
cl_wait_ready 120 || exit 1
cl_create_table || cl_die "cannot create the table"

# Idle cost of one node (the primary's): the agent, its guard, and PostgreSQL (every other
# process of the namespace), before any client connects.
P=$CL_PRIMARY
agent=${CL_AGENT_PID[$P]}
guard=$(ps -o pid= --ppid "$agent" 2>/dev/null | tr -d ' ' | tr '\n' ',' | sed 's/,$//')
pg=$(nb_pids "$P" | grep -vxF -e "$agent" $(for g in ${guard//,/ }; do printf -- '-e %s ' "$g"; done) |
    tr '\n' ',' | sed 's/,$//')
cl_log "idle: ${IDLE} s on $P (agent $agent, guard $guard, PostgreSQL $pg)"
bn_idle "$IDLE" "agent=$agent" "guard=$guard" "postgresql=$pg" >"$CL_DIR/idle.json" ||
    cl_die "idle sampling failed"
cat "$CL_DIR/idle.json"

opts="port=$CL_PG_PORT user=postgres dbname=postgres sslmode=disable gssencmode=disable"
ip netns exec "$(nb_ns client)" "$CL_WRITER" write -i 5 -c 5000 -t 1000 -d "$CHAOS_TEST_TIMEOUT" \
    "vip=host=$NB_VIP $opts application_name=bench_vip" \
    "node1=host=$(cl_ip node1) $opts application_name=bench_node1" \
    "node2=host=$(cl_ip node2) $opts application_name=bench_node2" \
    "node3=host=$(cl_ip node3) $opts application_name=bench_node3" \
    >"$CL_DIR/bench.acks" 2>"$CL_DIR/bench.writer.log" </dev/null &
CL_WRITER_PID=$!
mkdir -p "$CL_DIR/logs"
: >"$CL_DIR/runs.jsonl"
: >"$CL_DIR/switchovers.jsonl"

for run in $(seq 1 "$RUNS"); do
    t_wait 120 "the cluster is whole before run $run" cl_ready || break
    P=$CL_PRIMARY
    declare -A off=()
    for n in "${CL_NODES[@]}"; do off[$n]=$(stat -c %s "$CL_DIR/$n.log"); done
    sleep 1 # writes flowing on the settled cluster
    t0=$(cl_now); w0=$(bn_wall_ms)
    bn_kill_node "$P"
    unset "CL_AGENT_PID[$P]"
    NP=""
    if t_wait 30 "a new primary in run $run" cl_new_primary "$P"; then
        NP=$(cl_new_primary "$P") || NP=""
    fi
    # The first write through each target after the kill, or 20 s.
    for _ in $(seq 1 200); do
        [ "$(awk -v t="$t0" -v o="$P" '$3 > t && $2 != o {print $1}' "$CL_DIR/bench.acks" |
            sort -u | wc -l)" -ge 2 ] && break
        sleep 0.1
    done
    sleep 1
    for n in "${CL_NODES[@]}"; do tail -c +$((off[$n] + 1)) "$CL_DIR/$n.log" >"$CL_DIR/logs/run$run.$n.log"; done
    printf '{"run": %d, "old": "%s", "new": %s, "t0": %s, "wall0": %s}\n' "$run" "$P" \
        "$([ -n "$NP" ] && echo "\"$NP\"" || echo null)" "$t0" "$w0" >>"$CL_DIR/runs.jsonl"
    cl_log "run $run: $P killed, new primary ${NP:-none}"
    nb_link_up "$P"
    cl_start "$P"
done

ctl() { cl_client "$CL_BIN" ctl --api "$(cl_ip "$1"):$CL_API_PORT" --secret-file "$CL_DIR/raft.secret" "${@:2}"; }
for sw in $(seq 1 "$SWITCHOVERS"); do
    t_wait 120 "the cluster is whole before switchover $sw" cl_ready || break
    P=$CL_PRIMARY
    sleep 1
    t0=$(cl_now)
    if ctl "$P" switchover --leader "$P" >"$CL_DIR/sw$sw.out" 2>&1; then ok=true; else ok=false; fi
    # The pause ends with the first write after it; a second is enough on a working cluster.
    sleep 1
    t1=$(cl_now)
    NP=$(cl_new_primary "$P" || true)
    printf '{"from": "%s", "to": %s, "ok": %s, "t0": %s, "t1": %s}\n' "$P" \
        "$([ -n "$NP" ] && echo "\"$NP\"" || echo null)" "$ok" "$t0" "$t1" >>"$CL_DIR/switchovers.jsonl"
    cl_log "switchover $sw: $P -> ${NP:-?} ($(head -c 200 "$CL_DIR/sw$sw.out"))"
done

t_wait 120 "the cluster is whole at the end" cl_ready
cl_stop_writer
cl_psql "$(cl_ip "$CL_PRIMARY")" -c 'SELECT id FROM chaos_acks' >"$CL_DIR/bench.ids" ||
    cl_die "cannot read the rows back from $CL_PRIMARY"
python3 "$HERE/bench_report.py" analyse --system raftpg \
    --version "$("$CL_BIN" --version 2>/dev/null | head -n1 | awk '{print $NF}')" \
    --settings "election_timeout ${CL_ET} ms, heartbeat ${CL_HB} ms, synchronous quorum (default), fsync off" \
    --acks "$CL_DIR/bench.acks" --runs "$CL_DIR/runs.jsonl" --switchovers "$CL_DIR/switchovers.jsonl" \
    --ids "$CL_DIR/bench.ids" --idle "$CL_DIR/idle.json" --logs "$CL_DIR/logs" \
    --out "$OUT/raftpg.json" || cl_die "the analysis failed"
cl_log "figures in $OUT/raftpg.json"
