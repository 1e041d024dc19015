#!/usr/bin/env bash
# The chaos testbed's network: every namespace pair reaches the other, cuts, isolation and splits
# drop exactly the traffic they name and heal back, a TCP service and the VIP behave as a client
# sees them, and nb_down leaves nothing behind. Traffic goes only to the testbed's own addresses.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR

HERE=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" -ne 0 ]; then
    echo "FAIL: test_netns_smoke: the testbed needs root (network namespaces); run the suite as root"
    exit 1
fi
# shellcheck source=netns.sh
source "$HERE/netns.sh"
# shellcheck source=../assert.sh
source "$HERE/../assert.sh"

T_PREFIXES=()
T_PIDS=()
T_LOG=$(mktemp -d /tmp/raftpg-test_netns_smoke.XXXXXX)
PORT=5480

# Kills what this test started (by PID), then removes its testbeds, whatever happened.
t_cleanup() {
    local rc=$? pid p
    t_time_bound_stop
    for pid in "${T_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "${T_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    for p in "${T_PREFIXES[@]}"; do nb_down "$p" || rc=1; done
    rm -rf "$T_LOG"
    exit $rc
}
trap t_cleanup EXIT
trap 'exit 1' INT TERM

# The whole test is bounded: after NB_TEST_TIMEOUT (default 180) seconds it ends, and so runs
# the cleanup.
t_time_bound "${NB_TEST_TIMEOUT:-180}"

t_ping() { timeout 5 ip netns exec "$(nb_ns "$1")" ping -c1 -W1 -q "$2" >/dev/null 2>&1; }
# FROM sent a ping to ADDR and got no reply (ping's status 1; 2 and others are errors).
t_no_ping() { t_status 1 t_ping "$@"; }

# Pings every ordered pair of namespaces at once and compares with the expected reachability:
# a pair is reachable unless "A,B" or "B,A" is among the cut pairs given. Prints the mismatches.
# A pair that should be reachable but lost its one ping gets one more; one that should be cut
# gets no second chance.
t_matrix() {
    local cuts=" $* " a b i=0 want got bad=() pids=() pairs=()
    for a in $NB_ALL; do
        for b in $NB_ALL; do
            [ "$a" != "$b" ] || continue
            t_ping "$a" "$(nb_ip "$b")" &
            pids+=($!)
            pairs+=("$a>$b")
        done
    done
    for ((i = 0; i < ${#pids[@]}; i++)); do
        a=${pairs[$i]%>*}
        b=${pairs[$i]#*>}
        if wait "${pids[$i]}"; then got=up; else got=down; fi
        want=up
        case $cuts in *" $a,$b "* | *" $b,$a "*) want=down ;; esac
        if [ "$got" = down ] && [ "$want" = up ] && t_ping "$a" "$(nb_ip "$b")"; then got=up; fi
        [ "$got" = "$want" ] || bad+=("$a->$b:$got(want $want)")
    done
    if [ ${#bad[@]} -ne 0 ]; then
        echo "# reachability mismatch: ${bad[*]}"
        return 1
    fi
}

# An HTTP GET from the client to ADDR:PORT, bounded to 2 s; prints "ok", or the error's text.
t_http_result() {
    timeout 5 ip netns exec "$(nb_ns client)" python3 -c '
import sys, urllib.request
try:
    urllib.request.urlopen("http://%s:%s/" % (sys.argv[1], sys.argv[2]), timeout=2).read()
    print("ok")
except Exception as e:
    print(getattr(e, "reason", e))
' "$1" "$PORT" 2>&1
}
t_http() { [ "$(t_http_result "$1")" = ok ]; }
# The GET to ADDR was sent and got no answer in time (a refused connection or an error is not a
# cut link).
t_http_cut() { t_contains "$(t_http_result "$1")" "timed out"; }

# RFC 5227 probe (sender 0.0.0.0) from NODE for ADDR: succeeds if some host answers, i.e. the
# address is taken. The Debian arping (Habets) has no DAD mode; -D there only changes output.
t_arp_probe() {
    timeout 5 ip netns exec "$(nb_ns "$1")" arping -q -0 -c 2 -w 2 -i "$NB_IF" "$2" >/dev/null 2>&1
}

# NODE's probe for ADDR went out and nobody answered (arping's statistics say so; its exit
# status does not tell a lost probe from one that never left).
t_no_arp_answer() {
    local out
    out=$(timeout 5 ip netns exec "$(nb_ns "$1")" arping -0 -c 2 -w 2 -i "$NB_IF" "$2" 2>&1)
    grep -qE '^[1-9][0-9]* packets transmitted, 0 packets received' <<<"$out" ||
        { echo "# arping from $1: $(tail -n 1 <<<"$out")"; return 1; }
}

t_arp_probe_mac() {
    timeout 5 ip netns exec "$(nb_ns "$1")" arping -r -0 -c 1 -w 2 -i "$NB_IF" "$2" 2>/dev/null |
        head -1
}

# nb_up PREFIX returns 1 saying that the prefix is in use.
t_up_refused() {
    local rc=0 err
    err=$(nb_up "$1" 2>&1) || rc=$?
    t_eq "$rc" 1 && t_contains "$err" "testbed prefix $1 is in use"
}
t_runs_in() { [ -n "$(nb_pids "$1")" ]; }

t_gone() {
    local p=$1 left
    left=$(ip netns list | awk '{print $1}' | grep "^$p-" || true)
    left+=$(ip -o link show | awk -F': ' '{print $2}' | grep -E "^$p(br|n[123c])(@|\$)" || true)
    left+=$(nft list tables | grep -w "$p" || true)
    [ ! -e "$(nb__state_file "$p")" ] || left+=" state file"
    [ -z "$left" ] || { echo "# left behind: $left"; return 1; }
}

# Polls CMD... every 0.1 s for up to 5 s.
t_eventually() { t_poll 5 "$@"; }

# --- setup
P=t$$
T_PREFIXES+=("$P")
t_check "nb_up creates testbed $P" nb_up "$P"
[ "$NB_PREFIX" = "$P" ] || { echo "FAIL: test_netns_smoke: nb_up failed, cannot go on"; exit 1; }
t_check "state file records the run" grep -qx "owner_pid=$$" "$NB_STATE_FILE"
t_check "four namespaces exist" t_eq "$(ip netns list | grep -c "^$P-")" 4
t_check "nb_up refuses a prefix in use" t_up_refused "$P"
t_check "nb_ip node2 is 10.231.0.12" t_eq "$(nb_ip node2)" 10.231.0.12
t_check "nb_exec runs in the node's namespace" \
    t_eq "$(nb_exec node3 ip -4 -o addr show dev "$NB_IF" | awk '{print $4}')" 10.231.0.13/24
t_check "lo is up in every namespace" \
    t_eq "$(for n in $NB_ALL; do nb_exec "$n" ping -c1 -W1 -q 127.0.0.1 >/dev/null && echo y; done |
        wc -l)" 4
t_check "NB_VIP is 10.231.0.100/24" t_eq "$NB_VIP/$NB_VIP_PREFIX" 10.231.0.100/24

# --- reachability, cuts, isolation, splits
t_check "every namespace pair pings both ways" t_matrix
t_check "client reaches node1 node2 node3" \
    t_eq "$(for n in $NB_NODES; do t_ping client "$(nb_ip "$n")" && echo y; done | wc -l)" 3

nb_cut node1 node2
t_check "nb_cut node1 node2 drops exactly that pair, both ways" t_matrix node1,node2
t_check "nb_cuts lists the cut" t_eq "$(nb_cuts)" "node1 node2"
nb_heal node1 node2
t_check "nb_heal node1 node2 restores it" t_matrix
t_check "nb_heal of an uncut pair succeeds" nb_heal node2 node3

nb_isolate node1
t_check "nb_isolate node1 cuts it from nodes and client" \
    t_matrix node1,node2 node1,node3 node1,client
nb_heal_all
t_check "nb_heal_all restores everything" t_matrix
nb_isolate node3 --keep-client
t_check "nb_isolate node3 --keep-client keeps the client link" t_matrix node3,node1 node3,node2
nb_heal_all

nb_split "node1" "node2 node3"
t_check "nb_split node1 | node2 node3" t_matrix node1,node2 node1,node3
nb_heal_all
nb_split "node1 node2" "node3 client"
t_check "nb_split node1 node2 | node3 client" \
    t_matrix node1,node3 node1,client node2,node3 node2,client
nb_heal_all
t_check "no cut left after nb_heal_all" t_eq "$(nb_cuts)" ""

nb_link_down node2
t_check "nb_link_down node2 takes node2 off the network" t_matrix \
    node2,node1 node2,node3 node2,client
t_check "nb_link_up node2 brings it back" nb_link_up node2
t_check "node2 reachable again" t_eventually t_matrix

# --- a TCP service in node1, seen from the client
ip netns exec "$(nb_ns node1)" python3 -m http.server --bind "$(nb_ip node1)" \
    --directory "$T_LOG" "$PORT" >"$T_LOG/http.log" 2>&1 </dev/null &
T_PIDS+=($!)
t_check "client reaches an HTTP server in node1" t_eventually t_http "$(nb_ip node1)"
nb_isolate node1
t_check "not after nb_isolate node1" t_http_cut "$(nb_ip node1)"
nb_heal_all
t_check "again after nb_heal_all" t_eventually t_http "$(nb_ip node1)"

# --- the VIP
t_check "VIP unclaimed: client cannot ping it" t_no_ping client "$NB_VIP"
t_check "VIP unclaimed: ARP probe from node3 gets no answer" t_no_arp_answer node3 "$NB_VIP"
nb_exec node2 ip addr add "$NB_VIP/$NB_VIP_PREFIX" dev "$NB_IF"
t_check "VIP on node2: client pings it" t_eventually t_ping client "$NB_VIP"
t_check "VIP on node2: ARP probe from node3 detects it is taken" t_arp_probe node3 "$NB_VIP"
t_check "the answering MAC is node2's" t_eq "$(t_arp_probe_mac node3 "$NB_VIP")" \
    "$(nb_exec node2 cat "/sys/class/net/$NB_IF/address")"
nb_cut node2 node3
t_check "VIP on node2 cut from node3: node3's probe sees no owner" t_no_arp_answer node3 "$NB_VIP"
nb_heal_all
nb_exec node2 ip addr del "$NB_VIP/$NB_VIP_PREFIX" dev "$NB_IF"
t_check "VIP released: client cannot ping it" t_no_ping client "$NB_VIP"

# --- packet loss and delay
if nb_netem node1 "delay 50ms" 2>"$T_LOG/netem.err"; then
    rtt=$(nb_exec client ping -c1 -W2 "$(nb_ip node1)" |
        sed -n 's/.*time=\([0-9]*\).*/\1/p' || true)
    t_check "nb_netem delay 50ms delays node1's replies" test "${rtt:-0}" -ge 50
    nb_netem_clear node1
else
    t_check "nb_netem says why delay is unavailable" \
        grep -q "sch_netem is not available" "$T_LOG/netem.err"
fi
t_check "nb_netem node1 \"loss 100%\" applies" nb_netem node1 "loss 100%"
t_check "loss 100% drops what node1 sends" t_matrix node1,node2 node1,node3 node1,client
nb_netem_clear node1
t_check "nb_netem_clear node1 restores it" t_matrix
t_check "nb_netem node3 \"loss 50%\" applies" nb_netem node3 "loss 50%"
received=$(nb_exec client ping -q -c 40 -i 0.01 -W 1 "$(nb_ip node3)" |
    sed -n 's/.* \([0-9]*\) received.*/\1/p' || true)
# 40 echo replies each dropped with p=0.5: 1..39 received fails with probability 2^-39.
t_check "loss 50% drops some but not all (received=$received of 40)" \
    test "${received:-0}" -gt 0 -a "${received:-0}" -lt 40
nb_netem_clear node3

# --- teardown, stale testbeds, partial testbeds
ip netns exec "$(nb_ns node2)" setsid sleep 300 </dev/null >/dev/null 2>&1 &
T_PIDS+=($!)
t_check "a process runs in node2" t_eventually t_runs_in node2
orphan=$(nb_pids node2 | head -1)
t_check "nb_down removes testbed $P" nb_down "$P"
t_check "nothing of $P is left" t_gone "$P"
t_check "the process in node2 was killed" t_eventually t_status 1 kill -0 "$orphan"
t_check "nb_down is idempotent" nb_down "$P"

# A testbed whose owner is gone is removed by nb_down_all_stale; one whose owner lives is not.
sleep 0 &
dead=$!
wait "$dead"
S=s$$
L=l$$
T_PREFIXES+=("$S" "$L")
t_check "nb_up of a testbed owned by a dead PID" env NB_OWNER_PID="$dead" bash -c \
    "source '$HERE/netns.sh' && nb_up $S"
t_check "nb_up of a testbed owned by this test" nb_up "$L"
t_check "nb_down_all_stale removes only the stale one" nb_down_all_stale
t_check "stale testbed $S is gone" t_gone "$S"
t_check "live testbed $L is kept" t_eq "$(ip netns list | grep -c "^$L-")" 4

# A partial testbed (one namespace and one link gone by hand) still comes down cleanly.
ip netns del "$L-node2"
ip link del "$(nb_port node3)"
t_check "nb_down removes a partial testbed" nb_down "$L"
t_check "nothing of $L is left" t_gone "$L"

# An nb_up that fails half-way (node3's address is refused) removes what it had created.
F=f$$
T_PREFIXES+=("$F")
t_check "nb_up failing at node3 returns 1" t_status 1 bash -c "
    source '$HERE/netns.sh'
    ip() { [[ \" \$* \" == *' 10.231.0.13/24 '* ]] && return 1; command ip \"\$@\"; }
    nb_up $F" 2>/dev/null
t_check "nothing of the failed $F is left" t_gone "$F"

t_summary
