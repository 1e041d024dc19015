#!/usr/bin/env bash
# Formats raftpg's C sources and headers (src/ raft/ include/ tests/) with .clang-format.
# Usage: scripts/format.sh            format every file in place
#        scripts/format.sh FILE...    format these files in place
#        scripts/format.sh --check    change nothing; list the files that differ and exit 1 if any
#                                     (scripts/test.sh runs this first)
#        scripts/format.sh --braces   put braces around every unbraced if/else/for/while/do body
#                                     (clang-tidy readability-braces-around-statements, which needs
#                                     build/compile_commands.json: run scripts/build.sh first),
#                                     then format; clang-format cannot add braces itself
# The output depends on clang-format's version: CI uses Debian 12's clang-format 14, so this
# script refuses any other major version (CLANG_FORMAT=path chooses the binary).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=format
case "${1:-}" in
--check) mode=check; shift ;;
--braces) mode=braces; shift ;;
-h | --help) sed -n '2,12s/^# \{0,1\}//p' "$0"; exit 0 ;;
esac

cf=${CLANG_FORMAT:-}
if [ -z "$cf" ]; then
  cf=clang-format
  command -v clang-format-14 >/dev/null && cf=clang-format-14
fi
if ! command -v "$cf" >/dev/null; then
  echo "format: $cf not found: install Debian's clang-format package (scripts/install-deps.sh)" >&2
  exit 2
fi
version=$("$cf" --version | head -n 1)
if ! [[ $version =~ version\ 14\. ]]; then
  echo "format: $cf is not clang-format 14 ($version); other versions format differently" >&2
  exit 2
fi

if [ $# -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(find src raft include tests -type f \( -name '*.c' -o -name '*.h' \) | sort)
fi

if [ "$mode" = check ]; then
  bad=()
  for f in "${files[@]}"; do
    "$cf" --style=file --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
  done
  if [ ${#bad[@]} -eq 0 ]; then
    echo "format: ${#files[@]} files match .clang-format"
    exit 0
  fi
  echo "format: ${#bad[@]} of ${#files[@]} files do not match .clang-format ($cf):"
  printf '  %s\n' "${bad[@]}"
  echo "format: the first differences:"
  for f in "${bad[@]}"; do
    "$cf" --style=file "$f" | diff -u --label "$f" --label "$f (formatted)" "$f" - || true
  done | head -n 60
  echo "format: fix with scripts/format.sh (formats in place; review with git diff)"
  exit 1
fi

if [ "$mode" = braces ]; then
  if [ ! -f build/compile_commands.json ]; then
    echo "format: build/compile_commands.json is missing: run scripts/build.sh first" >&2
    exit 2
  fi
  command -v clang-tidy >/dev/null ||
    { echo "format: clang-tidy not found: install Debian's clang-tidy package" >&2; exit 2; }
  # Headers have no unbraced bodies today; clang-tidy fixes each .c file (its headers are left).
  for f in "${files[@]}"; do
    case "$f" in *.c) ;; *) continue ;; esac
    clang-tidy -p build --quiet --checks='-*,readability-braces-around-statements' --fix \
      "$f" > /dev/null 2> >(grep -v 'warnings* generated\.$' >&2)
  done
fi

"$cf" --style=file -i "${files[@]}"
