#!/usr/bin/env bash
# The bash completion shipped in the package (conf/raftpg.bash-completion) against the program's
# own help: every command of `raftpg --help` and `raftpg ctl --help`, every ctl option and every
# flag a ctl command's usage line names is offered where it may be typed. A command added to the
# program without its completion fails here.
# Usage: tests/pkg/test_completion.sh RAFTPG_BINARY
set -uo pipefail
BIN=$1
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BC=/usr/share/bash-completion/bash_completion
[ -r "$BC" ] || { echo "FAIL: test_completion: $BC missing (Debian package bash-completion)"; exit 1; }
# shellcheck source=/dev/null
source "$BC"
# shellcheck source=../../conf/raftpg.bash-completion
source "$SRC/conf/raftpg.bash-completion"

failed=0 n=0
# Completions offered for the last word of the given command line.
comp() {
  COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
  _raftpg raftpg "${COMP_WORDS[-1]}" "${COMP_WORDS[-2]}"
  printf '%s\n' "${COMPREPLY[@]}"
}
# check WHAT WORD LINE...: WORD is among the completions of LINE.
check() {
  local what=$1 word=$2; shift 2
  n=$((n + 1))
  local offered
  offered=$(comp "$@")
  if grep -qxF -- "$word" <<<"$offered"; then
    echo "ok $n - $what"
  else
    echo "FAIL: $what: \"$word\" not offered after \"$*\""
    failed=$((failed + 1))
  fi
}

top=$("$BIN" --help 2>&1 | sed -n '/^commands:/,/^$/p' | awk '/^  [a-z]/ {print $1}')
[ -n "$top" ] || { echo "FAIL: test_completion: no commands in raftpg --help"; exit 1; }
for c in $top; do
  # guard is started by the agent itself, never typed.
  [ "$c" = guard ] && continue
  check "raftpg $c" "$c" raftpg ""
done

help=$("$BIN" ctl --help 2>&1)
cmds=$(sed -n '/^commands:/,/^options:/p' <<<"$help" | awk '/^  [a-z]/ {print $1}' | sort -u)
[ -n "$cmds" ] || { echo "FAIL: test_completion: no commands in raftpg ctl --help"; exit 1; }
for c in $cmds; do
  check "ctl $c" "$c" raftpg ctl ""
done
opts=$(sed -n '/^options:/,$p' <<<"$help" | grep -oE -- '--[a-z][a-z-]+' | sort -u)
for o in $opts; do
  check "ctl option $o" "$o" raftpg ctl -
done
# Each command's usage line: the flags it names, offered after the command (member: after its
# subcommand).
while read -r c rest; do
  [ -n "$c" ] || continue
  line="$c $rest"
  words=(raftpg ctl "$c")
  if [ "$c" = member ]; then
    read -r sub _ <<<"$rest"
    words+=("$sub")
  fi
  for f in $(grep -oE -- '(^| |\[)--?[a-zA-Z][a-z-]*' <<<"$line" | tr -d '[ '); do
    check "ctl $c${sub:+ $sub}: $f" "$f" "${words[@]}" -
  done
  sub=
done < <(sed -n '/^commands:/,/^options:/p' <<<"$help" | grep -E '^  [a-z]')
check "ctl list --format values" tsv raftpg ctl list --format ""
check "ctl restart --role values" replica raftpg ctl restart --role ""
check "ctl --cacert takes a file" "$SRC/tests/pkg/test_completion.sh" raftpg ctl --cacert "$SRC/tests/pkg/test_compl"

if [ "$failed" -ne 0 ]; then
  echo "test_completion: $failed of $n checks failed"
  exit 1
fi
echo "test_completion: all $n checks passed"
