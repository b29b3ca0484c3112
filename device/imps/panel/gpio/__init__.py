"""GPIO behind one small interface, with swappable backends.

A backend drives BCM-numbered pins; everything above it (buttons, LEDs,
digital gesture inputs in :mod:`imps.panel.buttons`) only talks to a backend:

- ``setup_input(pin, pull_up=True)``  an input; ``pull_up`` True, False (pull-down) or None (no pull)
- ``read(pin) -> bool``               the level, True = high
- ``setup_output(pin, initial=False)`` an output, driven to ``initial``
- ``write(pin, value)``               drive an output high (True) or low
- ``add_edge_callback(pin, callback)`` call ``callback(pin, level)`` on every edge (optional; the
  panel polls instead, so debounce and long presses work the same on every backend)
- ``close()``                         release every pin this backend set up

Backends: ``rpigpio`` (RPi.GPIO, imported only when chosen; rpi-lgpio gives the
same API on a Pi 5) and ``fake`` (scriptable, records LED history). The fake is
chosen only on request, by name (config ``gpio = "fake"``) or environment
(``IMPS_GPIO=fake``), never as a silent fallback when RPi.GPIO is missing.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Callable, Dict, Optional

from ...errors import ConfigError, DeviceError

EdgeCallback = Callable[[int, bool], None]
BACKENDS = ("rpigpio", "fake")
ENV = "IMPS_GPIO"


class GPIOBackend(ABC):
    """The interface every backend implements; bookkeeping of pin use is shared here."""

    name = "abstract"

    def __init__(self):
        self._modes: Dict[int, str] = {}

    def _claim(self, pin: int, mode: str) -> None:
        if not isinstance(pin, int) or not 0 <= pin <= 27:
            raise ConfigError(f"GPIO pin {pin!r} is not a BCM pin number 0..27")
        held = self._modes.get(pin)
        if held is not None and held != mode:
            raise DeviceError(f"GPIO{pin} is already in use as an {held}put, cannot make it an {mode}put "
                              f"(two settings name the same pin?)")
        self._modes[pin] = mode

    def _check(self, pin: int, mode: str) -> None:
        if self._modes.get(pin) != mode:
            raise DeviceError(f"GPIO{pin} is not set up as an {mode}put (call setup_{mode}put first)")

    @abstractmethod
    def setup_input(self, pin: int, pull_up: Optional[bool] = True) -> None: ...

    @abstractmethod
    def read(self, pin: int) -> bool: ...

    @abstractmethod
    def setup_output(self, pin: int, initial: bool = False) -> None: ...

    @abstractmethod
    def write(self, pin: int, value: bool) -> None: ...

    def add_edge_callback(self, pin: int, callback: EdgeCallback) -> None:
        raise DeviceError(f"the {self.name} GPIO backend has no edge callbacks; poll GPIO{pin} instead")

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def get_backend(name: Optional[str] = None) -> GPIOBackend:
    """The backend named by ``name``, else by ``$IMPS_GPIO``, else RPi.GPIO."""
    chosen = (name or os.environ.get(ENV) or "rpigpio").strip().lower()
    if chosen == "fake":
        from .fake import FakeBackend
        backend = FakeBackend()
        if os.environ.get("IMPS_FAKE_GPIO_CONTROL"):   # driven from outside (gpio/control.py)
            from .control import ControlPipe
            backend.control = ControlPipe(backend, os.environ["IMPS_FAKE_GPIO_CONTROL"])
        return backend
    if chosen in ("rpigpio", "rpi", "rpi.gpio", "lgpio"):
        from .rpigpio import RPiGPIOBackend
        return RPiGPIOBackend()
    raise ConfigError(f"unknown GPIO backend {chosen!r} (from {'config' if name else ENV}); "
                      f"expected one of {BACKENDS}")
