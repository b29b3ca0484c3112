"""`imps soak`: run the real box for minutes and break it at random; check it recovers.

The soak starts ``imps run`` as systemd would (its own notify socket with a
watchdog; restarted after a kill or a stopped watchdog), with a simulated
sensor board on a real pseudo-terminal and a performer on real UDP, and
injects one fault after another, at random:

- ``kill -9``: SIGKILL, then start it again (as ``Restart=on-failure`` does);
- ``unplug``: the board's pty vanishes for a while, then comes back;
- ``garbage``: random bytes on the serial line;
- ``flood``: thousands of /interface events as fast as the socket takes them;
- ``bad model``: SIGHUP with the config pointing at a damaged, a wrong-sized or
  a directory "model"; the box must refuse it and play on; then the good one back;
- ``bad config``: SIGHUP with a broken config file (binary, out of range,
  unknown key, not TOML); the same;
- ``disk full``: the log's file system fills up (a 64 MiB tmpfs when root,
  else a file-size limit on the box process, ``prlimit``), then space returns;
- ``control fuzz``: random OSC packets at the control port, then the
  settings put back by valid messages.

Every performer event is numbered (the number is coded into its control
values: board channels carry it exactly as u16 fixed point, OSC floats carry
the same fractions), so at the end each event the soak sent is found in the
interaction logs or put in the one category that explains its absence (sent
while the box was down, in flight at a kill -9, on a serial port the box had
not yet reopened, lost to a full disk and marked by a gap line, or counted by
the box as lost input). ``unaccounted`` must be 0, every fault must recover
and no thread may die. The table is printed at the end (and written with
``--report``).
"""
from __future__ import annotations

import argparse
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..box.config import DEFAULT_MODEL
from ..errors import ImpsError
from ..freeport import free_port
from ..io.interaction_log import PERFORMER, read_log
from ..io.osc import INTERFACE, encode_floats
from ..io.serial_frames import FIXED_ONE
from ..sim.board import SimulatedBoard
from ..threads import join_or_complain

FAULTS = ("kill -9", "unplug", "garbage", "flood", "bad model", "bad config", "disk full", "control fuzz")
#: An event sent this long before a kill -9 may be lost in flight (socket buffer, inbox, log queue).
IN_FLIGHT = 0.3
SERIAL_BASE = 1 << 30          # serial events are numbered from here, OSC events from 0
RECOVER_TIMEOUT = 30.0
CONTROL_ADDRESSES = ("/mode", "/reset", "/pause", "/pi_temperature", "/sigma_temperature", "/time_scale",
                     "/threshold", "/nowhere", "/interface", "")


class SoakError(ImpsError):
    pass


# -- numbered events ------------------------------------------------------------------

def encode_number(n: int) -> list[float]:
    """Three controls in [0, 1] that carry n (< 2^32) and a check, as u16 fractions."""
    lo, hi, check = n & 0xFFFF, (n >> 16) & 0xFFFF, (n * 40503 + 12345) & 0xFFFF
    return [lo / FIXED_ONE, hi / FIXED_ONE, check / FIXED_ONE]


def decode_number(values) -> int | None:
    if len(values) < 3:
        return None
    lo, hi, check = (int(round(float(v) * FIXED_ONE)) for v in values[:3])
    n = lo | (hi << 16)
    return n if check == (n * 40503 + 12345) & 0xFFFF else None


class NumberedBoard(SimulatedBoard):
    """The simulated board replaying numbered rows; records which numbers reached the pty,
    and sends only once the box has opened the port (a USB board sends nothing to a closed port)."""

    def __init__(self, rate: float, count: int, link: Path):
        rows = np.zeros((count, 4), dtype=np.float64)
        rows[:, 0] = 1.0 / rate
        for i in range(count):
            rows[i, 1:] = encode_number(SERIAL_BASE + i)
        super().__init__(rows, link, loop=False, heartbeat=0.05)
        self.rows = rows                 # float64: the u16 fractions exactly
        self.delivered: dict[int, float] = {}
        self._opened = False
        self._quiet = False

    def plug(self) -> str:
        self._opened = False
        return super().plug()

    def quiet(self) -> None:
        """Stop sending (as if the performer let go), keeping the cable in."""
        self._quiet = True
        self._opened = False

    def _poll_input(self, wait: float) -> None:
        hellos = self.counters["hellos"]
        super()._poll_input(wait)
        if self.counters["hellos"] > hellos and not self._quiet:
            self._opened = True

    def _send_values(self, values) -> None:
        if not self._opened:
            return
        sent = self.counters["frames_sent"]
        super()._send_values(values)
        n = decode_number(values)
        if self.counters["frames_sent"] > sent and n is not None and n not in self.delivered:
            self.delivered[n] = time.monotonic()


# -- the box under test ---------------------------------------------------------------

class BoxProcess:
    """`imps run` with its own notify socket and watchdog (WatchdogSec=10, as in imps.service),
    restarted like systemd would."""

    def __init__(self, work: Path, config: Path, watchdog: float = 10.0):
        self.work = work
        self.config = config
        self.watchdog = watchdog
        self.notify_path = work / "notify"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.stderr_path = work / "box.stderr"
        self.proc: subprocess.Popen | None = None
        self.runs: list[dict] = []       # per process: last STATUS, exit code, why it ended
        self.ready = threading.Event()
        self.status = ""
        self.last_ping = 0.0
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="soak-notify", daemon=True)
        self._thread.start()

    def start(self) -> None:
        env = dict(os.environ, NOTIFY_SOCKET=str(self.notify_path),
                   WATCHDOG_USEC=str(int(self.watchdog * 1e6)), PYTHONUNBUFFERED="1")
        env.pop("WATCHDOG_PID", None)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.ready.clear()
        with open(self.stderr_path, "ab") as err:
            err.write(f"\n=== soak: starting imps run at {time.strftime('%H:%M:%S')}\n".encode())
            err.flush()
            self.proc = subprocess.Popen([sys.executable, "-m", "imps", "run", "--config", str(self.config), "-q"],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env)
        self.last_ping = time.monotonic()
        self.runs.append({"pid": self.proc.pid, "status": "", "exit": None, "ended_by": None})

    def _listen(self) -> None:
        self.notify.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = self.notify.recv(65536).decode(errors="replace")
            except OSError:
                continue
            for line in data.split("\n"):
                key, _, value = line.partition("=")
                with self.lock:
                    if key == "READY" and value == "1":
                        self.ready.set()
                    elif key == "STATUS":
                        self.status = value
                        if self.runs:
                            self.runs[-1]["status"] = value
                    elif key == "WATCHDOG" and value == "1":
                        self.last_ping = time.monotonic()

    def wait_ready(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.ready.wait(0.1):
                return True
            if self.proc is not None and self.proc.poll() is not None:
                return False
        return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig) -> None:
        if self.alive():
            self.proc.send_signal(sig)

    def kill(self, why: str) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.wait()
        self.runs[-1].update(exit=self.proc.returncode, ended_by=why)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.runs[-1]["ended_by"] is None:
            self.runs[-1].update(exit=self.proc.returncode, ended_by="soak end (SIGTERM)")
        return self.proc.returncode

    def close(self) -> None:
        self._stop.set()
        join_or_complain(self._thread, 1, "soak notify reader")
        self.notify.close()

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""


# -- the disk -------------------------------------------------------------------------

class Disk:
    """Where the logs go, and how to fill it: a 64 MiB tmpfs when root (room for about two hours of soak logs), else
    a file-size limit."""

    def __init__(self, work: Path):
        self.path = work / "disk"
        self.path.mkdir()
        self.mounted = False
        self.how = "file-size limit (prlimit RLIMIT_FSIZE) on the box process"
        if os.geteuid() == 0 and shutil.which("mount"):
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(self.path)],
                               capture_output=True, text=True)
            if r.returncode == 0:
                self.mounted = True
                self.how = "a real 64 MiB tmpfs filled to the last byte"
        self.logs = self.path / "logs"
        self.logs.mkdir()
        self._filler = self.path / "filler"

    def fill(self, pid: int) -> None:
        if self.mounted:
            with open(self._filler, "wb", buffering=0) as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                except OSError:
                    pass
                try:
                    while True:
                        f.write(b"\0" * 512)
                except OSError:
                    pass
        else:
            newest = max(self.logs.iterdir(), key=lambda p: p.stat().st_mtime, default=None)
            size = newest.stat().st_size if newest is not None else 0
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))

    def free(self, pid: int | None) -> None:
        if self.mounted:
            self._filler.unlink(missing_ok=True)
        elif pid is not None:
            try:
                resource.prlimit(pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            except (ProcessLookupError, OSError):
                pass

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


# -- the soak -------------------------------------------------------------------------

class LogTail:
    """The performer numbers in the interaction logs so far, read incrementally (whole lines only)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._offsets: dict[Path, int] = {}
        self._numbers: set[int] = set()
        self._lock = threading.Lock()

    def numbers(self) -> set[int]:
        with self._lock:
            for path in sorted(self.directory.glob("*-mdrnn.log")):
                try:
                    with open(path, "rb") as f:
                        f.seek(self._offsets.get(path, 0))
                        data = f.read()
                except OSError:
                    continue
                end = data.rfind(b"\n") + 1
                self._offsets[path] = self._offsets.get(path, 0) + end
                for line in data[:end].split(b"\n"):
                    parts = line.split(b",")
                    if len(parts) == 5 and parts[1] == PERFORMER.encode():
                        try:
                            n = decode_number([float(v) for v in parts[2:]])
                        except ValueError:
                            continue
                        if n is not None:
                            self._numbers.add(n)
            return set(self._numbers)


@dataclass
class FaultRecord:
    injected: int = 0
    recovered: int = 0
    max_recover: float = 0.0
    failures: list = field(default_factory=list)


def _osc_message(address: str, tags: str, args: list) -> bytes:
    def pad(b: bytes) -> bytes:
        return b + b"\0" * (4 - len(b) % 4)
    body = b""
    import struct
    for tag, value in zip(tags, args):
        if tag == "f":
            body += struct.pack(">f", value)
        elif tag == "i":
            body += struct.pack(">i", value)
        elif tag == "s":
            body += pad(value.encode())
    return pad(address.encode()) + pad(("," + tags).encode()) + body


class Soak:
    def __init__(self, seconds: float, seed: int, rate: float = 40.0, interval: float = 6.0,
                 faults=FAULTS, out=sys.stderr, work: Path | None = None):
        self.seconds = seconds
        self.rng = random.Random(seed)
        self.rate = rate
        self.interval = interval
        self.faults = tuple(faults)
        self.out = out
        self.work = Path(work or tempfile.mkdtemp(prefix="imps-soak-"))
        self.records = {kind: FaultRecord() for kind in self.faults}
        self.osc_sent: dict[int, float] = {}
        self.windows: list[tuple[str, float, float]] = []    # (category, start, end)
        self.interface_port = free_port()
        self.control_port = free_port()
        self.sound = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sound.bind(("127.0.0.1", 0))
        self.sound.settimeout(0.2)
        self.sound_counts: dict[str, int] = defaultdict(int)
        self._stop = threading.Event()
        self._osc_paused = threading.Event()
        self._next_osc = 0
        self._send_lock = threading.Lock()
        self.threads_lost: list[str] = []
        self._last_line = 0.0
        self.watchdog_restarts = 0

    # -- set-up -----------------------------------------------------------------
    def _write_config(self, model: Path, extra: str = "") -> None:
        self.config.write_text(
            f'[model]\npath = "{model}"\nseed = 1\n'
            f'[engine]\nmode = "layered"\n'
            f'[osc]\ninterface_port = {self.interface_port}\ncontrol_port = {self.control_port}\n'
            f'sound_port = {self.sound.getsockname()[1]}\n'
            f'[log]\ndirectory = "{self.disk.logs}"\n'
            f'[serial]\nenabled = true\nport = "{self.link}"\nretry_interval = 0.2\n'
            f'[status]\ninterval = 0.2\nterminal = false\n' + extra)

    def _prepare(self) -> None:
        self.disk = Disk(self.work)
        models = self.work / "models"
        models.mkdir()
        self.model = models / "good.tflite"
        shutil.copy(DEFAULT_MODEL, self.model)
        shutil.copy(DEFAULT_MODEL.with_suffix(".json"), self.model.with_suffix(".json"))
        self.link = self.work / "board"
        self.config = self.work / "box.toml"
        self._write_config(self.model)
        count = int((self.seconds + 120) * self.rate)
        self.board = NumberedBoard(self.rate, count, self.link)
        self.tail = LogTail(self.disk.logs)
        self.box = BoxProcess(self.work, self.config)

    # -- traffic ----------------------------------------------------------------
    def _send_osc(self, sock, n_events: int = 1) -> None:
        for _ in range(n_events):
            with self._send_lock:
                n = self._next_osc
                self._next_osc += 1
            msg = encode_floats(INTERFACE, encode_number(n))
            t = time.monotonic()
            try:
                sock.sendto(msg, ("127.0.0.1", self.interface_port))
            except OSError:
                continue    # refused (an earlier datagram met a closed port): this one was not sent
            self.osc_sent[n] = t

    def _performer(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        period = 1.0 / self.rate
        due = time.monotonic()
        while not self._stop.is_set():
            due += period
            self._stop.wait(max(0.0, due - time.monotonic()))
            if not self._osc_paused.is_set():
                self._send_osc(sock)
        sock.close()

    def _listen_sound(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sound.recv(65536)
            except OSError:
                continue
            address = data.split(b"\0", 1)[0].decode(errors="replace")
            self.sound_counts[address] += 1

    # -- status helpers -----------------------------------------------------------
    def _wait(self, pred, timeout: float = RECOVER_TIMEOUT) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end and not self._stop.is_set():
            if pred():
                return True
            time.sleep(0.05)
        return pred()

    def _board_ok(self) -> bool:
        return self.box.alive() and "board ok" in self.box.status

    def _logged_numbers(self) -> set[int]:
        return self.tail.numbers()

    def _event_logged_after(self, t: float, timeout: float = RECOVER_TIMEOUT) -> bool:
        """True once an event (either path) sent after monotonic time t appears in the log."""
        def check():
            later = {n for n, ts in list(self.osc_sent.items()) if ts > t}
            later |= {n for n, ts in list(self.board.delivered.items()) if ts > t}
            return bool(later & self._logged_numbers())
        return self._wait(check, timeout)

    def _healthy(self) -> bool:
        return self.box.alive() and "THREAD DIED" not in self.box.status and "mode layered" in self.box.status

    # -- faults ---------------------------------------------------------------------
    def _restart(self, why: str) -> float:
        """kill -9 and start again; the window in which events cannot arrive is recorded."""
        t0 = time.monotonic()
        self.box.kill(why)
        self.box.start()
        ok = self.box.wait_ready(RECOVER_TIMEOUT) and self._wait(self._board_ok)
        t1 = time.monotonic()
        self.windows.append(("in flight at kill -9", t0 - IN_FLIGHT, t0))
        self.windows.append(("sent while the box was down", t0, t1))
        return t1 if ok else None

    def fault_kill(self):
        t0 = time.monotonic()
        t1 = self._restart("kill -9 (soak)")
        return t1 is not None and self._event_logged_after(t1), "restarted, READY, board ok, events logged"

    def fault_unplug(self):
        t0 = time.monotonic()
        self.board.unplug()
        self._wait(lambda: "NO BOARD" in self.box.status, 5.0)
        self._stop.wait(self.rng.uniform(0.3, 2.0))
        self.board.plug()
        ok = self._wait(lambda: self._board_ok() and self.board._opened)
        self.windows.append(("serial: in flight at an unplug, or port not yet reopened", t0 - IN_FLIGHT,
                             time.monotonic()))
        t1 = time.monotonic()
        return ok and self._event_logged_after(t1), "board ok again, serial events logged"

    def fault_garbage(self):
        t0 = time.monotonic()
        for _ in range(self.rng.randint(1, 20)):
            self.board.inject(bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 400))))
        self.board.inject(b"\0")
        t1 = time.monotonic()
        # A frame that follows a burst is cut by it (the box counts it as a bad frame): the window
        # runs from the first burst to just after the last (on a busy machine that takes a while).
        self.windows.append(("serial frames cut by garbage (counted bad)", t0 - 0.05, t1 + 0.05))
        ok = self._event_logged_after(t1 + 0.05)
        return ok, "serial events logged after the garbage"

    def fault_flood(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t0 = time.monotonic()
        n = self.rng.randint(2000, 20000)
        self._send_osc(sock, n)
        sock.close()
        t1 = time.monotonic()
        # The box works through the backlog in its socket buffer for a while after the flood, and
        # events sent meanwhile queue behind it: the flood lasts until one sent after it is logged,
        # and IN_FLIGHT more, because that one may be a serial event logged while the OSC backlog
        # still fills the engine's inbox (seen: 6 events lost 17 ms after; the box counted them).
        # It opens IN_FLIGHT before the flood too: a serial event sent just before it is still on
        # its way (pty, reader) when the flood fills the inbox (seen: one sent 0.5 ms before, lost
        # and counted by the box). What falls in the window must still be within the box's own
        # lost counter (the checks).
        drained = self._event_logged_after(t1)
        self.windows.append(("flood: counted lost by the box", t0 - IN_FLIGHT, time.monotonic() + IN_FLIGHT))
        return self._healthy() and drained, f"{n} events; box plays on"

    def _sighup_bad(self, write_bad, expect: str):
        t0 = time.monotonic()
        before = len(self.box.stderr_text())
        write_bad()
        self.box.signal(signal.SIGHUP)
        refused = self._wait(lambda: "refused" in self.box.stderr_text()[before:], 10.0)
        alive = self.box.alive() and self._event_logged_after(time.monotonic())
        if self.config.is_dir():
            self.config.rmdir()
        self._write_config(self.model)
        mark = len(self.box.stderr_text())
        self.box.signal(signal.SIGHUP)
        reloaded = self._wait(lambda: "reloaded" in self.box.stderr_text()[mark:], 10.0)
        if not self.box.alive():   # it died on the bad file: systemd would restart it
            self._restart(f"exited after {expect} (soak restarts it)")
            return False, f"{expect}: the box exited"
        return refused and alive and reloaded and self._healthy(), f"{expect}: refused, played on, reloaded"

    def fault_bad_model(self):
        kind = self.rng.choice(["truncated", "garbage", "directory", "wrong dimension", "missing"])
        bad = self.work / "models" / f"bad-{kind.replace(' ', '-')}.tflite"
        if kind == "truncated":
            bad.write_bytes(self.model.read_bytes()[:5000])
        elif kind == "garbage":
            bad.write_bytes(os.urandom(20000))
        elif kind == "directory":
            bad.mkdir(exist_ok=True)
        elif kind == "wrong dimension":
            bench = DEFAULT_MODEL.parent / "bench" / "u64-d9.tflite"
            shutil.copy(bench, bad)
            shutil.copy(bench.with_suffix(".json"), bad.with_suffix(".json"))
        return self._sighup_bad(lambda: self._write_config(bad), f"bad model ({kind})")

    def fault_bad_config(self):
        kind = self.rng.choice(["binary", "not toml", "unknown key", "out of range", "infinite", "directory"])
        good = self.config.read_text()

        def write():
            if kind == "binary":
                self.config.write_bytes(os.urandom(300))
            elif kind == "not toml":
                self.config.write_text("[model\npath = = 3\n")
            elif kind == "unknown key":
                self.config.write_text(good.replace("[engine]\n", "[engine]\nspeed = 3\n"))
            elif kind == "out of range":
                self.config.write_text(good.replace("[engine]\n", "[engine]\nqueue_size = -5\n"))
            elif kind == "infinite":
                self.config.write_text(good.replace("interval = 0.2", "interval = inf"))
            elif kind == "directory":
                self.config.unlink()
                self.config.mkdir()
        return self._sighup_bad(write, f"bad config ({kind})")

    def fault_disk_full(self):
        t0 = time.monotonic()
        self.disk.fill(self.box.proc.pid)
        went_off = self._wait(lambda: "LOG OFF" in self.box.status, 10.0)
        self._stop.wait(self.rng.uniform(0.5, 3.0))
        t_free = time.monotonic()
        self.disk.free(self.box.proc.pid)
        back = self._wait(lambda: "LOG OFF" not in self.box.status, RECOVER_TIMEOUT)
        self.windows.append(("disk full (gap marked in the log)", t0 - 0.1, time.monotonic() + 0.2))
        ok = went_off and back and self._event_logged_after(time.monotonic() + 0.2)
        return ok, f"log off, then on again {time.monotonic() - t_free:.1f} s after space returned"

    def fault_control_fuzz(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rng = self.rng
        for _ in range(rng.randint(50, 400)):
            address = rng.choice(CONTROL_ADDRESSES)
            tags = "".join(rng.choice("fisfff") for _ in range(rng.randint(0, 3)))
            args = [rng.choice([0.0, -1.0, 1e30, float("inf"), float("nan"), 1e-300, rng.uniform(-5, 5)])
                    if t == "f" else rng.randint(-2**31, 2**31 - 1) if t == "i"
                    else rng.choice(["duet", "user", "layered", "x" * 50, ""]) for t in tags]
            msg = _osc_message(address, tags, args)
            if rng.random() < 0.2:
                msg = msg[:rng.randint(0, len(msg))]          # truncated
            if rng.random() < 0.1:
                msg = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
            try:
                sock.sendto(msg, ("127.0.0.1", self.control_port))
            except OSError:
                pass
        # Put the settings back as a performer would, by valid messages.
        for msg in (_osc_message("/pause", "i", [0]), _osc_message("/time_scale", "f", [1.0]),
                    _osc_message("/threshold", "f", [1.0]), _osc_message("/pi_temperature", "f", [1.25]),
                    _osc_message("/sigma_temperature", "f", [0.3]), _osc_message("/mode", "s", ["layered"])):
            sock.sendto(msg, ("127.0.0.1", self.control_port))
        sock.close()
        t1 = time.monotonic()
        ok = self._wait(lambda: self._healthy() and "paused" not in self.box.status)
        return ok and self._event_logged_after(t1), "settings back by valid messages, events logged"

    # -- the run ------------------------------------------------------------------
    def _watch(self) -> None:
        """What systemd does: a box whose watchdog pings stop is killed and restarted."""
        while not self._stop.wait(0.2):
            with self.box.lock:
                status = self.box.status
            if "THREAD DIED" in status:
                died = status.split("THREAD DIED", 1)[1].split("|")[0].strip()
                if died not in self.threads_lost:
                    self.threads_lost.append(died)

    def run(self) -> dict:
        self._prepare()
        started = self.started = time.monotonic()
        try:
            self.board.start()
            self.box.start()
            if not self.box.wait_ready(60):
                raise SoakError(f"imps run did not say READY=1:\n{self.box.stderr_text()[-3000:]}")
            if not self._wait(self._board_ok, 30):
                raise SoakError(f"the box did not connect to the board:\n{self.box.status}")
            threads = [threading.Thread(target=f, daemon=True, name=f"soak-{f.__name__}")
                       for f in (self._performer, self._listen_sound, self._watch)]
            for t in threads:
                t.start()
            end = started + self.seconds
            next_fault = time.monotonic() + self.interval / 2
            bag: list[str] = []
            while time.monotonic() < end:
                self._progress(started, end)
                if time.monotonic() >= next_fault:
                    if not bag:                # every kind once, in random order, then again
                        bag = list(self.faults)
                        self.rng.shuffle(bag)
                    self._inject(bag.pop())
                    next_fault = time.monotonic() + self.rng.uniform(0.5, 1.5) * self.interval
                self._check_watchdog()
                time.sleep(0.2)
            self._progress(started, end, final=True)
            self._osc_paused.set()         # the performer stops playing, then the board,
            self.board.quiet()
            time.sleep(1.0)                # and what they sent last reaches the log
        finally:
            self._stop.set()
            self.board.stop()
            exit_code = self.box.stop()
            self.box.close()
            self.sound.close()
        report = self._report(exit_code, time.monotonic() - started)
        self.disk.close()
        return report

    def _check_watchdog(self) -> None:
        if (self.box.alive() and self.box.ready.is_set()
                and time.monotonic() - self.box.last_ping > self.box.watchdog):
            self.watchdog_restarts += 1
            self.threads_lost.append("watchdog pings stopped (box killed and restarted)")
            self._restart("watchdog (soak acts as systemd)")
        elif not self.box.alive() and self.box.runs[-1]["ended_by"] is None:
            self.box.runs[-1].update(exit=self.box.proc.returncode, ended_by="exited by itself")
            self.threads_lost.append(f"the box exited by itself (code {self.box.proc.returncode})")
            self._restart("exited (soak restarts it)")

    def _inject(self, kind: str) -> None:
        rec = self.records[kind]
        rec.injected += 1
        t0 = time.monotonic()
        try:
            ok, what = getattr(self, "fault_" + kind.replace(" -9", "").replace(" ", "_"))()
        except Exception as exc:  # a soak bug is a failed recovery, not a crash of the soak
            ok, what = False, f"{type(exc).__name__}: {exc}"
        took = time.monotonic() - t0
        if ok:
            rec.recovered += 1
            rec.max_recover = max(rec.max_recover, took)
        else:
            rec.failures.append(what)
            self._note(f"{kind}: NOT recovered: {what}")

    def _note(self, text: str) -> None:
        print(f"\r\x1b[K{text}" if self.out.isatty() else text, file=self.out, flush=True)

    def _progress(self, started: float, end: float, final: bool = False) -> None:
        now = time.monotonic()
        frac = 1.0 if final else min(1.0, (now - started) / max(end - started, 1e-9))
        faults = sum(r.injected for r in self.records.values())
        text = (f"soak [{'#' * int(frac * 30):<30}] {frac * 100:3.0f}% {int(now - started)}/{int(end - started)} s, "
                f"{faults} faults, {self._next_osc + len(self.board.delivered)} events")
        if self.out.isatty():
            print("\r" + text, end="\n" if final else "", file=self.out, flush=True)
        elif final or now - self._last_line >= 15:
            self._last_line = now
            print(text, file=self.out, flush=True)

    # -- accounting -----------------------------------------------------------------
    def _report(self, exit_code, elapsed: float) -> dict:
        logged = self._logged_numbers()
        sent = dict(self.osc_sent)
        sent.update(self.board.delivered)
        categories: dict[str, int] = defaultdict(int)
        unaccounted = []
        for n, t in sent.items():
            if n in logged:
                categories["logged"] += 1
                continue
            for name, start, stop in self.windows:
                if start <= t <= stop:
                    categories[name] += 1
                    break
            else:
                categories["unaccounted"] += 1
                unaccounted.append((round(t - self.started, 3), "serial" if n >= SERIAL_BASE else "osc",
                                    n - SERIAL_BASE if n >= SERIAL_BASE else n))
        lost_counted = 0
        for run in self.box.runs:
            m = re.search(r"\blost (\d+)", run["status"]) or re.search(r"\bdrops (\d+)", run["status"])
            if m:
                lost_counted += int(m.group(1))
        gaps, unreadable = [], 0
        for path in self.disk.logs.glob("*-mdrnn.log"):
            records = read_log(path, 3)
            gaps += [lost for _, lost in records.gaps]
            unreadable += len(records.skipped)
        flood_lost = categories.get("flood: counted lost by the box", 0)
        gap_lost = categories.get("disk full (gap marked in the log)", 0)
        checks = {
            "flood losses within the box's lost counter": flood_lost <= lost_counted,
            "disk-full losses within the gap markers": gap_lost <= sum(gaps),
            "no unreadable (torn or garbled) log lines": unreadable == 0,
        }
        return dict(seconds=elapsed, faults={k: vars(v) for k, v in self.records.items()},
                    sent=len(sent), sent_osc=len(self.osc_sent), sent_serial=len(self.board.delivered),
                    categories=dict(categories), box_lost_counted=lost_counted, gap_markers=len(gaps),
                    gap_lost=sum(gaps), threads_lost=self.threads_lost, runs=len(self.box.runs),
                    exit_code=exit_code, checks=checks, disk=self.disk.how,
                    model_events_heard=self.sound_counts.get("/model", 0), unaccounted=sorted(unaccounted)[:20],
                    windows=[(name, round(a - self.started, 3), round(b - self.started, 3))
                             for name, a, b in self.windows])


def passed(report: dict) -> bool:
    return (report["categories"].get("unaccounted", 0) == 0 and not report["threads_lost"]
            and all(f["recovered"] == f["injected"] for f in report["faults"].values())
            and all(report["checks"].values()) and report["exit_code"] == 0)


def format_report(report: dict) -> str:
    lines = [f"soak: {report['seconds'] / 60:.1f} min, {report['runs']} box process(es), disk full by "
             f"{report['disk']}", "",
             "| fault | injected | recovered | max time to recover |", "|---|---|---|---|"]
    for kind, f in report["faults"].items():
        lines.append(f"| {kind} | {f['injected']} | {f['recovered']} | "
                     f"{f['max_recover']:.2f} s |" if f["recovered"] else
                     f"| {kind} | {f['injected']} | {f['recovered']} | - |")
    lines += ["", "| performer events | count |", "|---|---|",
              f"| sent (OSC / serial) | {report['sent']} ({report['sent_osc']} / {report['sent_serial']}) |"]
    for name, count in sorted(report["categories"].items(), key=lambda kv: (kv[0] != "logged", kv[0])):
        lines.append(f"| {name} | {count} |")
    if "unaccounted" not in report["categories"]:
        lines.append("| unaccounted | 0 |")
    lines += [f"| counted lost by the box (status line) | {report['box_lost_counted']} |",
              f"| lost to the full disk per the gap markers ({report['gap_markers']} gaps, all lines) | "
              f"{report['gap_lost']} |", "",
              f"model events heard by the sound engine: {report['model_events_heard']}",
              f"threads lost: {len(report['threads_lost'])}" + "".join(f"\n  - {t}" for t in report["threads_lost"]),
              f"box exit at the end: {report['exit_code']}"]
    for name, ok in report["checks"].items():
        lines.append(f"check: {name}: {'ok' if ok else 'FAILED'}")
    for kind, f in report["faults"].items():
        for why in f["failures"]:
            lines.append(f"not recovered: {kind}: {why}")
    if report["unaccounted"]:
        lines.append("unaccounted (seconds into the soak, path, number): "
                     + ", ".join(f"{t} {path} #{n}" for t, path, n in report["unaccounted"]))
        lines.append("fault windows: " + ", ".join(f"{name} {a}..{b}" for name, a, b in report["windows"]))
    lines.append("PASS" if passed(report) else "FAIL")
    return "\n".join(lines)


# -- imps soak --------------------------------------------------------------------------

def add_soak_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=2.0, help="how long (default 2)")
    parser.add_argument("--seconds", type=float, help="how long, in seconds (overrides --minutes)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    parser.add_argument("--rate", type=float, default=40.0, help="performer events per second on each path")
    parser.add_argument("--interval", type=float, default=6.0, help="mean seconds between faults")
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated fault kinds")
    parser.add_argument("--report", help="also write the table to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, box stderr)")


def soak_command(args) -> int:
    seconds = args.seconds if args.seconds is not None else args.minutes * 60
    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = [f for f in faults if f not in FAULTS]
    if unknown or not faults:
        raise SoakError(f"unknown fault kinds {unknown}; known: {', '.join(FAULTS)}")
    if not 10 <= seconds <= 24 * 3600:
        raise SoakError(f"soak length {seconds:g} s: expected 10 s to 24 h")
    seed = args.seed if args.seed is not None else int(time.time())
    soak = Soak(seconds, seed, rate=args.rate, interval=args.interval, faults=faults)
    print(f"soak: seed {seed}, {seconds:g} s, work directory {soak.work}", file=sys.stderr)
    try:
        report = soak.run()
    finally:
        if not args.keep:
            shutil.rmtree(soak.work, ignore_errors=True)
    text = format_report(report)
    print(text)
    if args.report:
        Path(args.report).write_text(text + "\n")
    return 0 if passed(report) else 1
