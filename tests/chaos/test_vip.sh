#!/usr/bin/env bash
# The write VIP with the real ip and arping, in the chaos testbed (DESIGN.md §7, §8): a claim in
# node1 makes the VIP reachable from the client, a claim in node2 meanwhile is refused by the ARP
# probe, and after node1's release node2's claim works and its gratuitous ARP moves the client's
# neighbour entry to node2's MAC before the client sends anything. Traffic goes only to the
# testbed's own addresses.
#
# usage: test_vip.sh [RAFTPG_BINARY]
# raftpg_vip_probe (tests/chaos/vip_probe.c) does each operation; it is looked for in
# $RAFTPG_VIP_PROBE, else in tests/chaos/ of the build directory holding RAFTPG_BINARY.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR

NAME=test_vip
HERE=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" -ne 0 ]; then
    echo "FAIL: $NAME: the testbed needs root (network namespaces); run the suite as root"
    exit 1
fi
PROBE=${RAFTPG_VIP_PROBE:-}
if [ -z "$PROBE" ] && [ -n "${1:-}" ]; then
    PROBE=$(dirname "$1")/tests/chaos/raftpg_vip_probe
fi
if [ -z "$PROBE" ] || [ ! -x "$PROBE" ]; then
    echo "FAIL: $NAME: raftpg_vip_probe not found (${PROBE:-no path}); build it" \
        "(target raftpg_vip_probe, tests/chaos/CMakeLists.txt) or set RAFTPG_VIP_PROBE"
    exit 1
fi
for tool in arping ping; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "FAIL: $NAME: $tool not found (packages arping, iputils-ping)"
        exit 1
    fi
done
# shellcheck source=netns.sh
source "$HERE/netns.sh"
# shellcheck source=../assert.sh
source "$HERE/../assert.sh"

T_PREFIX=
T_DIR=$(mktemp -d "/tmp/raftpg-$NAME.XXXXXX")

# Stops the time bound, then removes the testbed (nb_down kills what runs in it, by PID).
t_cleanup() {
    local rc=$?
    t_time_bound_stop
    if [ -n "$T_PREFIX" ]; then nb_down "$T_PREFIX" || rc=1; fi
    rm -rf "$T_DIR"
    exit $rc
}
trap t_cleanup EXIT
trap 'exit 1' INT TERM

# The whole test is bounded (default 120 s), so that the cleanup runs.
t_time_bound "${NB_TEST_TIMEOUT:-120}"

t_ping() { timeout 5 ip netns exec "$(nb_ns "$1")" ping -c1 -W1 -q "$2" >/dev/null 2>&1; }
# FROM sent a ping to ADDR and got no reply (ping's status 1; 2 and others are errors).
t_no_ping() { t_status 1 t_ping "$@"; }

# Polls CMD... every 0.1 s for up to 5 s, then once more with its output.
t_eventually() { t_poll 5 "$@" || "$@"; }

# A configuration for NODE: the testbed's three members and the VIP on its interface, with
# LIFETIME seconds (default: an hour, so that only the lifetime checks see an address expire).
t_conf() {
    local node=$1 lifetime=${2:-3600}
    cat >"$T_DIR/$node.yaml" <<EOF
scope: vip-test
name: $node
raft:
  data_dir: $T_DIR/$node/raft
  members:
    - {name: node1, raft: $(nb_ip node1):7001, api: $(nb_ip node1):8008}
    - {name: node2, raft: $(nb_ip node2):7001, api: $(nb_ip node2):8008}
    - {name: node3, raft: $(nb_ip node3):7001, api: $(nb_ip node3):8008}
vip:
  address: $NB_VIP/$NB_VIP_PREFIX
  interface: $NB_IF
  arping_count: 3
  announce_repeats: 3
  announce_interval: 300
  lifetime: $lifetime
EOF
}

# Runs "raftpg_vip_probe CONF OP" in NODE's namespace, bounded; its output goes to
# $T_DIR/NODE.OP.out and is echoed as a comment. Expects exit status WANT.
t_vip() {
    local node=$1 op=$2 want=$3 rc=0 out=$T_DIR/$1.$2.out
    timeout 30 ip netns exec "$(nb_ns "$node")" "$PROBE" "$T_DIR/$node.yaml" "$op" \
        >"$out" 2>&1 </dev/null || rc=$?
    sed 's/^/# /' "$out"
    t_eq "$rc" "$want"
}

t_mac() { nb_exec "$1" cat "/sys/class/net/$NB_IF/address"; }

# The addresses NODE has on the testbed interface, "A/P" a line.
t_addrs() { nb_exec "$1" ip -4 -o addr show dev "$NB_IF" | awk '{print $4}'; }
# t_vip_on NODE [any]: "yes" or "no", as ip in NODE's namespace lists the interface's addresses
# (the VIP with its prefix, or with any prefix); fails, printing nothing, when that listing lacks
# NODE's own address, i.e. ip did not run there.
t_vip_on() {
    local addrs
    addrs=$(t_addrs "$1" 2>/dev/null) || true
    grep -qF "$(nb_ip "$1")/" <<<"$addrs" || return 1
    if [ "${2:-}" = any ]; then
        grep -qF "$NB_VIP/" <<<"$addrs" && echo yes || echo no
    else
        grep -qxF "$NB_VIP/$NB_VIP_PREFIX" <<<"$addrs" && echo yes || echo no
    fi
}
t_has_vip() { [ "$(t_vip_on "$1")" = yes ]; }
# NODE has no VIP (t_vip_on's second argument), and ip said so.
t_lacks_vip() {
    local v
    v=$(t_vip_on "$@") || { echo "# ip in $1's namespace did not list its addresses"; return 1; }
    [ "$v" = no ] || { echo "# $1 holds the VIP"; return 1; }
}

# The MAC the client's neighbour table gives the VIP, "" when it has no entry.
t_client_vip_mac() {
    nb_exec client ip neigh show "$NB_VIP" dev "$NB_IF" |
        sed -n 's/.* lladdr \([0-9a-f:]*\).*/\1/p' | head -1
}
t_client_vip_mac_is() { [ "$(t_client_vip_mac)" = "$1" ]; }

# --- setup
T_PREFIX=v$$
nb_up "$T_PREFIX" || { echo "FAIL: $NAME: cannot create testbed $T_PREFIX"; exit 1; }
for n in node1 node2; do t_conf "$n"; done
MAC1=$(t_mac node1)
MAC2=$(t_mac node2)
echo "# testbed $T_PREFIX node1=$MAC1 node2=$MAC2 vip=$NB_VIP/$NB_VIP_PREFIX"

# --- node1 claims
t_check "nobody holds the VIP: the client cannot ping it" t_no_ping client "$NB_VIP"
t_check "node1: check says not held" t_vip node1 check 0
t_check "node1: claim succeeds" t_vip node1 claim 0
t_check "node1: the claim says it added and announced" grep -qF \
    "claim: rc=ok held=yes: claimed vip $NB_VIP/$NB_VIP_PREFIX on $NB_IF (announced=3)" \
    "$T_DIR/node1.claim.out"
t_check "node1 has the VIP on $NB_IF" t_has_vip node1
t_check "node1: check says held" t_vip node1 check 0
t_check "node1: the check says held=yes" grep -qF "held=yes" "$T_DIR/node1.check.out"
t_check "the client pings the VIP" t_eventually t_ping client "$NB_VIP"
t_check "the client's neighbour entry for the VIP is node1's MAC" t_client_vip_mac_is "$MAC1"
t_check "node1: a second claim is idempotent" t_vip node1 claim 0
t_check "node1: ... and says the address was already there" grep -qF "already present" \
    "$T_DIR/node1.claim.out"
t_check "node1 has the VIP once" t_eq "$(t_addrs node1 | grep -cxF "$NB_VIP/$NB_VIP_PREFIX")" 1

# --- node2 is refused while node1 holds it
t_check "node2: claim is refused (exit 3)" t_vip node2 claim 3
t_check "node2: the refusal names node1's MAC" grep -qF \
    "another host answers for $NB_VIP (mac=$MAC1)" "$T_DIR/node2.claim.out"
t_check "node2 did not add the VIP" t_lacks_vip node2
t_check "node1 still has the VIP" t_has_vip node1

# --- node1 releases, node2 claims, the client follows through gratuitous ARP
t_check "node1: release succeeds" t_vip node1 release 0
t_check "node1: the release says it released" grep -qF \
    "released vip $NB_VIP/$NB_VIP_PREFIX from $NB_IF" "$T_DIR/node1.release.out"
t_check "node1 no longer has the VIP" t_lacks_vip node1
t_check "node1: a second release succeeds (idempotent)" t_vip node1 release 0
t_check "node1: ... and says it was not there" grep -qF "was not on $NB_IF" \
    "$T_DIR/node1.release.out"
t_check "the client still has node1's MAC for the VIP (nothing told it otherwise)" \
    t_client_vip_mac_is "$MAC1"
t_check "node2: claim succeeds" t_vip node2 claim 0
t_check "node2 has the VIP" t_has_vip node2
# Before the client sends anything: only node2's gratuitous ARP can have changed the entry.
t_check "the client's neighbour entry moved to node2's MAC" t_client_vip_mac_is "$MAC2"
t_check "the client pings the VIP at once" t_ping client "$NB_VIP"
t_check "node1: claim is now refused, naming node2's MAC" t_vip node1 claim 3
t_check "node1: ... mac=$MAC2" grep -qF "(mac=$MAC2)" "$T_DIR/node1.claim.out"

# --- release under another prefix
nb_exec node2 ip -4 addr add "$NB_VIP/32" dev "$NB_IF"
t_check "node2: release removes the VIP under every prefix" t_vip node2 release 0
t_check "node2 has no VIP address left" t_lacks_vip node2 any
t_check "nobody holds the VIP: the client cannot ping it" t_no_ping client "$NB_VIP"

# --- the lifetime: a VIP nobody renews goes away by itself (an agent killed with kill -9)
# The kernel's lifetime of the address, in seconds, as ip prints it ("valid_lft 2sec").
t_valid_lft() {
    nb_exec "$1" ip -4 -o addr show dev "$NB_IF" to "$NB_VIP/32" |
        sed -n 's/.*valid_lft \([0-9]*\)sec.*/\1/p' | head -1
}
t_conf node1 2
t_check "node1: claim with a 2 s lifetime succeeds" t_vip node1 claim 0
t_check "the kernel counts the lifetime down from 2 s" bash -c "[ \"\$1\" -ge 1 ] && [ \"\$1\" -le 2 ]" \
    _ "$(t_valid_lft node1)"
t_check "node1: renew succeeds" t_vip node1 renew 0
t_check "node1: the renewal says it renewed" grep -qF \
    "renew: rc=ok held=yes: renewed vip $NB_VIP/$NB_VIP_PREFIX on $NB_IF for 2 s" \
    "$T_DIR/node1.renew.out"
t0=$(date +%s%N)
gone_after() {
    local i
    for ((i = 0; i < 100; i++)); do
        [ "$(t_vip_on node1)" != no ] || { echo $((($(date +%s%N) - t0) / 1000000)); return 0; }
        sleep 0.05
    done
    echo never
}
ms=$(gone_after)
echo "# without renewal the address went away after $ms ms"
t_check "without renewal the kernel removes the address within its lifetime + 1.5 s" \
    bash -c "[ \"\$1\" != never ] && [ \"\$1\" -ge 1500 ] && [ \"\$1\" -le 3500 ]" _ "$ms"
t_check "node1: renew of an expired address succeeds" t_vip node1 renew 0
t_check "node1: ... says it was not renewed" grep -qF "held=no: vip $NB_VIP/$NB_VIP_PREFIX is no longer on" \
    "$T_DIR/node1.renew.out"
t_check "a renewal never adds the address back (only a claim, after its probe)" t_lacks_vip node1

t_summary
