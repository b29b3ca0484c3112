"""A stand-in for systemd's notify socket, for tests.

Binds a real AF_UNIX datagram socket (a path in a fresh temporary directory,
or an abstract name), collects every datagram on a thread with its arrival
time, and answers questions about them::

    with NotifySocket(watchdog_usec=200_000) as sd:
        env = sd.env()                        # NOTIFY_SOCKET, WATCHDOG_USEC
        ... start the code under test with env ...
        sd.wait_for("READY", timeout=5)
        sd.times("WATCHDOG")                  # monotonic arrival times
        sd.last("STATUS")

Reusable by any test that runs the box (in-process with ``env()`` merged into
``os.environ``, or as a subprocess with ``env=sd.env(os.environ)``).
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass


@dataclass
class Notification:
    time: float               # time.monotonic() at arrival
    fields: dict              # KEY -> value, in the order sent
    raw: str


class NotifySocket:
    def __init__(self, abstract: bool = False, watchdog_usec: int | None = None):
        self.watchdog_usec = watchdog_usec
        self.messages: list[Notification] = []
        self._cond = threading.Condition()
        self._dir = None
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"imps-test-notify-{os.getpid()}-{id(self):x}"
            self._sock.bind("\0" + name)
            self.address = "@" + name
        else:
            # AF_UNIX paths are limited to 107 bytes: keep it short, under /tmp.
            self._dir = tempfile.mkdtemp(prefix="imps-sd-", dir="/tmp")
            self.address = os.path.join(self._dir, "notify")
            self._sock.bind(self.address)
        self._sock.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, name="notify-socket", daemon=True)
        self._thread.start()

    def env(self, base=None) -> dict:
        """The environment systemd would give the service (merged onto ``base``)."""
        env = dict(base or {})
        env["NOTIFY_SOCKET"] = self.address
        if self.watchdog_usec:
            env["WATCHDOG_USEC"] = str(self.watchdog_usec)
        return env

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            now = time.monotonic()
            raw = data.decode("utf-8", "replace")
            fields = dict(line.split("=", 1) for line in raw.split("\n") if "=" in line)
            with self._cond:
                self.messages.append(Notification(now, fields, raw))
                self._cond.notify_all()

    def with_key(self, key: str) -> list[Notification]:
        with self._cond:
            return [m for m in self.messages if key in m.fields]

    def times(self, key: str) -> list[float]:
        return [m.time for m in self.with_key(key)]

    def values(self, key: str) -> list[str]:
        return [m.fields[key] for m in self.with_key(key)]

    def last(self, key: str) -> str | None:
        values = self.values(key)
        return values[-1] if values else None

    def wait_for(self, key: str, timeout: float = 5.0, count: int = 1, value: str | None = None) -> Notification:
        """Block until ``count`` messages carrying ``key`` (= ``value`` if given) arrived."""
        deadline = time.monotonic() + timeout

        def matching():
            return [m for m in self.messages
                    if key in m.fields and (value is None or m.fields[key] == value)]

        with self._cond:
            while len(matching()) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [m.raw.replace("\n", " | ") for m in self.messages[-5:]]
                    raise TimeoutError(f"no {count} x {key}{'=' + value if value else ''} on "
                                       f"{self.address} within {timeout} s; last messages: {seen}")
                self._cond.wait(left)
            return matching()[count - 1]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
