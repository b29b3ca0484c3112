"""The hostile tester's second round (issue #27): each failure, sent as the same packet or file to a running box.

Every test starts a real ``imps run`` under a notify socket with a watchdog,
on ports of its own, and sends what broke the box before the fix: a
28-byte OSC packet of stars, a crafted model with a matching checksum, a
sidecar with an absurd input scale, configs nested 100,000 deep, with a NUL
in a path, that are a FIFO or /dev/zero or 50 MB long, a deleted log
directory, ``/pause nan``, brackets that made Python warn, and the signals
that ended the box without its shutdown path. Each test failed on the code
before the fix.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from imps.box.config import DEFAULT_MODEL
from notify_socket import NotifySocket
from osc_listener import SoundListener
from support import wait_for

START = 90.0        # seconds a box may take to say READY on a busy machine


def free_ports(n: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def osc(address: bytes, tags: bytes = b",", payload: bytes = b"") -> bytes:
    def pad(b):
        return b + b"\0" * (4 - len(b) % 4)
    return pad(address) + pad(tags) + payload


class RunningBox:
    """``imps run`` on its own ports, stderr in a file (read any time), and waits that fail at
    once with that stderr when the process has died."""

    def __init__(self, tmp: Path, device_python: str, sound: SoundListener, *, mode: str = "duet",
                 model: Path | None = None, extra: str = "", watchdog_usec: int = 1_000_000):
        self.tmp = tmp
        self.interface, self.control = free_ports(2)
        self.logs = tmp / "logs"
        self.good = (f'[model]\nseed = 1\n' + (f'path = "{model}"\n' if model else "")
                     + f'[engine]\nmode = "{mode}"\n'
                     f'[osc]\ninterface_port = {self.interface}\ncontrol_port = {self.control}\n'
                     f'sound_port = {sound.port}\n[log]\ndirectory = "{self.logs}"\n[status]\ninterval = 0.1\n'
                     + extra)
        self.config = tmp / "box.toml"
        self.config.write_text(self.good)
        self.sd = NotifySocket(watchdog_usec=watchdog_usec)
        self.stderr_path = tmp / "stderr.txt"
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([device_python, "-m", "imps", "run", "--config", str(self.config), "-q"],
                                     env=self.sd.env(os.environ), stdout=subprocess.DEVNULL, stderr=self._stderr,
                                     preexec_fn=_limit_memory)
        self.readies = 0

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait(self, what: str, pred, timeout: float = 30.0) -> None:
        """pred() within timeout, or fail now: with the box's stderr if it died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            if self.proc.poll() is not None:
                pytest.fail(f"the box exited ({self.proc.returncode}) waiting for {what}:\n{self.stderr()[-3000:]}")
            time.sleep(0.01)
        pytest.fail(f"timed out after {timeout} s waiting for {what}; status {self.status()!r}\n"
                    f"{self.stderr()[-3000:]}")

    def ready(self, timeout: float = START) -> None:
        self.readies += 1
        n = self.readies
        self.wait(f"READY #{n}", lambda: len(self.sd.with_key("READY")) >= n, timeout)

    def status(self) -> str:
        return self.sd.last("STATUS") or ""

    def status_shows(self, text: str, timeout: float = 20.0) -> None:
        self.wait(f"{text!r} in the status line", lambda: text in self.status(), timeout)

    def send(self, port: int, data: bytes) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(data, ("127.0.0.1", port))

    def reload(self, text: str | bytes | None = None) -> None:
        if text is not None:
            if isinstance(text, bytes):
                self.config.write_bytes(text)
            else:
                self.config.write_text(text)
        self.proc.send_signal(signal.SIGHUP)
        self.ready(timeout=60)

    def watchdog_gaps(self, since: float) -> float:
        """The longest time without a watchdog ping since ``since`` (until now)."""
        times = [since] + [t for t in self.sd.times("WATCHDOG") if t > since] + [time.monotonic()]
        return max(b - a for a, b in zip(times, times[1:]))

    def stop(self, sig=signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"the box ignored {signal.Signals(sig).name} for {timeout} s:\n{self.stderr()[-3000:]}")
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()
        self.sd.close()


@pytest.fixture
def run_box(tmp_path, device_python, sound):
    boxes = []

    def start(**kwargs) -> RunningBox:
        box = RunningBox(tmp_path, device_python, sound, **kwargs)
        boxes.append(box)
        return box
    yield start
    for box in boxes:
        box.close()


def assert_one_clean_line(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr[-3000:]
    long = [len(line) for line in stderr.splitlines() if len(line) > 1000]
    assert not long, f"lines of {long} characters"


# ---------------------------------------------------------------- 1: one packet froze the box for 40 s
STAR_BOMB = b"/" + b"*" * 18 + b"x" + b"\0" * 4 + b",\0\0\0"       # 28 bytes: 40 s of regex backtracking
STAR_BOMB_36 = b"/" + b"*" * 36 + b"x" + b"\0" * 2 + b",\0\0\0"    # on the interface port: 23 s


def test_one_packet_of_stars_never_stops_the_music(run_box):
    box = run_box()
    box.ready()
    box.sd.wait_for("WATCHDOG", count=2, timeout=20)
    assert len(STAR_BOMB) == 28
    sent = time.monotonic()
    box.send(box.control, STAR_BOMB)
    box.send(box.interface, STAR_BOMB_36)
    box.send(box.control, osc(b"/mode", b",s", b"layered\0"))
    box.status_shows("mode layered", timeout=5)           # the next packet is handled at once
    box.wait("two seconds of pings after the packets", lambda: time.monotonic() - sent > 2.0)
    gap = box.watchdog_gaps(sent)
    assert gap < 1.5, f"no watchdog ping for {gap:.1f} s after one packet"
    box.status_shows("osc control unknown 1")
    box.status_shows("osc interface unknown 1")
    assert box.stop() == 0


# ---------------------------------------------------------------- 9: /pause and /reset take 0/1/T/F only
def test_pause_and_reset_refuse_nan_inf_and_other_numbers(run_box):
    box = run_box()
    box.ready()
    bad = [(b",f", struct.pack(">f", float("nan"))), (b",f", struct.pack(">f", float("inf"))),
           (b",d", struct.pack(">d", 1e308)), (b",i", struct.pack(">i", -1)), (b",i", struct.pack(">i", 2)),
           (b",f", struct.pack(">f", 0.5))]
    for tags, payload in bad:
        box.send(box.control, osc(b"/pause", tags, payload))
        box.send(box.control, osc(b"/reset", tags, payload))
    box.status_shows(f"osc control bad args {2 * len(bad)}")
    assert "(paused)" not in box.status()
    box.send(box.control, osc(b"/pause", b",f", struct.pack(">f", 1.0)))     # a TouchOSC button's press
    box.status_shows("(paused)")
    box.send(box.control, osc(b"/pause", b",F"))
    box.wait("unpaused", lambda: "(paused)" not in box.status())
    assert box.stop() == 0


# ---------------------------------------------------------------- 10: [[x] made Python warn on stderr
def test_addresses_with_nested_brackets_write_no_python_warnings(run_box):
    box = run_box()
    box.ready()
    for i in range(40):     # each at another position: every one was a new warning, two lines each
        box.send(box.control, osc(b"/" + b"a" * i + b"[[x]"))
    box.status_shows("osc control unknown 40")
    assert box.stop() == 0
    stderr = box.stderr()
    assert "Warning" not in stderr, stderr[-2000:]


# ---------------------------------------------------------------- 2 and 3: the model and its sidecar
def crafted_model(folder: Path, name: str = "crafted") -> Path:
    """default.tflite with every 997th byte from offset 2000 flipped, its sidecar's sha256 matching."""
    data = bytearray(DEFAULT_MODEL.read_bytes())
    for i in range(2000, len(data), 997):
        data[i] ^= 0xFF
    path = folder / f"{name}.tflite"
    path.write_bytes(data)
    sidecar = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    sidecar["sha256"] = hashlib.sha256(data).hexdigest()
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    return path


def model_with_input_scale(folder: Path, scale_text: str) -> Path:
    """The bundled model, its sidecar saying ``"input_scale": <scale_text>`` (as written, Infinity too)."""
    name = re.sub(r"\W", "_", scale_text)
    path = folder / f"scale-{name}.tflite"
    shutil.copy(DEFAULT_MODEL, path)
    text = DEFAULT_MODEL.with_suffix(".json").read_text()
    path.with_suffix(".json").write_text(re.sub(r'"input_scale": [^,]+,', f'"input_scale": {scale_text},', text))
    return path


BAD_SCALES = ["1e308", "Infinity", "1e-308"]


@pytest.mark.parametrize("kind", ["crafted model"] + [f"input_scale {s}" for s in BAD_SCALES])
def test_a_bad_model_at_start_is_refused_and_the_box_plays_on_user_only(run_box, tmp_path, sound, kind):
    model = crafted_model(tmp_path) if kind == "crafted model" else model_with_input_scale(tmp_path, kind.split()[1])
    box = run_box(model=model)
    box.ready()
    box.status_shows("ERROR")
    assert "mode user" in box.status()
    sent = time.monotonic()
    box.wait("a second of play", lambda: time.monotonic() - sent > 1.0)
    assert sound.of("/model", since=sent) == [], "a refused model played"
    assert box.stop() == 0
    assert_one_clean_line(box.stderr())


def test_a_bad_model_by_sighup_is_refused_and_the_running_one_plays_on(run_box, tmp_path, sound):
    box = run_box()
    box.ready()
    sound.wait_for("/model", 3, timeout=30)
    bad = [crafted_model(tmp_path)] + [model_with_input_scale(tmp_path, s) for s in BAD_SCALES]
    for model in bad:
        box.reload(box.good.replace("[model]\n", f'[model]\npath = "{model}"\n'))
    sound.wait_for("/model", 3, timeout=30, since=time.monotonic())     # the running model plays on
    assert "ERROR" not in box.status()
    assert box.stop() == 0
    stderr = box.stderr()
    assert stderr.count("reload refused") == len(bad), stderr[-3000:]
    assert "crashed tflite-runtime with signal 11" in stderr or "not a usable TFLite model" in stderr
    assert_one_clean_line(stderr)


# ---------------------------------------------------------------- 4 to 7, and the equal ports: config files
def write_config(path: Path, kind: str, good: str) -> None:
    if path.is_symlink() or path.exists():
        path.unlink()
    if kind == "100,000 [":
        path.write_text(good + "[performer]\ndataset = " + "[" * 100_000 + "\n")
    elif kind == "nested inline tables":
        path.write_text(good + "[performer]\ndataset = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n")
    elif kind == "NUL in [log] directory":
        path.write_text(good.replace('[log]\ndirectory = "', '[log]\ndirectory = "\\u0000'))
    elif kind == "a FIFO":
        os.mkfifo(path)
    elif kind == "a symlink to /dev/zero":
        path.symlink_to("/dev/zero")
    elif kind == "a 50 MB value":
        path.write_text(good + '[performer]\ndataset = "' + "x" * 50_000_000 + '"\n')
    elif kind == "control_port = interface_port":
        port = re.search(r"interface_port = (\d+)", good).group(1)
        path.write_text(re.sub(r"control_port = \d+", f"control_port = {port}", good))
    elif kind == "a 100k-part dotted header":
        path.write_text(good + "[" + ".".join(["a"] * 100_000) + "]\n")
    else:
        raise ValueError(kind)


CONFIG_KINDS = ["100,000 [", "nested inline tables", "NUL in [log] directory", "a FIFO", "a symlink to /dev/zero",
                "a 50 MB value", "control_port = interface_port", "a 100k-part dotted header"]


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))   # /dev/zero took the old box to 2.5 GB in 4 s


@pytest.mark.parametrize("kind", CONFIG_KINDS)
def test_a_hostile_config_at_start_is_one_short_line_and_exit_code_2(tmp_path, device_python, kind):
    interface, control, sound = free_ports(3)
    good = (f"[osc]\ninterface_port = {interface}\ncontrol_port = {control}\nsound_port = {sound}\n"
            f'[log]\ndirectory = "{tmp_path / "logs"}"\n')
    path = tmp_path / "box.toml"
    write_config(path, kind, good)
    started = time.monotonic()
    try:
        proc = subprocess.run([device_python, "-m", "imps", "run", "--config", str(path), "-q", "--duration", "5"],
                              capture_output=True, text=True, timeout=60, preexec_fn=_limit_memory)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{kind}: the box hung at start")
    took = time.monotonic() - started
    print(f"{kind}: refused in {took:.2f} s")
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("imps: error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert len(errors[0]) <= 500, f"an error line of {len(errors[0])} characters"
    assert_one_clean_line(proc.stderr)


def test_hostile_configs_by_sighup_are_refused_and_the_box_plays_on(run_box, sound):
    box = run_box()
    box.ready()
    for kind in CONFIG_KINDS:
        write_config(box.config, kind, box.good)
        started = time.monotonic()
        box.reload()
        print(f"{kind}: reload refused in {time.monotonic() - started:.2f} s")
        assert box.proc.poll() is None, f"the box exited on a reload of {kind}"
    box.config.unlink()
    box.reload(box.good)
    sound.wait_for("/model", 3, timeout=30, since=time.monotonic())
    box.sd.wait_for("WATCHDOG", count=len(box.sd.times("WATCHDOG")) + 2, timeout=20)
    assert "[osc]" not in box.status() and "[log]" not in box.status(), box.status()   # nothing refused was taken
    assert box.stop() == 0
    stderr = box.stderr()
    assert stderr.count("reload refused") == len(CONFIG_KINDS), stderr[-3000:]
    assert_one_clean_line(stderr)


# ---------------------------------------------------------------- 8: the log directory deleted while running
def test_a_deleted_log_directory_is_noticed_and_logging_comes_back(run_box, sound):
    box = run_box()
    box.ready()

    def lines():
        return sum(len(p.read_text().splitlines()) for p in box.logs.glob("*.log")) if box.logs.is_dir() else 0
    box.wait("model events in the log", lambda: lines() > 5)
    first = sorted(box.logs.glob("*.log"))
    shutil.rmtree(box.logs)
    box.wait("a log file again, with events", lambda: lines() > 5, timeout=30)
    again = sorted(box.logs.glob("*.log"))
    text = again[0].read_text()
    assert ",gap," in text.splitlines()[0], "the new log starts with the gap marker"
    box.status_shows("lost to the disk in 1 gap")
    assert box.stop() == 0
    stderr = box.stderr()
    assert "deleted while the box ran" in stderr and "interaction log resumed" in stderr, stderr[-3000:]
    assert [p.name for p in first] != [] and again


# ---------------------------------------------------------------- fragile: signals
@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGALRM, signal.SIGUSR2, signal.SIGQUIT])
def test_every_catchable_signal_goes_through_the_one_shutdown_path(run_box, sig):
    box = run_box()
    box.ready()
    assert box.stop(sig) == 0, box.stderr()[-3000:]
    assert box.sd.with_key("STOPPING"), "no STOPPING=1: the shutdown path was skipped"
    assert f"{signal.Signals(sig).name}: stopping" in box.stderr()


def _runtime_mapped(pid: int) -> bool:
    try:
        return "tflite" in Path(f"/proc/{pid}/maps").read_text() or "litert" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def test_a_sighup_while_the_box_is_still_loading_does_not_kill_it(run_box):
    box = run_box()
    # The TFLite runtime in the process's memory: the config is read and the model is loading.
    box.wait("the runtime loading", lambda: _runtime_mapped(box.proc.pid), timeout=START)
    box.proc.send_signal(signal.SIGHUP)
    box.ready()
    box.wait("the early reload done", lambda: "reloaded" in box.stderr() or len(box.sd.with_key("READY")) >= 2)
    assert box.proc.poll() is None
    assert box.stop() == 0


# ---------------------------------------------------------------- fragile: memory over reloads and days
def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_rss_stays_flat_over_500_reloads(run_box, tmp_path):
    """A benchmark-style check: 500 SIGHUPs to a playing box, one in five a refused config, one in
    five another model; RSS printed at each hundred, growth after the first 100 bounded."""
    box = run_box()
    box.ready()
    other = tmp_path / "copy.tflite"
    shutil.copy(DEFAULT_MODEL, other)
    shutil.copy(DEFAULT_MODEL.with_suffix(".json"), other.with_suffix(".json"))
    texts = [box.good, box.good.replace("[model]\n", f'[model]\npath = "{other}"\n'), box.good,
             "[engine]\ntime_scale = inf\n", box.good]
    figures = {0: rss_mb(box.proc.pid)}
    started = time.monotonic()
    for i in range(1, 501):
        box.reload(texts[i % len(texts)])
        if i % 100 == 0:
            figures[i] = rss_mb(box.proc.pid)
    took = time.monotonic() - started
    print("RSS over reloads (MB): " + ", ".join(f"{n}: {mb:.1f}" for n, mb in figures.items())
          + f"; {took / 500 * 1e3:.0f} ms per reload")
    assert box.stop() == 0
    assert "reload refused" in box.stderr()      # (the journal's rate limit shows some 60 of the 100)
    assert figures[500] - figures[100] < 4.0, figures


def test_the_simulated_board_remembers_a_bounded_history(tmp_path):
    from imps.sim.board import SimulatedBoard
    from support import performance
    board = SimulatedBoard(performance(50), tmp_path / "b", time_scale=0.01, loop=True, keep=10).start()
    try:
        wait_for(lambda: board.counters["rows_sent"] > 100, 30)
        assert len(board.sent_rows) == 10 and board.counters["rows_sent"] > 100
    finally:
        board.stop()
