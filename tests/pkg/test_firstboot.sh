#!/usr/bin/env bash
# The appliance's fast checks: image/raftpg-firstboot turns three seeds (10.231.9.x) into three
# configurations that raftpg check-config accepts and that agree with each other, plus the
# network file; bad seeds are refused naming the key; systemd-analyze verify accepts
# raftpg-firstboot.service. (The image build and the three-node boot are
# tests/image/test_appliance.sh, a documented command.)
# Usage: test_firstboot.sh RAFTPG_BINARY
# shellcheck source=../integration/lib.sh
source "$(dirname "$0")/../integration/lib.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
FB="$SRC/image/raftpg-firstboot"
secret=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')

seed() { # I [extra lines]: node I's seed
  local i=$1
  shift
  printf '%s\n' "# node $i" "NAME=node$i" "ADDRESS=10.231.9.1$i/24" \
    "MEMBERS=node1:10.231.9.11,node2:10.231.9.12,node3:10.231.9.13" "SECRET=$secret" \
    "VIP=10.231.9.100/24" "SUPERUSER_PASSWORD=su-password-1" "REPLICATION_PASSWORD=repl-password-1" "$@"
}
for i in 1 2 3; do
  mkdir -p "$T_DIR/r$i"
  seed "$i" >"$T_DIR/seed$i"
  out=$(RAFTPG_ROOT="$T_DIR/r$i" RAFTPG_SEED="$T_DIR/seed$i" "$FB" 2>&1) || true
  t_check "node$i's seed is accepted" t_contains "$out" "node$i (10.231.9.1$i on eth0) configured for cluster appliance"
  conf="$T_DIR/r$i/etc/raftpg/raftpg.yaml"
  t_check "node$i's configuration and secret are mode 0600" \
    t_eq "$(stat -c %a "$conf" "$T_DIR/r$i/etc/raftpg/raft.secret" 2>/dev/null | tr '\n' ' ')" "600 600 "
  t_check "node$i's secret is the seed's" t_eq "$(cat "$T_DIR/r$i/etc/raftpg/raft.secret")" "$secret"
  # The configuration names /etc/raftpg/raft.secret, as on the node; checked against the copy here.
  sed "s|/etc/raftpg/raft.secret|$T_DIR/r$i/etc/raftpg/raft.secret|" "$conf" >"$T_DIR/check$i.yaml"
  c=$("$T_BIN" check-config "$T_DIR/check$i.yaml" 2>&1) || true
  t_check "node$i's configuration passes raftpg check-config" t_contains "$c" "$T_DIR/check$i.yaml: ok"
  t_check "node$i is an initial member with its address" t_contains "$c" "raft: listen=10.231.9.1$i:7000"
  t_check "node$i holds the VIP on eth0" t_contains "$c" "vip: address=10.231.9.100/24 interface=eth0"
  t_check "node$i's network file has its address" \
    grep -qx "Address=10.231.9.1$i/24" "$T_DIR/r$i/etc/systemd/network/10-raftpg.network"
  t_check "node$i's hostname" t_eq "$(cat "$T_DIR/r$i/etc/hostname")" "node$i"
  t_check "node$i lets the /24 connect" grep -q "host all all 10.231.9.0/24 scram-sha-256" "$conf"
done
members() { grep '^    - {name:' "$1"; }
t_check "the three member lists are identical" \
  test "$(members "$T_DIR/r1/etc/raftpg/raftpg.yaml")" = "$(members "$T_DIR/r3/etc/raftpg/raftpg.yaml")" \
  -a "$(members "$T_DIR/r2/etc/raftpg/raftpg.yaml")" = "$(members "$T_DIR/r3/etc/raftpg/raftpg.yaml")"

refused() { # MESSAGE SEED-LINES...: the seed is refused with MESSAGE, nothing written
  local msg=$1 rc=0 o d
  shift
  d=$(mktemp -d "$T_DIR/bad.XXXX")
  printf '%s\n' "$@" >"$d/seed"
  o=$(RAFTPG_ROOT="$d" RAFTPG_SEED="$d/seed" "$FB" 2>&1) || rc=$?
  [ $rc -eq 1 ] || { echo "  exit $rc: $o"; return 1; }
  [ ! -e "$d/etc/raftpg/raftpg.yaml" ] || { echo "  a configuration was written"; return 1; }
  t_contains "$o" "$msg"
}
good=("NAME=node1" "ADDRESS=10.231.9.11/24" "MEMBERS=node1:10.231.9.11,node2:10.231.9.12,node3:10.231.9.13"
      "SECRET=$secret" "SUPERUSER_PASSWORD=su-password-1" "REPLICATION_PASSWORD=repl-password-1")
t_check "a missing SECRET is named" refused "SECRET is missing" "${good[@]:0:3}" "${good[@]:4}"
t_check "a short SECRET is refused" refused "SECRET must be 64 lowercase hex digits" "${good[@]:0:3}" "SECRET=abc" "${good[@]:4}"
t_check "an unknown key is named with its line" refused "seed:7: unknown key COLOUR" "${good[@]}" "COLOUR=blue"
t_check "a line that is not KEY=VALUE is named" refused "seed:7: expected KEY=VALUE" "${good[@]}" "hello"
t_check "NAME outside MEMBERS is refused" refused "NAME node9 is not in MEMBERS" "NAME=node9" "${good[@]:1}"
t_check "ADDRESS and MEMBERS must agree" refused "MEMBERS gives node1 the address 10.231.9.11, ADDRESS says 10.231.9.99" \
  "NAME=node1" "ADDRESS=10.231.9.99/24" "${good[@]:2}"
t_check "two members are refused" refused "MEMBERS lists 2 members" "${good[@]:0:2}" \
  "MEMBERS=node1:10.231.9.11,node2:10.231.9.12" "${good[@]:3}"
t_check "a bad VIP is named" refused 'VIP "10.231.9.300/24" is not ADDR/PREFIX' "${good[@]}" "VIP=10.231.9.300/24"
t_check "an ELECTION_TIMEOUT out of range is named" refused 'ELECTION_TIMEOUT "20" is not 50..60000 (ms)' "${good[@]}" "ELECTION_TIMEOUT=20"
# A slow platform's seed: the election timeout reaches the configuration and check-config's summary.
mkdir -p "$T_DIR/et"
seed 1 ELECTION_TIMEOUT=4000 >"$T_DIR/et/seed"
RAFTPG_ROOT="$T_DIR/et" RAFTPG_SEED="$T_DIR/et/seed" "$FB" >/dev/null 2>&1 || true
sed "s|/etc/raftpg/raft.secret|$T_DIR/et/etc/raftpg/raft.secret|" "$T_DIR/et/etc/raftpg/raftpg.yaml" >"$T_DIR/et.yaml" 2>/dev/null || true
t_check "ELECTION_TIMEOUT=4000 becomes raft.election_timeout" grep -qx "  election_timeout: 4000" "$T_DIR/et.yaml"
et_out=$("$T_BIN" check-config "$T_DIR/et.yaml" 2>&1) || true
t_check "that configuration passes raftpg check-config" t_contains "$et_out" "$T_DIR/et.yaml: ok"

# A seed through QEMU's fw_cfg, with a stand-in sysfs directory (RAFTPG_FW_CFG) and stand-ins for
# modprobe and rmmod that load (create it with the seed) and unload (remove it) the driver and log
# their calls: the seed is read once, then the driver is unloaded, a refused seed included, and
# an unload that fails is reported. (The image's real driver: tests/image/test_appliance.sh.)
mkdir -p "$T_DIR/stub"
cat >"$T_DIR/stub/modprobe" <<'STUB'
#!/bin/bash
echo "modprobe $*" >>"$FW_LOG"
case "$*" in
  "--ignore-install qemu_fw_cfg")
    mkdir -p "$FW_DIR/by_name/opt/raftpg/seed" && cp "$FW_SEED" "$FW_DIR/by_name/opt/raftpg/seed/raw" ;;
  "-r --ignore-remove qemu_fw_cfg") [ -n "${FW_STUCK:-}" ] && exit 1; rm -rf "$FW_DIR" ;;
  *) exit 1 ;;
esac
STUB
printf '#!/bin/bash\necho "rmmod $*" >>"$FW_LOG"\nexit 1\n' >"$T_DIR/stub/rmmod"
chmod 0755 "$T_DIR/stub/modprobe" "$T_DIR/stub/rmmod"
fw_run() { # DIR [VAR=VALUE...]: firstboot under DIR with the seed DIR/fw.seed in the stand-in fw_cfg
  local d=$1
  shift
  mkdir -p "$d"
  : >"$d/fw.log"
  env PATH="$T_DIR/stub:$PATH" FW_LOG="$d/fw.log" FW_DIR="$d/fw_cfg" FW_SEED="$d/fw.seed" "$@" \
    RAFTPG_ROOT="$d" RAFTPG_FW_CFG="$d/fw_cfg" "$FB" 2>&1
}
mkdir -p "$T_DIR/fw"
seed 2 >"$T_DIR/fw/fw.seed"
fw_out=$(fw_run "$T_DIR/fw") || true
t_check "a seed from fw_cfg is accepted" t_contains "$fw_out" "node2 (10.231.9.12 on eth0) configured for cluster appliance"
t_check "the fw_cfg seed's secret is the node's" t_eq "$(cat "$T_DIR/fw/etc/raftpg/raft.secret" 2>/dev/null)" "$secret"
t_check "fw_cfg's driver is loaded past its block, then unloaded" t_eq "$(cat "$T_DIR/fw/fw.log")" \
  "modprobe --ignore-install qemu_fw_cfg"$'\n'"modprobe -r --ignore-remove qemu_fw_cfg"
t_check "no fw_cfg directory is left after the first boot" test ! -e "$T_DIR/fw/fw_cfg"
mkdir -p "$T_DIR/fwbad"
seed 2 "COLOUR=blue" >"$T_DIR/fwbad/fw.seed"
fw_out=$(fw_run "$T_DIR/fwbad") || true
t_check "a refused fw_cfg seed is named" t_contains "$fw_out" "unknown key COLOUR"
t_check "a refused fw_cfg seed is unloaded too" test ! -e "$T_DIR/fwbad/fw_cfg" -a ! -e "$T_DIR/fwbad/etc/raftpg/raftpg.yaml"
mkdir -p "$T_DIR/fwstuck"
seed 2 >"$T_DIR/fwstuck/fw.seed"
fw_out=$(fw_run "$T_DIR/fwstuck" FW_STUCK=1) || true
t_check "an unload that fails is reported" \
  t_contains "$fw_out" "warning: qemu_fw_cfg could not be unloaded: the seed stays readable under $T_DIR/fwstuck/fw_cfg"
mkdir -p "$T_DIR/fwnone"
fw_out=$(fw_run "$T_DIR/fwnone") && fw_rc=0 || fw_rc=$?
t_check "no seed anywhere is refused" t_contains "$fw_rc $fw_out" "1 raftpg-firstboot: no seed: neither /etc/raftpg/seed nor QEMU fw_cfg"

unit="$T_DIR/raftpg-firstboot.service"
sed "s|^ExecStart=.*|ExecStart=$FB|" "$SRC/image/raftpg-firstboot.service" >"$unit"
verify() { local o; o=$(systemd-analyze verify --man=no "$unit" 2>&1) && [ -z "$o" ] || { echo "$o"; return 1; }; }
t_check "systemd-analyze verify accepts raftpg-firstboot.service" verify
t_done
