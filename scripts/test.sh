#!/usr/bin/env bash
# The whole test suite: installs what is needed, checks the code style, checks that the Release
# build compiles, builds twice (plain, then with AddressSanitizer + UndefinedBehaviorSanitizer)
# and runs every CTest tier in both.
# Usage: scripts/test.sh [ctest arguments, e.g. -L unit]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

# The code style first: a few seconds, and a mismatch fails the run before half an hour of tests.
echo "=== code style (.clang-format) ==="
if ! scripts/format.sh --check; then
  echo "TESTS FAILED: code style; run scripts/format.sh, review with git diff and commit"
  exit 1
fi

status=0
# The product as packagers and most users build it, warnings as errors: GCC's Release (-O3, where
# GCC 12 finds more possibly-uninitialised values), Debian's own flags (dpkg-buildflags with every
# hardening option: -O2, _FORTIFY_SOURCE, stack protector, relro/now) with GCC and with clang at
# -O3. Only the agent's target, about 5 s each on 2 cores.
hardened() {
  DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get "$1"
}
build_check() { # name dir CC cmake-args...
  local name=$1 dir=$2 cc=$3
  shift 3
  echo "=== $name build ==="
  if ! { CC=$cc cmake -S . -B "$dir" -DRAFTPG_WERROR=ON "$@" >/dev/null &&
         cmake --build "$dir" -j "$(nproc)" --target raftpg >/dev/null; }; then
    echo "the $name build failed"
    status=1
  fi
}
build_check Release build-release gcc -DCMAKE_BUILD_TYPE=Release
flags=(-DCMAKE_C_FLAGS="$(hardened CFLAGS) $(hardened CPPFLAGS)"
       -DCMAKE_EXE_LINKER_FLAGS="$(hardened LDFLAGS)")
build_check "dpkg-buildflags (gcc)" build-dpkg gcc -DCMAKE_BUILD_TYPE=None "${flags[@]}"
build_check "dpkg-buildflags (clang, Release)" build-clang clang -DCMAKE_BUILD_TYPE=Release "${flags[@]}"
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
