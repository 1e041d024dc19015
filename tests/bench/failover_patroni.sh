#!/usr/bin/env bash
# scripts/bench --compare patroni's Patroni part (root): the same testbed (tests/chaos/netns.sh),
# faults, writer and figures as failover_raftpg.sh, with Patroni and etcd from Debian's packages:
# each node namespace runs an etcd member, Patroni and its PostgreSQL (the same parameters as the
# chaos cluster's), synchronous_mode on. Patroni has no VIP of its own (keepalived or vip-manager
# would add one): its clients connect to the nodes. Writes OUT_DIR/patroni.json.
# Timings: PATRONI_TTL (default 10), PATRONI_LOOP_WAIT (1), PATRONI_RETRY_TIMEOUT (3): Patroni's
# rule loop_wait + 2 * retry_timeout <= ttl holds, the tightest that keeps a margin for etcd.
# usage: failover_patroni.sh RAFTPG_BUILD_DIR OUT_DIR RUNS SWITCHOVERS IDLE_SECONDS
set -uo pipefail
NAME=bench_patroni
BUILD=${1:?build dir}; OUT=${2:?out dir}; RUNS=${3:?runs}; SWITCHOVERS=${4:?switchovers}; IDLE=${5:?idle s}
TTL=${PATRONI_TTL:-10}; LOOP_WAIT=${PATRONI_LOOP_WAIT:-1}; RETRY=${PATRONI_RETRY_TIMEOUT:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" -eq 0 ] || { echo "FAIL: $NAME: needs root (network namespaces)"; exit 1; }
# shellcheck source-path=SCRIPTDIR source=../chaos/netns.sh
source "$HERE/../chaos/netns.sh"
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$HERE/common.sh"
for tool in patroni patronictl etcd curl jq psql setpriv; do
    command -v "$tool" >/dev/null || { echo "FAIL: $NAME: $tool not found (apt-get install patroni etcd-server)"; exit 1; }
done
WRITER=$BUILD/tests/chaos/raftpg_chaos_writer
[ -x "$WRITER" ] || { echo "FAIL: $NAME: no $WRITER"; exit 1; }
PG_BIN=/usr/lib/postgresql/15/bin
NODES=(node1 node2 node3)
PG_PORT=5432
DIR=$(mktemp -d /tmp/raftpg-bench-patroni.XXXXXX)
chmod 755 "$DIR"
PREFIX=p$$
declare -A ETCD_PID=() PATRONI_PID=()
WRITER_PID=
DEADLINE=$((SECONDS + 600 + RUNS * 150 + SWITCHOVERS * 90 + IDLE))
log() { printf '# %s %s\n' "$(date +%T.%3N)" "$*"; }

cleanup() {
    local rc=$? n pids
    trap - EXIT
    [ -z "$WRITER_PID" ] || { kill -TERM "$WRITER_PID" 2>/dev/null; wait "$WRITER_PID" 2>/dev/null; }
    for n in "${NODES[@]}"; do
        pids=$(nb_pids "$n" 2>/dev/null || true)
        # shellcheck disable=SC2086
        [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
    done
    for pid in "${PATRONI_PID[@]}" "${ETCD_PID[@]}"; do wait "$pid" 2>/dev/null || true; done
    nb_down "$PREFIX" || rc=1
    if [ $rc -ne 0 ] || [ -n "${CHAOS_KEEP:-}" ]; then
        for n in "${NODES[@]}"; do rm -rf "${DIR:?}/$n"; done
        echo "# logs kept in $DIR"
    else
        rm -rf "$DIR"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# wait_for SECONDS DESCRIPTION COMMAND...: polls every 200 ms; bounded by the run's deadline too.
wait_for() {
    local t=$1 desc=$2 n=0
    shift 2
    while [ $n -lt $((t * 5)) ] && [ $SECONDS -lt $DEADLINE ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2; n=$((n + 1))
    done
    echo "# timed out after ${t}s waiting for: $desc"
    return 1
}

nb_up "$PREFIX" || { echo "FAIL: $NAME: cannot create testbed"; exit 1; }
ip_of() { nb_ip "$1"; }
client() { timeout 10 ip netns exec "$(nb_ns client)" "$@"; }
api() { client curl -s --max-time 1 "http://$(ip_of "$1"):8008$2"; }
ctl() { client patronictl -c "$DIR/node1.yml" "$@"; }
now() { "$WRITER" now; }

cluster="node1=http://$(ip_of node1):2380,node2=http://$(ip_of node2):2380,node3=http://$(ip_of node3):2380"
hosts="$(ip_of node1):2379,$(ip_of node2):2379,$(ip_of node3):2379"
conf() {
    local n=$1 ip
    ip=$(ip_of "$n")
    cat <<EOF
scope: bench
name: $n
log: {level: INFO}
restapi: {listen: "$ip:8008", connect_address: "$ip:8008"}
etcd3: {hosts: "$hosts"}
bootstrap:
  dcs:
    ttl: $TTL
    loop_wait: $LOOP_WAIT
    retry_timeout: $RETRY
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters: {shared_buffers: 16MB, max_connections: 40, max_wal_senders: 10,
                   max_replication_slots: 10, wal_keep_size: 64MB, fsync: "off", wal_log_hints: "on"}
  initdb: [{encoding: UTF8}]
postgresql:
  listen: "0.0.0.0:$PG_PORT"
  connect_address: "$ip:$PG_PORT"
  data_dir: $DIR/$n/pgdata
  bin_dir: $PG_BIN
  pgpass: $DIR/$n/pgpass
  authentication:
    superuser: {username: postgres, password: bench}
    replication: {username: replicator, password: bench}
  parameters: {chaos.node: $n, unix_socket_directories: "$DIR/$n", log_min_messages: warning}
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host all all $NB_SUBNET trust
    - host replication all 127.0.0.1/32 trust
    - host replication all $NB_SUBNET trust
EOF
}
start_node() {
    local n=$1 ip
    ip=$(ip_of "$n")
    mkdir -p "$DIR/$n/etcd"
    chown -R postgres:postgres "$DIR/$n"
    chmod 700 "$DIR/$n/etcd"
    ip netns exec "$(nb_ns "$n")" setpriv --reuid=postgres --regid=postgres --init-groups -- \
        etcd --name "$n" --data-dir "$DIR/$n/etcd" \
        --listen-peer-urls "http://$ip:2380" --initial-advertise-peer-urls "http://$ip:2380" \
        --listen-client-urls "http://$ip:2379" --advertise-client-urls "http://$ip:2379" \
        --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "bench$$" \
        >>"$DIR/$n.etcd.log" 2>&1 </dev/null &
    ETCD_PID[$n]=$!
    ip netns exec "$(nb_ns "$n")" setpriv --reuid=postgres --regid=postgres --init-groups -- \
        env TZ=UTC patroni "$DIR/$n.yml" >>"$DIR/$n.log" 2>&1 </dev/null &
    PATRONI_PID[$n]=$!
}
for n in "${NODES[@]}"; do conf "$n" >"$DIR/$n.yml"; chown postgres:postgres "$DIR/$n.yml"; done
chown postgres:postgres "$DIR"
for n in "${NODES[@]}"; do start_node "$n"; done
log "testbed $PREFIX, work directory $DIR, patroni $(patroni --version | awk '{print $2}'), ttl $TTL, loop_wait $LOOP_WAIT, retry_timeout $RETRY"

# The leader as NODE's API reports it, running.
leader_seen_by() {
    api "$1" /cluster | jq -r '[.members[] | select(.role == "leader" and .state == "running")] |
        if length == 1 then .[0].name else empty end' 2>/dev/null
}
# One running leader, the two others running replicas on its timeline, one of them its
# synchronous standby.
ready() {
    local j
    j=$(api node1 /cluster) || return 1
    jq -e '([.members[] | select(.role == "leader" and .state == "running")] | length) == 1 and
        ([.members[] | select(.role != "leader" and (.state == "running" or .state == "streaming"))]
            | length) == 2 and
        ([.members[] | select(.role == "sync_standby")] | length) == 1 and
        ([.members[] | .timeline] | unique | length) == 1' <<<"$j" >/dev/null || return 1
    LEADER=$(jq -r '.members[] | select(.role == "leader") | .name' <<<"$j")
}
new_leader() {
    local old=$1 n l
    for n in "${NODES[@]}"; do
        [ "$n" != "$old" ] || continue
        l=$(leader_seen_by "$n")
        if [ -n "$l" ] && [ "$l" != "$old" ]; then echo "$l"; return 0; fi
    done
    return 1
}
psql_on() { PGCONNECT_TIMEOUT=3 client psql -X -q -A -t -h "$(ip_of "$1")" -p "$PG_PORT" -U postgres -d postgres "${@:2}"; }

wait_for 180 "a Patroni cluster with a leader and two replicas" ready || exit 1
log "leader is $LEADER"
psql_on "$LEADER" -c "CREATE TABLE chaos_acks (id bigint PRIMARY KEY, target text NOT NULL, node text NOT NULL)" ||
    { echo "FAIL: $NAME: cannot create the table"; exit 1; }

P=$LEADER
pg=$(nb_pids "$P" | grep -vxF -e "${PATRONI_PID[$P]}" -e "${ETCD_PID[$P]}" | tr '\n' ',' | sed 's/,$//')
sleep 5 # the cluster settles after its bootstrap, as the raftpg part's does before it is ready
log "idle: ${IDLE} s on $P (patroni ${PATRONI_PID[$P]}, etcd ${ETCD_PID[$P]}, PostgreSQL $pg)"
bn_idle "$IDLE" "patroni=${PATRONI_PID[$P]}" "etcd=${ETCD_PID[$P]}" "postgresql=$pg" >"$DIR/idle.json" ||
    { echo "FAIL: $NAME: idle sampling failed"; exit 1; }
cat "$DIR/idle.json"

opts="port=$PG_PORT user=postgres dbname=postgres sslmode=disable gssencmode=disable"
ip netns exec "$(nb_ns client)" "$WRITER" write -i 5 -c 5000 -t 1000 -d $((DEADLINE - SECONDS)) -b 1 \
    "node1=host=$(ip_of node1) $opts application_name=bench_node1" \
    "node2=host=$(ip_of node2) $opts application_name=bench_node2" \
    "node3=host=$(ip_of node3) $opts application_name=bench_node3" \
    >"$DIR/bench.acks" 2>"$DIR/bench.writer.log" </dev/null &
WRITER_PID=$!
mkdir -p "$DIR/logs"
: >"$DIR/runs.jsonl"
: >"$DIR/switchovers.jsonl"

for run in $(seq 1 "$RUNS"); do
    wait_for 180 "the cluster is whole before run $run" ready || break
    P=$LEADER
    declare -A off=()
    for n in "${NODES[@]}"; do off[$n]=$(stat -c %s "$DIR/$n.log"); done
    sleep 1
    t0=$(now); w0=$(bn_wall_ms)
    bn_kill_node "$P"
    unset "PATRONI_PID[$P]" "ETCD_PID[$P]"
    NP=""
    if wait_for 90 "a new leader in run $run" new_leader "$P"; then NP=$(new_leader "$P") || NP=""; fi
    for _ in $(seq 1 300); do
        [ -n "$(awk -v t="$t0" -v o="$P" '$3 > t && $2 != o' "$DIR/bench.acks" | head -n1)" ] && break
        sleep 0.1
    done
    sleep 1
    for n in "${NODES[@]}"; do tail -c +$((off[$n] + 1)) "$DIR/$n.log" >"$DIR/logs/run$run.$n.log"; done
    printf '{"run": %d, "old": "%s", "new": %s, "t0": %s, "wall0": %s}\n' "$run" "$P" \
        "$([ -n "$NP" ] && echo "\"$NP\"" || echo null)" "$t0" "$w0" >>"$DIR/runs.jsonl"
    log "run $run: $P killed, new leader ${NP:-none}"
    nb_link_up "$P"
    start_node "$P"
done

for sw in $(seq 1 "$SWITCHOVERS"); do
    wait_for 180 "the cluster is whole before switchover $sw" ready || break
    P=$LEADER
    sleep 1
    t0=$(now)
    if ctl switchover --leader "$P" --force >"$DIR/sw$sw.out" 2>&1; then ok=true; else ok=false; fi
    wait_for 30 "a new leader after switchover $sw" new_leader "$P" || ok=false
    sleep 1
    t1=$(now)
    NP=$(new_leader "$P" || true)
    printf '{"from": "%s", "to": %s, "ok": %s, "t0": %s, "t1": %s}\n' "$P" \
        "$([ -n "$NP" ] && echo "\"$NP\"" || echo null)" "$ok" "$t0" "$t1" >>"$DIR/switchovers.jsonl"
    log "switchover $sw: $P -> ${NP:-?} ($(tail -n 1 "$DIR/sw$sw.out" | head -c 200))"
done

wait_for 180 "the cluster is whole at the end" ready
kill -TERM "$WRITER_PID" 2>/dev/null; wait "$WRITER_PID" 2>/dev/null; WRITER_PID=
psql_on "$LEADER" -c 'SELECT id FROM chaos_acks' >"$DIR/bench.ids" ||
    { echo "FAIL: $NAME: cannot read the rows back from $LEADER"; exit 1; }
python3 "$HERE/bench_report.py" analyse --system patroni \
    --version "$(patroni --version | awk '{print $2}')" \
    --settings "ttl $TTL s, loop_wait $LOOP_WAIT s, retry_timeout $RETRY s, synchronous_mode on, etcd $(etcd --version | awk 'NR == 1 {print $3}') (one member per node), fsync off" \
    --acks "$DIR/bench.acks" --runs "$DIR/runs.jsonl" --switchovers "$DIR/switchovers.jsonl" \
    --ids "$DIR/bench.ids" --idle "$DIR/idle.json" --logs "$DIR/logs" \
    --out "$OUT/patroni.json" || { echo "FAIL: $NAME: the analysis failed"; exit 1; }
log "figures in $OUT/patroni.json"
