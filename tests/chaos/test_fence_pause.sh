#!/usr/bin/env bash
# Fencing after a pause (DESIGN.md §4 I1, I3, rules 2 and 5), in the chaos testbed, with the
# writer writing through the VIP and to every node directly and the VIP watcher polling every
# 50 ms: the primary's agent is stopped with SIGSTOP (its PostgreSQL keeps running) for longer
# than its lease, until the others have promoted one of them; then SIGCONT.
#   - the others elect a leader and promote while the old agent is stopped;
#   - after SIGCONT the old agent fences before it does anything else: the first action in its
#     log after the resume is a "fencing:" line;
#   - the old PostgreSQL acknowledges no write after the new primary's first (I1), and stops
#     acknowledging writes, and the old node drops the VIP, within the fence margin after SIGCONT;
#   - never two nodes with the VIP, never two ARP answers for it (I3);
#   - the new primary claims the VIP, the client through it goes on, and the old primary rejoins
#     as a standby without the VIP, through pg_rewind (no clone).
# Known limitation this test reports rather than hides: a paused agent cannot fence its running
# PostgreSQL, so unless synchronous replication or a watchdog stops it, that server goes on
# acknowledging writes while a new primary does (I1); the check says how many, through which
# targets, and for how long.
# Prints a FIGURES line (JSON). usage: test_fence_pause.sh PATH_TO_RAFTPG
set -euo pipefail
NAME=test_fence_pause
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=cluster.sh
source "$HERE/cluster.sh"
cl_init "${1:-}"
cl_up
cl_wait_ready 120 || exit 1
cl_create_table || exit 1
P=$CL_PRIMARY

tag=pause
cl_start_watch "$tag"
cl_start_writer "$tag" 1000000
t_wait 30 "the client writes through the VIP to $P" cl_acks_via_after "$tag" vip "$P" 0 50 ||
    exit 1
sleep 1

cl_log "SIGSTOP to $P's agent (pid ${CL_AGENT_PID[$P]})"
t0=$(cl_now)
cl_kill_agent "$P" STOP
t1=$(cl_now)
t_check "$P's agent is stopped" t_poll 5 cl_agent_stopped "$P"
# Nothing is written to the log while the agent is stopped: what follows this offset is what it
# did after SIGCONT.
log_at_stop=$(stat -c %s "$CL_DIR/$P.log")
t_wait 30 "a new primary among the others while $P's agent is stopped" cl_new_primary "$P" ||
    exit 1
NP=$(cl_new_primary "$P")
cl_log "new primary is $NP"
t_wait 15 "$NP acknowledges direct writes" cl_acks_via_after "$tag" "$NP" "$NP" "$t1" 20 || true
sleep 1
t_check "$P's agent stayed stopped until now" cl_agent_stopped "$P"
t_check "the log of the stopped agent did not grow" \
    t_eq "$(stat -c %s "$CL_DIR/$P.log")" "$log_at_stop"

cl_log "SIGCONT to $P's agent"
tr=$(cl_now)
cl_kill_agent "$P" CONT
t_wait 15 "$P's agent logs its fence" \
    bash -c "tail -c +$((log_at_stop + 1)) '$CL_DIR/$P.log' | grep -q 'fencing'" || true
t_wait 30 "$NP holds the VIP alone" cl_vip_alone_on "$NP" || true
t_wait 30 "the client writes through the VIP to $NP" \
    cl_acks_via_after "$tag" vip "$NP" "$tr" 20 || true
cl_wait_rejoined "$P" "$NP" || true
ts=$(cl_now)
sleep 2
cl_stop_writer
cl_stop_watch
cl_save_ids "$tag" "$NP" || true

# What the agent logged after SIGCONT, up to its first action. Observations (role, lease, loop gap,
# loop stall and leader changes, waiting) are not actions; everything else it logs is one (an HA
# action and its completion, a VIP operation, a fence).
after=$CL_DIR/$P.after-resume.log
tail -c +$((log_at_stop + 1)) "$CL_DIR/$P.log" | grep -v '^[[:space:]]' >"$after" || true
observation=': (raft role |raft leader is now |lease (held|lost) |loop gap: |loop stall: |waiting: |leader barrier failed)'
first_action=$(grep -vE "$observation" "$after" | head -n 1)
echo "# $P's log after SIGCONT, up to its first action:"
awk -v a="$first_action" '{print "#   " $0} $0 == a {exit}' "$after" | head -n 20
fence_first() { grep -q 'fencing' <<<"$first_action"; }

cl_analyse "$tag" pause "$P" "$t0" "$t1" --resume "$tr" --heal "$tr" --settled "$ts" || exit 1
t_check "the new primary is $NP" t_eq "$(cl_rjq .new)" "$NP"
t_check "$NP acknowledged writes before $P's agent was resumed" \
    t_eq "$(cl_rjq '.new_first_ack_ms != null and .new_first_ack_ms < .resume_ms')" true
t_check "after SIGCONT, $P's agent fences before any other action" fence_first
cl_check_report "$P stops acknowledging writes within the fence margin after SIGCONT" \
    old_stops_writes
cl_check_report "$P drops the VIP within the fence margin after SIGCONT" old_releases_vip
cl_check_report "$NP claims the VIP" new_claims_vip
cl_check_report "the client through the VIP continues on $NP" vip_client_continues
if [ "$(cl_rjq '.checks.i1.ok')" != true ]; then
    echo "# KNOWN LIMITATION: a paused agent cannot fence its PostgreSQL; only synchronous" \
        "replication or a watchdog (DESIGN.md rules 4, 5) could, and here neither did: it kept" \
        "acknowledging writes after the new primary's first."
fi
cl_check_report "I1: no ack from $P after $NP's first" i1
cl_check_report "I3: never two nodes with the VIP" i3_addr
cl_check_report "I3: never two ARP answers for the VIP" i3_arp
cl_check_report "once $P is back as a standby only $NP has the VIP" settled_vip
t_check "$P is a streaming standby of $NP" cl_rejoined "$P" "$NP"
t_check "$P rejoined by pg_rewind, not by a clone" cl_rewound_not_cloned "$P" "$log_at_stop"
cl_log "$P: SIGCONT to streaming $(cl_ms_between "$tr" "$ts") ms, its rejoin pipeline $(cl_rejoin_ms "$P" "$log_at_stop") ms"
cl_done
