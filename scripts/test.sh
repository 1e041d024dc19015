#!/usr/bin/env bash
# The whole test suite: installs what is needed, checks that the Release build compiles, builds
# twice (plain, then with AddressSanitizer + UndefinedBehaviorSanitizer) and runs every CTest
# tier in both.
# Usage: scripts/test.sh [ctest arguments, e.g. -L unit]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

status=0
# The product as packagers and most users build it (-O3): GCC warns about more there, and
# warnings are errors.
echo "=== Release build ==="
if ! { cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null &&
       cmake --build build-release -j "$(nproc)" --target raftpg >/dev/null; }; then
  echo "the Release build failed"
  status=1
fi
for mode in plain sanitize; do
  if [ "$mode" = plain ]; then
    scripts/build.sh >/dev/null
    dir=build
  else
    scripts/build.sh --sanitize >/dev/null
    dir=build-asan
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  fi
  echo "=== tests ($mode build) ==="
  if ! (cd "$dir" && ctest --output-on-failure --timeout 900 "$@"); then
    status=1
  fi
done
if [ $status -eq 0 ]; then echo "ALL TESTS PASSED"; else echo "TESTS FAILED"; fi
exit $status
