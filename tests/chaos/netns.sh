#!/usr/bin/env bash
# Network part of the chaos testbed (DESIGN.md §7): node1..node3 and a client, each in its own
# network namespace, joined by a bridge in the root namespace on 10.231.0.0/24.
#
# Source it from a chaos test, or run it as a command:
#   tests/chaos/netns.sh up [PREFIX]      create a testbed, print its NB_PREFIX
#   tests/chaos/netns.sh down [PREFIX]    remove it (processes, namespaces, links, state file)
#   tests/chaos/netns.sh down-stale       remove the testbeds whose owner process is gone
#   tests/chaos/netns.sh status [PREFIX]  list the testbeds, or describe one
#   NB_PREFIX=P tests/chaos/netns.sh cut|heal|isolate|heal-all|split|exec|ip|netem|... ARGS
#
# Every name carries a per-run prefix (default "rpg" + the owner's PID), so two runs never share
# a namespace, a link or an nftables table, and a leftover says which run made it. Each run
# records what it creates in /tmp/raftpg-netns-PREFIX.state before creating it, so nb_down can
# remove a half-built testbed from any shell. The root namespace gets no address on the subnet:
# two concurrent runs would otherwise install the same route twice.
#
# Partitions are drops in an nftables table of family bridge in the root namespace, on the
# bridge's forward hook, keyed by (input port, output port). That cuts a pair at layer 2, ARP
# included, as a failed switch would: a cut node sees neither the peer's addresses nor a VIP the
# peer holds, and nothing inside the node namespaces (where the agents run) is touched.
# shellcheck shell=bash

NB_SUBNET=10.231.0.0/24
NB_VIP=10.231.0.100
NB_VIP_PREFIX=24
NB_IF=eth0
NB_NODES="node1 node2 node3"
NB_ALL="node1 node2 node3 client"
NB_STATE_DIR=${NB_STATE_DIR:-/tmp}
NB_PREFIX=${NB_PREFIX:-}
export NB_SUBNET NB_VIP NB_VIP_PREFIX NB_IF NB_NODES NB_ALL NB_STATE_DIR

nb__err() { printf '%s\n' "$*" >&2; }

nb__is_root() {
    if [ "$(id -u)" -ne 0 ]; then
        nb__err "testbed needs root (network namespaces)"
        return 1
    fi
}

# Prefixes are short so that "${prefix}br" and "${prefix}n1" stay within IFNAMSIZ-1 = 15 bytes,
# and plain so that they are valid nftables identifiers.
nb__check_prefix() {
    if ! [[ ${1:-} =~ ^[a-z][a-z0-9]{0,11}$ ]]; then
        nb__err "invalid testbed prefix \"${1:-}\":" \
            "expected a lower-case letter then up to 11 of [a-z0-9]"
        return 1
    fi
}

# Uses the explicit prefix, else NB_PREFIX of this shell.
nb__prefix() {
    local p=${1:-$NB_PREFIX}
    if [ -z "$p" ]; then
        nb__err "no testbed: call nb_up first or set NB_PREFIX"
        return 1
    fi
    nb__check_prefix "$p" || return 1
    printf '%s\n' "$p"
}

nb__check_node() {
    case ${1:-} in
    node1 | node2 | node3 | client) return 0 ;;
    esac
    nb__err "unknown testbed node \"${1:-}\": expected one of $NB_ALL"
    return 1
}

nb__host_octet() {
    case $1 in
    node1) echo 11 ;; node2) echo 12 ;; node3) echo 13 ;; client) echo 50 ;;
    esac
}

nb__port_suffix() {
    case $1 in
    node1) echo n1 ;; node2) echo n2 ;; node3) echo n3 ;; client) echo nc ;;
    esac
}

nb__netns_name() { printf '%s-%s\n' "$1" "$2"; }
nb__port_name() { printf '%s%s\n' "$1" "$(nb__port_suffix "$2")"; }
nb__bridge_name() { printf '%sbr\n' "$1"; }
nb__state_file() { printf '%s/raftpg-netns-%s.state\n' "$NB_STATE_DIR" "$1"; }

# Field 22 of /proc/PID/stat (start time in clock ticks) tells a live owner from a reused PID.
nb__start_time() {
    local stat rest
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    rest=${stat##*) }
    # shellcheck disable=SC2086
    set -- $rest
    printf '%s\n' "${20}"
}

nb__owner_alive() {
    local pid=$1 start=$2 now
    [ -n "$pid" ] || return 1
    now=$(nb__start_time "$pid") || return 1
    [ -z "$start" ] || [ "$now" = "$start" ]
}

nb__netns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qxF -- "$1"; }
nb__link_exists() { ip link show dev "$1" >/dev/null 2>&1; }
nb__table_exists() { nft list table bridge "$1" >/dev/null 2>&1; }

nb__state_get() {
    local file=$1 key=$2
    sed -n "s/^$key=//p" "$file" 2>/dev/null
}

nb__record() { printf '%s=%s\n' "$2" "$3" >>"$1"; }

# Prints the namespace of NODE in the current testbed.
nb_ns() {
    local - && set +euo pipefail
    local p
    nb__check_node "${1:-}" || return 1
    p=$(nb__prefix) || return 1
    nb__netns_name "$p" "$1"
}

# Prints the root-namespace end of NODE's veth pair (its bridge port).
nb_port() {
    local - && set +euo pipefail
    local p
    nb__check_node "${1:-}" || return 1
    p=$(nb__prefix) || return 1
    nb__port_name "$p" "$1"
}

# Prints NODE's address (without prefix length).
nb_ip() {
    local - && set +euo pipefail
    nb__check_node "${1:-}" || return 1
    printf '10.231.0.%s\n' "$(nb__host_octet "$1")"
}

# Runs CMD... in NODE's namespace; its exit status is the command's.
nb_exec() {
    local - && set +euo pipefail
    local ns
    if [ $# -lt 2 ]; then
        nb__err "usage: nb_exec NODE CMD..."
        return 2
    fi
    ns=$(nb_ns "$1") || return 1
    shift
    ip netns exec "$ns" "$@"
}

# Prints the PIDs of the processes running in NODE's namespace, one a line.
nb_pids() {
    local - && set +euo pipefail
    local ns
    ns=$(nb_ns "${1:-}") || return 1
    ip netns pids "$ns" 2>/dev/null
}

# Sends TERM (then CONT, so that stopped processes see it), then KILL, to every process in the
# namespace, by PID, each stage bounded; never this shell itself. Fails if some survive.
nb__kill_netns() {
    local ns=$1 sig pids pid i
    for sig in TERM KILL; do
        pids=$(ip netns pids "$ns" 2>/dev/null | grep -vxF -e "$$" -e "${BASHPID:-$$}")
        [ -n "$pids" ] || return 0
        for pid in $pids; do
            kill "-$sig" "$pid" 2>/dev/null
            [ "$sig" = KILL ] || kill -CONT "$pid" 2>/dev/null
        done
        for ((i = 0; i < 30; i++)); do
            pids=$(ip netns pids "$ns" 2>/dev/null | grep -vxF -e "$$" -e "${BASHPID:-$$}")
            [ -n "$pids" ] || return 0
            sleep 0.1
        done
    done
    nb__err "nb_down: processes survive SIGKILL in netns $ns: pids=$(tr "\n" " " <<<"$pids")"
    return 1
}

# Creates a testbed named PREFIX (default "rpg" + the owner's PID) and exports NB_PREFIX.
# The owner is NB_OWNER_PID if set, else this shell; nb_down_all_stale removes the testbed once
# the owner is gone. On failure removes whatever it had created and returns 1.
nb_up() {
    local - && set +euo pipefail
    local owner=${NB_OWNER_PID:-$$}
    local p=${1:-rpg$owner}
    local state br node ns port

    nb__is_root || return 1
    local tool
    for tool in ip nft; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            nb__err "nb_up: $tool not found" \
                "(packages iproute2, nftables; run scripts/install-deps.sh)"
            return 1
        fi
    done
    nb__check_prefix "$p" || return 1
    state=$(nb__state_file "$p")
    br=$(nb__bridge_name "$p")

    # nb_down removes every name derived from the prefix, so none may exist beforehand.
    local taken=
    [ ! -e "$state" ] || taken="state file $state"
    nb__table_exists "$p" && taken+=" nft table bridge $p"
    nb__link_exists "$br" && taken+=" link $br"
    for node in $NB_ALL; do
        port=$(nb__port_name "$p" "$node")
        ns=$(nb__netns_name "$p" "$node")
        nb__link_exists "$port" && taken+=" link $port"
        nb__netns_exists "$ns" && taken+=" netns $ns"
    done
    if [ -n "$taken" ]; then
        nb__err "nb_up: testbed prefix $p is in use (${taken# });" \
            "remove it with: $(nb__self) down $p"
        return 1
    fi
    # noclobber makes creating the state file the test-and-set between two runs with one prefix.
    local header
    header="# raftpg chaos testbed; remove with: $(nb__self) down $p"
    if ! (set -C && echo "$header" >"$state") 2>/dev/null; then
        nb__err "nb_up: cannot create state file $state"
        return 1
    fi
    {
        echo "prefix=$p"
        echo "owner_pid=$owner"
        echo "owner_start=$(nb__start_time "$owner")"
        echo "created=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    } >>"$state"

    nb__record "$state" nft_table "$p"
    if ! nft -f - <<EOF; then
table bridge $p {
    comment "raftpg chaos testbed $p: partitions (cut) and emulated loss"
    set cut {
        type ifname . ifname
        comment "pairs of bridge ports whose frames are dropped: input . output"
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        iifname . oifname @cut drop
    }
}
EOF
        nb__err "nb_up: cannot create nftables table bridge $p"
        nb__up_fail "$p"
        return 1
    fi

    nb__record "$state" link "$br"
    if ! ip link add "$br" type bridge stp_state 0 mcast_snooping 0 ||
        ! nb__no_ipv6 "$br" || ! ip link set "$br" up; then
        nb__err "nb_up: cannot create bridge $br"
        nb__up_fail "$p"
        return 1
    fi

    for node in $NB_ALL; do
        ns=$(nb__netns_name "$p" "$node")
        port=$(nb__port_name "$p" "$node")
        nb__record "$state" netns "$ns"
        nb__record "$state" link "$port"
        if ! ip netns add "$ns" ||
            ! ip link add "$port" type veth peer name "$NB_IF" netns "$ns" ||
            ! nb__no_ipv6 "$port" ||
            ! ip link set "$port" master "$br" ||
            ! ip link set "$port" up ||
            ! ip -n "$ns" link set lo up ||
            ! ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$NB_IF.disable_ipv6=1" ||
            ! ip -n "$ns" addr add "$(nb_ip "$node")/24" dev "$NB_IF" ||
            ! ip -n "$ns" link set "$NB_IF" up; then
            nb__err "nb_up: cannot set up $node (netns $ns, port $port)"
            nb__up_fail "$p"
            return 1
        fi
    done

    # A veth reports carrier once both ends are up; wait for it (bounded) so that the first
    # packet of a test is not lost to link setup.
    local i ok
    for ((i = 0; i < 50; i++)); do
        ok=1
        for node in $NB_ALL; do
            ip -n "$(nb__netns_name "$p" "$node")" -o link show dev "$NB_IF" |
                grep -q 'state UP' || { ok=0; break; }
        done
        [ $ok -eq 1 ] && break
        sleep 0.1
    done
    if [ $ok -ne 1 ]; then
        nb__err "nb_up: links of testbed $p did not come up within 5s"
        nb__up_fail "$p"
        return 1
    fi

    NB_PREFIX=$p
    NB_STATE_FILE=$state
    export NB_PREFIX NB_STATE_FILE
}

nb__up_fail() {
    nb_down "$1" >/dev/null 2>&1 ||
        nb__err "nb_up: rollback of $1 incomplete; see $(nb__state_file "$1")"
}

# The testbed speaks IPv4 only; this keeps the root-namespace ports out of IPv6 entirely.
nb__no_ipv6() {
    local f=/proc/sys/net/ipv6/conf/$1/disable_ipv6
    [ ! -e "$f" ] || echo 1 >"$f"
}

nb__self() {
    local s=${BASH_SOURCE[0]:-tests/chaos/netns.sh}
    case $s in /work/*/tests/chaos/*) s=tests/chaos/${s##*/} ;; esac
    printf '%s\n' "$s"
}

# Removes testbed PREFIX (default: this shell's): kills its processes by PID, deletes its
# nftables table, veths, bridge and namespaces, then its state file. Idempotent; works on a
# partial testbed and without a state file, since every name derives from the prefix.
nb_down() {
    local - && set +euo pipefail
    local p state node ns links=() netnses=() left=() l n i rc=0
    nb__is_root || return 1
    p=$(nb__prefix "${1:-}") || return 1
    state=$(nb__state_file "$p")

    for node in $NB_ALL; do
        netnses+=("$(nb__netns_name "$p" "$node")")
        links+=("$(nb__port_name "$p" "$node")")
    done
    links+=("$(nb__bridge_name "$p")")
    if [ -r "$state" ]; then
        while read -r n; do netnses+=("$n"); done < <(nb__state_get "$state" netns)
        while read -r l; do links+=("$l"); done < <(nb__state_get "$state" link)
    fi

    for ns in "${netnses[@]}"; do
        nb__netns_exists "$ns" || continue
        nb__kill_netns "$ns" || rc=1
    done
    if nb__table_exists "$p"; then
        nft delete table bridge "$p" || rc=1
    fi
    # Deleting the root end of a veth removes both ends at once; deleting the namespace first
    # would leave the veth to the kernel's asynchronous namespace cleanup.
    for l in "${links[@]}"; do
        if nb__link_exists "$l"; then
            if ! ip link del dev "$l" 2>/dev/null && nb__link_exists "$l"; then rc=1; fi
        fi
    done
    for ns in "${netnses[@]}"; do
        if nb__netns_exists "$ns"; then
            ip netns del "$ns" || rc=1
        fi
    done

    for ((i = 0; i < 20; i++)); do
        left=()
        for l in "${links[@]}"; do nb__link_exists "$l" && left+=("link $l"); done
        for ns in "${netnses[@]}"; do nb__netns_exists "$ns" && left+=("netns $ns"); done
        nb__table_exists "$p" && left+=("nft table bridge $p")
        [ ${#left[@]} -eq 0 ] && break
        sleep 0.1
    done
    if [ ${#left[@]} -ne 0 ]; then
        nb__err "nb_down: testbed $p not fully removed: ${left[*]}; state kept in $state"
        return 1
    fi
    if [ $rc -ne 0 ]; then
        nb__err "nb_down: errors while removing testbed $p; state kept in $state"
        return 1
    fi
    rm -f "$state"
    if [ "$NB_PREFIX" = "$p" ]; then
        NB_PREFIX=
        unset NB_STATE_FILE
    fi
}

# Removes every testbed whose state file names an owner process that is gone. Prints one line
# per testbed removed; fails if any removal failed.
nb_down_all_stale() {
    local - && set +euo pipefail
    local f p pid start rc=0
    nb__is_root || return 1
    for f in "$NB_STATE_DIR"/raftpg-netns-*.state; do
        [ -e "$f" ] || continue
        p=$(nb__state_get "$f" prefix)
        if [ -z "$p" ]; then
            p=${f##*/raftpg-netns-}
            p=${p%.state}
        fi
        pid=$(nb__state_get "$f" owner_pid)
        start=$(nb__state_get "$f" owner_start)
        nb__owner_alive "$pid" "$start" && continue
        if nb_down "$p"; then
            echo "removed stale testbed $p (owner pid $pid is gone)"
        else
            rc=1
        fi
    done
    return $rc
}

# Describes testbed PREFIX, or lists every testbed with a state file when none is given.
nb_status() {
    local - && set +euo pipefail
    local p=${1:-} f pid start node ns
    if [ -z "$p" ]; then
        local any=0 q alive
        for f in "$NB_STATE_DIR"/raftpg-netns-*.state; do
            [ -e "$f" ] || continue
            any=1
            q=$(nb__state_get "$f" prefix)
            pid=$(nb__state_get "$f" owner_pid)
            start=$(nb__state_get "$f" owner_start)
            if nb__owner_alive "$pid" "$start"; then alive=alive; else alive=stale; fi
            echo "testbed $q owner_pid=$pid ($alive) created=$(nb__state_get "$f" created) state=$f"
        done
        [ $any -eq 1 ] || echo "no testbed"
        return 0
    fi
    nb__check_prefix "$p" || return 1
    f=$(nb__state_file "$p")
    if [ -e "$f" ]; then
        echo "testbed $p owner_pid=$(nb__state_get "$f" owner_pid)" \
            "created=$(nb__state_get "$f" created) state=$f"
    else
        echo "testbed $p has no state file"
    fi
    for node in $NB_ALL; do
        ns=$(nb__netns_name "$p" "$node")
        if nb__netns_exists "$ns"; then
            echo "  $node netns=$ns ip=$(nb_ip "$node") port=$(nb__port_name "$p" "$node")" \
                "pids=$(ip netns pids "$ns" | wc -l)"
        else
            echo "  $node netns=$ns missing"
        fi
    done
    if nb__table_exists "$p"; then
        echo "  cut: $(NB_PREFIX=$p nb_cuts | tr '\n' ' ')"
    fi
}

# Adds (op=add) or removes (op=delete) the drops for frames between nodes A and B, both ways.
# The batch adds before deleting so that a delete of an absent pair does not fail.
nb__cut_op() {
    local op=$1 a=$2 b=$3 p pa pb
    nb__check_node "$a" || return 1
    nb__check_node "$b" || return 1
    if [ "$a" = "$b" ]; then
        nb__err "cannot cut $a from itself"
        return 1
    fi
    p=$(nb__prefix) || return 1
    pa=$(nb__port_name "$p" "$a")
    pb=$(nb__port_name "$p" "$b")
    local elems="{ \"$pa\" . \"$pb\", \"$pb\" . \"$pa\" }"
    {
        echo "add element bridge $p cut $elems"
        [ "$op" = add ] || echo "delete element bridge $p cut $elems"
    } | nft -f - || {
        nb__err "nb_cut: nftables update failed (testbed $p, $a <-> $b)"
        return 1
    }
}

# Drops all traffic, both ways, between A and B (node1..node3 or client).
nb_cut() {
    local - && set +euo pipefail
    nb__cut_op add "${1:-}" "${2:-}"
}

# Restores traffic between A and B.
nb_heal() {
    local - && set +euo pipefail
    nb__cut_op delete "${1:-}" "${2:-}"
}

# Cuts NODE from every other namespace; with --keep-client, from the other nodes only.
nb_isolate() {
    local - && set +euo pipefail
    local a=${1:-} keep_client=0 other
    [ "${2:-}" != --keep-client ] || keep_client=1
    nb__check_node "$a" || return 1
    for other in $NB_ALL; do
        [ "$other" != "$a" ] || continue
        [ "$other" != client ] || [ $keep_client -eq 0 ] || continue
        nb_cut "$a" "$other" || return 1
    done
}

# Cuts every member of the first group from every member of the second, e.g.
# nb_split "node1" "node2 node3". Namespaces in neither group keep all their links.
nb_split() {
    local - && set +euo pipefail
    local a b
    if [ $# -ne 2 ]; then
        nb__err "usage: nb_split \"NODE...\" \"NODE...\""
        return 2
    fi
    for a in $1; do
        for b in $2; do
            nb_cut "$a" "$b" || return 1
        done
    done
}

# Removes every cut.
nb_heal_all() {
    local - && set +euo pipefail
    local p
    p=$(nb__prefix) || return 1
    nft flush set bridge "$p" cut || {
        nb__err "nb_heal_all: nftables update failed (testbed $p)"
        return 1
    }
}

# Prints the current cuts, one "A B" pair a line (A < B).
nb_cuts() {
    local - && set +euo pipefail
    local p a b
    p=$(nb__prefix) || return 1
    nft list set bridge "$p" cut 2>/dev/null | grep -o '"[a-z0-9]*" \. "[a-z0-9]*"' |
        tr -d '"' | while read -r a _ b; do
        a=$(nb__port_node "$p" "$a")
        b=$(nb__port_node "$p" "$b")
        if [[ $a < $b ]]; then echo "$a $b"; fi
    done | sort
}

nb__port_node() {
    local node
    for node in $NB_ALL; do
        [ "$(nb__port_name "$1" "$node")" != "$2" ] || { echo "$node"; return; }
    done
    echo "$2"
}

# Takes NODE's link down (carrier lost on both ends), or brings it back up.
nb_link_down() {
    local - && set +euo pipefail
    local port
    port=$(nb_port "${1:-}") || return 1
    ip link set dev "$port" down
}

nb_link_up() {
    local - && set +euo pipefail
    local port ns i
    port=$(nb_port "${1:-}") || return 1
    ns=$(nb_ns "$1") || return 1
    ip link set dev "$port" up || return 1
    for ((i = 0; i < 50; i++)); do
        ip -n "$ns" -o link show dev "$NB_IF" | grep -q 'state UP' && return 0
        sleep 0.1
    done
    nb__err "nb_link_up: $1 has no carrier after 5s"
    return 1
}

# Applies a tc netem spec to the packets NODE sends, e.g. nb_netem node1 "delay 50ms loss 10%".
# Where the kernel lacks sch_netem, a spec of only "loss N%" (integer N) is emulated by an
# nftables rule dropping that share of the frames NODE sends into the bridge; any other spec fails.
nb_netem() {
    local - && set +euo pipefail
    local node=${1:-} spec=${2:-} ns p port out pct
    if [ -z "$spec" ]; then
        nb__err "usage: nb_netem NODE \"NETEM SPEC\""
        return 2
    fi
    ns=$(nb_ns "$node") || return 1
    p=$(nb__prefix) || return 1
    nb_netem_clear "$node" || return 1
    # shellcheck disable=SC2086
    if out=$(ip netns exec "$ns" tc qdisc replace dev "$NB_IF" root netem $spec 2>&1); then
        return 0
    fi
    if ! grep -q 'qdisc kind is unknown' <<<"$out"; then
        nb__err "nb_netem: tc rejected \"$spec\" on $node: $out"
        return 1
    fi
    local loss_re='^[[:space:]]*loss[[:space:]]+(random[[:space:]]+)?([0-9]{1,3})%[[:space:]]*$'
    if [[ $spec =~ $loss_re ]] &&
        [ "${BASH_REMATCH[2]}" -le 100 ]; then
        pct=${BASH_REMATCH[2]}
        port=$(nb__port_name "$p" "$node")
        [ "$pct" -ne 0 ] || return 0
        local sample=(numgen random mod 100 '<' "$pct")
        [ "$pct" -ne 100 ] || sample=()
        nft add rule bridge "$p" forward iifname "\"$port\"" "${sample[@]}" \
            drop comment "\"netem $node\"" || {
            nb__err "nb_netem: nftables update failed (testbed $p, $node)"
            return 1
        }
        return 0
    fi
    nb__err "nb_netem: sch_netem is not available in this kernel" \
        "(tc: Specified qdisc kind is unknown);" \
        "only \"loss N%\" can be emulated (with nftables), not \"$spec\""
    return 1
}

# Removes what nb_netem applied to NODE.
nb_netem_clear() {
    local - && set +euo pipefail
    local node=${1:-} ns p h
    ns=$(nb_ns "$node") || return 1
    p=$(nb__prefix) || return 1
    if ip netns exec "$ns" tc qdisc show dev "$NB_IF" root | grep -q '^qdisc netem'; then
        ip netns exec "$ns" tc qdisc del dev "$NB_IF" root || return 1
    fi
    for h in $(nft -a list chain bridge "$p" forward 2>/dev/null |
        sed -n "s/.*comment \"netem $node\" # handle \([0-9]*\)\$/\1/p"); do
        nft delete rule bridge "$p" forward handle "$h" || return 1
    done
}

nb__usage() {
    cat <<EOF
usage: $(nb__self) up [PREFIX]        create a testbed; prints NB_PREFIX=...
       $(nb__self) down [PREFIX]      remove a testbed (default \$NB_PREFIX)
       $(nb__self) down-stale         remove testbeds whose owner process is gone
       $(nb__self) status [PREFIX]    list testbeds, or describe one
  with NB_PREFIX set: exec NODE CMD... | ip NODE | ns NODE | pids NODE | cut A B | heal A B |
       isolate NODE [--keep-client] | split "A..." "B..." | heal-all | cuts |
       link-down NODE | link-up NODE | netem NODE SPEC | netem-clear NODE
EOF
}

nb__main() {
    local cmd=${1:-}
    [ $# -eq 0 ] || shift
    case $cmd in
    up)
        # The owner is the invoking shell: its exit makes the testbed stale.
        NB_OWNER_PID=${NB_OWNER_PID:-$PPID} nb_up "$@" || return 1
        echo "NB_PREFIX=$NB_PREFIX"
        ;;
    down) nb_down "$@" ;;
    down-stale) nb_down_all_stale ;;
    status) nb_status "$@" ;;
    exec | ip | ns | pids | port | cut | heal | isolate | split | heal-all | cuts | link-down | \
        link-up | netem | netem-clear)
        "nb_${cmd//-/_}" "$@"
        ;;
    -h | --help | help) nb__usage ;;
    *)
        nb__usage >&2
        return 2
        ;;
    esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    nb__is_root || exit 1
    nb__main "$@"
    exit $?
fi
nb__is_root || return 1
