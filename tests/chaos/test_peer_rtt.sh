#!/usr/bin/env bash
# The round-trip warning (peer_book.h rtt_bound_ms, README "Choosing the election timeout"), in
# the chaos testbed: a standby's outgoing link is slowed with a token bucket (tbf; the testbed's
# kernel may lack netem) so that each of its answers to a poll takes about 100 ms to send, more
# than a sixth of the election timeout (83 ms at 500 ms). The primary, which polls it, must warn
# once, naming the member and the timeout to choose, and show it on /metrics; it must not warn
# about the other standby; once the link is fast again it says so and the metric clears.
# usage: test_peer_rtt.sh PATH_TO_RAFTPG
set -euo pipefail
NAME=test_peer_rtt
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=cluster.sh
source "$HERE/cluster.sh"
cl_init "${1:-}"
cl_up
cl_wait_ready 120 || exit 1
O=$CL_PRIMARY
S=
OTHER=
for n in "${CL_NODES[@]}"; do
    [ "$n" != "$O" ] || continue
    if [ -z "$S" ]; then S=$n; else OTHER=$n; fi
done
cl_log "observer (primary) $O, slowed standby $S, other standby $OTHER"

# O's metric raftpg_peer_rtt_slow for PEER, as the client reads /metrics.
slow_of() {
    cl_client curl -s -m 3 "http://$(cl_ip "$O"):$CL_API_PORT/metrics" |
        awk -v p="peer=\"$1\"" 'index($0, "raftpg_peer_rtt_slow{") == 1 && index($0, p) {print $2}'
}
slow_is() { [ "$(slow_of "$1")" = "$2" ]; }
t_check "$O has $S's round trip on /metrics, not slow" t_eq "$(slow_of "$S")" 0

# The bucket's rate: one answer (its /status and about 400 bytes of HTTP and TCP) per 100 ms.
size=$(cl_client curl -s -m 3 "http://$(cl_ip "$S"):$CL_API_PORT/status" | wc -c)
t_check "$S's /status read ($size bytes)" test "$size" -gt 100
rate=$(((size + 400) * 8 * 10))
nb_exec "$S" tc qdisc replace dev "$NB_IF" root tbf rate "${rate}bit" burst 1600 latency 1s
cl_log "$S's egress limited to $rate bit/s"
warned() { grep -q "round trip to $S: the least of its last 8 polls took [0-9]* ms, more than a sixth of the election timeout ($CL_ET ms)" "$CL_DIR/$O.log"; }
t_wait 30 "$O warns about $S's round trip" warned
t_check "$O warns about $S's round trip, naming the timeout to choose" warned
grep "round trip to $S" "$CL_DIR/$O.log" | sed 's/^/# /'
t_wait 10 "$O's /metrics shows $S slow" slow_is "$S" 1
t_check "$O's /metrics: raftpg_peer_rtt_slow for $S is 1" t_eq "$(slow_of "$S")" 1
t_check "$O's /metrics: not for $OTHER" t_eq "$(slow_of "$OTHER")" 0
t_check "$O does not warn about $OTHER" t_absent "round trip to $OTHER" "$CL_DIR/$O.log"

nb_exec "$S" tc qdisc del dev "$NB_IF" root
cl_log "$S's egress back to full speed"
back() { grep -q "round trip to $S back to [0-9]* ms" "$CL_DIR/$O.log"; }
t_wait 30 "$O says $S's round trip is back" back
t_check "$O says $S's round trip is back" back
t_wait 10 "$O's /metrics shows $S not slow" slow_is "$S" 0
t_check "$O's /metrics: raftpg_peer_rtt_slow for $S is 0 again" t_eq "$(slow_of "$S")" 0
t_check "one warning and one all-clear, no flapping" \
    t_eq "$(grep -c "round trip to $S" "$CL_DIR/$O.log")" 2
cl_done
