#!/usr/bin/env bash
# Compile the box's source-only packages into wheels once, here, under qemu-user
# in a copy of the VM image's own root (the same Debian, Python, glibc and build
# tools as the box), and print the wheels folder.
#
#   vm/wheels.sh IMAGE_DIR     IMAGE_DIR: what vm/image.sh printed
#
# Why: on the emulated box (qemu-system) the first deploy spent 828-1550 s
# compiling RPi.GPIO, lgpio, python-rtmidi and systemd-python; user-mode
# emulation is several times faster. The compiling itself is deploy.sh's own
# build_wheels, the function a real Pi runs, so what is built is what a box
# would build. The folder is deploy's cache (build/wheels/cp<py>-<cpu>-glibc<v>/):
# the VM's deploy then finds every wheel and compiles nothing.
# Runs as root (chroot, mounts), or through passwordless sudo like vm/image.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "vm/wheels.sh: $*" >&2; exit 1; }
IMAGE=${1:?usage: vm/wheels.sh IMAGE_DIR}
[ -f "$IMAGE/.complete" ] || die "$IMAGE is not a built image (make vm-image)"
if [ "$(id -u)" != 0 ]; then
  sudo -n true 2>/dev/null || die "needs root or passwordless sudo (chroot into the image's root)"
  exec sudo -n IMPS_VM_OWNER="$(id -u):$(id -g)" IMPS_DEVICE_PYTHON="${IMPS_DEVICE_PYTHON:-}" bash "$0" "$@"
fi
own() { [ -z "${IMPS_VM_OWNER:-}" ] || chown -R "$IMPS_VM_OWNER" "$@"; }
bash vm/binfmt.sh

root=$IMAGE/wheels-root
start=$SECONDS
if [ ! -f "$root/.complete" ]; then
  # The image's file system read without mounting it (debugfs needs no loop device).
  rm -rf "$root"; mkdir -p "$root"
  debugfs -R "rdump / $root" "$IMAGE/disk.raw" >/dev/null 2>&1 || die "could not read $IMAGE/disk.raw"
  touch "$root/.complete"
fi
[ -x "$root/usr/bin/python3" ] || die "$root has no python3: is $IMAGE an image of vm/image.sh?"

in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 "$@"; }
mounted=()
cleanup() { local m; for m in "${mounted[@]}"; do umount -l "$m" 2>/dev/null || true; done; }
trap cleanup EXIT
mkdir -p "$root/proc" "$root/dev"
mount -t proc proc "$root/proc"; mounted+=("$root/proc")
mount --bind /dev "$root/dev"; mounted+=("$root/dev")

read -r py machine glibc < <(in_root python3 -c 'import platform, sys; print("%d.%d" % sys.version_info[:2], platform.machine(), platform.libc_ver()[1])')
dir=build/wheels/cp${py/./}-$machine-glibc$glibc
python=${IMPS_DEVICE_PYTHON:-.venv/device/bin/python}
[ -x "$python" ] || python=python3
# The same wheelhouse deploy fetches (it skips what is already there).
"$python" deploy/wheelhouse.py --python "$py" --machine "$machine" --glibc "$glibc" "$dir" >&2

rm -rf "$root/imps-wheels" "$root/imps-deploy.sh"
cp -a "$dir" "$root/imps-wheels"
cp deploy/deploy.sh "$root/imps-deploy.sh"
pips=("$dir"/pip-*.whl)
[ -f "${pips[-1]}" ] || die "no pip wheel in $dir"
echo "== compiling the box's source packages under qemu-user in $root" >&2
# shellcheck disable=SC2016  # expanded by the bash inside the image's root
in_root env IMPS_WHEELS=/imps-wheels bash -c \
  'set -e; source /imps-deploy.sh; build_wheels "$1"' _ "/imps-wheels/$(basename "${pips[-1]}")/pip" >&2
cp -n "$root"/imps-wheels/*.whl "$dir"/
rm -rf "$root/imps-wheels" "$root/imps-deploy.sh"
own build/wheels
echo "== box wheels ready in $((SECONDS - start)) s" >&2
echo "$dir"
