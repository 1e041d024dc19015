#!/usr/bin/env bash
# The whole test suite: installs what is needed, builds twice (plain, then with
# AddressSanitizer + UndefinedBehaviorSanitizer) and runs every CTest tier in both.
# Usage: scripts/test.sh [ctest arguments, e.g. -L unit]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

status=0
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
