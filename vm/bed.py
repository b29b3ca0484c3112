"""The VM test bed: a Debian arm64 box under qemu-system-aarch64, driven from outside.

Only the standard library, so `make vm` needs no environment and the tests
import it as they are. One :class:`VM` is one QEMU process on a copy-on-write
overlay of the cached image (vm/image.sh), with:

- ssh on 127.0.0.1:<port> as ``pi`` (user-mode network, ``restrict=on``: the
  guest reaches nothing but this forwarded port);
- the QEMU monitor on a unix socket (``monitor("device_del board0")``);
- optionally a USB serial adapter (``qemu-xhci`` + ``usb-serial``) whose host
  side is a tty path, e.g. the pty of :class:`imps.sim.board.SimulatedBoard`;
- the serial console in ``console.log`` beside the overlay.

    python3 vm/bed.py up [--suite trixie] [--board PTY]   boot, leave running, print the ssh line
    python3 vm/bed.py down                                  power it off (or kill it)
    python3 vm/bed.py ssh [CMD..]                           run a command on it
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "vm"
KEY = BUILD / "id_ed25519"
USB_SERIAL_ID = "board0"
# The USB serial adapter's name under /dev/serial/by-id (QEMU's, not an Arduino's):
# the board's port for provisioning (IMPS_SERIAL_PORT).
BY_ID_GLOB = "/dev/serial/by-id/usb-QEMU_QEMU_USB_SERIAL*"


def _folder_printed_by(script: str, arg: str) -> Path:
    """Run one of vm/'s build scripts; the folder it prints last (its progress goes to stderr)."""
    out = subprocess.run(["bash", str(ROOT / "vm" / script), arg], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return ROOT / out.strip().splitlines()[-1]


def build_image(suite: str = "trixie") -> Path:
    """The cached image folder for ``suite``, built first if needed (root only)."""
    return _folder_printed_by("image.sh", suite)


def build_wheels(image: Path) -> Path:
    """The box's wheels (deploy's cache folder), its source packages compiled first
    under qemu-user in the image's root if needed (vm/wheels.sh; root only)."""
    return _folder_printed_by("wheels.sh", str(image))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ssh_options(port: int) -> List[str]:
    # The image's host key is new with every image build: nothing to pin.
    # One shared connection (ControlMaster): under emulation a fresh login costs
    # about a minute (key exchange, PAM, a user manager), a command on it a second.
    return ["-i", str(KEY), "-p", str(port), "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=30",
            "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=12",
            "-o", "ControlMaster=auto", "-o", f"ControlPath={control_path(port)}", "-o", "ControlPersist=3600"]


def control_path(port: int) -> str:
    return f"/tmp/imps-vm-ssh-{port}"


def drop_connection(port: int) -> None:
    """Forget the shared ssh connection (the VM is gone or going)."""
    subprocess.run(["ssh", "-o", f"ControlPath={control_path(port)}", "-O", "exit", "x"],
                   capture_output=True, stdin=subprocess.DEVNULL)
    Path(control_path(port)).unlink(missing_ok=True)


# Emulation runs Python about 20x slower than a Pi 4: the box's imports alone take 40-60 s
# in the VM (a few seconds on a Pi), so the unit's start timeout (60 s) and watchdog (10 s)
# are scaled for the VM only, by a drop-in; the product's unit is deployed unchanged.
EMULATION_DROPIN = "/etc/systemd/system/imps.service.d/10-vm-emulation.conf"
EMULATION_UNIT = "[Service]\nTimeoutStartSec=600\nWatchdogSec=60\n"
# deploy.sh's wait for READY (IMPS_READY_TIMEOUT), scaled the same way.
READY_TIMEOUT = "600"


class VMError(RuntimeError):
    pass


class VM:
    """One QEMU process; ``start()``, ``wait_ssh()``, ``ssh()``, ``monitor()``, ``kill()``."""

    def __init__(self, image: Path, workdir: Path, *, board: Optional[str] = None,
                 port: Optional[int] = None, memory: int = 1024, cpus: int = 2):
        self.image = Path(image)
        self.workdir = Path(workdir)
        self.board = board
        self.port = port or free_port()
        self.memory = memory
        self.cpus = cpus
        self.disk = self.workdir / "disk.qcow2"
        self.console = self.workdir / "console.log"
        self.monitor_path = self.workdir / "monitor.sock"
        self.pidfile = self.workdir / "qemu.pid"
        self.proc: Optional[subprocess.Popen] = None
        self.started_at: Optional[float] = None     # time.monotonic() at the last QEMU start

    @property
    def host(self) -> str:
        return "pi@127.0.0.1"

    @property
    def ssh_opts(self) -> str:
        """For deploy.sh and provision.sh: IMPS_SSH_OPTS."""
        return " ".join(shlex.quote(o) for o in ssh_options(self.port))

    def fresh_disk(self) -> None:
        """A new overlay over the cached image: the image itself is never written."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.disk.unlink(missing_ok=True)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw",
                        "-b", str((self.image / "disk.raw").resolve()), str(self.disk)], check=True)

    def command(self) -> List[str]:
        cmd = ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72",
               "-m", str(self.memory), "-smp", str(self.cpus), "-accel", "tcg,tb-size=128",
               "-kernel", str(self.image / "vmlinuz"), "-initrd", str(self.image / "initrd.img"),
               "-append", "root=LABEL=imps-root rw console=ttyAMA0 quiet",
               "-drive", f"if=none,id=root,format=qcow2,file={self.disk}",
               "-device", "virtio-blk-pci,drive=root",
               "-netdev", f"user,id=net,restrict=on,hostfwd=tcp:127.0.0.1:{self.port}-:22",
               "-device", "virtio-net-pci,netdev=net,romfile=",
               "-device", "virtio-rng-pci",
               "-display", "none", "-serial", f"file:{self.console}",
               "-monitor", f"unix:{self.monitor_path},server,nowait",
               "-pidfile", str(self.pidfile),
               "-device", "qemu-xhci,id=xhci"]
        if self.board:
            cmd += ["-chardev", f"serial,id=board,path={self.board}",
                    "-device", self.usb_serial_device()]
        return cmd

    def usb_serial_device(self) -> str:
        return f"usb-serial,id={USB_SERIAL_ID},chardev=board,bus=xhci.0,always-plugged=on"

    def start(self) -> "VM":
        if not self.disk.exists():
            self.fresh_disk()
        self.monitor_path.unlink(missing_ok=True)
        log = open(self.workdir / "qemu.log", "ab")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ssh(self, timeout: float = 1200) -> float:
        """Seconds from QEMU start until ssh answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and not self.alive():
                raise VMError(f"QEMU exited ({self.proc.returncode}) before ssh answered; "
                              f"see {self.workdir / 'qemu.log'} and {self.console}")
            try:
                r = subprocess.run(["ssh", *ssh_options(self.port), self.host, "true"],
                                   stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
            except subprocess.TimeoutExpired:
                continue
            if r.returncode == 0:
                return time.monotonic() - self.started_at
            time.sleep(1)
        raise VMError(f"no ssh on 127.0.0.1:{self.port} within {timeout:.0f} s; console: {self.console_tail()}")

    def ssh(self, command: str, *, check: bool = True, timeout: float = 300,
            input: Optional[bytes] = None) -> subprocess.CompletedProcess:
        """Run a shell command on the box as ``pi`` (``sudo`` works without a password)."""
        r = subprocess.run(["ssh", *ssh_options(self.port), self.host, command], input=input,
                           stdin=None if input is not None else subprocess.DEVNULL,
                           capture_output=True, timeout=timeout)
        if check and r.returncode != 0:
            raise VMError(f"on the box: {command!r} exited {r.returncode}\n"
                          f"stdout: {r.stdout.decode(errors='replace')[-3000:]}\n"
                          f"stderr: {r.stderr.decode(errors='replace')[-3000:]}")
        return r

    def scale_for_emulation(self) -> None:
        """The emulated box's slower clock, as a drop-in for imps.service (EMULATION_DROPIN)."""
        self.ssh(f"sudo mkdir -p {os.path.dirname(EMULATION_DROPIN)} && "
                 f"printf {shlex.quote(EMULATION_UNIT)} | sudo tee {EMULATION_DROPIN} >/dev/null")

    def out(self, command: str, **kw) -> str:
        return self.ssh(command, **kw).stdout.decode(errors="replace")

    def monitor(self, command: str, timeout: float = 30) -> str:
        """One HMP command on the QEMU monitor; its reply."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(timeout)
            s.connect(str(self.monitor_path))
            banner = self._read_until_prompt(s)
            s.sendall(command.encode() + b"\n")
            reply = self._read_until_prompt(s)
        del banner
        lines = reply.replace("\r", "").splitlines()
        return "\n".join(line for line in lines if line.strip() not in (command, "(qemu)")).strip()

    @staticmethod
    def _read_until_prompt(s: socket.socket) -> str:
        buf = b""
        while not buf.rstrip().endswith(b"(qemu)"):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        return buf.decode(errors="replace")

    def kill(self) -> None:
        """Pull the plug: SIGKILL to QEMU, nothing flushed in the guest."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        drop_connection(self.port)

    def wait_exit(self, timeout: float) -> Optional[int]:
        """QEMU's exit code once the guest has powered off, or None if it is still up."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 120) -> None:
        """Power off cleanly (kill if it will not)."""
        if not self.alive():
            return
        self.ssh("sudo systemctl poweroff", check=False, timeout=60)
        if self.wait_exit(timeout) is None:
            self.kill()
        drop_connection(self.port)

    def console_tail(self, n: int = 2000) -> str:
        try:
            return self.console.read_text(errors="replace")[-n:]
        except OSError:
            return "(no console log)"


# --- make vm: one box left running -------------------------------------------------

STATE = BUILD / "running.json"
HOST_MK = BUILD / "host.mk"


def cmd_up(args) -> int:
    image = build_image(args.suite)
    workdir = BUILD / f"run-{args.suite}"
    if STATE.exists():
        st = json.loads(STATE.read_text())
        if _pid_alive(st.get("pid")):
            print(f"a VM is already running: ssh {st['ssh']}   (make vm-down to stop it)")
            return 0
    vm = VM(image, workdir, board=args.board, port=args.port)
    made_for = workdir / "image.txt"     # an overlay is only good on the image it was made over
    if args.fresh or not vm.disk.exists() or not made_for.exists() or made_for.read_text() != image.name:
        vm.fresh_disk()
        made_for.write_text(image.name)
    t0 = time.monotonic()
    vm.start()
    print(f"== booting {image.name} (console: {vm.console})", flush=True)
    boot = vm.wait_ssh()
    vm.scale_for_emulation()
    ssh_line = f"{vm.ssh_opts} {vm.host}"
    STATE.write_text(json.dumps(dict(pid=vm.proc.pid, port=vm.port, ssh=ssh_line, workdir=str(workdir),
                                     monitor=str(vm.monitor_path), board=args.board)))
    HOST_MK.write_text(f"# Written by vm/bed.py up: make ... HOST=vm means this VM.\n"
                       f"override HOST := {vm.host}\nexport IMPS_SSH_OPTS := {vm.ssh_opts}\n"
                       f"export IMPS_SERIAL_PORT := {BY_ID_GLOB}\nexport IMPS_READY_TIMEOUT := {READY_TIMEOUT}\n")
    print(f"== up: ssh answered {boot:.1f} s after QEMU started ({time.monotonic() - t0:.1f} s)")
    print("   make provision HOST=vm && make deploy HOST=vm   (HOST=vm: this VM, see build/vm/host.mk)")
    print("   make vm-ssh    (a shell on it)       make vm-down   (power it off)")
    return 0


def _pid_alive(pid) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def cmd_down(args) -> int:
    if not STATE.exists():
        print("no VM running")
        return 0
    st = json.loads(STATE.read_text())
    pid = st["pid"]
    if _pid_alive(pid):
        subprocess.run(["ssh", *ssh_options(st["port"]), "pi@127.0.0.1", "sudo systemctl poweroff"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        deadline = time.monotonic() + 120
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(1)
        if _pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)
    drop_connection(st["port"])
    STATE.unlink()
    HOST_MK.unlink(missing_ok=True)
    print("VM powered off")
    return 0


def cmd_ssh(args) -> int:
    if not STATE.exists():
        print("no VM running: make vm", file=sys.stderr)
        return 1
    st = json.loads(STATE.read_text())
    return subprocess.call(["ssh", *ssh_options(st["port"]), "pi@127.0.0.1", *args.command])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="vm/bed.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="build (once) and boot the VM, leave it running")
    up.add_argument("--suite", default="trixie", choices=["trixie", "bookworm"])
    up.add_argument("--board", help="a tty path for the USB serial adapter's host side")
    up.add_argument("--port", type=int, help="ssh port on 127.0.0.1 (default: a free one)")
    up.add_argument("--fresh", action="store_true", help="start from the pristine image")
    up.set_defaults(fn=cmd_up)
    sub.add_parser("down", help="power the VM off").set_defaults(fn=cmd_down)
    s = sub.add_parser("ssh", help="run a command on the VM (a shell without one)")
    s.add_argument("command", nargs=argparse.REMAINDER)
    s.set_defaults(fn=cmd_ssh)
    args = p.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
