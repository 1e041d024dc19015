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

# shellcheck source=../assert.sh
source "$SRC/tests/assert.sh"
# Completions offered for the last word of the given command line.
comp() {
  COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
  _raftpg raftpg "${COMP_WORDS[-1]}" "${COMP_WORDS[-2]}"
  printf '%s\n' "${COMPREPLY[@]}"
}
# offered WORD LINE...: WORD is among the completions of LINE.
offered() {
  local word=$1
  shift
  grep -qxF -- "$word" <<<"$(comp "$@")" || { echo "  \"$word\" not offered after \"$*\""; return 1; }
}

top=$("$BIN" --help 2>&1 | sed -n '/^commands:/,/^$/p' | awk '/^  [a-z]/ {print $1}')
[ -n "$top" ] || { echo "FAIL: test_completion: no commands in raftpg --help"; exit 1; }
for c in $top; do
  # guard is started by the agent itself, never typed.
  [ "$c" = guard ] && continue
  t_check "raftpg $c" offered "$c" raftpg ""
done

help=$("$BIN" ctl --help 2>&1)
cmds=$(sed -n '/^commands:/,/^options:/p' <<<"$help" | awk '/^  [a-z]/ {print $1}' | sort -u)
[ -n "$cmds" ] || { echo "FAIL: test_completion: no commands in raftpg ctl --help"; exit 1; }
for c in $cmds; do
  t_check "ctl $c" offered "$c" raftpg ctl ""
done
opts=$(sed -n '/^options:/,$p' <<<"$help" | grep -oE -- '--[a-z][a-z-]+' | sort -u)
for o in $opts; do
  t_check "ctl option $o" offered "$o" raftpg ctl -
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
    t_check "ctl $c${sub:+ $sub}: $f" offered "$f" "${words[@]}" -
  done
  sub=
done < <(sed -n '/^commands:/,/^options:/p' <<<"$help" | grep -E '^  [a-z]')
t_check "ctl list --format values" offered tsv raftpg ctl list --format ""
t_check "ctl restart --role values" offered replica raftpg ctl restart --role ""
t_check "ctl --cacert takes a file" offered "$SRC/tests/pkg/test_completion.sh" raftpg ctl --cacert "$SRC/tests/pkg/test_compl"

t_summary
