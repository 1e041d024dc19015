#!/usr/bin/env bash
# Builds raftpg into build/ (or build-asan/ with --sanitize). Prints the binary's path last.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build
args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DRAFTPG_WERROR=ON)
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan
  args=(-DCMAKE_BUILD_TYPE=Debug -DRAFTPG_SANITIZE=ON -DRAFTPG_WERROR=ON)
fi
cmake -S . -B "$dir" "${args[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)" >&2
echo "$PWD/$dir/raftpg"
