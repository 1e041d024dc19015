#!/usr/bin/env bash
# What scripts/bench's two failover benchmarks (failover_raftpg.sh, failover_patroni.sh) share:
# the node-loss fault, the idle cost sampler and the run records. Sourced after netns.sh.
# shellcheck shell=bash

# bn_kill_node NODE: the node dies as a machine would: every process in its namespace stopped,
# then killed (none can notice another's death and answer first), and its link down.
bn_kill_node() {
    local n=$1 pids pid
    pids=$(nb_pids "$n" | grep -vxF -e "$$" -e "${BASHPID:-$$}" || true)
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -STOP $pids 2>/dev/null || true
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
    nb_link_down "$n"
    for pid in $pids; do wait "$pid" 2>/dev/null || true; done
}

# bn_ticks PID...: CPU time (user + system, in clock ticks) used so far by the processes, the
# ones that are gone counting 0.
bn_ticks() {
    local pid s total=0
    for pid in "$@"; do
        s=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        s=${s##*) }
        # Fields 14 and 15 of stat are the 12th and 13th after the command's closing ")".
        total=$((total + $(awk '{print $12 + $13}' <<<"$s")))
    done
    echo "$total"
}

# bn_rss_kib PID...: resident set size summed over the processes, KiB.
bn_rss_kib() {
    local pid total=0 kb
    for pid in "$@"; do
        kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || continue
        total=$((total + ${kb:-0}))
    done
    echo "$total"
}

# bn_idle SECONDS NAME=PIDS... : for each group (PIDS comma-separated), the share of one core it
# used over SECONDS and its RSS at the end, as a JSON object.
bn_idle() {
    local secs=$1 arg name pids hz out='{' sep=''
    shift
    hz=$(getconf CLK_TCK)
    declare -A before=()
    for arg in "$@"; do
        name=${arg%%=*}; pids=${arg#*=}
        # shellcheck disable=SC2086
        before[$name]=$(bn_ticks ${pids//,/ })
    done
    sleep "$secs"
    for arg in "$@"; do
        name=${arg%%=*}; pids=${arg#*=}
        # shellcheck disable=SC2086
        out+="$sep\"$name\": {\"cpu_pct\": $(awk -v a="${before[$name]}" -v b="$(bn_ticks ${pids//,/ })" \
            -v hz="$hz" -v s="$secs" 'BEGIN {printf "%.3f", (b - a) * 100 / hz / s}'),"
        # shellcheck disable=SC2086
        out+=" \"rss_kib\": $(bn_rss_kib ${pids//,/ }), \"processes\": $(wc -w <<<"${pids//,/ }")}"
        sep=', '
    done
    echo "$out}"
}

# bn_wall_ms: the wall clock in milliseconds (the agents' and Patroni's logs use it).
bn_wall_ms() { date +%s%3N; }
