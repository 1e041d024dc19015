#!/usr/bin/env bash
# Fencing when the primary's agent and PostgreSQL are killed (DESIGN.md §4 I1, I3, §7), in the
# chaos testbed, with the writer writing through the VIP and to every node directly and the VIP
# watcher polling every 50 ms. Two faults, one after the other:
#   kill      kill -9 of the primary's agent and of its PostgreSQL (postmaster and children at
#             once); the node itself stays up, with its network. Nothing is left to release the
#             VIP until the agent is started again (as systemd would), which is the heal.
#   nodeloss  the same on the new primary, and its link goes down at the same moment: the whole
#             node is gone, as DESIGN.md §7 means by node loss. The heal restarts the agent while
#             the link is still down (a rebooted node has no VIP), then brings the link up.
# For each: the old primary stops acknowledging writes within its lease and has no VIP after it,
# another node becomes primary and claims the VIP, the client through the VIP goes on, no write of
# the old primary is acknowledged after the new one's first (I1), never two nodes with the VIP or
# answering ARP for it (I3), and after the heal the old primary is a standby without VIP.
# Prints a FIGURES line (JSON) per fault. usage: test_fence_kill.sh PATH_TO_RAFTPG
# With the agent killed and the node up, the guard (include/raftpg/guard.h) fences: it sees the
# agent's pipe end, stops what PostgreSQL is left and deletes the VIP; the VIP's lifetime is the
# backstop when the guard is gone too.
set -euo pipefail
NAME=test_fence_kill
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=cluster.sh
source "$HERE/cluster.sh"
cl_init "${1:-}"
cl_up
cl_wait_ready 120 || exit 1
cl_create_table || exit 1

# The standard checks of one fault from the checker's report.
report_checks() {
    local old=$1 new=$2
    cl_check_report "$old stops acknowledging writes within its lease" old_stops_writes
    cl_check_report "$old has no VIP after its lease" old_releases_vip
    cl_check_report "$new claims the VIP" new_claims_vip
    cl_check_report "the client through the VIP continues on $new" vip_client_continues
    cl_check_report "I1: no ack from $old after $new's first" i1
    cl_check_report "I3: never two nodes with the VIP" i3_addr
    cl_check_report "I3: never two ARP answers for the VIP" i3_arp
    cl_check_report "once $old is back as a standby only $new has the VIP" settled_vip
}

# --- kill -9 of the primary's agent and PostgreSQL, the node staying up
P=$CL_PRIMARY
tag="kill"
cl_start_watch "$tag"
cl_start_writer "$tag" 1000000
t_wait 30 "the client writes through the VIP to $P" cl_acks_via_after "$tag" vip "$P" 0 50 ||
    exit 1
sleep 1
cl_log "kill -9 of $P's agent and PostgreSQL"
t0=$(cl_now)
cl_kill_agent "$P" KILL
cl_kill_pg "$P"
t1=$(cl_now)
t_wait 30 "a new primary among the others" cl_new_primary "$P" || exit 1
NP=$(cl_new_primary "$P")
cl_log "new primary is $NP"
t_wait 15 "$NP acknowledges direct writes" cl_acks_via_after "$tag" "$NP" "$NP" "$t1" 20 || true
# The claim is retried while refused; give it several rounds before the agent comes back.
t_check "$NP claims the VIP while $P's agent is down (within 8 s)" t_poll 8 cl_vip_alone_on "$NP"
if ! cl_vip_alone_on "$NP"; then
    echo "# holders now: $(cl_vip_holders); $NP's agent refused its claim" \
        "$(grep -c 'refusing: another host answers' "$CL_DIR/$NP.log") times, the last:"
    grep -F 'vip' "$CL_DIR/$NP.log" | tail -n 2 | sed 's/^/#   /'
fi
cl_log "restarting $P's agent (the heal)"
th=$(cl_now)
cl_start "$P"
t_wait 30 "$NP holds the VIP alone" cl_vip_alone_on "$NP" || true
t_wait 30 "the client writes through the VIP to $NP" \
    cl_acks_via_after "$tag" vip "$NP" "$th" 20 || true
cl_wait_rejoined "$P" "$NP" || true
ts=$(cl_now)
sleep 2
cl_stop_writer
cl_stop_watch
cl_save_ids "$tag" "$NP" || true
cl_analyse "$tag" kill "$P" "$t0" "$t1" --heal "$th" --settled "$ts" || exit 1
th_rel=$(cl_rjq '.heal_ms')
claimed=$(cl_rjq '.new_vip_claimed_ms')
echo "# $NP had the VIP alone at fault+${claimed} ms;" \
    "$P's agent was restarted at fault+${th_rel} ms"
t_check "the new primary is $NP" t_eq "$(cl_rjq .new)" "$NP"
report_checks "$P" "$NP"
t_check "$P is a streaming standby of $NP" cl_rejoined "$P" "$NP"

# --- node loss of the new primary: agent and PostgreSQL killed, link down
t_wait 60 "the cluster is whole again: $NP primary with the VIP, two streaming standbys" \
    cl_ready || exit 1
O=$CL_PRIMARY
tag=nodeloss
cl_start_watch "$tag"
cl_start_writer "$tag" 2000000
t_wait 30 "the client writes through the VIP to $O" cl_acks_via_after "$tag" vip "$O" 0 50 ||
    exit 1
sleep 1
cl_log "node loss of $O: kill -9 of its agent and PostgreSQL, link down"
t0=$(cl_now)
cl_kill_agent "$O" KILL
cl_kill_pg "$O"
nb_link_down "$O"
t1=$(cl_now)
t_wait 30 "a new primary among the others" cl_new_primary "$O" || exit 1
NP=$(cl_new_primary "$O")
cl_log "new primary is $NP"
t_wait 30 "the client writes through the VIP to $NP" cl_acks_via_after "$tag" vip "$NP" "$t1" 20 ||
    true
sleep 1
cl_log "restarting $O's agent with its link down, then bringing the link up (the heal)"
th=$(cl_now)
cl_start "$O"
t_wait 30 "$O's restarted agent removes the VIP it had" cl_lacks_vip "$O" || true
tu=$(cl_now)
nb_link_up "$O"
cl_wait_rejoined "$O" "$NP" || true
ts=$(cl_now)
sleep 2
cl_stop_writer
cl_stop_watch
cl_save_ids "$tag" "$NP" || true
cl_analyse "$tag" nodeloss "$O" "$t0" "$t1" --heal "$th" --settled "$ts" --lost "$O" "$t0" "$tu" ||
    exit 1
t_check "the new primary is $NP" t_eq "$(cl_rjq .new)" "$NP"
report_checks "$O" "$NP"
t_check "$O is a streaming standby of $NP" cl_rejoined "$O" "$NP"
t_check "only $NP holds the VIP" t_eq "$(cl_vip_holders)" "$NP"
cl_done
