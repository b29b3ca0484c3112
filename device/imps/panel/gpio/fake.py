"""A scriptable GPIO backend: part of the product, for tests and ``--simulate``.

Press and release buttons, read back outputs and their timestamped history::

    gpio = FakeBackend()
    gpio.press(17)            # drives an input to its active level (low with a pull-up)
    gpio.release(17)
    gpio.state(5)             # an output's current level
    gpio.history(5)           # [(time, level), ...] since setup

Edge callbacks fire on every level change, as a real edge would.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

from . import EdgeCallback, GPIOBackend


class FakeBackend(GPIOBackend):
    name = "fake"

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.clock = clock
        self._levels: Dict[int, bool] = {}
        self._pulls: Dict[int, Optional[bool]] = {}
        self._history: Dict[int, List[Tuple[float, bool]]] = {}
        self._callbacks: Dict[int, List[EdgeCallback]] = {}
        self._lock = threading.Lock()
        self.closed = False
        self.control = None     # a ControlPipe (gpio/control.py) when driven from outside

    # -- the interface ---------------------------------------------------------
    def setup_input(self, pin: int, pull_up: Optional[bool] = True) -> None:
        self._claim(pin, "in")
        self._pulls[pin] = pull_up
        self._set(pin, bool(pull_up))   # idles at its pull level (a floating pin reads low here)

    def read(self, pin: int) -> bool:
        self._check(pin, "in")
        return self._levels[pin]

    def setup_output(self, pin: int, initial: bool = False) -> None:
        self._claim(pin, "out")
        self._set(pin, bool(initial))

    def write(self, pin: int, value: bool) -> None:
        self._check(pin, "out")
        self._set(pin, bool(value))

    def add_edge_callback(self, pin: int, callback: EdgeCallback) -> None:
        self._check(pin, "in")
        self._callbacks.setdefault(pin, []).append(callback)

    def close(self) -> None:
        if self.control is not None:
            self.control.stop()
            self.control = None
        self._modes.clear()
        self._callbacks.clear()
        self.closed = True

    # -- scripting -------------------------------------------------------------
    def drive(self, pin: int, level: bool) -> None:
        """Set an input's level from outside, as wiring would."""
        self._check(pin, "in")
        self._set(pin, bool(level))

    def press(self, pin: int) -> None:
        """Drive an input to its active level: low with a pull-up (button to ground), else high."""
        self.drive(pin, self._pulls.get(pin) is False or self._pulls.get(pin) is None)

    def release(self, pin: int) -> None:
        self.drive(pin, bool(self._pulls.get(pin)))

    def state(self, pin: int) -> bool:
        return self._levels[pin]

    def history(self, pin: int) -> List[Tuple[float, bool]]:
        with self._lock:
            return list(self._history.get(pin, ()))

    def _set(self, pin: int, level: bool) -> None:
        with self._lock:
            changed = self._levels.get(pin) != level
            self._levels[pin] = level
            if changed:
                self._history.setdefault(pin, []).append((self.clock(), level))
            callbacks = list(self._callbacks.get(pin, ())) if changed else []
        for cb in callbacks:
            cb(pin, level)
