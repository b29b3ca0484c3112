"""Drive the fake GPIO from another process: a named pipe of commands.

With ``IMPS_FAKE_GPIO_CONTROL=/run/imps/gpio`` and the ``fake`` backend, the box
makes that FIFO and follows it, one command a line::

    press 27        drive an input to its active level (a button held)
    release 27
    drive 22 1      set an input's level (1 high, 0 low)

so a test outside the process (the VM test bed, over ssh) holds the shutdown
button exactly as a finger would: the panel's own debounce and hold logic run.
Bad lines are logged and skipped. Only the fake backend has this; it is never on
for real pins.
"""
from __future__ import annotations

import logging
import os
import select
import stat
import threading

from ...errors import DeviceError
from ...threads import join_or_complain

log = logging.getLogger("imps.gpio")
ENV = "IMPS_FAKE_GPIO_CONTROL"


class ControlPipe:
    def __init__(self, backend, path: str):
        self.backend = backend
        self.path = path
        self.commands = 0
        self.bad = 0
        if os.path.lexists(path) and not stat.S_ISFIFO(os.lstat(path).st_mode):
            raise DeviceError(f"fake GPIO control {path} exists and is not a FIFO")
        try:
            if not os.path.lexists(path):
                os.mkfifo(path, 0o620)
            # Read and write: no EOF when a writer closes, and open() does not block.
            self._fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        except OSError as exc:
            raise DeviceError(f"fake GPIO control {path}: {exc.strerror}") from None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="imps-gpio-control", daemon=True)
        self._thread.start()
        log.warning("fake GPIO driven from %s (press N / release N / drive N 0|1)", path)

    def _run(self) -> None:
        buf = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.1)
            if not ready:
                continue
            try:
                buf += os.read(self._fd, 4096)
            except BlockingIOError:
                continue
            *lines, buf = buf.split(b"\n")
            for line in lines:
                self.handle(line.decode(errors="replace").strip())

    def handle(self, line: str) -> None:
        if not line:
            return
        parts = line.split()
        try:
            verb, pin = parts[0], int(parts[1])
            if verb == "press" and len(parts) == 2:
                self.backend.press(pin)
            elif verb == "release" and len(parts) == 2:
                self.backend.release(pin)
            elif verb == "drive" and len(parts) == 3 and parts[2] in ("0", "1"):
                self.backend.drive(pin, parts[2] == "1")
            else:
                raise ValueError
            self.commands += 1
        except (ValueError, IndexError, DeviceError) as exc:
            self.bad += 1
            log.error("fake GPIO control %s: skipped %r (%s)", self.path, line[:60],
                      exc or "expected: press N, release N or drive N 0|1")

    def stop(self) -> None:
        self._stop.set()
        join_or_complain(self._thread, 1.0, "fake GPIO control thread")
        os.close(self._fd)
