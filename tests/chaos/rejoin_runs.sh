#!/usr/bin/env bash
# Rejoin by rewind, many times in a row (issue 11, item 2), in the chaos testbed: each run takes
# the primary out with one fault, waits for a new primary, ends the fault, and waits until the old
# primary streams from the new one again.
#   isolate  the primary is cut from both other nodes (the client still reaches it); then healed;
#   pause    the primary's agent gets SIGSTOP (its PostgreSQL runs on) until another node is
#            primary; then SIGCONT.
# Every rejoin must be a pg_rewind, never a clone (counted from the old primary's log). Prints per
# run the time from the end of the fault to streaming and the pipeline's own time (its "rejoin:
# streaming" line), then the counts and medians per fault (a FIGURES line, JSON).
# Not part of the suite (20 runs of each fault take some 15 minutes); the suite's
# test_fence_isolate and test_fence_pause check one rejoin each.
# usage: rejoin_runs.sh PATH_TO_RAFTPG; REJOIN_RUNS runs per fault (default 20), REJOIN_FAULTS
# (default "isolate pause").
set -euo pipefail
NAME=rejoin_runs
RUNS=${REJOIN_RUNS:-20}
FAULTS=${REJOIN_FAULTS:-isolate pause}
N_FAULTS=$(wc -w <<<"$FAULTS")
export CHAOS_TEST_TIMEOUT=${CHAOS_TEST_TIMEOUT:-$((RUNS * N_FAULTS * 120 + 300))}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=cluster.sh
source "$HERE/cluster.sh"
cl_init "${1:-}"
cl_up
cl_wait_ready 120 || exit 1

median() { sort -n | awk '{a[NR] = $1} END {if (NR) print a[int((NR + 1) / 2)]; else print "null"}'; }
figures="{"
for fault in $FAULTS; do
    done_runs=0 rewound=0 cloned=0
    heal_ms=() pipe_ms=()
    for run in $(seq 1 "$RUNS"); do
        t_wait 90 "the cluster is whole before $fault run $run" cl_ready || break
        P=$CL_PRIMARY
        offset=$(stat -c %s "$CL_DIR/$P.log")
        declare -A offsets=()
        for n in "${CL_NODES[@]}"; do offsets[$n]=$(stat -c %s "$CL_DIR/$n.log"); done
        if [ "$fault" = isolate ]; then
            nb_isolate "$P" --keep-client
        else
            cl_kill_agent "$P" STOP
        fi
        # Asked twice (set -e): the answer may change in between when the new primary loses
        # its lease at once.
        NP=""
        if t_wait 30 "a new primary in $fault run $run" cl_new_primary "$P"; then
            NP=$(cl_new_primary "$P") || NP=""
        fi
        if [ -z "$NP" ]; then
            if [ "$fault" = isolate ]; then nb_heal_all; else cl_kill_agent "$P" CONT; fi
            t_check "$fault run $run: a new primary stays one while the fault lasts" false
            break
        fi
        th=$(cl_now)
        if [ "$fault" = isolate ]; then nb_heal_all; else cl_kill_agent "$P" CONT; fi
        cl_wait_rejoined "$P" "$NP" || break
        ts=$(cl_now)
        done_runs=$((done_runs + 1))
        if cl_rewound_not_cloned "$P" "$offset"; then
            rewound=$((rewound + 1))
        else
            cloned=$((cloned + 1))
            # A rewind fails when its source stops: say why the new primary stopped, if it did.
            echo "# $NP (the rewind's source) since the fault: leadership, lease and fence lines"
            tail -c +$((offsets[$NP] + 1)) "$CL_DIR/$NP.log" |
                grep -E 'raft role|lease (lost|ending|not trusted)|loop gap|fencing|fenced|vip ' |
                head -n 20 | cut -c1-300 | sed 's/^/#   /'
        fi
        pm=$(cl_rejoin_ms "$P" "$offset") || pm=""
        heal_ms+=("$(cl_ms_between "$th" "$ts")")
        [ -z "$pm" ] || pipe_ms+=("$pm")
        cl_log "$fault run $run: $P -> $NP; end of fault to streaming ${heal_ms[-1]} ms, rejoin" \
            "pipeline ${pm:-?} ms, rewinds so far $rewound, clones $cloned"
    done
    t_check "$fault: $RUNS runs completed" t_eq "$done_runs" "$RUNS"
    t_check "$fault: every old primary rejoined by pg_rewind ($rewound of $done_runs)" \
        t_eq "$cloned" 0
    hm=$(printf '%s\n' "${heal_ms[@]}" | median)
    pmm=$(printf '%s\n' "${pipe_ms[@]}" | median)
    cl_log "$fault: $rewound rewinds, $cloned clones in $done_runs runs; median end of fault to" \
        "streaming $hm ms, median rejoin pipeline $pmm ms"
    [ "$figures" = "{" ] || figures+=", "
    figures+="\"$fault\": {\"runs\": $done_runs, \"rewinds\": $rewound, \"clones\": $cloned,"
    figures+=" \"median_fault_end_to_streaming_ms\": $hm, \"median_pipeline_ms\": $pmm}"
done
echo "FIGURES $figures}"
cl_done
