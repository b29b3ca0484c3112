"""The page's only ways into the box: the control port, the status file, SIGHUP, the interaction log.

- Controls go to the box's OSC control port on loopback, checked here first
  against the same ranges the box checks (``CONTROLS``, from ``ranges.py``), so
  the page can say what is wrong; the box checks again, as for any controller.
- The status is the JSON the box replaces every ``[status] interval``
  (``[status] file``, written by ``box/status.py``); a file older than
  STALE_SECONDS means the box is not running.
- Reload is SIGHUP to the pid in that status file (what ``systemctl reload imps`` sends).
- The live picture is the tail of the box's interaction log (``io/interaction_log.py``:
  ``ISO timestamp,source,x1..xn``), read from where it was, never from the start.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import signal
import socket
import threading
import time
from collections import deque
from pathlib import Path

from .. import ranges
from ..errors import ConfigError
from ..io.osc import encode_message
from ..modes import Mode

STALE_SECONDS = 5.0
#: page control -> (OSC address, the (section, key) whose range it shares); the order of the Play page.
CONTROLS = {
    "pi_temperature": ("/pi_temperature", ("model", "pi_temperature")),
    "sigma_temperature": ("/sigma_temperature", ("model", "sigma_temperature")),
    "time_scale": ("/time_scale", ("engine", "time_scale")),
    "threshold": ("/threshold", ("engine", "response_threshold")),
}
HISTORY_SECONDS = 30.0
MAX_POINTS = 3000               # the live picture's memory, whatever the rate of events
MAX_TAIL_BYTES = 256 * 1024     # read per poll at most: a burst is skipped, not swallowed whole


#: On a Pi: the SoC's temperature and the firmware's throttling flags (absent elsewhere: not shown).
THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")
THROTTLED = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")


def system_facts(folder: Path | None) -> dict:
    """What the machine says: up time, disk left where the logs go, and on a Pi temperature and throttling."""
    facts: dict = {}
    try:
        facts["system_uptime"] = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    try:
        facts["disk_free_mb"] = shutil.disk_usage(folder or "/").free / 1e6
    except OSError:
        pass
    for key, path, scale in (("cpu_celsius", THERMAL, 1000.0), ("throttled", THROTTLED, None)):
        try:
            text = path.read_text().strip()
            facts[key] = int(text, 0) / scale if scale else text
        except (OSError, ValueError):
            pass
    return facts


def control_ranges() -> dict:
    return {name: {"lo": r.lo, "hi": r.hi, "unit": r.unit}
            for name, (_, key) in CONTROLS.items() for r in [ranges.RANGES[key]]}


def control_message(name: str, value) -> tuple[str, list]:
    """(address, args) for a page control, or ConfigError naming the control, value and range."""
    if name == "mode":
        return "/mode", [Mode.parse(value).value]
    if name in ("pause", "reset"):
        if not isinstance(value, bool):
            raise ConfigError(f"{name} wants true or false, got {value!r:.40}")
        return f"/{name}", [int(value)]
    if name not in CONTROLS:
        raise ConfigError(f"unknown control {name!r:.40}, expected mode, pause, reset or {', '.join(CONTROLS)}")
    address, key = CONTROLS[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} wants a number, got {value!r:.40}")
    ranges.RANGES[key].check(name, value)
    return address, [float(value)]


class BoxLink:
    """The box as the page sees it."""

    def __init__(self, control_port: int | None, status_file: str | None, control_host: str = "127.0.0.1",
                 clock=time.time):
        self.control_host, self.control_port = control_host, control_port   # None: the one the status names
        self.status_file = Path(status_file) if status_file else None
        self.clock = clock
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send(self, name: str, value) -> str:
        address, args = control_message(name, value)
        port = self.control_port or self.status().get("control_port")
        if not port:
            raise ConfigError("the box's control port is not known: is the box running?")
        self.sock.sendto(encode_message(address, args), (self.control_host, port))
        return f"{address} {' '.join(map(str, args))}".strip()

    def status(self) -> dict:
        """The box's last status, with ``running`` (False: no file, unreadable or stale)."""
        if self.status_file is None:
            return {"running": False, "why": "the page was started without the box's status file"}
        try:
            record = json.loads(self.status_file.read_text())
        except FileNotFoundError:
            return {"running": False, "why": f"no status file at {self.status_file} (is the box running?)"}
        except (OSError, ValueError) as exc:
            return {"running": False, "why": f"status file unreadable: {exc}"}
        record["system"] = system_facts(Path(record["log"]).parent if record.get("log") else None)
        age = self.clock() - float(record.get("time", 0))
        record["running"] = age < STALE_SECONDS
        if not record["running"]:
            record["why"] = f"the box's status is {age:.0f} s old (is the box running?)"
        return record

    def reload(self) -> str:
        """SIGHUP to the running box; ConfigError when it is not running."""
        s = self.status()
        if not s["running"]:
            raise ConfigError(f"cannot reload: {s['why']}")
        pid = int(s["pid"])
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            cmdline = b""
        if b"imps" not in cmdline:
            raise ConfigError(f"cannot reload: process {pid} is not the box")
        os.kill(pid, signal.SIGHUP)
        return f"reload sent to the box (pid {pid})"

    def close(self) -> None:
        self.sock.close()


class LogTail:
    """The last HISTORY_SECONDS of performer and model events, from the newest log in a folder.

    ``poll()`` reads what was appended since the last call (a new log file is
    followed from its start); ``points(since)`` gives ``[t, source, x...]`` rows,
    t in seconds since the epoch, source ``p`` (performer) or ``m`` (model).
    """

    def __init__(self, directory: str | None, clock=time.time):
        self.directory = Path(directory) if directory else None
        self.clock = clock
        self.points: deque = deque(maxlen=MAX_POINTS)
        self.path: Path | None = None
        self.offset = 0
        self.partial = b""
        self.lock = threading.Lock()

    def _newest(self) -> Path | None:
        if self.directory is None:
            return None
        try:
            logs = [p for p in self.directory.iterdir() if p.name.endswith("-mdrnn.log") and p.is_file()]
        except OSError:
            return None
        return max(logs, key=lambda p: p.stat().st_mtime, default=None)

    def poll(self) -> None:
        newest = self._newest()
        if newest is None:
            return
        with self.lock:
            if newest != self.path:
                first = self.path is None
                self.path, self.partial = newest, b""
                self.offset = newest.stat().st_size if first else 0   # the box's log when the page started: from now
            try:
                with open(self.path, "rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    if size < self.offset:
                        self.offset = 0
                    if size - self.offset > MAX_TAIL_BYTES:
                        self.offset, self.partial = size - MAX_TAIL_BYTES, b""
                    f.seek(self.offset)
                    data = f.read(size - self.offset)
            except OSError:
                return
            self.offset += len(data)
            lines = (self.partial + data).split(b"\n")
            self.partial = lines.pop()
            for line in lines:
                point = parse_line(line)
                if point is not None:
                    self.points.append(point)
            horizon = self.clock() - HISTORY_SECONDS
            while self.points and self.points[0][0] < horizon:
                self.points.popleft()

    def since(self, t: float) -> list:
        with self.lock:
            return [p for p in self.points if p[0] > t]


def parse_line(line: bytes):
    """``[t, "p" | "m", x1..xn]`` from one log line, None for anything else (a gap, a torn line)."""
    try:
        fields = line.decode().split(",")
        source = {"interface": "p", "rnn": "m"}[fields[1]]
        when = _dt.datetime.fromisoformat(fields[0])
        if when.tzinfo is None:
            when = when.astimezone()
        return [round(when.timestamp(), 3), source] + [round(min(max(float(x), 0.0), 1.0), 3) for x in fields[2:]]
    except (UnicodeDecodeError, KeyError, IndexError, ValueError):
        return None
