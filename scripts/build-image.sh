#!/usr/bin/env bash
# Builds the raftpg appliance: Debian 12 with PostgreSQL 15 and the raftpg package (mmdebstrap
# from Debian's repositories), systemd-networkd, and a first-boot step (raftpg-firstboot) that
# turns a per-node seed into the node's network, secret and /etc/raftpg/raftpg.yaml.
# Output in OUTDIR (default build-image/):
#   rootfs/          the root file system; `systemd-nspawn -D rootfs --boot` runs it
#   raftpg.img       an ext4 image of it for QEMU (a whole-disk file system, no partition table
#                    or boot loader: virtio disk, root=/dev/vda)
#   vmlinuz, initrd.img   the image's kernel and initramfs, for QEMU's direct kernel boot
# Boot one node (a qcow2 overlay per node on the shared image; the seed through fw_cfg, see
# image/raftpg-firstboot for its keys; tests/image/test_appliance.sh boots three this way):
#   qemu-img create -f qcow2 -F raw -b raftpg.img node1.qcow2
#   qemu-system-x86_64 -accel kvm -cpu host -m 1024 -nographic -kernel vmlinuz -initrd initrd.img \
#     -append "root=/dev/vda rw console=ttyS0 net.ifnames=0" \
#     -drive file=node1.qcow2,format=qcow2,if=virtio -fw_cfg name=opt/raftpg/seed,file=node1.seed \
#     -netdev tap,id=n,ifname=tap1,script=no,downscript=no -device virtio-net-pci,netdev=n
# The same command with -accel tcg (no KVM) boots it too, about 3 minutes to the agent.
# Usage: scripts/build-image.sh [OUTDIR] [PACKAGE.deb]
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
out=$(mkdir -p "${1:-build-image}" && cd "${1:-build-image}" && pwd)
deb=${2:-}
[ "$(id -u)" -eq 0 ] || { echo "build-image: run as root (mmdebstrap, mkfs.ext4 -d)" >&2; exit 1; }
if [ -z "$deb" ]; then deb=$(scripts/build-deb.sh "$out/deb" 2>/dev/null | tail -n1); fi
[ -f "$deb" ] || { echo "build-image: no package (scripts/build-deb.sh failed?)" >&2; exit 1; }
deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")
start=$SECONDS
rm -rf "$out/rootfs"
mmdebstrap --variant=minbase \
  --include="$deb" \
  --include=systemd,systemd-sysv,dbus,udev,kmod,linux-image-amd64,iproute2,arping,procps,less \
  --hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount \
  --customize-hook="copy-in $src/image/raftpg-firstboot /usr/local/sbin/" \
  --customize-hook="copy-in $src/image/raftpg-firstboot.service /etc/systemd/system/" \
  --customize-hook='chroot "$1" systemctl enable raftpg-firstboot.service systemd-networkd.service' \
  --customize-hook='chroot "$1" pg_dropcluster --stop 15 main' \
  --customize-hook='mkdir -p "$1/etc/systemd/system/raftpg.service.d" && printf "[Unit]\nAfter=raftpg-firstboot.service systemd-networkd-wait-online.service\nWants=systemd-networkd-wait-online.service\n" > "$1/etc/systemd/system/raftpg.service.d/appliance.conf"' \
  --customize-hook='printf "/dev/vda / ext4 defaults 0 1\n" > "$1/etc/fstab"; echo raftpg > "$1/etc/hostname"; : > "$1/etc/machine-id"' \
  bookworm "$out/rootfs" >"$out/mmdebstrap.log" 2>&1 ||
  { tail -n 30 "$out/mmdebstrap.log" >&2; echo "build-image: mmdebstrap failed" >&2; exit 1; }
cp -L "$out/rootfs/vmlinuz" "$out/vmlinuz"
cp -L "$out/rootfs/initrd.img" "$out/initrd.img"
size_mb=$(( $(du -sm "$out/rootfs" | cut -f1) + 1024 ))
rm -f "$out/raftpg.img"
mkfs.ext4 -q -L raftpg-root -d "$out/rootfs" "$out/raftpg.img" "${size_mb}M" >/dev/null
echo "build-image: $(du -sm "$out/rootfs" | cut -f1) MB root, image $(du -m --apparent-size "$out/raftpg.img" | cut -f1) MB (sparse $(du -m "$out/raftpg.img" | cut -f1) MB), built in $((SECONDS - start)) s" >&2
echo "$out"
