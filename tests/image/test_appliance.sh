#!/usr/bin/env bash
# The appliance, three nodes (root only; a documented command, not in CTest: the image build takes
# about 4 minutes). Boots three instances of the image built by scripts/build-image.sh as
# containers (systemd-nspawn --boot, each on an overlay of the same root file system) on a
# private bridge in 10.231.9.0/24, each with its own seed, and checks: the first boot turns the
# seeds into configurations, one primary and two streaming standbys in the synchronous set, the
# VIP on the primary alone (ARP from the host resolves to the primary's MAC), a write through
# the VIP; then the primary's whole node killed (SIGKILL of the container's init): a new primary,
# the VIP moved to it, no acknowledged row lost, writes through the VIP again; the killed node
# booted again rejoins as a streaming standby.
# QEMU/KVM instead of containers: this machine's /dev/kvm runs no guest (a KVM guest prints
# nothing and makes no progress; TCG works but is far too slow for the lease), see the README.
#
# Usage: tests/image/test_appliance.sh RAFTPG_BINARY [IMAGE_DIR]
#   IMAGE_DIR: the output of scripts/build-image.sh (built into a temporary directory if absent)
IMG=${2:-}
# shellcheck source=../integration/lib.sh
source "$(dirname "$0")/../integration/lib.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "FAIL: test_appliance needs root"; exit 1; }
t0=$SECONDS
if [ -z "$IMG" ]; then
  IMG="$T_DIR/image"
  "$SRC/scripts/build-image.sh" "$IMG" >"$T_DIR/build-image.log" 2>&1 ||
    { tail -n 30 "$T_DIR/build-image.log"; t_fail "scripts/build-image.sh failed"; t_done; }
  t_log "image built in $((SECONDS - t0)) s: $(tail -n 2 "$T_DIR/build-image.log" | head -n 1)"
fi
[ -d "$IMG/rootfs" ] || { t_fail "no root file system in $IMG"; t_done; }

BR=rpgimg0
NET=10.231.9
VIP=$NET.100
SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
SU_PW=su-$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')
declare -A NS=() INIT=()
ip link add "$BR" type bridge
ip addr add "$NET.254/24" dev "$BR"
ip link set "$BR" up

init_of() { ps -o pid= --ppid "$1" 2>/dev/null | head -n1 | tr -d ' ' || true; }
t_before_rm() {
  local i n
  # SIGRTMIN+4 asks the container's systemd to power off; a container that does not within
  # 60 s loses its init (SIGKILL), which ends every process in it.
  for i in 1 2 3; do
    [ -n "${NS[$i]:-}" ] || continue
    [ -n "${INIT[$i]:-}" ] || INIT[$i]=$(init_of "${NS[$i]}")
    [ -z "${INIT[$i]}" ] || kill -s SIGRTMIN+4 "${INIT[$i]}" 2>/dev/null || true
  done
  for i in 1 2 3; do
    [ -n "${NS[$i]:-}" ] || continue
    n=0
    while kill -0 "${NS[$i]}" 2>/dev/null && [ $n -lt 600 ]; do sleep 0.1; n=$((n + 1)); done
    if kill -0 "${NS[$i]}" 2>/dev/null; then
      [ -n "${INIT[$i]}" ] || INIT[$i]=$(init_of "${NS[$i]}")
      [ -z "${INIT[$i]}" ] || kill -KILL "${INIT[$i]}" 2>/dev/null || true
      kill -KILL "${NS[$i]}" 2>/dev/null || true
    fi
    wait "${NS[$i]}" 2>/dev/null || true
  done
  for i in 1 2 3; do
    mountpoint -q "$T_DIR/n$i/merged" && { umount "$T_DIR/n$i/merged" || umount -l "$T_DIR/n$i/merged"; }
  done
  ip link del "$BR" 2>/dev/null || true
}

boot() { # I: boots node I on its overlay
  local i=$1
  systemd-nspawn -D "$T_DIR/n$i/merged" --boot --register=no --keep-unit --network-bridge="$BR" \
    --machine="rpg$$-node$i" -q >>"$T_DIR/console$i.log" 2>&1 &
  NS[$i]=$!
  INIT[$i]=""
  local n=0
  while [ $n -lt 100 ]; do
    INIT[$i]=$(init_of "${NS[$i]}")
    [ -z "${INIT[$i]}" ] || return 0
    sleep 0.1; n=$((n + 1))
  done
  t_fail "node$i did not start"
}
for i in 1 2 3; do
  mkdir -p "$T_DIR/n$i/upper" "$T_DIR/n$i/work" "$T_DIR/n$i/merged"
  mount -t overlay overlay -o "lowerdir=$IMG/rootfs,upperdir=$T_DIR/n$i/upper,workdir=$T_DIR/n$i/work" "$T_DIR/n$i/merged"
  install -d -m 0755 "$T_DIR/n$i/merged/etc/raftpg"
  (umask 077; cat >"$T_DIR/n$i/merged/etc/raftpg/seed" <<EOF
NAME=node$i
ADDRESS=$NET.1$i/24
MEMBERS=node1:$NET.11,node2:$NET.12,node3:$NET.13
SECRET=$SECRET
VIP=$VIP/24
SUPERUSER_PASSWORD=$SU_PW
REPLICATION_PASSWORD=repl-$SU_PW
EOF
  )
done
t1=$SECONDS
for i in 1 2 3; do boot "$i"; done

api() { echo "$NET.1$1:8008"; }
cluster() { "$T_BIN" ctl --api "$(api "$1")" --timeout 1000 list --json 2>/dev/null || true; }
primary_of() { cluster "$1" | jq -r '[.members[] | select(.role == "leader" and .pg_role == "primary" and .state == "running")] | if length == 1 then .[0].name else empty end' 2>/dev/null; }
healthy() { # I...: the members listed agree on one primary, every other listed one streams in the set
  local p q
  p=$(primary_of "$1"); [ -n "$p" ] || return 1
  for i in "$@"; do q=$(primary_of "$i"); [ "$q" = "$p" ] || return 1; done
  [ "$(cluster "$1" | jq -r "[.members[] | select(.state == \"streaming\")] | length")" = $(($# - 1)) ] &&
    [ "$(cluster "$1" | jq -r '.sync.k')" -ge 1 ]
}
t_wait 180 "one primary and two streaming standbys from the seeds" healthy 1 2 3
t_log "cluster up $((SECONDS - t1)) s after the first boot"
first_conf() { [ -f "$T_DIR/n$1/merged/etc/raftpg/raftpg.yaml" ] && [ ! -e "$T_DIR/n$1/merged/etc/raftpg/seed" ]; }
for i in 1 2 3; do
  t_check "node$i's first boot wrote its configuration and removed the seed" first_conf "$i"
done
old=$(primary_of 1)
oi=${old#node}
t_log "primary: $old"

has_vip() { nsenter -t "${INIT[$1]}" -n ip -4 -o addr show 2>/dev/null | grep -q " $VIP/"; }
vip_only_on() {
  local i
  for i in 1 2 3; do
    [ -n "${INIT[$i]:-}" ] && kill -0 "${INIT[$i]}" 2>/dev/null || continue
    if [ "$i" = "$1" ]; then has_vip "$i" || return 1; else ! has_vip "$i" || return 1; fi
  done
}
t_wait 30 "the VIP on $old only" vip_only_on "$oi"
mac_of() { nsenter -t "${INIT[$1]}" -n ip -o link show host0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'; }
arp_is() { ip neigh flush dev "$BR" to "$VIP" 2>/dev/null; ping -c1 -W1 "$VIP" >/dev/null 2>&1 || return 1
           [ "$(ip neigh show "$VIP" dev "$BR" | awk '{print $3}')" = "$(mac_of "$1")" ]; }
t_wait 20 "ARP for the VIP answered by $old" arp_is "$oi"

export PGPASSWORD=$SU_PW PGCONNECT_TIMEOUT=2
vsql() { psql -X -q -A -t -h "$VIP" -U postgres -d postgres -c "$1" 2>/dev/null; }
t_check "a table through the VIP" t_eq "$(vsql 'create table drill (id int primary key); select 1')" 1
acked=0
for id in $(seq 1 50); do
  if vsql "insert into drill values ($id)" >/dev/null; then acked=$id; fi
done
t_check "50 rows acknowledged through the VIP" t_eq "$acked" 50

# The primary's whole node dies: SIGKILL of its init ends every process in it, agent and guard
# included; its veth goes with it.
t2=$SECONDS
kill -KILL "${INIT[$oi]}"
wait "${NS[$oi]}" 2>/dev/null || true
unset "NS[$oi]"
INIT[$oi]=""
others=()
for i in 1 2 3; do [ "$i" = "$oi" ] || others+=("$i"); done
new_primary() { local p; p=$(primary_of "${others[0]}"); [ -n "$p" ] && [ "$p" != "$old" ] && [ "$(primary_of "${others[1]}")" = "$p" ]; }
t_wait 60 "a new primary after the node loss" new_primary
new=$(primary_of "${others[0]}")
ni=${new#node}
t_log "new primary $new $((SECONDS - t2)) s after the kill"
t_wait 30 "the VIP on $new only" vip_only_on "$ni"
t_wait 20 "ARP for the VIP answered by $new" arp_is "$ni"
writes_again() { vsql "insert into drill select greatest(max(id), 1000) + 1 from drill" >/dev/null 2>&1 && [ "$(vsql 'select pg_is_in_recovery()')" = f ]; }
t_wait 60 "a write through the VIP on the new primary" writes_again
t_log "writes through the VIP $((SECONDS - t2)) s after the kill"
t_check "no acknowledged row lost" t_eq "$(vsql 'select count(*) from drill where id <= 50')" 50

# The old node boots again and rejoins.
t3=$SECONDS
boot "$oi"
t_wait 180 "$old back as a streaming standby" healthy 1 2 3
t_check "$new is still the primary" t_eq "$(primary_of 1)" "$new"
t_check "the VIP stayed on $new" vip_only_on "$ni"
t_log "$old rejoined $((SECONDS - t3)) s after its boot; whole test $((SECONDS - t0)) s"
t_done
