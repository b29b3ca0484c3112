#!/usr/bin/env bash
# Prepare a fresh Raspberry Pi OS Lite (Bookworm, 64-bit) for the IMPS box.
#
#   provision.sh HOST              over ssh (the login needs passwordless sudo, as `pi` has)
#   provision.sh --dry-run HOST    on the box, print what would change, change nothing
#   provision.sh --dry-run         print the plan against this machine, change nothing
#
# Idempotent: every step checks first, so running it again changes nothing.
# Settings: IMPS_PREFIX (/opt/imps), IMPS_STATE (/var/lib/imps), IMPS_USER (imps),
# IMPS_AUDIO_CARD (ALSA card id for /etc/asound.conf; default: a USB card, else
# the headphone jack), IMPS_SERIAL_PORT (the sensor board's port in box.toml, e.g. its
# /dev/serial/by-id path; default: Arduino boards), IMPS_SSH_OPTS (extra ssh options);
# for tests: IMPS_ETC (/etc),
# IMPS_GROUPS ("gpio dialout audio"). IMPS_MIDI_UART=1: DIN MIDI on the UART (midi_uart below);
# IMPS_BOOT_CONFIG (/boot/firmware/config.txt).
set -euo pipefail

PREFIX=${IMPS_PREFIX:-/opt/imps}
STATE=${IMPS_STATE:-/var/lib/imps}
SERVICE_USER=${IMPS_USER:-imps}
AUDIO_CARD=${IMPS_AUDIO_CARD:-auto}
SERIAL_PORT=${IMPS_SERIAL_PORT:-}
# g++ and libasound2-dev: python-rtmidi (USB MIDI) builds from source where no wheel exists (32-bit Pi OS).
# swig: lgpio (gpiozero's pin library for a Pi 5 and trixie) builds from source where PyPI has no wheel (cp313).
# openssl: the page's self-signed certificate (web below).
PACKAGES=(python3-venv python3-dev gcc g++ swig libsystemd-dev libasound2-dev pkg-config puredata-core rsync alsa-utils polkitd openssl)
ETC=${IMPS_ETC:-/etc}
read -ra GROUPS_NEEDED <<<"${IMPS_GROUPS:-gpio dialout audio}"
DRY_RUN=0
REBOOT=0

die() { echo "provision: $*" >&2; exit 1; }
say() { echo "== $*"; }
# Every change goes through run: printed, and in a dry run only printed.
run() {
  echo "+$(printf ' %q' "$@")"
  [ "$DRY_RUN" = 1 ] || "$@"
}
# Write stdin to a file (printed instead in a dry run).
write_file() {
  local path=$1 mode=$2 content line
  content=$(cat)
  echo "+ write $path (mode $mode)"
  if [ "$DRY_RUN" = 1 ]; then
    while IFS= read -r line; do echo "    | $line"; done <<<"$content"
    return
  fi
  printf '%s\n' "$content" >"$path"
  chmod "$mode" "$path"
}

# --- on the box (as root) ---------------------------------------------------------

# A config file of STEP: FILE (mode 0644, its folder made) holds CONTENT afterwards.
# Returns 1, having said so, when it held exactly that already (nothing to do). Called as
# `put_file ... || return 0`, where set -e does not reach inside: so failures die explicitly.
put_file() {
  local step=$1 file=$2 content=$3
  if [ -e "$file" ] && [ "$(cat "$file")" = "$content" ]; then say "$step: $file in place"; return 1; fi
  [ -d "$(dirname "$file")" ] || run install -d -m 0755 "$(dirname "$file")" || die "$step: cannot make $(dirname "$file")"
  write_file "$file" 0644 <<<"$content" || die "$step: cannot write $file"
}

packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then say "packages: all present"; return; fi
  say "packages: installing ${missing[*]}"
  run apt-get update -q
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

users() {
  local g
  for g in "${GROUPS_NEEDED[@]}"; do
    getent group "$g" >/dev/null || run groupadd --system "$g"
  done
  if ! id "$SERVICE_USER" >/dev/null 2>&1; then
    run useradd --system --user-group --home-dir "$STATE" --no-create-home \
      --shell /usr/sbin/nologin --comment "IMPS box service" "$SERVICE_USER"
  fi
  for g in "${GROUPS_NEEDED[@]}"; do
    id -nG "$SERVICE_USER" 2>/dev/null | tr ' ' '\n' | grep -qx "$g" || run usermod -aG "$g" "$SERVICE_USER"
  done
  # The admin who deploys reads the logs and writes models through the service group.
  if [ "$ADMIN" != root ] && ! id -nG "$ADMIN" | tr ' ' '\n' | grep -qx "$SERVICE_USER"; then
    run usermod -aG "$SERVICE_USER" "$ADMIN"
  fi
  say "users: $SERVICE_USER in ${GROUPS_NEEDED[*]}; $ADMIN deploys"
}

# Serial console off (it would talk over the sensor board), UART on.
serial() {
  if ! command -v raspi-config >/dev/null; then
    local model
    model=$(tr -d '\0' </proc/device-tree/model 2>/dev/null || true)
    say "serial: SKIPPED, no raspi-config (${model:-this machine} is not Raspberry Pi OS): the serial console and the UART (enable_uart overlay) are left as they are; a sensor board on USB needs neither"
    return
  fi
  # raspi-config's get_* print 0 for "enabled".
  if [ "$(raspi-config nonint get_serial_cons)" != 1 ]; then
    run raspi-config nonint do_serial_cons 1; REBOOT=1
  fi
  if [ "$(raspi-config nonint get_serial_hw)" != 0 ]; then
    run raspi-config nonint do_serial_hw 0; REBOOT=1
  fi
  say "serial: console off, UART on"
}

# DIN MIDI on the UART (docs/hardware.md, "MIDI"), only with IMPS_MIDI_UART=1: the PL011
# UART onto GPIO 14 (TXD, pin 8) and GPIO 15 (RXD, pin 10) by moving Bluetooth off it (Pi 3,
# 4, Zero W; a Pi 5's GPIO UART is a full one already). 31,250 baud needs no clock change:
# the PL011's 48 MHz UART clock divides to it exactly (48e6 / 16 / 31250 = 96), and the box
# asks for 31,250 itself (so no midi-uart0 overlay, which would turn that into 25,431).
midi_uart() {
  if [ "${IMPS_MIDI_UART:-0}" != 1 ]; then say "MIDI UART: not asked for (IMPS_MIDI_UART=1: DIN MIDI on GPIO 14/15)"; return; fi
  local cfg=${IMPS_BOOT_CONFIG:-/boot/firmware/config.txt}
  if [ ! -e "$cfg" ]; then say "MIDI UART: no $cfg (not Raspberry Pi OS?), left alone"; return; fi
  if ! grep -qxE 'dtoverlay=(disable-bt|miniuart-bt)' "$cfg"; then
    run sh -c "printf '%s\n' '# IMPS: the PL011 UART on GPIO 14/15 for DIN MIDI' 'dtoverlay=disable-bt' >> '$cfg'"
    REBOOT=1
  fi
  say "MIDI UART: PL011 on GPIO 14 (TXD) / 15 (RXD) as /dev/serial0, Bluetooth off"
}

# ALSA's default device is what the sound engine plays to.
audio() {
  if [ -e "$ETC/asound.conf" ]; then say "audio: $ETC/asound.conf exists, kept"; return; fi
  local card=$AUDIO_CARD
  if [ "$card" = auto ]; then
    card=$(sed -nE 's/^ *[0-9]+ \[([^ ]+) *\]: .*USB.*/\1/p' /proc/asound/cards 2>/dev/null | head -1 || true)
    [ -n "$card" ] || card=$(sed -nE 's/^ *[0-9]+ \[(Headphones) *\].*/\1/p' /proc/asound/cards 2>/dev/null | head -1 || true)
  fi
  if [ -z "$card" ]; then say "audio: no sound card found, ALSA default unchanged"; return; fi
  write_file "$ETC/asound.conf" 0644 <<EOF
# Written by IMPS provision.sh: the sound engine plays to ALSA's default device.
defaults.pcm.card $card
defaults.ctl.card $card
EOF
  say "audio: default card $card"
}

# The shutdown button runs `systemctl poweroff` as the service user, under a unit with
# NoNewPrivileges and no capabilities (so no sudo): logind asks polkit, and this rule
# lets that one user power off, nothing else (not reboot, not ignore inhibitors).
POLKIT_RULE=polkit-1/rules.d/50-imps-poweroff.rules
power() {
  local rule="$ETC/$POLKIT_RULE" content
  content=$(cat <<EOF
// Written by IMPS provision.sh: the box's shutdown button (user $SERVICE_USER) may power off.
// Nothing else: not reboot, not suspend, not overriding inhibitors. See docs/appliance.md.
polkit.addRule(function (action, subject) {
    if ((action.id == "org.freedesktop.login1.power-off" ||
         action.id == "org.freedesktop.login1.power-off-multiple-sessions") &&
        subject.user == "$SERVICE_USER") {
        return polkit.Result.YES;
    }
});
EOF
)
  put_file power "$rule" "$content" || return 0
  say "power: $SERVICE_USER may power off (polkit rule $rule)"
}

# The OSC listeners ask the kernel for a 1 MiB receive buffer each ([osc] receive_buffer in
# box.toml), so a burst of gestures waits in the socket instead of being dropped. Linux caps the
# request at net.core.rmem_max, 208 KiB on Raspberry Pi OS: raise the cap to match.
RMEM_MAX=1048576
SYSCTL_FILE=sysctl.d/60-imps.conf
buffers() {
  local file="$ETC/$SYSCTL_FILE" content
  content="# Written by IMPS provision.sh: room for the box's OSC receive buffers ([osc] receive_buffer).
net.core.rmem_max = $RMEM_MAX"
  put_file buffers "$file" "$content" || return 0
  if [ "$ETC" = /etc ] && command -v sysctl >/dev/null; then run sysctl -q -p "$file"; fi
  say "buffers: net.core.rmem_max = $RMEM_MAX ($file)"
}

# imps.service allows the serial boards' and ALSA's devices by their driver's name in
# /proc/devices (DeviceAllow=char-ttyUSB ...), which systemd looks up once, when the service
# starts. A driver loaded later stays denied: a USB board found at boot after the box had
# started could not be opened ("Operation not permitted"; seen in the VM's reboot test).
# So the drivers of every such group load before any service (systemd-modules-load runs in
# sysinit.target, which imps.service is ordered after). The other groups the unit names are
# built into Raspberry Pi OS's kernel. tests/test_deploy.py keeps both lists equal to the unit's.
DEVICE_DRIVERS=(ttyUSB=usbserial ttyACM=cdc_acm alsa=snd)
# shellcheck disable=SC2034  # not used here: the record that tests/test_deploy.py checks against the unit
BUILT_IN_DEVICES=(gpiochip bcm2835-gpiomem rpi-gpiomem ttyAMA ttyS)
MODULES_FILE="modules-load.d/imps.conf"
drivers() {
  local file="$ETC/$MODULES_FILE" content pair module modules=() skipped=()
  for pair in "${DEVICE_DRIVERS[@]}"; do
    module=${pair#*=}
    # Only what this kernel has (a module, or built in): a missing one would fail the boot's modules-load.
    if modprobe -n -q "$module" 2>/dev/null; then modules+=("$module"); else skipped+=("$module"); fi
  done
  content="# Written by IMPS provision.sh: drivers whose devices imps.service allows by name
# (DeviceAllow=char-...), loaded before it starts so a board plugged in at boot is allowed.
$(printf '%s\n' "${modules[@]}")"
  [ ${#skipped[@]} -eq 0 ] || say "drivers: not in this kernel, left out: ${skipped[*]}"
  if [ ${#modules[@]} -eq 0 ]; then say "drivers: none to load"; return; fi
  put_file drivers "$file" "$content" || return 0
  if [ "$ETC" = /etc ]; then run modprobe -a "${modules[@]}"; fi
  say "drivers: ${modules[*]} load at boot ($file)"
}

# Who may do what over SSH (issue #27). sshd: keys only, no root login (written only when the
# admin has an authorized key, so provisioning never locks the admin out; 10- so it comes before
# a 50-cloud-init.conf that allows passwords: sshd takes the first value it reads).
# sudo: without a password, only the commands deploy.sh runs as root (SUDO_COMMANDS, kept equal
# to deploy.sh's by tests/test_deploy.py); a blanket "ADMIN ALL=(ALL) NOPASSWD: ALL" rule (Raspberry
# Pi OS's 010_pi-nopasswd) becomes "ADMIN ALL=(ALL:ALL) ALL", which asks for the password.
# IMPS_ADMIN_SUDO=keep leaves the blanket rule (the VM test bed drives its box as root through sudo).
SSHD_FILE=ssh/sshd_config.d/10-imps.conf
SUDOERS_FILE=sudoers.d/60-imps-deploy
UNIT_DIR=/etc/systemd/system
DEPLOY_UNITS="imps-sound.service imps.service imps-web.service"
SUDO_COMMANDS=(
  "/usr/bin/install -m 0644 * $UNIT_DIR/imps-sound.service"
  "/usr/bin/install -m 0644 * $UNIT_DIR/imps.service"
  "/usr/bin/install -m 0644 * $UNIT_DIR/imps-web.service"
  "/usr/bin/systemctl daemon-reload"
  "/usr/bin/systemctl enable --quiet $DEPLOY_UNITS"
  "/usr/bin/systemctl is-active imps.service"
  "/usr/bin/systemctl show -p StatusText --value imps.service"
  "/usr/bin/systemctl reset-failed $DEPLOY_UNITS"
  "/usr/bin/systemctl restart $DEPLOY_UNITS"
  "/usr/bin/systemctl status --no-pager $DEPLOY_UNITS"
  "/usr/bin/journalctl -u imps.service -n 20 --no-pager"
  "/usr/bin/journalctl -u imps.service -n 30 --no-pager"
)
access() {
  local home keys content file
  home=$(getent passwd "$ADMIN" | cut -d: -f6)
  keys="$home/.ssh/authorized_keys"
  if [ "$ADMIN" = root ]; then
    say "ssh: provisioned as root, sshd left as it is (log in as the admin user to have it hardened)"
  elif [ -s "$keys" ]; then
    content="# Written by IMPS provision.sh: keys only, no root login.
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes"
    if put_file ssh "$ETC/$SSHD_FILE" "$content"; then
      if [ "$ETC" = /etc ] && command -v sshd >/dev/null; then
        run sshd -t || die "ssh: sshd refuses its config with $ETC/$SSHD_FILE"
        run systemctl reload ssh || run systemctl reload sshd || say "ssh: reload sshd yourself"
      fi
    fi
    say "ssh: keys only, no root login ($ETC/$SSHD_FILE)"
  else
    say "ssh: $ADMIN has no $keys: passwords left on (add a key, then provision again)"
  fi
  [ "$ADMIN" != root ] || return 0
  local cmds
  cmds=$(printf ', \\\n    %s' "${SUDO_COMMANDS[@]}")
  content="# Written by IMPS provision.sh: what deploy.sh runs as root, without a password; nothing else.
Cmnd_Alias IMPS_DEPLOY = ${cmds#, \\
    }
$ADMIN ALL=(root) NOPASSWD: IMPS_DEPLOY"
  if put_file sudo "$ETC/$SUDOERS_FILE" "$content"; then
    [ "$DRY_RUN" = 1 ] || chmod 0440 "$ETC/$SUDOERS_FILE"
    if [ "$DRY_RUN" = 0 ] && command -v visudo >/dev/null && ! visudo -cqf "$ETC/$SUDOERS_FILE"; then
      rm -f "$ETC/$SUDOERS_FILE"; die "sudo: visudo refuses $ETC/$SUDOERS_FILE"
    fi
  fi
  if [ "${IMPS_ADMIN_SUDO:-deploy}" = keep ]; then
    say "sudo: $ADMIN's other sudo rules kept (IMPS_ADMIN_SUDO=keep)"
    return 0
  fi
  for file in "$ETC"/sudoers.d/*; do
    if [ ! -f "$file" ] || [ "$file" = "$ETC/$SUDOERS_FILE" ]; then continue; fi
    if grep -qE "^${ADMIN}[[:space:]]+ALL[[:space:]]*=[[:space:]]*\(ALL(:ALL)?\)[[:space:]]+NOPASSWD:[[:space:]]*ALL" "$file"; then
      run sed -i -E "s/^(${ADMIN}[[:space:]]+ALL[[:space:]]*=[[:space:]]*\(ALL(:ALL)?\))[[:space:]]+NOPASSWD:[[:space:]]*ALL/$ADMIN ALL=(ALL:ALL) ALL/" "$file"
    fi
  done
  say "sudo: $ADMIN runs deploy's commands without a password ($ETC/$SUDOERS_FILE), anything else with it"
}

# A directory with this mode and owner, made or fixed only when it is not so already.
ensure_dir() {
  local mode=$1 owner=$2 d
  shift 2
  for d in "$@"; do
    [ "$(stat -c '%a %U:%G' "$d" 2>/dev/null)" = "${mode#0} $owner" ] ||
      run install -d -m "$mode" -o "${owner%:*}" -g "${owner#*:}" "$d"
  done
}

layout() {
  local admin_group
  admin_group=$(id -gn "$ADMIN")
  ensure_dir 0755 "$ADMIN:$admin_group" "$PREFIX" "$PREFIX/releases" "$PREFIX/envs"
  ensure_dir 0750 "$SERVICE_USER:$SERVICE_USER" "$STATE"
  # setgid: files made by the box or the admin stay in the service group.
  ensure_dir 2770 "$SERVICE_USER:$SERVICE_USER" "$STATE/logs" "$STATE/models" "$STATE/recordings"
  # Group-writable (setgid) for the page, which saves an edited box.toml by replacing it (docs/web.md).
  ensure_dir 2775 "root:$SERVICE_USER" "$ETC/imps"
  # The model the box plays: a link deploy.sh moves when MODEL= is given; until
  # then the release's bundled default.
  local ext
  for ext in tflite json; do
    [ -L "$STATE/models/current.$ext" ] || [ -e "$STATE/models/current.$ext" ] ||
      run ln -s "$PREFIX/current/device/imps/models/default.$ext" "$STATE/models/current.$ext"
  done
  if [ -e "$ETC/imps/box.toml" ]; then
    say "config: $ETC/imps/box.toml exists, kept"
  else
    write_file "$ETC/imps/box.toml" 0644 <<EOF
# IMPS box configuration; every key and its default: device/imps/box/config.py in the release.
# Reload after editing: sudo systemctl reload imps
[model]
path = "$STATE/models/current.tflite"

# D = dt plus the controls: the bundled model's 4 is the sensor board's 3 channels
# (SENSOR_COUNT in firmware/imps_sensor_board/config.h). A model of another
# dimension needs this changed, and the board's channels mapped ([serial] channels).
[engine]
dimension = 4

[log]
directory = "$STATE/logs"

[status]
terminal = false
file = "/run/imps/status.json"   # for the box's page (imps-web.service)

# What the box plays, as the sound engine renders it, to a WAV file the box
# finishes when it stops (the sound engine may write only in $STATE/recordings).
# [recording]
# path = "$STATE/recordings/take.wav"

# The sensor board on USB (firmware/), found again by itself after unplugging.
[serial]
enabled = true
${SERIAL_PORT:+port = [\"$SERIAL_PORT\"]}

# Model events back to the board's servo lever.
[actuators]
enabled = true

# Mode and shutdown buttons and mode LEDs on the Pi header (docs/hardware.md):
# "auto" picks lgpio on a Pi 5 or trixie, RPi.GPIO on older Pis with bookworm.
[gpio]
backend = "auto"
EOF
  fi
  say "layout: $PREFIX/{releases,envs,current}, $STATE/{logs,models,recordings}, $ETC/imps"
}

# The page (imps-web.service): a per-box password, generated and printed once, kept only as a
# salted scrypt hash in the format of device/imps/web/auth.py (tests/test_deploy.py verifies
# this one there), and a self-signed certificate for HTTPS, its fingerprint printed.
web() {
  local dir=$STATE/web password
  ensure_dir 0750 "$SERVICE_USER:$SERVICE_USER" "$dir"
  if [ -e "$dir/password" ]; then
    say "web: password in place ($dir/password; change it with imps web password --file $dir/password)"
  elif [ "$DRY_RUN" = 1 ]; then
    echo "+ write $dir/password (a generated password's scrypt hash, mode 0600)"
  else
    password=$(python3 - "$dir/password" <<'PY'
import hashlib, os, secrets, sys
alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
password = "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(5))
salt = os.urandom(16)
digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, f"scrypt${2**14}$8$1${salt.hex()}${digest.hex()}\n".encode())
os.close(fd)
print(password)
PY
    ) || die "web: cannot write $dir/password"
    echo "+ write $dir/password (mode 0600)"
    run chown "$SERVICE_USER:$SERVICE_USER" "$dir/password" || die "web: cannot chown $dir/password"
    say "web: the page's password, shown this once (kept only as a hash): $password"
  fi
  if [ -e "$dir/cert.pem" ]; then
    say "web: certificate in place ($dir/cert.pem)"
  else
    local name
    name=$(hostname)
    run openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
      -subj "/CN=$name" -addext "subjectAltName=DNS:$name,DNS:$name.local,IP:127.0.0.1" \
      -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null || die "web: cannot make the certificate"
    run chown "$SERVICE_USER:$SERVICE_USER" "$dir/key.pem" "$dir/cert.pem" || die "web: cannot chown the certificate"
    run chmod 0600 "$dir/key.pem" || die "web: cannot chmod $dir/key.pem"
    [ "$DRY_RUN" = 1 ] || say "web: certificate $(openssl x509 -noout -fingerprint -sha256 -in "$dir/cert.pem")"
  fi
}

on_box() {
  [ "$(id -u)" = 0 ] || [ "$DRY_RUN" = 1 ] || die "must run as root on the box"
  ADMIN=${SUDO_USER:-$(id -un)}
  [ "$DRY_RUN" = 0 ] || say "dry run: nothing is changed"
  packages
  users
  serial
  midi_uart
  audio
  power
  buffers
  drivers
  layout
  web
  access
  say "provisioned; next: make deploy HOST=$ADMIN@$(hostname)"
  [ "$REBOOT" = 0 ] || say "reboot the box once for the serial settings to take effect"
}

# --- on the workstation ---------------------------------------------------------------

main() {
  local flags=()
  if [ "${1:-}" = --on-box ]; then shift; [ "${1:-}" = --dry-run ] && DRY_RUN=1; on_box; return; fi
  if [ "${1:-}" = --dry-run ]; then DRY_RUN=1; flags=(--dry-run); shift; fi
  local host=${1:-}
  if [ -z "$host" ]; then
    [ "$DRY_RUN" = 1 ] || die "no HOST given: make provision HOST=user@host (a fresh Raspberry Pi OS Lite)"
    on_box
    return
  fi
  local opts err
  read -ra opts <<<"${IMPS_SSH_OPTS:-}"
  opts+=(-o BatchMode=yes -o ConnectTimeout=5)
  err=$(ssh "${opts[@]}" "$host" true 2>&1 </dev/null) || die "cannot reach $host over ssh: ${err:-no answer}"
  local vars
  vars=$(printf 'IMPS_PREFIX=%q IMPS_STATE=%q IMPS_USER=%q IMPS_AUDIO_CARD=%q IMPS_SERIAL_PORT=%q IMPS_ETC=%q IMPS_GROUPS=%q IMPS_MIDI_UART=%q IMPS_ADMIN_SUDO=%q' \
    "$PREFIX" "$STATE" "$SERVICE_USER" "$AUDIO_CARD" "$SERIAL_PORT" "$ETC" "${GROUPS_NEEDED[*]}" "${IMPS_MIDI_UART:-0}" \
    "${IMPS_ADMIN_SUDO:-deploy}")
  # After a first run the login's sudo asks for a password for anything but deploy's commands.
  ssh "${opts[@]}" "$host" "sudo -n true" </dev/null 2>/dev/null ||
    die "sudo on $host needs a password now (provisioned before): run it there, sudo bash provision.sh"
  # shellcheck disable=SC2029  # built here on purpose
  ssh "${opts[@]}" "$host" "sudo -n env $vars bash -s -- --on-box ${flags[*]}" <"${BASH_SOURCE[0]}"
}

main "$@"
