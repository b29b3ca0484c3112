"""The VM test bed's fixtures: one booted, provisioned and deployed box per session.

The box is Debian arm64 under qemu-system-aarch64 (vm/bed.py, image from
vm/image.sh, cached under build/vm/). Its sensor board is the simulated board
on this side of a QEMU usb-serial adapter, speaking what the shipped firmware's
config.h says (channel and actuator counts, firmware version). Every stage's
wall time goes to build/vm/timings.json and the end of the pytest report.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "vm"))
import bed  # noqa: E402
from board import firmware_settings, sketch_board  # noqa: E402,F401


SUITE = os.environ.get("IMPS_VM_SUITE", "trixie")
TIMINGS: dict = {}
BY_ID_GLOB = bed.BY_ID_GLOB


def timed(name: str, seconds: float) -> None:
    TIMINGS[name] = round(seconds, 1)
    out = REPO / "build" / "vm" / "timings.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(TIMINGS, indent=1) + "\n")


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.write_sep("=", "VM test bed: wall time of each stage (s)")
        for name, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{name:<44} {seconds:>8}")


@pytest.fixture(autouse=True)
def _time_each_test(request):
    t = time.monotonic()
    yield
    if "tests/vm/" in str(request.node.fspath).replace(os.sep, "/"):
        timed(f"test {request.node.name}", time.monotonic() - t)


def wait_for(condition, timeout: float, what: str, interval: float = 0.5):
    """condition()'s first truthy value, polled until timeout (generous: the box is emulated)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def image():
    t = time.monotonic()
    path = bed.build_image(SUITE)
    timed(f"image {SUITE} (build or cache hit)", time.monotonic() - t)
    made = re.search(r"built in (\d+) s", (path / ".complete").read_text())
    if made:   # when the cached image was built (vm/image.sh writes it)
        timed(f"image {SUITE}: its build, when it was made", float(made.group(1)))
    return path


@pytest.fixture(scope="session")
def wheels(image):
    """Compiled under qemu-user on this side before the first deploy (vm/wheels.sh)."""
    t = time.monotonic()
    path = bed.build_wheels(image)
    timed("box wheels under qemu-user (build or cache hit)", time.monotonic() - t)
    return path


@pytest.fixture(scope="session")
def board(tmp_path_factory):
    """The simulated board speaking what the shipped sketch sends (vm/board.py)."""
    b = sketch_board(tmp_path_factory.mktemp("board") / "board")
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def vm(image, board):
    workdir = REPO / "build" / "vm" / f"test-{SUITE}"
    machine = bed.VM(image, workdir, board=os.path.realpath(board.link))
    machine.fresh_disk()
    machine.start()
    try:
        timed("boot to ssh (fresh image)", machine.wait_ssh())
        machine.scale_for_emulation()
        yield machine
    finally:
        machine.kill()


def make(target: str, machine: bed.VM, *extra, timeout: float = 1800) -> subprocess.CompletedProcess:
    """`make TARGET HOST=...` of this project, as a user runs it; output echoed.
    QEMU's USB serial adapter is not an Arduino: its /dev/serial/by-id name is the
    board's port (IMPS_SERIAL_PORT, as for any other board)."""
    # IMPS_ADMIN_SUDO=keep: the suite drives the box as root through pi's sudo (journalctl, tee, nsenter);
    # deploy's own sudo list is checked against its calls in tests/test_deploy.py.
    env = dict(os.environ, IMPS_SSH_OPTS=machine.ssh_opts, IMPS_SERIAL_PORT=BY_ID_GLOB,
               IMPS_READY_TIMEOUT=bed.READY_TIMEOUT, IMPS_ADMIN_SUDO="keep")
    r = subprocess.run(["make", "-s", "-C", str(REPO), target, f"HOST={machine.host}", *extra],
                       env=env, capture_output=True, text=True, timeout=timeout)
    sys.stdout.write(f"--- make {target}\n{r.stdout}{r.stderr}")
    return r


@pytest.fixture(scope="session")
def box(vm, wheels):
    """Provisioned and deployed by the project's own commands; playing."""
    t = time.monotonic()
    prov = make("provision", vm)
    timed("make provision", time.monotonic() - t)
    assert prov.returncode == 0, prov.stdout + prov.stderr
    t = time.monotonic()
    dep = make("deploy", vm)
    timed("make deploy (first: environment from the wheels)", time.monotonic() - t)
    assert dep.returncode == 0, dep.stdout + dep.stderr
    return dict(provision=prov.stdout + prov.stderr, deploy=dep.stdout + dep.stderr)


def service(vm: bed.VM, prop: str, unit: str = "imps.service") -> str:
    return vm.out(f"systemctl show -p {prop} --value {unit}").strip()


def newest_log(vm: bed.VM) -> str:
    return vm.out("sudo sh -c 'ls -1t /var/lib/imps/logs/*.log | head -1'").strip()


def log_sources(vm: bed.VM, path: str) -> dict:
    """How many lines of each source a log holds now."""
    text = vm.out(f"sudo cut -d, -f2 {path} | sort | uniq -c")
    return {src: int(n) for n, src in (line.split() for line in text.splitlines() if line.strip())}
