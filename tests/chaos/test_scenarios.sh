#!/usr/bin/env bash
# CI's deterministic subset of the chaos suite (scripts/chaos): one run of each scenario that the
# fencing tests (test_fence_kill, test_fence_pause, test_fence_isolate) and test_pg_switchover do
# not already cover, seed 1, faults of 2 s; every run checked for I1-I4 by
# chaos_invariants.py. usage: test_scenarios.sh PATH_TO_RAFTPG
exec bash "$(dirname "$0")/../../scripts/chaos" --binary "${1:?usage: test_scenarios.sh PATH_TO_RAFTPG}" \
    --scenario kill-pg,stop-pg,stop-node,isolate-standby,flap,loss-all,restart-all,standby-kill \
    --seed 1 --duration 2
