"""Which gpiozero pin factory drives the panel's pins, chosen per platform.

``[gpio] backend`` in the box config:

- ``none``: no GPIO at all (the default: a laptop needs nothing);
- ``auto``: what this board and OS need. lgpio on a Raspberry Pi 5 family board
  (Pi 5, Pi 500, Compute Module 5: their GPIO sits on the RP1 chip, which
  RPi.GPIO cannot drive) and on Raspberry Pi OS / Debian trixie or later (where
  lgpio is the maintained library); RPi.GPIO on older Pis running bookworm or
  older, where it works;
- ``lgpio`` or ``rpigpio``: force one (RPi.GPIO on a Pi 5 is refused up front);
- ``mock``: gpiozero's MockFactory, for the simulation (``make run``) and the
  tests. Its pins are pressed from the keyboard (:mod:`imps.sim.keys`) or from
  another process through ``IMPS_FAKE_GPIO_CONTROL`` (:mod:`imps.panel.mock`).

Nothing is chosen silently: asking for real pins off a Pi, or for a library
that is not installed, is one DeviceError line that says what to do, and the
box plays on without its panel. gpiozero is imported only here, when a factory
is opened, so a box without GPIO never pays for it (docs/hardware.md has the
figures).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import ConfigError, DeviceError

log = logging.getLogger(__name__)

#: The pin factories a config may name ("none" switches GPIO off; see the module docstring).
FACTORIES = ("auto", "lgpio", "rpigpio", "mock")
BACKENDS = ("none",) + FACTORIES
#: Releases from before trixie, where RPi.GPIO still works (on boards before the Pi 5).
OLD_RELEASES = ("stretch", "buster", "bullseye", "bookworm")
#: Boards whose GPIO is on the RP1 chip: lgpio only.
RP1_BOARDS = ("Raspberry Pi 5", "Raspberry Pi 500", "Raspberry Pi Compute Module 5")
HELP = 'for a simulation set [gpio] backend = "mock", or "none" for no panel'


@dataclass(frozen=True)
class Platform:
    """What decides the pin factory: the board's model string and the OS release."""
    model: str = ""          # /proc/device-tree/model, "" off a Pi
    codename: str = ""       # VERSION_CODENAME from /etc/os-release

    @classmethod
    def read(cls, root: str = "/") -> "Platform":
        base = Path(root)
        try:
            model = (base / "proc/device-tree/model").read_bytes().decode(errors="replace").strip("\0\n ")
        except OSError:
            model = ""
        codename = ""
        try:
            for line in (base / "etc/os-release").read_text().splitlines():
                if line.startswith("VERSION_CODENAME="):
                    codename = line.split("=", 1)[1].strip().strip('"').lower()
        except OSError:
            pass
        return cls(model, codename)

    @property
    def is_pi(self) -> bool:
        return self.model.startswith("Raspberry Pi")

    @property
    def rp1(self) -> bool:
        return any(self.model.startswith(board) for board in RP1_BOARDS)

    def describe(self) -> str:
        return f"{self.model or 'not a Raspberry Pi'}, {self.codename or 'unknown OS release'}"


def choose(name: str, platform: Platform) -> str:
    """The factory to open for a config's ``backend`` on this platform (DeviceError when there is none)."""
    if name not in FACTORIES:
        raise ConfigError(f"unknown GPIO pin factory {name!r}; expected one of {', '.join(BACKENDS)}")
    if name == "mock":
        return name
    if not platform.is_pi:
        raise DeviceError(f"GPIO backend {name!r} needs a Raspberry Pi's pins, and this machine is "
                          f"{platform.describe()}; {HELP}")
    if name == "auto":
        return "rpigpio" if not platform.rp1 and platform.codename in OLD_RELEASES else "lgpio"
    if name == "rpigpio" and platform.rp1:
        raise DeviceError(f"RPi.GPIO cannot drive the GPIO of a {platform.model} (RP1 chip); "
                          f'set [gpio] backend = "lgpio" or "auto"')
    return name


class Pins:
    """An open pin factory: its name, the gpiozero factory, and the outside control of the mock."""

    def __init__(self, name: str, factory, control=None):
        self.name = name
        self.factory = factory
        self.control = control     # a ControlPipe (panel/mock.py) when the mock is driven from outside
        self.closed = False

    @property
    def mock(self) -> bool:
        return self.name == "mock"

    def close(self) -> None:
        if self.control is not None:
            self.control.stop()
            self.control = None
        if not self.closed:
            self.closed = True
            self.factory.close()


def open_pins(name: str, platform: Optional[Platform] = None) -> Pins:
    """Open the pin factory a config names (``auto`` decides by ``platform``, read from this machine)."""
    platform = platform if platform is not None else Platform.read()
    chosen = choose(name, platform)
    if chosen == "mock":
        from gpiozero.pins.mock import MockFactory
        pins = Pins("mock", MockFactory())
        path = os.environ.get("IMPS_FAKE_GPIO_CONTROL")
        if path:          # driven from another process (the VM test bed holds the shutdown button)
            from .mock import ControlPipe
            try:
                pins.control = ControlPipe(pins.factory, path)
            except BaseException:
                pins.close()
                raise
        return pins
    library = {"lgpio": "lgpio", "rpigpio": "RPi.GPIO"}[chosen]
    try:
        if chosen == "lgpio":
            from gpiozero.pins.lgpio import LGPIOFactory as Factory
        else:
            from gpiozero.pins.rpigpio import RPiGPIOFactory as Factory
    except ImportError as exc:
        raise DeviceError(f"GPIO backend {name!r} needs {library}, which is not installed ({exc}); "
                          f"install the box's 'pi' extra (pip install 'imps-box[pi]'); {HELP}") from exc
    except RuntimeError as exc:      # RPi.GPIO refuses to import off a Pi
        raise DeviceError(f"{library} cannot drive GPIO here: {exc}; {HELP}") from exc
    try:
        factory = Factory()
    except Exception as exc:         # lgpio.error, RuntimeError: no /dev/gpiochip access
        raise DeviceError(f"{library} cannot open the GPIO: {exc} (is the user in the gpio group? "
                          f"another program holding the pins?)") from exc
    if name == "auto":
        log.info("GPIO: %s picked for %s", library, platform.describe())
    return Pins(chosen, factory)
