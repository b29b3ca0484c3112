#!/usr/bin/env bash
# Inside the new root ($1): the login, the network, the console. Run by mmdebstrap.
set -euo pipefail
root=$1
echo imps-vm >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 imps-vm\n' >"$root/etc/hosts"
printf 'LABEL=imps-root / ext4 defaults,errors=remount-ro 0 1\n' >"$root/etc/fstab"

# The admin login, as Raspberry Pi Imager makes it: `pi`, your key, sudo without a password.
chroot "$root" useradd --create-home --shell /bin/bash --groups sudo pi
install -d -m 0700 -o 1000 -g 1000 "$root/home/pi/.ssh"
printf '%s\n' "$KEY" >"$root/home/pi/.ssh/authorized_keys"
chown 1000:1000 "$root/home/pi/.ssh/authorized_keys"; chmod 0600 "$root/home/pi/.ssh/authorized_keys"
echo 'pi ALL=(ALL) NOPASSWD: ALL' >"$root/etc/sudoers.d/010_pi-nopasswd"
chmod 0440 "$root/etc/sudoers.d/010_pi-nopasswd"

# QEMU's user-mode network: a fixed address, nothing waits for it (the box on
# stage has no network either; the guest reaches only the host's forwarded ssh).
mkdir -p "$root/etc/systemd/network"
cat >"$root/etc/systemd/network/10-qemu.network" <<'NET'
[Match]
Name=en* eth*
[Network]
Address=10.0.2.15/24
Gateway=10.0.2.2
LinkLocalAddressing=no
IPv6AcceptRA=no
NET
chroot "$root" systemctl enable systemd-networkd.service
chroot "$root" systemctl mask systemd-networkd-wait-online.service
# No DNS inside: sshd must not wait on reverse lookups.
echo 'UseDNS no' >"$root/etc/ssh/sshd_config.d/imps-vm.conf"
# The journal survives reboots and power cuts (the tests read earlier boots).
mkdir -p "$root/var/log/journal"
# Quieter, quicker boots: nothing of these is on a box.
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer man-db.timer; do
  chroot "$root" systemctl disable "$u" 2>/dev/null || true
done
chroot "$root" systemctl enable ssh.service
# The VM's sound card: ALSA's loopback, whose capture side the tests record
# (a Pi has its headphone jack or a USB card instead).
echo snd-aloop >"$root/etc/modules-load.d/imps-vm-sound.conf"
# ssh logins without a logind session or a per-user manager: under emulation
# pam_systemd made the first login take about a minute (nothing here needs one).
sed -i '/pam_systemd\.so/d' "$root/etc/pam.d/common-session"
