#!/usr/bin/env bash
# Fencing under isolation (DESIGN.md §4 I1, I3, rules 2 and 3), in the chaos testbed. The primary
# is cut from both other nodes but not from the client, so that only its own fencing can stop it
# from taking writes. The writer writes through the VIP and to every node directly; the VIP
# watcher polls every 50 ms. Two faults:
#   isolate  the primary, long after it claimed the VIP;
#   claim    the partition moves: a primary is isolated, and the moment its successor has added
#            the VIP (while it is still announcing it), the first partition heals and the
#            successor is isolated in turn.
# For each: the isolated primary stops acknowledging writes, and has no VIP, within its lease;
# another node becomes primary and claims the VIP; the client through the VIP goes on; no write of
# the isolated primary is acknowledged after the new primary's first (I1); never two nodes with
# the VIP, never two ARP answers for it (I3); after the heal the isolated primary rejoins as a
# standby through pg_rewind (no clone) and holds no VIP. Prints a FIGURES line (JSON) per fault.
# usage: fence_isolate.sh PATH_TO_RAFTPG; FENCE_ISOLATE_FAULTS (default "isolate claim") picks
# the faults. The suite runs the first one (test_fence_isolate.sh). The second isolates a primary
# right after it was promoted, while the synchronous record still names it as a voter; rule 6 then
# rightly keeps the others from promoting (one of its acknowledged commits may exist only there),
# so its check "a new primary among the others within 30 s" passes or fails with timing.
set -euo pipefail
NAME=fence_isolate
FAULTS=" ${FENCE_ISOLATE_FAULTS:-isolate claim} "
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=cluster.sh
source "$HERE/cluster.sh"
cl_init "${1:-}"
cl_up
cl_wait_ready 120 || exit 1
cl_create_table || exit 1

# The checks of one fault, from the checker's report and the agents' logs. OFFSET: the size of
# OLD's log when the fault began.
fault_checks() {
    local old=$1 new=$2 offset=$3
    t_check "the new primary is $new" t_eq "$(cl_rjq .new)" "$new"
    cl_check_report "$old stops acknowledging writes within its lease" old_stops_writes
    cl_check_report "$old drops the VIP within its lease" old_releases_vip
    cl_check_report "$new claims the VIP" new_claims_vip
    cl_check_report "the client through the VIP continues on $new" vip_client_continues
    cl_check_report "I1: no ack from $old after $new's first" i1
    cl_check_report "I3: never two nodes with the VIP" i3_addr
    cl_check_report "I3: never two ARP answers for the VIP" i3_arp
    cl_check_report "once $old is back as a standby only $new has the VIP" settled_vip
    t_check "$old's agent logged the fence" \
        bash -c "tail -c +$((offset + 1)) '$CL_DIR/$old.log' | grep -q 'fencing'"
    t_check "$old's agent is still running" cl_agent_alive "$old"
    t_check "$old is a streaming standby of $new" cl_rejoined "$old" "$new"
    t_check "$old holds no VIP" cl_lacks_vip "$old"
    t_check "$old rejoined by pg_rewind, not by a clone" cl_rewound_not_cloned "$old" "$offset"
    # What the isolated agent did with its PostgreSQL and the VIP after the fault.
    tail -c +$((offset + 1)) "$CL_DIR/$old.log" |
        grep -E 'lease lost|fencing|fenced|vip ' | head -n 8 | sed 's/^/#   /'
}

# --- isolate: the primary, long after its VIP claim
P=$CL_PRIMARY
tag=isolate
cl_start_watch "$tag"
cl_start_writer "$tag" 1000000
t_wait 30 "the client writes through the VIP to $P" cl_acks_via_after "$tag" vip "$P" 0 50 ||
    exit 1
sleep 1
cl_log "isolating $P from the other nodes (the client still reaches it)"
log_at_fault=$(stat -c %s "$CL_DIR/$P.log")
t0=$(cl_now)
nb_isolate "$P" --keep-client
t1=$(cl_now)
t_wait 30 "a new primary among the others" cl_new_primary "$P" || exit 1
NP=$(cl_new_primary "$P")
cl_log "new primary is $NP"
t_wait 30 "the client writes through the VIP to $NP" cl_acks_via_after "$tag" vip "$NP" "$t1" 20 ||
    true
sleep 1
cl_log "healing the partition"
th=$(cl_now)
nb_heal_all
cl_wait_rejoined "$P" "$NP" || true
ts=$(cl_now)
sleep 2
cl_stop_writer
cl_stop_watch
cl_save_ids "$tag" "$NP" || true
cl_analyse "$tag" isolate "$P" "$t0" "$t1" --heal "$th" --settled "$ts" || exit 1
fault_checks "$P" "$NP" "$log_at_fault"

if [[ $FAULTS != *" claim "* ]]; then
    t_check "only $NP holds the VIP" t_eq "$(cl_vip_holders)" "$NP"
    cl_done
    exit
fi

# --- claim: the partition moves onto the next primary while it announces the VIP
t_wait 60 "the cluster is whole again: $NP primary with the VIP, two streaming standbys" \
    cl_ready || exit 1
A=$CL_PRIMARY
tag=claim
cl_start_watch "$tag"
cl_start_writer "$tag" 2000000
t_wait 30 "the client writes through the VIP to $A" cl_acks_via_after "$tag" vip "$A" 0 50 ||
    exit 1
sleep 1
cl_log "isolating $A from the other nodes (the client still reaches it)"
nb_isolate "$A" --keep-client
t_wait 30 "a new primary among the others" cl_new_primary "$A" || exit 1
B=$(cl_new_primary "$A")
cl_log "new primary is $B; waiting for it to add the VIP"
t_wait 15 "$B adds the VIP" cl_has_vip "$B" || exit 1
log_at_fault=$(stat -c %s "$CL_DIR/$B.log")
t0=$(cl_now)
nb_heal_all
nb_isolate "$B" --keep-client
t1=$(cl_now)
cl_log "$B has the VIP: $A's partition healed, $B isolated (the client still reaches it)"
t_wait 30 "a new primary among the others" cl_new_primary "$B" || exit 1
C=$(cl_new_primary "$B")
cl_log "new primary is $C"
t_wait 30 "the client writes through the VIP to $C" cl_acks_via_after "$tag" vip "$C" "$t1" 20 ||
    true
sleep 1
cl_log "healing the partition"
th=$(cl_now)
nb_heal_all
cl_wait_rejoined "$B" "$C" || true
ts=$(cl_now)
sleep 2
cl_stop_writer
cl_stop_watch
cl_save_ids "$tag" "$C" || true
cl_analyse "$tag" claim "$B" "$t0" "$t1" --heal "$th" --settled "$ts" || exit 1
fault_checks "$B" "$C" "$log_at_fault"
t_check "only $C holds the VIP" t_eq "$(cl_vip_holders)" "$C"
cl_done
