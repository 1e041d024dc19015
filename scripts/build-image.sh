#!/usr/bin/env bash
# Builds the raftpg appliance: Debian 12 with PostgreSQL 15 and the raftpg package (mmdebstrap
# from Debian's repositories), systemd-networkd, and a first-boot step (raftpg-firstboot) that
# turns a per-node seed into the node's network, secret and /etc/raftpg/raftpg.yaml.
# Output in OUTDIR (default build-image/):
#   rootfs/          the root file system; `systemd-nspawn -D rootfs --boot` runs it
#   raftpg.img       a raw disk for QEMU or a hypervisor's BIOS boot: an MBR partition table, GRUB
#                    (i386-pc, from Debian's grub-pc-bin) in the MBR and the gap before the first
#                    partition, one ext4 partition labelled raftpg-root holding rootfs/
#   vmlinuz, initrd.img   the image's kernel and initramfs (for a direct kernel boot or a probe)
# Boot one node (a qcow2 overlay per node on the shared image; the seed through fw_cfg, see
# image/raftpg-firstboot for its keys; tests/image/test_appliance.sh boots three this way):
#   qemu-img create -f qcow2 -F raw -b raftpg.img node1.qcow2
#   qemu-system-x86_64 -accel kvm -cpu host -m 1024 -nographic \
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
for c in mmdebstrap mkfs.ext4 sfdisk; do
  command -v "$c" >/dev/null || { echo "build-image: $c is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
if [ -z "$deb" ]; then deb=$(scripts/build-deb.sh "$out/deb" 2>/dev/null | tail -n1); fi
[ -f "$deb" ] || { echo "build-image: no package (scripts/build-deb.sh failed?)" >&2; exit 1; }
deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")
start=$SECONDS
rm -rf "$out/rootfs"
mmdebstrap --variant=minbase \
  --include="$deb" \
  --include=systemd,systemd-sysv,dbus,udev,kmod,linux-image-amd64,grub-pc-bin,iproute2,arping,procps,less \
  --essential-hook='mkdir -p "$1/etc/modprobe.d"' \
  --essential-hook="copy-in $src/image/raftpg-fw_cfg.conf /etc/modprobe.d/" \
  --hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount \
  --customize-hook="copy-in $src/image/raftpg-firstboot /usr/local/sbin/" \
  --customize-hook="copy-in $src/image/raftpg-firstboot.service /etc/systemd/system/" \
  --customize-hook='chroot "$1" systemctl enable raftpg-firstboot.service systemd-networkd.service' \
  --customize-hook='chroot "$1" pg_dropcluster --stop 15 main' \
  --customize-hook='mkdir -p "$1/etc/systemd/system/raftpg.service.d" && printf "[Unit]\nAfter=raftpg-firstboot.service systemd-networkd-wait-online.service\nWants=systemd-networkd-wait-online.service\n" > "$1/etc/systemd/system/raftpg.service.d/appliance.conf"' \
  --customize-hook='printf "LABEL=raftpg-root / ext4 defaults 0 1\n" > "$1/etc/fstab"; echo raftpg > "$1/etc/hostname"; : > "$1/etc/machine-id"' \
  --customize-hook='mkdir -p "$1/boot/grub/i386-pc" && cp "$1"/usr/lib/grub/i386-pc/*.mod "$1"/usr/lib/grub/i386-pc/*.lst "$1/boot/grub/i386-pc/"' \
  --customize-hook="copy-in $src/image/grub.cfg /boot/grub/" \
  --customize-hook='chroot "$1" grub-mkimage -O i386-pc -p "(hd0,msdos1)/boot/grub" -o /boot/grub/i386-pc/core.img biosdisk part_msdos ext2' \
  bookworm "$out/rootfs" >"$out/mmdebstrap.log" 2>&1 ||
  { tail -n 30 "$out/mmdebstrap.log" >&2; echo "build-image: mmdebstrap failed" >&2; exit 1; }
cp -L "$out/rootfs/vmlinuz" "$out/vmlinuz"
cp -L "$out/rootfs/initrd.img" "$out/initrd.img"
size_mb=$(( $(du -sm "$out/rootfs" | cut -f1) + 1024 ))
# The disk: MBR, GRUB's core.img in sectors 1..2047 (where GRUB's boot.img and core.img look by
# default), the root partition from 1 MiB. Built from files with no loop device or mount.
core="$out/rootfs/boot/grub/i386-pc/core.img"
[ "$(stat -c %s "$core")" -le $((2047 * 512)) ] || { echo "build-image: $core does not fit before 1 MiB" >&2; exit 1; }
rm -f "$out/raftpg.img" "$out/root.ext4"
# Only ext4 features that Debian 12's GRUB (2.06) reads: no metadata_csum_seed, no orphan_file.
mkfs.ext4 -q -L raftpg-root -O ^orphan_file,^metadata_csum_seed -d "$out/rootfs" "$out/root.ext4" "${size_mb}M" >/dev/null
truncate -s $((size_mb + 1))M "$out/raftpg.img"
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$out/raftpg.img" >/dev/null
dd if="$out/root.ext4" of="$out/raftpg.img" bs=1M seek=1 conv=notrunc,sparse status=none
rm -f "$out/root.ext4"
# boot.img's 440 bytes of code, leaving the partition table after them.
dd if="$out/rootfs/usr/lib/grub/i386-pc/boot.img" of="$out/raftpg.img" bs=440 count=1 conv=notrunc status=none
dd if="$core" of="$out/raftpg.img" bs=512 seek=1 conv=notrunc status=none
echo "build-image: $(du -sm "$out/rootfs" | cut -f1) MB root, image $(du -m --apparent-size "$out/raftpg.img" | cut -f1) MB (sparse $(du -m "$out/raftpg.img" | cut -f1) MB), built in $((SECONDS - start)) s" >&2
echo "$out"
