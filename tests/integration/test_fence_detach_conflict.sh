#!/usr/bin/env bash
# test_fence_detach.sh with node3's replay held by a hot-standby conflict instead of a pause.
DETACH_BLOCK=conflict exec bash "$(dirname "$0")/test_fence_detach.sh" "$@"
