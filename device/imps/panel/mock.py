"""The panel on gpiozero's MockFactory: pressed from outside, read back as text.

Part of the product: ``make run`` (the keyboard, imps.sim.keys) and the tests
press buttons through these, and the VM test bed holds the shutdown button
through :class:`ControlPipe`. A MockPin's ``drive_low()`` fires the same
callbacks as a real edge, and its ``states`` record every change with its time.

With ``IMPS_FAKE_GPIO_CONTROL=/run/imps/gpio`` and ``[gpio] backend = "mock"``,
the box makes that FIFO and follows it, one command a line::

    press 27        drive an input to its active level (a button held)
    release 27
    drive 22 1      set an input's level (1 high, 0 low)

so a test outside the process (the VM test bed, over ssh) holds the shutdown
button exactly as a finger would: the panel's own settling and hold logic run.
Bad lines are logged and skipped. Only the mock has this; it is never on for
real pins.
"""
from __future__ import annotations

import logging
import os
import select
import stat
import threading
from typing import Sequence

from ..errors import DeviceError
from ..threads import join_or_complain

log = logging.getLogger(__name__)
#: One letter per mode LED, in Mode order; upper case when lit.
LED_LABELS = "UCLD"


def input_pin(factory, number: int):
    """The MockPin of a button or pad the box set up (DeviceError for anything else)."""
    if not isinstance(number, int) or not 0 <= number <= 27:
        raise DeviceError(f"GPIO {number!r} is not a BCM pin number 0..27")
    pin = factory.pin(number)
    if pin.function != "input" or pin.when_changed is None:
        raise DeviceError(f"GPIO{number} is not a button or pad of the box (nothing reads it)")
    return pin


def drive(factory, number: int, level: bool) -> None:
    """Set an input's level from outside, as wiring would."""
    pin = input_pin(factory, number)
    pin.drive_high() if level else pin.drive_low()


def press(factory, number: int) -> None:
    """Drive an input to its active level: low with a pull-up (button to ground), else high."""
    drive(factory, number, input_pin(factory, number).pull != "up")


def release(factory, number: int) -> None:
    drive(factory, number, input_pin(factory, number).pull == "up")


def render_leds(factory, pins: Sequence[int], labels: str = LED_LABELS) -> str:
    """The mode LEDs as a short string: ``"[U---]"`` with user mode lit, ``"[----]"`` all dark."""
    return "[" + "".join(labels[i] if factory.pin(pin).state else "-" for i, pin in enumerate(pins)) + "]"


class ControlPipe:
    """Follow a FIFO of press/release/drive commands (see the module docstring)."""

    def __init__(self, factory, path: str):
        self.factory = factory
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
        log.warning("mock GPIO driven from %s (press N / release N / drive N 0|1)", path)

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
                press(self.factory, pin)
            elif verb == "release" and len(parts) == 2:
                release(self.factory, pin)
            elif verb == "drive" and len(parts) == 3 and parts[2] in ("0", "1"):
                drive(self.factory, pin, parts[2] == "1")
            else:
                raise ValueError
            self.commands += 1
        except (ValueError, IndexError, DeviceError) as exc:
            self.bad += 1
            log.error("fake GPIO control %s: skipped %r (%s)", self.path, line[:60],
                      exc or "expected: press N, release N or drive N 0|1")
        except Exception:       # a bug here must not end the control thread without a word
            self.bad += 1
            log.exception("fake GPIO control %s: %r failed", self.path, line[:60])

    def stop(self) -> None:
        self._stop.set()
        join_or_complain(self._thread, 1.0, "fake GPIO control thread")
        os.close(self._fd)
