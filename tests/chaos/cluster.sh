#!/usr/bin/env bash
# A raftpg cluster in the chaos testbed (DESIGN.md §7), for the fencing tests: on top of netns.sh,
# each node namespace runs an agent (and so PostgreSQL) as the postgres user with CAP_NET_ADMIN
# and CAP_NET_RAW as ambient capabilities, as systemd would give them (DESIGN.md §6), so that the
# agent's ip and arping can manage the write VIP. The client namespace runs the writer
# (raftpg_chaos_writer) and every API or SQL request; the root namespace runs the VIP watcher
# (raftpg_chaos_vipwatch), which polls the nodes' addresses and the client's ARP view.
#
# Source it from a test, after setting NAME:
#   source "$HERE/cluster.sh"
#   cl_init "$1"        # root check, tools, helper binaries, work directory, traps, time bound
#   cl_up               # testbed, configurations, three agents
#   cl_wait_ready 120   # one primary with the VIP, two streaming standbys; sets CL_PRIMARY
#
# Layout: raft 10.231.0.1x:7001, API 10.231.0.1x:8001, PostgreSQL listening on 0.0.0.0:5432 in
# each node namespace (so that it also answers on the VIP) with connect_address 10.231.0.1x:5432,
# VIP 10.231.0.100/24 on eth0. Traffic goes only to the testbed's own addresses. Every process is
# tracked by PID; the EXIT trap kills them by PID and removes the testbed, also on failure.
# shellcheck shell=bash

# Before netns.sh, which refuses to be sourced by anyone but root.
if [ "$(id -u)" -ne 0 ]; then
    echo "FAIL: ${NAME:-chaos}: the testbed needs root (network namespaces, setpriv); run the" \
        "chaos suite as root"
    exit 1
fi
CL_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=netns.sh
source "$CL_HERE/netns.sh"
# shellcheck source=../assert.sh
source "$CL_HERE/../assert.sh"
# Every poll here goes through ip netns exec and often ctl: five a second are enough.
T_POLL_INTERVAL=0.2

CL_NODES=(node1 node2 node3)
CL_ET=${CHAOS_ELECTION_TIMEOUT:-500}
CL_HB=${CHAOS_HEARTBEAT_TIMEOUT:-100}
CL_LEASE_MS=$((CL_ET * 8 / 10)) # include/raftpg/fence.h: lease 0.8 ET
CL_RAFT_PORT=7001
CL_API_PORT=8001
CL_PG_PORT=5432
CL_PG_BIN=${CHAOS_PG_BIN:-/usr/lib/postgresql/15/bin}
# shellcheck disable=SC2054 # the commas belong to setpriv's capability lists
CL_CAPS=(setpriv --reuid=postgres --regid=postgres --init-groups
    --inh-caps=+net_admin,+net_raw --ambient-caps=+net_admin,+net_raw --)
CL_DIR=
CL_BIN=
CL_WRITER=
CL_VIPWATCH=
CL_PREFIX=
CL_PRIMARY=
CL_WRITER_PID=
CL_WATCH_PID=
declare -A CL_AGENT_PID=()

cl_log() { printf '# %s %s\n' "$(date +%T.%3N)" "$*"; }

# Fails the test at once, for what makes every later check meaningless.
cl_die() {
    echo "FAIL: $NAME: $*"
    exit 1
}

# cl_init RAFTPG_BINARY: checks the environment (root was checked when this file was sourced),
# finds the helpers beside the binary's build (tests/chaos/ of the build directory, or
# $RAFTPG_CHAOS_WRITER / $RAFTPG_CHAOS_VIPWATCH), makes the work directory and installs the
# cleanup trap and the time bound (CHAOS_TEST_TIMEOUT seconds, default 300).
cl_init() {
    local bin=${1:-} tool
    if [ -z "$bin" ] || [ ! -x "$bin" ]; then
        echo "FAIL: $NAME: usage: $NAME.sh PATH_TO_RAFTPG (got \"$bin\")"
        exit 1
    fi
    CL_WRITER=${RAFTPG_CHAOS_WRITER:-$(dirname "$bin")/tests/chaos/raftpg_chaos_writer}
    CL_VIPWATCH=${RAFTPG_CHAOS_VIPWATCH:-$(dirname "$bin")/tests/chaos/raftpg_chaos_vipwatch}
    for tool in "$CL_WRITER" "$CL_VIPWATCH"; do
        [ -x "$tool" ] || cl_die "$tool not found; build it (tests/chaos/CMakeLists.txt)"
    done
    for tool in ip nft setpriv arping psql jq python3; do
        command -v "$tool" >/dev/null 2>&1 ||
            cl_die "$tool not found (run scripts/install-deps.sh)"
    done
    [ -x "$CL_PG_BIN/initdb" ] || cl_die "no PostgreSQL in $CL_PG_BIN (package postgresql-15)"
    id postgres >/dev/null 2>&1 || cl_die "user postgres is missing (package postgresql-15)"

    CL_DIR=$(mktemp -d "/tmp/raftpg-$NAME.XXXXXX")
    chmod 755 "$CL_DIR"
    cp "$bin" "$CL_DIR/raftpg"
    CL_BIN=$CL_DIR/raftpg
    chown postgres:postgres "$CL_DIR"
    trap cl_cleanup EXIT
    trap 'exit 1' INT TERM
    t_time_bound "${CHAOS_TEST_TIMEOUT:-300}"
}

# Kills what this test started, by PID, then removes the testbed. On failure (or with CHAOS_KEEP
# set) the logs are kept, the servers' beside the agents' as NODE.pg.log, and their tails printed
# on failure; data directories are always removed.
cl_cleanup() {
    local rc=$? n pid f
    trap - EXIT
    [ "$T_FAILED" -eq 0 ] || rc=1
    t_time_bound_stop
    cl_stop_writer
    cl_stop_watch
    for n in "${!CL_AGENT_PID[@]}"; do
        pid=${CL_AGENT_PID[$n]}
        kill -CONT "$pid" 2>/dev/null || true
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    for n in "${CL_NODES[@]}"; do
        pid=$(cl_pg_pid "$n" 2>/dev/null) || continue
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [ -n "$CL_PREFIX" ]; then
        nb_down "$CL_PREFIX" || rc=1
    fi
    if [ -n "$CL_DIR" ] && [ -d "$CL_DIR" ]; then
        for n in "${CL_NODES[@]}"; do
            [ ! -f "$CL_DIR/$n/pgdata.log" ] || mv "$CL_DIR/$n/pgdata.log" "$CL_DIR/$n.pg.log"
            rm -rf "${CL_DIR:?}/$n"
        done
        if [ $rc -ne 0 ]; then
            for f in "$CL_DIR"/*.log; do
                [ -f "$f" ] || continue
                echo "----- $f (last 30 lines)"
                tail -n 30 "$f"
            done
        fi
        rm -f "$CL_DIR/raftpg"
        if [ $rc -ne 0 ] || [ -n "${CHAOS_KEEP:-}" ]; then
            echo "# logs kept in $CL_DIR"
        else
            rm -rf "$CL_DIR"
        fi
    fi
    exit $rc
}

# ---- checks -------------------------------------------------------------------------------------

# Stops every agent with SIGTERM, as systemd would, and checks that each exits 0 within 60 s
# (under the sanitizers that also means no leak report). A child of this shell that has exited
# stays a zombie until waited for, hence the state letter rather than kill -0.
cl_stop_agents() {
    local n pid rc i
    for n in "${!CL_AGENT_PID[@]}"; do kill -TERM "${CL_AGENT_PID[$n]}" 2>/dev/null || true; done
    for n in "${CL_NODES[@]}"; do
        pid=${CL_AGENT_PID[$n]:-}
        [ -n "$pid" ] || continue
        for ((i = 0; i < 300; i++)); do
            case $(cl_agent_state "$n" || echo gone) in Z | gone) break ;; esac
            sleep 0.2
        done
        case $(cl_agent_state "$n" || echo gone) in
        Z | gone) ;;
        *) kill -KILL "$pid" 2>/dev/null || true ;;
        esac
        rc=0
        wait "$pid" 2>/dev/null || rc=$?
        unset "CL_AGENT_PID[$n]"
        t_check "$n's agent exits 0 on SIGTERM" t_eq "$rc" 0
    done
}

# Ends the test: stops the agents, then a summary line, and exit 1 when a check failed.
cl_done() {
    cl_stop_agents
    t_check "no sanitizer report in an agent log" t_no_sanitizer_report "$CL_DIR"/*.log
    t_summary
}

# ---- the cluster --------------------------------------------------------------------------------

cl_ip() { nb_ip "$1"; }

cl_conf() {
    local n=$1 m f=$CL_DIR/$1.yaml
    # One Raft secret for the cluster, owned by the agents' user (raft.secret_file).
    if [ ! -e "$CL_DIR/raft.secret" ]; then
        "$CL_BIN" gen-secret "$CL_DIR/raft.secret"
        chown postgres:postgres "$CL_DIR/raft.secret"
    fi
    {
        echo "scope: chaos"
        echo "name: $n"
        echo "raft:"
        echo "  listen: $(cl_ip "$n"):$CL_RAFT_PORT"
        echo "  data_dir: $CL_DIR/$n/raft"
        echo "  election_timeout: $CL_ET"
        echo "  heartbeat_timeout: $CL_HB"
        echo "  secret_file: $CL_DIR/raft.secret"
        echo "  members:"
        for m in "${CL_NODES[@]}"; do
            echo "    - {name: $m, raft: \"$(cl_ip "$m"):$CL_RAFT_PORT\"," \
                "api: \"$(cl_ip "$m"):$CL_API_PORT\"}"
        done
        echo "restapi:"
        echo "  listen: $(cl_ip "$n"):$CL_API_PORT"
        echo "postgresql:"
        echo "  bin_dir: $CL_PG_BIN"
        echo "  data_dir: $CL_DIR/$n/pgdata"
        # 0.0.0.0 within the namespace: its own address and the VIP when it holds it.
        echo "  listen: 0.0.0.0:$CL_PG_PORT"
        echo "  connect_address: $(cl_ip "$n"):$CL_PG_PORT"
        echo "  parameters: {shared_buffers: 16MB, max_connections: 40, max_wal_senders: 10,"
        echo "               max_replication_slots: 10, wal_keep_size: 64MB, fsync: \"off\","
        echo "               chaos.node: $n, log_min_messages: log}"
        echo "  pg_hba:"
        echo "    - local all all trust"
        echo "    - host all all $NB_SUBNET trust"
        echo "    - host replication all $NB_SUBNET trust"
        echo "vip:"
        echo "  address: $NB_VIP/$NB_VIP_PREFIX"
        echo "  interface: $NB_IF"
    } >"$f"
    chown postgres:postgres "$f"
}

# Starts NODE's agent in its namespace as postgres with the VIP's capabilities; ip netns exec
# and setpriv both exec, so $! is the agent itself.
cl_start() {
    local n=$1
    mkdir -p "$CL_DIR/$n"
    chown postgres:postgres "$CL_DIR/$n"
    ip netns exec "$(nb_ns "$n")" "${CL_CAPS[@]}" "$CL_BIN" run -c "$CL_DIR/$n.yaml" \
        >>"$CL_DIR/$n.log" 2>&1 </dev/null &
    CL_AGENT_PID[$n]=$!
}

# Creates the testbed and starts the three agents.
cl_up() {
    local n
    CL_PREFIX=c$$
    nb_up "$CL_PREFIX" || cl_die "cannot create testbed $CL_PREFIX"
    for n in "${CL_NODES[@]}"; do cl_conf "$n"; done
    for n in "${CL_NODES[@]}"; do cl_start "$n"; done
    cl_log "testbed $CL_PREFIX, work directory $CL_DIR, election timeout ${CL_ET} ms," \
        "lease ${CL_LEASE_MS} ms"
}

cl_agent_alive() { kill -0 "${CL_AGENT_PID[$1]}" 2>/dev/null; }

# The agent's process state letter (R, S, T for stopped, ...).
cl_agent_state() {
    local stat
    stat=$(cat "/proc/${CL_AGENT_PID[$1]}/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    echo "${stat%% *}"
}

cl_agent_stopped() { [ "$(cl_agent_state "$1")" = T ]; }

# cl_kill_agent NODE SIGNAL: KILL also reaps it.
cl_kill_agent() {
    local n=$1 sig=$2 pid=${CL_AGENT_PID[$1]}
    kill "-$sig" "$pid" 2>/dev/null || return 1
    if [ "$sig" = KILL ]; then
        wait "$pid" 2>/dev/null || true
        unset "CL_AGENT_PID[$n]"
    fi
}

# The postmaster PID of NODE from postmaster.pid, if that process runs (not a zombie: a killed
# postmaster whose parent has not reaped it yet).
cl_pg_pid() {
    local f=$CL_DIR/$1/pgdata/postmaster.pid pid st
    [ -f "$f" ] || return 1
    pid=$(head -n1 "$f" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    st=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1) || return 1
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ] && echo "$pid"
}

# Kills NODE's PostgreSQL with SIGKILL, the postmaster and every child at once: each child of a
# postmaster is its own session, so they are all stopped first (a stopped postmaster forks no
# more) and none can notice the others' death and answer a client before it is killed.
cl_kill_pg() {
    local pid kids
    pid=$(cl_pg_pid "$1") || return 0
    kill -STOP "$pid" 2>/dev/null || true
    # The postmaster may be gone already (the node's guard stops it when the agent dies).
    kids=$( (ps -o pid= --ppid "$pid" 2>/dev/null || true) | tr -d ' ' | tr '\n' ' ')
    # shellcheck disable=SC2086
    [ -z "$kids" ] || kill -STOP $kids 2>/dev/null || true
    # shellcheck disable=SC2086
    kill -KILL "$pid" $kids 2>/dev/null || true
}

# Runs COMMAND... in the client namespace, bounded.
cl_client() { timeout 10 ip netns exec "$(nb_ns client)" "$@"; }

# JSON of GET /cluster as NODE's API answers it, or nothing.
cl_cluster() {
    cl_client "$CL_BIN" ctl --api "$(cl_ip "$1"):$CL_API_PORT" --timeout 1000 list --json \
        2>/dev/null || true
}

cl_jq() {
    local n=$1
    shift
    cl_cluster "$n" | jq -r "$@" 2>/dev/null || true
}

# psql as postgres against HOST (an address), from the client namespace.
cl_psql() {
    local host=$1
    shift
    PGCONNECT_TIMEOUT=3 cl_client psql -X -q -A -t -h "$host" -p "$CL_PG_PORT" -U postgres \
        -d postgres "$@"
}

# The addresses NODE has on the testbed interface, "A/P" a line.
cl_addrs() { nb_exec "$1" ip -4 -o addr show dev "$NB_IF" | awk '{print $4}'; }

# cl_vip_on NODE: "yes" or "no", as ip in NODE's namespace lists the interface's addresses;
# fails, printing nothing, when that listing lacks NODE's own address (ip did not run there).
cl_vip_on() {
    local addrs
    addrs=$(cl_addrs "$1" 2>/dev/null) || true
    grep -qF "$(cl_ip "$1")/" <<<"$addrs" || return 1
    if grep -qF "$NB_VIP/" <<<"$addrs"; then echo yes; else echo no; fi
}
cl_has_vip() { [ "$(cl_vip_on "$1")" = yes ]; }
# NODE has no VIP, and ip said so.
cl_lacks_vip() {
    local v
    v=$(cl_vip_on "$1") || { echo "# ip in $1's namespace did not list its addresses"; return 1; }
    [ "$v" = no ] || { echo "# $1 holds the VIP"; return 1; }
}

# The nodes that hold the VIP, space-separated; "NODE?" for one whose addresses ip did not list.
cl_vip_holders() {
    local n v out=
    for n in "${CL_NODES[@]}"; do
        v=$(cl_vip_on "$n") || v=unknown
        case $v in yes) out+="$n " ;; unknown) out+="$n? " ;; esac
    done
    echo "${out% }"
}

cl_vip_alone_on() { [ "$(cl_vip_holders)" = "$1" ]; }

# The member NODE's API reports as the running primary under the Raft leader.
cl_primary_seen_by() {
    cl_jq "$1" '[.members[] | select(.role == "leader" and .pg_role == "primary"
        and .state == "running")] | if length == 1 then .[0].name else empty end'
}

# Succeeds when NODE's view has NAME as primary and every other member streaming from it.
cl_healthy_as() {
    local n=$1 p=$2 json
    json=$(cl_cluster "$n")
    [ -n "$json" ] || return 1
    jq -e --arg p "$p" '
        ([.members[] | select(.role == "leader" and .pg_role == "primary"
            and .state == "running") | .name] == [$p]) and
        ([.members[] | select(.name != $p and .pg_role == "standby" and .state == "streaming")]
            | length) == (.members | length) - 1' <<<"$json" >/dev/null
}

# NODE's agent has finished claiming the VIP: the last VIP event in its log is "held". A claim
# takes a probe, then announcements for announce_repeats x announce_interval (2 s by default).
cl_vip_claimed() {
    grep -F ': vip ' "$CL_DIR/$1.log" | tail -n 1 | grep -qF ": vip $NB_VIP/$NB_VIP_PREFIX held"
}

# One primary, seen so by every node, holding the VIP alone and done claiming it, both standbys
# streaming. Faults start from here, so that none lands inside a VIP claim by accident.
cl_ready() {
    local p n
    p=$(cl_primary_seen_by node1)
    [ -n "$p" ] || return 1
    for n in "${CL_NODES[@]}"; do cl_healthy_as "$n" "$p" || return 1; done
    [ "$(cl_vip_holders)" = "$p" ] || return 1
    cl_vip_claimed "$p" || return 1
    CL_PRIMARY=$p
}

# NODE's agent is raftpg running as postgres with exactly CAP_NET_ADMIN and CAP_NET_RAW
# (0x3000) as effective and ambient capabilities.
cl_agent_identity() {
    local f=/proc/${CL_AGENT_PID[$1]}/status
    [ "$(cat "/proc/${CL_AGENT_PID[$1]}/comm" 2>/dev/null)" = raftpg ] &&
        [ "$(awk '/^Uid:/ {print $2}' "$f")" = "$(id -u postgres)" ] &&
        [ "$(awk '/^CapEff:/ {print $2}' "$f")" = 0000000000003000 ] &&
        [ "$(awk '/^CapAmb:/ {print $2}' "$f")" = 0000000000003000 ]
}

# cl_wait_ready TIMEOUT_S: waits for cl_ready; sets CL_PRIMARY. Checks the agents' identity.
cl_wait_ready() {
    local n
    t_wait "$1" "one primary holding the VIP and two streaming standbys" cl_ready || return 1
    cl_ready
    cl_log "primary is $CL_PRIMARY"
    for n in "${CL_NODES[@]}"; do
        t_check "$n's agent runs as postgres with CAP_NET_ADMIN and CAP_NET_RAW only" \
            cl_agent_identity "$n"
    done
}

# The primary as a node other than OLD sees it, when that is not OLD.
cl_new_primary() {
    local old=$1 n p
    for n in "${CL_NODES[@]}"; do
        [ "$n" != "$old" ] || continue
        p=$(cl_primary_seen_by "$n")
        if [ -n "$p" ] && [ "$p" != "$old" ]; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# The table the writer fills, created through the VIP and waited for on every node.
cl_create_table() {
    local n
    cl_psql "$NB_VIP" -c "CREATE TABLE IF NOT EXISTS chaos_acks (id bigint PRIMARY KEY,
        target text NOT NULL, node text NOT NULL)" || return 1
    for n in "${CL_NODES[@]}"; do
        t_wait 30 "chaos_acks replicated to $n" cl_table_on "$n" || return 1
    done
}
cl_table_on() {
    [ "$(cl_psql "$(cl_ip "$1")" -c "SELECT to_regclass('chaos_acks') IS NOT NULL")" = t ]
}

# ---- the client and the watcher -----------------------------------------------------------------

cl_now() { "$CL_WRITER" now; }

# cl_start_writer TAG FIRST_ID: writes through the VIP and to each node directly into
# $CL_DIR/TAG.acks (diagnostics in TAG.writer.log).
cl_start_writer() {
    local tag=$1 first=$2 n args=()
    local opts="port=$CL_PG_PORT user=postgres dbname=postgres sslmode=disable gssencmode=disable"
    args+=("vip=host=$NB_VIP $opts application_name=chaos_vip")
    for n in "${CL_NODES[@]}"; do
        args+=("$n=host=$(cl_ip "$n") $opts application_name=chaos_$n")
    done
    ip netns exec "$(nb_ns client)" "$CL_WRITER" write -i "${CHAOS_WRITE_INTERVAL:-5}" -c 500 \
        -t 1000 -d "${CHAOS_TEST_TIMEOUT:-300}" -b "$first" "${args[@]}" \
        >"$CL_DIR/$tag.acks" 2>"$CL_DIR/$tag.writer.log" </dev/null &
    CL_WRITER_PID=$!
}

cl_stop_writer() {
    [ -n "$CL_WRITER_PID" ] || return 0
    kill -TERM "$CL_WRITER_PID" 2>/dev/null || true
    wait "$CL_WRITER_PID" 2>/dev/null || true
    CL_WRITER_PID=
}

# cl_start_watch TAG: polls the VIP's holders every 50 ms into $CL_DIR/TAG.vip.
cl_start_watch() {
    local tag=$1 n args=()
    for n in "${CL_NODES[@]}"; do args+=("$n=$(nb_ns "$n")"); done
    "$CL_VIPWATCH" -i 50 -w 25 -d "${CHAOS_TEST_TIMEOUT:-300}" "$NB_VIP" "$NB_IF" \
        "$(nb_ns client)" "${args[@]}" >"$CL_DIR/$tag.vip" 2>"$CL_DIR/$tag.vipwatch.log" \
        </dev/null &
    CL_WATCH_PID=$!
}

cl_stop_watch() {
    [ -n "$CL_WATCH_PID" ] || return 0
    kill -TERM "$CL_WATCH_PID" 2>/dev/null || true
    wait "$CL_WATCH_PID" 2>/dev/null || true
    CL_WATCH_PID=
}

# cl_acks_via_after TAG TARGET NODE T N: the writer has N acknowledgements from NODE through
# TARGET after monotonic time T in TAG.acks.
cl_acks_via_after() {
    [ "$(awk -v t="$2" -v n="$3" -v a="$4" '$1 == t && $2 == n && $3 > a' "$CL_DIR/$1.acks" |
        wc -l)" -ge "$5" ]
}

# ---- the checker --------------------------------------------------------------------------------

# cl_analyse TAG FAULT OLD FAULT_START FAULT_END [extra checker options]: runs chaos_check.py on
# TAG's logs, prints its report and figures, stores its JSON in CL_REPORT.
CL_REPORT=
cl_analyse() {
    local tag=$1 fault=$2 old=$3 t0=$4 t1=$5
    shift 5
    [ ! -s "$CL_DIR/$tag.ids" ] || set -- "$@" --ids "$CL_DIR/$tag.ids"
    python3 "$CL_HERE/chaos_check.py" --acks "$CL_DIR/$tag.acks" --vip "$CL_DIR/$tag.vip" \
        --fault "$fault" --old "$old" --fault-start "$t0" --fault-end "$t1" \
        --lease-ms "$CL_LEASE_MS" --report "$CL_DIR/$tag.report" "$@" >"$CL_DIR/$tag.json" ||
        { t_check "the checker ran on $tag" false; return 1; }
    sed 's/^/# /' "$CL_DIR/$tag.report"
    CL_REPORT=$(cat "$CL_DIR/$tag.json")
    echo "FIGURES $(jq -c 'del(.checks)' <<<"$CL_REPORT")"
}

# cl_rjq FILTER: the report's value at FILTER.
cl_rjq() { jq -r "$1" <<<"$CL_REPORT"; }

# cl_check_report DESCRIPTION CHECK_NAME: one line for a check the checker evaluated; on failure,
# the checker's explanation.
cl_check_report() {
    local desc=$1 key=$2
    if [ "$(cl_rjq ".checks.\"$key\".ok")" = true ]; then
        t_check "$desc" true
    else
        cl_rjq ".checks.\"$key\".detail" | sed 's/^/# /'
        t_check "$desc" false
    fi
}

# OLD streams as a standby of NEW (as NEW's API sees it, with NEW the running primary under the
# Raft leader), is in recovery, and has no VIP. The third node is not looked at.
cl_rejoined() {
    local old=$1 new=$2 json
    json=$(cl_cluster "$new")
    [ -n "$json" ] || return 1
    jq -e --arg o "$old" --arg n "$new" '
        ([.members[] | select(.role == "leader" and .pg_role == "primary"
            and .state == "running") | .name] == [$n]) and
        ([.members[] | select(.name == $o and .pg_role == "standby" and .state == "streaming")]
            | length) == 1' <<<"$json" >/dev/null || return 1
    [ "$(cl_psql "$(cl_ip "$old")" -c 'SELECT pg_is_in_recovery()')" = t ] || return 1
    cl_lacks_vip "$old"
}

# cl_rewound_not_cloned NODE OFFSET: after byte OFFSET of NODE's log a pg_rewind finished and no
# clone ran (issue 11: an old primary rejoins by rewind). Says which when not.
cl_rewound_not_cloned() {
    local after
    after=$(tail -c +$(($2 + 1)) "$CL_DIR/$1.log")
    if grep -E 'clone: pg_basebackup|reinit:|moved aside' <<<"$after" | head -n 3 | sed 's/^/#   /' |
        grep -q .; then
        echo "# $1 was cloned again; why the rewind failed:"
        grep -E 'rejoin: [a-z-]+ failed|failed; its whole output follows' -A6 <<<"$after" |
            head -n 20 | cut -c1-300 | sed 's/^/#   /'
        return 1
    fi
    grep -q 'rewind: done' <<<"$after" || { echo "# $1 logged no finished rewind"; return 1; }
}

# cl_ms_between T0 T1: whole milliseconds from T0 to T1 (cl_now values, which have decimals).
cl_ms_between() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%d\n", b - a}'; }

# cl_rejoin_ms NODE OFFSET: how long NODE's last rejoin pipeline took, from check to streaming, as
# its "rejoin: streaming" line after byte OFFSET says (empty if none).
cl_rejoin_ms() {
    tail -c +$(($2 + 1)) "$CL_DIR/$1.log" | grep -oE 'rejoin: streaming \(.*; [0-9]+ ms since' |
        tail -n 1 | grep -oE '[0-9]+ ms since' | cut -d' ' -f1
}

# cl_wait_rejoined OLD NEW: waits (60 s) for cl_rejoined; when it does not come, prints what the
# agents recorded about timelines and the last lines of OLD's server log.
cl_wait_rejoined() {
    local old=$1 new=$2 n
    t_wait 60 "$old rejoins as a streaming standby of $new, without the VIP" \
        cl_rejoined "$old" "$new" && return 0
    echo "# timelines as the agents and the servers chose them:"
    for n in "${CL_NODES[@]}"; do
        grep -hE 'recording timeline|rewind|follow ' "$CL_DIR/$n.log" | tail -n 4
        grep -hE 'selected new timeline' "$CL_DIR/$n/pgdata.log" 2>/dev/null |
            sed "s/^/$n: /" | tail -n 2
    done | sort | sed 's/^/#   /'
    echo "# the end of $old's server log:"
    grep -vE 'STATEMENT|read-only' "$CL_DIR/$old/pgdata.log" 2>/dev/null | tail -n 3 |
        sed 's/^/#   /'
    return 1
}

# cl_save_ids TAG NODE: the ids of chaos_acks on NODE into $CL_DIR/TAG.ids, for the checker's
# count of acknowledged rows that did not survive (replication is asynchronous: a figure only).
cl_save_ids() {
    cl_psql "$(cl_ip "$2")" -c 'SELECT id FROM chaos_acks' >"$CL_DIR/$1.ids"
}
