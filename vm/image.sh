#!/usr/bin/env bash
# Build (once) the test bed's Debian arm64 disk image and print its folder.
#
#   vm/image.sh [SUITE]      SUITE: trixie (default) or bookworm
#
# The folder, build/vm/image-<SUITE>-<hash>/, holds disk.raw (ext4, no partition
# table), vmlinuz and initrd.img. <hash> covers everything the image is made
# from (this script, the package lists, the login key), so a second run finds it
# and returns at once; change any of them and a new image is built beside it.
#
# The image stands for a fresh Raspberry Pi OS Lite whose login `pi` has your
# ssh key and passwordless sudo, with the packages `make provision` would
# install already there (the box has no internet; see docs/appliance.md).
# Only Debian packages go in: mmdebstrap, then `mkfs.ext4 -d` (no mounting).
# Runs as root (binfmt_misc and file ownership in the image).
set -euo pipefail
cd "$(dirname "$0")/.."
SUITE=${1:-trixie}
MIRROR=${IMPS_VM_MIRROR:-http://deb.debian.org/debian}
ARCH=arm64
SIZE=4G
OUT=build/vm
die() { echo "vm/image.sh: $*" >&2; exit 1; }
if [ "$(id -u)" != 0 ]; then
  # A user with passwordless sudo (a laptop, a CI runner): build as root, own the result.
  sudo -n true 2>/dev/null || die "needs root or passwordless sudo (mmdebstrap of a foreign architecture, file owners in the image)"
  exec sudo -n IMPS_VM_MIRROR="$MIRROR" IMPS_VM_OWNER="$(id -u):$(id -g)" bash "$0" "$@"
fi
# Built for a user through sudo: that user must read the key and write under build/vm.
own() { [ -z "${IMPS_VM_OWNER:-}" ] || chown -R "$IMPS_VM_OWNER" "$@"; }
case $SUITE in trixie|bookworm) ;; *) die "SUITE must be trixie or bookworm, not $SUITE" ;; esac

# The base system, the packages `make provision` installs (read from provision.sh,
# so the two cannot drift) and what the tests look at (e2fsprogs, procps).
BASE=(systemd-sysv udev dbus openssh-server sudo polkitd linux-image-arm64 initramfs-tools kmod
      python3 e2fsprogs procps iproute2)
read -ra PROVISION <<<"$(sed -nE 's/^PACKAGES=\((.*)\)$/\1/p' deploy/provision.sh)"
[ ${#PROVISION[@]} -gt 0 ] || die "no PACKAGES=(...) line found in deploy/provision.sh"
PACKAGES=$(printf '%s\n' "${BASE[@]}" "${PROVISION[@]}" | sort -u | paste -sd, -)

bash vm/binfmt.sh
mkdir -p "$OUT"
[ -f "$OUT/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C imps-vm -f "$OUT/id_ed25519"
KEY=$(cat "$OUT/id_ed25519.pub")

hash=$( { cat vm/image.sh vm/customize.sh; echo "$SUITE $ARCH $SIZE $MIRROR $PACKAGES $KEY"; } | sha256sum | cut -c1-16)
IMAGE=$OUT/image-$SUITE-$hash
if [ -f "$IMAGE/.complete" ]; then echo "$IMAGE"; exit 0; fi

echo "== building the $SUITE $ARCH image $IMAGE (under emulation: several minutes)" >&2
start=$SECONDS
tmp=$OUT/tmp-$SUITE-$hash
rm -rf "$tmp" "$IMAGE"; mkdir -p "$tmp" "$OUT/debs-$SUITE"
cache=$(realpath "$OUT/debs-$SUITE")

# A small initramfs: only what finds and mounts the root disk (a full one takes
# four times as long to make under emulation). Written before the kernel is
# installed so it is generated once.
# shellcheck disable=SC2016  # expanded by mmdebstrap, in the new root
initramfs_hook='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d"
  printf "MODULES=list\nCOMPRESS=gzip\n" >"$1/etc/initramfs-tools/conf.d/imps-vm.conf"
  printf "virtio_pci\nvirtio_mmio\nvirtio_blk\next4\n" >"$1/usr/share/initramfs-tools/modules.d/imps-vm"'

mmdebstrap --variant=minbase --arch=$ARCH --include="$PACKAGES" \
  --aptopt='Acquire::Retries "5"' \
  --setup-hook="mkdir -p \"\$1/var/cache/apt/archives\"; cp -l $cache/*.deb \"\$1/var/cache/apt/archives/\" 2>/dev/null || cp $cache/*.deb \"\$1/var/cache/apt/archives/\" 2>/dev/null || true" \
  --essential-hook="$initramfs_hook" \
  --customize-hook="cp -n \"\$1\"/var/cache/apt/archives/*.deb $cache/ 2>/dev/null || true" \
  --customize-hook="KEY='$KEY' bash vm/customize.sh \"\$1\"" \
  "$SUITE" "$tmp/root" "$MIRROR"

mkdir -p "$IMAGE"
cp -L "$tmp/root/vmlinuz" "$IMAGE/vmlinuz"
cp -L "$tmp/root/initrd.img" "$IMAGE/initrd.img"
mkfs.ext4 -q -L imps-root -d "$tmp/root" "$IMAGE/disk.raw" "$SIZE"
rm -rf "$tmp"
own "$OUT"
echo "$SUITE $ARCH built in $((SECONDS - start)) s from: $PACKAGES" >"$IMAGE/.complete"
echo "== image built in $((SECONDS - start)) s" >&2
echo "$IMAGE"
