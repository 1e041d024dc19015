#!/usr/bin/env bash
# Builds the Debian package from this tree with the standard tools (dpkg-buildpackage -us -uc -b,
# debhelper and the CMake build) in a copy of the tree, then runs lintian on it. The .deb and
# the build log land in OUTDIR (default build-deb/); prints the .deb's path last.
# Usage: scripts/build-deb.sh [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
out=$(mkdir -p "${1:-build-deb}" && cd "${1:-build-deb}" && pwd)
for tool in dpkg-buildpackage dh lintian fakeroot; do
  command -v "$tool" >/dev/null ||
    { echo "build-deb: $tool is missing: apt-get install dpkg-dev debhelper lintian fakeroot" >&2; exit 1; }
done
work=$(mktemp -d /tmp/raftpg-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
# The files git knows (tracked or not ignored): no build directory comes along.
mkdir "$work/raftpg"
git ls-files -z -co --exclude-standard | xargs -0 cp --parents -t "$work/raftpg"
version=$(cd "$work/raftpg" && dpkg-parsechangelog -S Version)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
if ! (cd "$work/raftpg" && dpkg-buildpackage -us -uc -b) >"$out/build.log" 2>&1; then
  tail -n 40 "$out/build.log" >&2
  echo "build-deb: dpkg-buildpackage failed (log: $out/build.log)" >&2
  exit 1
fi
deb="raftpg_${version}_${arch}.deb"
cp "$work/$deb" "$out/"
# Every tag counts, info and pedantic included; overrides carry their reasons (debian/*.lintian-overrides).
if ! lintian --fail-on error,warning,info,pedantic --display-info --pedantic "$out/$deb" >"$out/lintian.log" 2>&1; then
  cat "$out/lintian.log" >&2
  echo "build-deb: lintian is not clean (log: $out/lintian.log)" >&2
  exit 1
fi
cat "$out/lintian.log" >&2
echo "$out/$deb"
