#!/usr/bin/env bash
# The appliance, three nodes (root only; a documented command, not in CTest: the image build takes
# about 3 minutes). Boots three instances of the image built by scripts/build-image.sh on a
# private bridge in 10.231.9.0/24, each with its own seed, and checks under numbered writes
# through the VIP (one INSERT per connection, an id counted as acknowledged only when its commit
# returned): the first boot turns the seeds into configurations (under QEMU the guests then show
# no fw_cfg, where the seed was, nor does the killed node on its second boot), one primary and
# two streaming standbys in the synchronous set, the VIP on the primary alone (ARP from the host
# is answered by the primary's MAC only); then the primary's whole node killed: a new primary,
# the VIP moved to it, writes through the VIP again, no acknowledged row lost; the killed node
# booted again rejoins as a streaming standby.
#
# Nodes run as
#   --kvm     QEMU/KVM virtual machines (qemu-system-x86_64 -accel kvm, one qcow2 overlay each on
#             the image's raftpg.img, booted by SeaBIOS and the disk's GRUB, the seed through
#             fw_cfg, a tap each on the bridge); the node kill is kill -9 of its QEMU process.
#             Adds the frozen VM: the primary's VM stopped
#             through the QEMU monitor (`stop`) for FREEZE_S seconds (default 5, or twice the
#             election timeout if longer: the lease is 0.8 of it) and resumed
#             (`cont`), under the VIP writer, direct writes to every node, ARP probes of the VIP
#             and polls of the old primary's agent; it logs (FROZEN: lines) whether the guest's
#             CLOCK_BOOTTIME (/proc/uptime, read through PostgreSQL) and wall clock counted the
#             pause, when a new primary was elected, how long after `cont` the old primary still
#             answered ARP for the VIP, reported the lease, or acknowledged writes, and checks
#             that no acknowledged row was lost and that the old primary rejoins.
#   --tcg     the same virtual machines under QEMU's emulator (no KVM): slow, for checking the
#             QEMU path where KVM cannot run the image (the frozen-VM figures are then TCG's);
#             the seeds set ELECTION_TIMEOUT=8000 (emulated guests stall for longer than the
#             default lease allows: with 4000 the primary still lost its lease under writes). ELECTION_TIMEOUT=MS in the environment sets it in any mode.
#   --nspawn  containers (systemd-nspawn --boot, an overlay each over the image's root file
#             system); the node kill is SIGKILL of the container's init. No frozen VM.
#   (no flag) --kvm when KVM can run the image's kernel (a probe boot must reach the kernel's
#             init within 30 s); otherwise a "SKIP: QEMU/KVM ..." line says why, and --nspawn.
#             With --kvm and no usable KVM the test prints that line and exits 77.
# On the development machine /dev/kvm is PVM (kvm_pvm, nested virtualization without VT-x), which
# runs only PVM-enabled guest kernels at speed: Debian's kernel is emulated instruction by
# instruction there and its decompressor did not finish within 200 s, so the probe fails.
#
# Usage: tests/image/test_appliance.sh [--kvm|--tcg|--nspawn] RAFTPG_BINARY [IMAGE_DIR]
#   IMAGE_DIR: the output of scripts/build-image.sh (built into a temporary directory if absent)
MODE=auto
case "${1:-}" in
  --kvm) MODE=kvm; shift ;;
  --tcg) MODE=tcg; shift ;;
  --nspawn) MODE=nspawn; shift ;;
  --*) echo "usage: $0 [--kvm|--tcg|--nspawn] RAFTPG_BINARY [IMAGE_DIR]" >&2; exit 2 ;;
esac
IMG=${2:-}
# The seeds' ELECTION_TIMEOUT (ms): the default 500 everywhere but under TCG, where the emulated
# guests stall for longer than the lease allows; the frozen VM's pause outlasts the lease.
ET=${ELECTION_TIMEOUT:-}
# shellcheck source=../integration/lib.sh
source "$(dirname "$0")/../integration/lib.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "FAIL: test_appliance needs root"; exit 1; }
t0=$SECONDS
if [ -z "$IMG" ]; then
  IMG="$T_DIR/image"
  nice -n 10 "$SRC/scripts/build-image.sh" "$IMG" >"$T_DIR/build-image.log" 2>&1 ||
    { tail -n 30 "$T_DIR/build-image.log"; t_fail "scripts/build-image.sh failed"; t_done; }
  t_log "image built in $((SECONDS - t0)) s: $(tail -n 2 "$T_DIR/build-image.log" | head -n 1)"
fi
IMG=$(cd "$IMG" && pwd)

# Whether KVM runs the image's kernel: a probe boot with init replaced by /bin/true must print
# the kernel's "Run /bin/true as init process" within 30 s (a second or two under hardware
# virtualization). Prints why not.
kvm_usable() {
  [ -c /dev/kvm ] || { echo "/dev/kvm is missing"; return 1; }
  command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86_64 is missing (apt-get install qemu-system-x86)"; return 1; }
  local log="$T_DIR/kvm-probe.log" n=0 pid
  qemu-system-x86_64 -accel kvm -cpu host -m 256 -nodefaults -display none -no-reboot \
    -serial "file:$log" -kernel "$IMG/vmlinuz" -initrd "$IMG/initrd.img" \
    -append "console=ttyS0 rdinit=/bin/true panic=-1" >"$T_DIR/kvm-probe.err" 2>&1 &
  pid=$!
  while [ $n -lt 300 ] && kill -0 "$pid" 2>/dev/null && ! grep -q "as init process" "$log" 2>/dev/null; do
    sleep 0.1; n=$((n + 1))
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  grep -q "as init process" "$log" 2>/dev/null && return 0
  if grep -q . "$T_DIR/kvm-probe.err"; then
    echo "QEMU failed: $(head -c 300 "$T_DIR/kvm-probe.err" | tr '\n' ' ')"
  elif [ -d /sys/module/kvm_pvm ]; then
    echo "/dev/kvm is PVM (kvm_pvm): it runs only PVM-enabled guest kernels at speed, and the image's kernel did not reach its init within 30 s"
  else
    echo "the image's kernel did not reach its init within 30 s under KVM"
  fi
  return 1
}
if [ "$MODE" = auto ] || [ "$MODE" = kvm ]; then
  if why=$(kvm_usable); then
    MODE=kvm
  elif [ "$MODE" = kvm ]; then
    echo "SKIP: QEMU/KVM: $why"; exit 77
  else
    echo "SKIP: QEMU/KVM: $why; the frozen-VM case is not run; the nodes run as systemd-nspawn containers"
    MODE=nspawn
  fi
fi
[ -n "$ET" ] || { [ "$MODE" != tcg ] || ET=8000; }
FREEZE_S=${FREEZE_S:-$(( ${ET:-500} * 2 / 1000 > 5 ? ${ET:-500} * 2 / 1000 : 5 ))}
# Waits are SLOW times longer under TCG, where a guest boots in about 3 minutes and a base
# backup takes minutes.
# Writers pause PACE s between connections and give each SLOW times their bound (each costs the
# guest a SCRAM authentication, heavy when emulated).
SLOW=1 PACE=0.05
[ "$MODE" != tcg ] || SLOW=4 PACE=0.5
t_log "mode: $MODE${ET:+, election timeout $ET ms}"
if [ "$MODE" = nspawn ]; then
  [ -d "$IMG/rootfs" ] || { t_fail "no root file system in $IMG"; t_done; }
else
  for f in raftpg.img vmlinuz initrd.img; do
    [ -f "$IMG/$f" ] || { t_fail "no $f in $IMG"; t_done; }
  done
  t_pick_ports # the QEMU monitors listen on 127.0.0.1:T_BASE+I
fi

BR=rpgimg0
NET=10.231.9
VIP=$NET.100
SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
SU_PW=su-$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')
declare -A NS=() INIT=() QPID=()
ip link add "$BR" type bridge
ip addr add "$NET.254/24" dev "$BR"
ip link set "$BR" up
if [ "$MODE" != nspawn ]; then
  for i in 1 2 3; do
    ip tuntap add dev "${BR}t$i" mode tap
    ip link set "${BR}t$i" master "$BR" up
  done
fi

# init_of NSPAWN_PID: the container's init, the child of systemd-nspawn in a PID namespace of its
# own. Not just any child: for a moment after its start, systemd-nspawn has another child in our
# namespace (it sets up the container's mounts and exits), and a PID taken from it names a
# process that is gone, or later another one.
SELF_PIDNS=$(readlink /proc/self/ns/pid)
init_of() {
  local c ns kids=()
  read -r -a kids 2>/dev/null <"/proc/$1/task/$1/children" || true
  for c in "${kids[@]}"; do
    ns=$(readlink "/proc/$c/ns/pid" 2>/dev/null) || continue
    [ "$ns" = "$SELF_PIDNS" ] || { echo "$c"; return 0; }
  done
}
BG=()
stop_bg() { local p; for p in "${BG[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; BG=(); }
t_before_rm() {
  local i n
  stop_bg
  if [ "$MODE" = nspawn ]; then
    # The overlays are thrown away: no clean shutdown needed. SIGKILL of a container's init ends
    # every process in its PID namespace at once, and systemd-nspawn then exits; its init is
    # looked up again (the PID must still be its child in another namespace). All containers
    # share one bounded wait.
    for i in 1 2 3; do
      [ -n "${NS[$i]:-}" ] || continue
      INIT[$i]=$(init_of "${NS[$i]}")
      [ -z "${INIT[$i]}" ] || kill -KILL "${INIT[$i]}" 2>/dev/null || true
    done
    n=0
    for i in 1 2 3; do
      [ -n "${NS[$i]:-}" ] || continue
      while kill -0 "${NS[$i]}" 2>/dev/null && [ $n -lt 200 ]; do sleep 0.1; n=$((n + 1)); done
      if kill -0 "${NS[$i]}" 2>/dev/null; then
        t_log "node$i's systemd-nspawn (PID ${NS[$i]}) still runs 20 s after its init's SIGKILL: killed"
        kill -KILL "${NS[$i]}" 2>/dev/null || true
      fi
      wait "${NS[$i]}" 2>/dev/null || true
    done
    for i in 1 2 3; do
      mountpoint -q "$T_DIR/n$i/merged" && { umount "$T_DIR/n$i/merged" || umount -l "$T_DIR/n$i/merged"; }
    done
  else
    # The disks are throw-away overlays: no clean shutdown needed.
    for i in 1 2 3; do [ -z "${QPID[$i]:-}" ] || kill -KILL "${QPID[$i]}" 2>/dev/null || true; done
    for i in 1 2 3; do [ -z "${QPID[$i]:-}" ] || wait "${QPID[$i]}" 2>/dev/null || true; done
    for i in 1 2 3; do ip link del "${BR}t$i" 2>/dev/null || true; done
  fi
  ip link del "$BR" 2>/dev/null || true
}

seed() { # I: node I's seed
  cat <<EOF
NAME=node$1
ADDRESS=$NET.1$1/24
MEMBERS=node1:$NET.11,node2:$NET.12,node3:$NET.13
SECRET=$SECRET
VIP=$VIP/24
SUPERUSER_PASSWORD=$SU_PW
REPLICATION_PASSWORD=repl-$SU_PW
EOF
  [ -z "$ET" ] || echo "ELECTION_TIMEOUT=$ET"
}

boot_nspawn() { # I: boots node I on its overlay
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
mac_of() { # I: the MAC of node I's interface on the bridge
  if [ "$MODE" = nspawn ]; then
    nsenter -t "${INIT[$1]}" -n ip -o link show host0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'
  else
    echo "52:54:00:09:00:1$1"
  fi
}
boot_vm() { # I: boots node I's VM from its overlay disk (BIOS, GRUB), its seed through fw_cfg, its tap
  local i=$1 accel=(-accel kvm -cpu host)
  [ "$MODE" = kvm ] || accel=(-accel tcg)
  # cache=unsafe: a killed QEMU loses nothing the guest wrote (it is in the host's page cache);
  # only a host crash would.
  nice -n 10 qemu-system-x86_64 "${accel[@]}" -name "rpg$$-node$i" -smp 1 -m 1024 \
    -nodefaults -display none -serial "file:$T_DIR/console$i.log" \
    -monitor "tcp:127.0.0.1:$((T_BASE + i)),server=on,wait=off" \
    -drive "file=$T_DIR/n$i.qcow2,format=qcow2,if=virtio,cache=unsafe" \
    -netdev "tap,id=net0,ifname=${BR}t$i,script=no,downscript=no" \
    -device "virtio-net-pci,netdev=net0,mac=$(mac_of "$i")" \
    -fw_cfg "name=opt/raftpg/seed,file=$T_DIR/n$i.seed" >>"$T_DIR/qemu$i.log" 2>&1 &
  QPID[$i]=$!
}
boot() { if [ "$MODE" = nspawn ]; then boot_nspawn "$1"; else boot_vm "$1"; fi; }
node_kill() { # I: the whole node dies at once
  if [ "$MODE" = nspawn ]; then
    # SIGKILL of its init ends every process in it, agent and guard included; its veth goes too.
    kill -KILL "${INIT[$1]}"
    wait "${NS[$1]}" 2>/dev/null || true
    unset "NS[$1]"
    INIT[$1]=""
  else
    kill -KILL "${QPID[$1]}"
    wait "${QPID[$1]}" 2>/dev/null || true
    unset "QPID[$1]"
  fi
}
# mon I COMMAND: a QEMU monitor command for node I's VM, then waits for "info status" to answer;
# prints the VM status line.
mon() {
  local fd line n=0
  exec {fd}<>"/dev/tcp/127.0.0.1/$((T_BASE + $1))" || return 1
  printf '%s\ninfo status\n' "$2" >&"$fd"
  while [ $n -lt 50 ] && IFS= read -r -t 2 -u "$fd" line; do
    n=$((n + 1))
    if [[ $line == *"VM status: "* ]]; then echo "${line//$'\r'/}"; break; fi
  done
  exec {fd}>&-
}

for i in 1 2 3; do
  if [ "$MODE" = nspawn ]; then
    mkdir -p "$T_DIR/n$i/upper" "$T_DIR/n$i/work" "$T_DIR/n$i/merged"
    mount -t overlay overlay -o "lowerdir=$IMG/rootfs,upperdir=$T_DIR/n$i/upper,workdir=$T_DIR/n$i/work" "$T_DIR/n$i/merged"
    install -d -m 0755 "$T_DIR/n$i/merged/etc/raftpg"
    (umask 077; seed "$i" >"$T_DIR/n$i/merged/etc/raftpg/seed")
  else
    qemu-img create -q -f qcow2 -F raw -b "$IMG/raftpg.img" "$T_DIR/n$i.qcow2"
    (umask 077; seed "$i" >"$T_DIR/n$i.seed")
  fi
done
t1=$SECONDS
for i in 1 2 3; do boot "$i"; done

api() { echo "$NET.1$1:8008"; }
status() { curl -s --max-time 1 "http://$(api "$1")/status" 2>/dev/null || true; }
cluster() { "$T_BIN" ctl --api "$(api "$1")" --timeout $((1000 * SLOW)) list --json 2>/dev/null || true; }
primary_of() { cluster "$1" | jq -r '[.members[] | select(.role == "leader" and .pg_role == "primary" and .state == "running")] | if length == 1 then .[0].name else empty end' 2>/dev/null; }
healthy() { # I...: the members listed agree on one primary, every other listed one streams in the set
  local p q
  p=$(primary_of "$1"); [ -n "$p" ] || return 1
  for i in "$@"; do q=$(primary_of "$i"); [ "$q" = "$p" ] || return 1; done
  [ "$(cluster "$1" | jq -r "[.members[] | select(.state == \"streaming\")] | length")" = $(($# - 1)) ] &&
    [ "$(cluster "$1" | jq -r '.sync.k')" -ge 1 ]
}
api_up() { [ "$(status "$1" | jq -r .name 2>/dev/null)" = "node$1" ]; }
t_wait $((240 * SLOW)) "the agent of node1 answering at its seed's address" api_up 1
t_log "node1's agent answered $((SECONDS - t1)) s after the boot"
t_wait $((240 * SLOW)) "one primary and two streaming standbys from the seeds" healthy 1 2 3
t_log "cluster up $((SECONDS - t1)) s after the first boot"
first_conf() {
  if [ "$MODE" = nspawn ]; then
    [ -f "$T_DIR/n$1/merged/etc/raftpg/raftpg.yaml" ] && [ ! -e "$T_DIR/n$1/merged/etc/raftpg/seed" ]
  else
    # The agent answering as node I at the seed's address shows that the seed was turned into
    # the configuration.
    api_up "$1"
  fi
}
# fw_cfg_gone I: node I's guest no longer shows QEMU's fw_cfg (where its seed is), asked of its
# kernel through PostgreSQL (superuser: pg_stat_file, NULL for a missing path): neither the sysfs
# directory nor the driver's module; /sys/firmware itself must be seen, or nothing is shown.
# Waits for an answer (a slow guest), then checks it.
fw_cfg_ask() {
  nsql "$1" "select (pg_stat_file('/sys/firmware', true)).isdir
    and (pg_stat_file('/sys/firmware/qemu_fw_cfg', true)).size is null
    and (pg_stat_file('/sys/module/qemu_fw_cfg', true)).size is null" >"$T_DIR/fw_cfg$1"
  [ -s "$T_DIR/fw_cfg$1" ]
}
fw_cfg_gone() {
  t_wait $((20 * SLOW)) "node$1's PostgreSQL answering" fw_cfg_ask "$1" || return 1
  t_eq "$(cat "$T_DIR/fw_cfg$1")" t
}
for i in 1 2 3; do
  t_check "node$i's first boot wrote its configuration from the seed" first_conf "$i"
done
primary_known() { old=$(primary_of 1); [ -n "$old" ]; }
t_wait $((30 * SLOW)) "node1 naming the primary" primary_known
oi=${old#node}
t_log "primary: $old"

# The MACs that answer ARP for the VIP on the bridge, sorted (the world's view of who holds it).
vip_macs() {
  arping -i "$BR" -c 2 -w 1 "$VIP" 2>/dev/null | sed -n 's/.* bytes from \([0-9a-f:]*\) .*/\1/p' | sort -u | tr '\n' ' '
}
has_vip() {
  if [ "$MODE" = nspawn ]; then
    nsenter -t "${INIT[$1]}" -n ip -4 -o addr show 2>/dev/null | grep -q " $VIP/"
  else
    [[ " $(vip_macs)" == *" $(mac_of "$1") "* ]]
  fi
}
alive() { if [ "$MODE" = nspawn ]; then [ -n "${INIT[$1]:-}" ] && kill -0 "${INIT[$1]}" 2>/dev/null; else [ -n "${QPID[$1]:-}" ] && kill -0 "${QPID[$1]}" 2>/dev/null; fi; }
vip_only_on() {
  local i
  if [ "$MODE" != nspawn ]; then [ "$(vip_macs)" = "$(mac_of "$1") " ]; return; fi
  for i in 1 2 3; do
    alive "$i" || continue
    if [ "$i" = "$1" ]; then has_vip "$i" || return 1; else ! has_vip "$i" || return 1; fi
  done
}
t_wait $((30 * SLOW)) "the VIP on $old only" vip_only_on "$oi"
arp_is() { ip neigh flush dev "$BR" to "$VIP" 2>/dev/null; ping -c1 -W1 "$VIP" >/dev/null 2>&1 || return 1
           [ "$(ip neigh show "$VIP" dev "$BR" | awk '{print $3}')" = "$(mac_of "$1")" ]; }
t_wait $((20 * SLOW)) "ARP for the VIP answered by $old" arp_is "$oi"

export PGPASSWORD=$SU_PW PGCONNECT_TIMEOUT=2
vsql() { psql -X -q -A -t -h "$VIP" -U postgres -d postgres -c "$1" 2>/dev/null; }
nsql() { local i=$1; shift; psql -X -q -A -t -h "$NET.1$i" -U postgres -d postgres -c "$1" 2>/dev/null; }
t_check "a table through the VIP" t_eq "$(vsql 'create table drill (id bigint primary key); select 1')" 1
if [ "$MODE" != nspawn ]; then
  for i in 1 2 3; do
    t_check "node$i's guest no longer shows fw_cfg (its seed) after the first boot" fw_cfg_gone "$i"
  done
fi

# The writer: numbered INSERTs through the VIP, one connection each; a line "ID NODE HOST_MS" in
# ACKED only once the commit returned. Killed, never cancelled: a cancelled synchronous-replication
# wait reports the local commit as a success, which no quorum acknowledged.
ACKED=$T_DIR/acked
: >"$ACKED"
now_ms() { date +%s%3N; }
writer() { # FILE HOST FIRST_ID
  local out=$1 host=$2 id=$3 deadline=$((SECONDS + 1800)) r
  while [ $SECONDS -lt $deadline ]; do
    if r=$(timeout -s KILL $((4 * SLOW)) psql -X -q -A -t -h "$host" -U postgres -d postgres \
             -c "insert into drill values ($id) returning pg_read_file('/etc/hostname')" 2>/dev/null); then
      echo "$id ${r%%$'\n'*} $(now_ms)" >>"$out"
    fi
    id=$((id + 1))
    sleep "$PACE"
  done
}
writer "$ACKED" "$VIP" 1 &
BG+=($!)
n_acked() { wc -l <"$ACKED"; }
acked_over() { [ "$(n_acked)" -gt "$1" ]; }
t_wait $((60 * SLOW)) "50 rows acknowledged through the VIP" acked_over 49
# Every acknowledged id of every writer's file present on node I.
lost_on() { # I FILE...
  local i=$1; shift
  local ids; ids=$(cat "$@" | awk '{print $1}' | sort -n | tr '\n' ',' | sed 's/,$//')
  nsql "$i" "select count(*) from unnest(array[${ids:-0}]::bigint[]) a where a <> 0 and not exists (select 1 from drill where id = a)"
}

# The primary's whole node dies.
t2=$SECONDS
node_kill "$oi"
others=()
for i in 1 2 3; do [ "$i" = "$oi" ] || others+=("$i"); done
new_primary() { local p; p=$(primary_of "${others[0]}"); [ -n "$p" ] && [ "$p" != "$old" ] && [ "$(primary_of "${others[1]}")" = "$p" ]; }
t_wait $((60 * SLOW)) "a new primary after the node loss" new_primary
named_new() { new=$(primary_of "${others[0]}"); [ -n "$new" ] && [ "$new" != "$old" ]; }
t_wait $((30 * SLOW)) "${others[0]} naming the new primary" named_new
ni=${new#node}
t_log "new primary $new $((SECONDS - t2)) s after the kill"
t_wait $((30 * SLOW)) "the VIP on $new only" vip_only_on "$ni"
t_wait $((20 * SLOW)) "ARP for the VIP answered by $new" arp_is "$ni"
acked_by() { [ "$(awk -v h="$1" -v t="$2" '$2 == h && $3 > t' "$ACKED" | wc -l)" -gt 0 ]; }
t_wait $((60 * SLOW)) "a write through the VIP acknowledged by $new" acked_by "$new" "$(($(now_ms) - 1))"
t_log "writes through the VIP $((SECONDS - t2)) s after the kill"
t_check "no row acknowledged through the VIP lost ($(n_acked) so far)" t_eq "$(lost_on "$ni" "$ACKED")" 0

# The old node boots again and rejoins.
t3=$SECONDS
boot "$oi"
t_wait $((240 * SLOW)) "$old back as a streaming standby" healthy 1 2 3
t_check "$new is still the primary" t_eq "$(primary_of 1)" "$new"
t_check "the VIP stayed on $new" vip_only_on "$ni"
t_log "$old rejoined $((SECONDS - t3)) s after its boot"
[ "$MODE" = nspawn ] ||
  t_check "$old's guest does not show fw_cfg on its second boot either" fw_cfg_gone "$oi"

if [ "$MODE" != nspawn ]; then
  # ---- The frozen VM: the primary's VM stopped through the QEMU monitor, then resumed. ----
  P=$new pi=$ni
  others=()
  for i in 1 2 3; do [ "$i" = "$pi" ] || others+=("$i"); done
  clocks() { # I: "HOST_BOOTTIME HOST_REALTIME GUEST_UPTIME GUEST_REALTIME" (seconds)
    local g h r
    h=$(awk '{print $1}' /proc/uptime) r=$(date +%s.%N)
    g=$(nsql "$1" "select split_part(pg_read_file('/proc/uptime'), ' ', 1) || ' ' || extract(epoch from clock_timestamp())")
    [ -n "$g" ] && echo "$h $r $g"
  }
  t_wait 20 "$P's clocks read through PostgreSQL" clocks "$pi"
  c0=$(clocks "$pi" || true)
  gaps0=$(status "$pi" | jq -r '.fencing.loop_gaps')
  # Pollers, each line stamped with the host's milliseconds: direct writes to every node (id
  # range I·10^6) with whether that node reports the VIP among its local addresses
  # (/proc/net/fib_trie through PostgreSQL); ARP answers for the VIP; the old primary's agent.
  for i in 1 2 3; do
    (
      id=$((i * 1000000)) deadline=$((SECONDS + 600))
      while [ $SECONDS -lt $deadline ]; do
        s=$(now_ms)
        r=$(timeout -s KILL $((3 * SLOW)) psql -X -q -A -t -h "$NET.1$i" -U postgres -d postgres \
              -c "select pg_is_in_recovery()::text || ' vip=' || (position('$VIP' in pg_read_file('/proc/net/fib_trie')) > 0)::text" \
              -c "insert into drill values ($id) returning 'acked'" 2>/dev/null | tr '\n' ' ') || true
        echo "$s $(now_ms) ${r:-no answer}" >>"$T_DIR/direct$i"
        [[ $r != *acked* ]] || echo "$id node$i $(now_ms)" >>"$T_DIR/acked-direct$i"
        id=$((id + 1))
        sleep "$PACE"
      done
    ) &
    BG+=($!)
  done
  (
    deadline=$((SECONDS + 600))
    while [ $SECONDS -lt $deadline ]; do echo "$(now_ms) $(arping -i "$BR" -c 1 -w 0.3 "$VIP" 2>/dev/null | sed -n 's/.* bytes from \([0-9a-f:]*\) .*/\1/p' | tr '\n' ' ')" >>"$T_DIR/arp"; done
  ) &
  BG+=($!)
  (
    deadline=$((SECONDS + 600))
    while [ $SECONDS -lt $deadline ]; do
      s=$(status "$pi" | jq -r '"\(.raft_role) term=\(.term) pg=\(.postgresql.state) recovery=\(.postgresql.in_recovery) lease=\(.fencing.lease_held) left=\(.fencing.lease_left_ms) fencing=\(.fencing.fencing) vip=\(.vip.held) gaps=\(.fencing.loop_gaps)"' 2>/dev/null || true)
      echo "$(now_ms) ${s:-no answer}" >>"$T_DIR/agent-old"
      sleep 0.05
    done
  ) &
  BG+=($!)
  sleep 2
  ts=$(now_ms)
  st=$(mon "$pi" stop)
  ts2=$(now_ms)
  t_log "FROZEN: $P's VM stopped ($st, monitor answered in $((ts2 - ts)) ms); host clocks before: $c0"
  np="" tnp=""
  while [ $(($(now_ms) - ts)) -lt $((FREEZE_S * 1000)) ]; do
    if [ -z "$np" ]; then
      p=$(primary_of "${others[0]}")
      if [ -n "$p" ] && [ "$p" != "$P" ]; then np=$p tnp=$(now_ms); fi
    fi
    sleep 0.1
  done
  tc=$(now_ms)
  st=$(mon "$pi" cont)
  tc2=$(now_ms)
  t_log "FROZEN: resumed after $((tc - ts)) ms ($st, monitor answered in $((tc2 - tc)) ms)"
  if [ -n "$np" ]; then
    t_log "FROZEN: new primary $np seen $((tnp - ts)) ms after stop (during the pause)"
  else
    t_log "FROZEN: no new primary seen during the ${FREEZE_S} s pause"
  fi
  sleep 10
  back() { healthy 1 2 3 && [ "$(primary_of 1)" != "$P" ]; }
  t_wait $((240 * SLOW)) "$P back as a streaming standby after the pause, another member primary" back
  tb=$(now_ms)
  t_log "FROZEN: healthy again $((tb - tc)) ms after cont, primary $(primary_of 1)"
  t_wait 20 "$P's clocks read through PostgreSQL after the pause" clocks "$pi"
  c1=$(clocks "$pi" || true)
  sleep 2
  stop_bg
  read -r h0 r0 g0 w0 <<<"$c0"
  read -r h1 r1 g1 w1 <<<"$c1"
  t_log "FROZEN: $(awk -v h0="$h0" -v h1="$h1" -v g0="$g0" -v g1="$g1" -v r0="$r0" -v r1="$r1" -v w0="$w0" -v w1="$w1" -v p=$((tc - ts)) 'BEGIN {
    printf "clocks over the stop: host CLOCK_BOOTTIME +%.3f s, guest CLOCK_BOOTTIME (/proc/uptime) +%.3f s (%.3f s not counted of a %.3f s pause); host wall clock +%.3f s, guest wall clock +%.3f s (%.3f s behind)",
      h1 - h0, g1 - g0, (h1 - h0) - (g1 - g0), p / 1000, r1 - r0, w1 - w0, (r1 - r0) - (w1 - w0) }')"
  t_log "FROZEN: the old primary's agent: loop_gaps $gaps0 before, $(status "$pi" | jq -r '.fencing.loop_gaps') after"
  # After cont: what the old primary still did, and until when (ms after cont).
  old_mac=$(mac_of "$pi")
  awk -v t="$tc" -v m="$old_mac" '$1 >= t && index($0, m) { n++; last = $1 - t } END { printf "FROZEN: ARP answers for the VIP from %s after cont: %d, the last %s ms after cont\n", m, n, n ? last : "-" }' "$T_DIR/arp"
  awk -v t="$ts" -v m="$old_mac" '$1 >= t && $1 < t + 100000 && NF > 1 { if (!(index($0, m))) { print "FROZEN: first ARP answer for the VIP from another MAC (" $2 ") " $1 - t " ms after stop"; exit } }' "$T_DIR/arp"
  awk -v t="$tc" '$1 >= t && / lease=true/ { n++; last = $1 - t } $1 >= t && / vip=true/ { v++; vlast = $1 - t }
    $1 >= t && first == "" && $0 !~ /no answer/ { first = $1 - t; fl = $0 }
    END { printf "FROZEN: the old primary agent after cont: first answer %s ms after (%s); lease held in %d polls, the last %s ms after cont; VIP held (its own view) in %d polls, the last %s ms after\n", first, fl, n, n ? last : "-", v, v ? vlast : "-" }' "$T_DIR/agent-old"
  grep -h . "$T_DIR/agent-old" | awk -v t="$tc" '$1 >= t - 200 && $1 <= t + 3000' | sed "s/^/  agent-old /" | head -n 40
  awk -v t="$tc" '$2 >= t && /vip=true/ { n++; last = $2 - t } END { printf "FROZEN: the old primary reported the VIP among its addresses in %d direct queries after cont, the last %s ms after\n", n, n ? last : "-" }' "$T_DIR/direct$pi"
  for i in 1 2 3; do
    f=$T_DIR/acked-direct$i
    [ -f "$f" ] || : >"$f"
    t_log "FROZEN: direct writes to node$i acknowledged after cont: $(awk -v t="$tc" '$3 >= t' "$f" | wc -l), during the pause: $(awk -v a="$ts" -v b="$tc" '$3 >= a && $3 < b' "$f" | wc -l)"
  done
  t_log "FROZEN: VIP writes acknowledged by $P after cont: $(awk -v h="$P" -v t="$tc" '$2 == h && $3 >= t' "$ACKED" | wc -l), by others in the 10 s after stop: $(awk -v h="$P" -v t="$ts" '$2 != h && $3 >= t && $3 < t + 10000' "$ACKED" | wc -l); first VIP write acknowledged after stop: $(awk -v t="$ts" '$3 >= t { print $3 - t " ms, by " $2; exit }' "$ACKED")"
  t_wait $((30 * SLOW)) "node1 naming the primary" primary_known
  t_check "no acknowledged row lost over the frozen VM ($(cat "$ACKED" "$T_DIR"/acked-direct? | wc -l) acknowledged)" \
    t_eq "$(lost_on "${old#node}" "$ACKED" "$T_DIR"/acked-direct?)" 0
fi
stop_bg
t_wait $((30 * SLOW)) "node1 naming the primary" primary_known
t_check "no acknowledged row lost over the whole test ($(n_acked) through the VIP)" t_eq "$(lost_on "${old#node}" "$ACKED")" 0
t_log "whole test $((SECONDS - t0)) s"
t_done
