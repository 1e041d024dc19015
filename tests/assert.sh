# The assertions of every shell test (tests/integration, tests/chaos, tests/pkg, tests/image):
# numbered checks, bounded waits, exact comparisons, and negative checks that fail when their
# probe did not run. It starts nothing and sets no trap; the suites' own files (integration/lib.sh,
# chaos/cluster.sh) source it and add their cluster helpers.
#
# A negative check ("X does not happen", "N is not the primary") passes only on a probe that ran
# and answered no: t_status wants one exact exit status (grep's 1, not its 2 for a missing file),
# t_absent files that exist, t_ne a non-empty answer; t_jqs fails on an empty answer.
# shellcheck shell=bash

T_NAME=${T_NAME:-${NAME:-$(basename "$0" .sh)}}
T_N=0
T_FAILED=0
T_FIRST_FAIL=
T_TIMER=
# Pause between two polls of t_poll / t_wait (seconds).
T_POLL_INTERVAL=${T_POLL_INTERVAL:-0.1}

# t_fail MESSAGE: a failure outside a check; the test goes on and t_summary fails it.
t_fail() {
  T_FAILED=$((T_FAILED + 1))
  [ -n "$T_FIRST_FAIL" ] || T_FIRST_FAIL=$*
  echo "FAIL: $*"
}

# t_check DESCRIPTION COMMAND...: one numbered check. COMMAND says why on stdout when it fails.
t_check() {
  local desc=$1
  shift
  T_N=$((T_N + 1))
  if "$@"; then
    echo "ok $T_N - $desc"
  else
    echo "not ok $T_N - $desc"
    T_FAILED=$((T_FAILED + 1))
    [ -n "$T_FIRST_FAIL" ] || T_FIRST_FAIL=$desc
  fi
}

# t_eq GOT WANT
t_eq() { [ "$1" = "$2" ] || { echo "  expected [$2], got [$1]"; return 1; }; }

# t_ne GOT UNWANTED: GOT is an answer (not empty) and not UNWANTED. For "X is not the primary":
# an empty answer means the probe failed, not that X lost.
t_ne() {
  [ -n "$1" ] || { echo "  no answer (wanted anything but [$2])"; return 1; }
  [ "$1" != "$2" ] || { echo "  got [$1], which it must not be"; return 1; }
}

# t_contains HAYSTACK NEEDLE
t_contains() { grep -qF -- "$2" <<<"$1" || { echo "  [$1] lacks [$2]"; return 1; }; }

# t_status WANT COMMAND...: COMMAND exits with exactly WANT. For a negative check through a
# program that has a status of its own for "no" (grep and pgrep 1, ping 1): any other failure
# (a missing file, a command that did not run) fails the check.
t_status() {
  local want=$1 rc=0
  shift
  "$@" || rc=$?
  [ "$rc" -eq "$want" ] || { echo "  exit status $rc, want $want: $*"; return 1; }
}

# t_absent PATTERN FILE...: every FILE exists and none has a line matching the extended regular
# expression PATTERN (the matching lines are shown when one does).
t_absent() {
  local re=$1 f out rc=0
  shift
  [ $# -gt 0 ] || { echo "  t_absent: no file given"; return 1; }
  for f in "$@"; do [ -f "$f" ] || { echo "  $f does not exist"; return 1; }; done
  out=$(grep -HE -- "$re" "$@" 2>&1) || rc=$?
  [ $rc -ne 1 ] || return 0
  if [ $rc -eq 0 ]; then echo "  found:"; head -n 5 <<<"$out" | sed 's/^/    /'; else echo "  grep failed (status $rc): $out"; fi
  return 1
}

# t_jqs JSON [jq options] FILTER: jq -r over JSON, failing (status 1, nothing printed) when JSON
# is empty, is not JSON, or FILTER yields nothing. Whoever wants "no value" asks for it
# explicitly (FILTER // "none").
t_jqs() {
  local json=$1 out
  shift
  [ -n "$json" ] || return 1
  out=$(jq -r "$@" <<<"$json" 2>/dev/null) || return 1
  [ -n "$out" ] || return 1
  printf '%s\n' "$out"
}

# t_poll TIMEOUT_S COMMAND...: polls COMMAND (output discarded) until it succeeds, at most
# TIMEOUT_S seconds and a bounded number of times.
t_poll() {
  local timeout=$1 n=0
  shift
  local deadline=$((SECONDS + timeout))
  while [ $n -lt $((timeout * 20 + 20)) ]; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    [ $SECONDS -lt $deadline ] || return 1
    sleep "$T_POLL_INTERVAL"
    n=$((n + 1))
  done
  return 1
}

# t_wait TIMEOUT_S DESCRIPTION COMMAND...: t_poll, and a failure when COMMAND never succeeds;
# COMMAND's last answer is shown then.
t_wait() {
  local timeout=$1 desc=$2
  shift 2
  t_poll "$timeout" "$@" && return 0
  "$@" && return 0
  t_fail "timed out after ${timeout}s waiting for: $desc"
  return 1
}

# t_no_sanitizer_report FILE...: no AddressSanitizer, LeakSanitizer or UBSan report in the files.
t_no_sanitizer_report() {
  local hits
  hits=$(grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$@" 2>/dev/null || true)
  [ -z "$hits" ] || { echo "  sanitizer report in: $hits"; return 1; }
}

# t_time_bound SECONDS: after SECONDS a watcher makes this shell exit (SIGTERM), so that its EXIT
# trap cleans up; t_time_bound_stop ends the watcher. It signals nobody if this shell is gone
# (its PID may have been reused).
t_time_bound() {
  local bound=$1
  (
    sleep "$bound" &
    trap 'kill $! 2>/dev/null; exit 0' TERM
    wait $!
    read -r _ _ _ ppid _ </proc/$BASHPID/stat
    [ "$ppid" = $$ ] || exit 0
    echo "FAIL: $T_NAME: timed out after ${bound}s"
    kill -TERM $$
  ) </dev/null &
  T_TIMER=$!
}
t_time_bound_stop() {
  [ -n "$T_TIMER" ] || return 0
  kill -TERM "$T_TIMER" 2>/dev/null || true
  wait "$T_TIMER" 2>/dev/null || true
  T_TIMER=
}

# The last line of a test: a summary, and exit 1 when anything failed.
t_summary() {
  if [ "$T_FAILED" -ne 0 ]; then
    echo "FAIL: $T_NAME: $T_FAILED failed of $T_N checks${T_FIRST_FAIL:+, first: $T_FIRST_FAIL}"
    exit 1
  fi
  echo "$T_NAME: all $T_N checks passed"
}
