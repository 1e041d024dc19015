#!/usr/bin/env bash
# Installs every Debian 12 package raftpg needs to build, test and run a local cluster.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config clang clang-format
  libuv1-dev libraft-dev libpq-dev libyaml-dev libjansson-dev libcmocka-dev
  libmicrohttpd-dev libgnutls28-dev libcurl4-openssl-dev libsystemd-dev libsodium-dev
  postgresql-15 postgresql-client-15
  iproute2 arping jq procps util-linux curl
  nftables iputils-ping python3 python3-prometheus-client python3-yaml haproxy pgbouncer
  systemd systemd-container debhelper dpkg-dev fakeroot lintian mmdebstrap fdisk bash-completion
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  SUDO="sudo"
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
