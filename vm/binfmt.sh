#!/usr/bin/env bash
# Let this (x86_64) machine run arm64 programs, as mmdebstrap needs to set up an
# arm64 root: binfmt_misc mounted and qemu-user-static's aarch64 handler on.
set -euo pipefail
arch-test arm64 >/dev/null 2>&1 && exit 0
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 2>/dev/null || true
arch-test arm64 >/dev/null || { echo "vm/binfmt.sh: this machine still cannot run arm64 programs (qemu-user-static, binfmt-support installed? root?)" >&2; exit 1; }
