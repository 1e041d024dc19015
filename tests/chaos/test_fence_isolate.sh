#!/usr/bin/env bash
# The isolation fault of fence_isolate.sh (see its header): the primary cut off from the other
# nodes, the client still reaching it. usage: test_fence_isolate.sh PATH_TO_RAFTPG
FENCE_ISOLATE_FAULTS=isolate exec bash "$(dirname "$0")/fence_isolate.sh" "$@"
