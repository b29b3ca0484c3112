"""The RPi.GPIO backend (and rpi-lgpio, which provides the same module on a Pi 5).

RPi.GPIO is imported when this backend is created, never at package import,
so the rest of the box runs anywhere. Off a Pi the import fails with "This
module can only be run on a Raspberry Pi!"; that becomes a DeviceError that
says what to do instead.
"""
from __future__ import annotations

from typing import Optional

from ...errors import DeviceError
from . import EdgeCallback, GPIOBackend


def _import_gpio():
    try:
        import RPi.GPIO as GPIO
    except RuntimeError as exc:
        raise DeviceError(f"RPi.GPIO cannot drive GPIO here: {exc} "
                          f"(not a Raspberry Pi? for a simulation set IMPS_GPIO=fake or gpio = \"fake\")") from exc
    except ImportError as exc:
        raise DeviceError(f"RPi.GPIO is not installed ({exc}); on a Pi install the 'pi' extra "
                          f"(RPi.GPIO, or rpi-lgpio on a Pi 5); elsewhere use IMPS_GPIO=fake") from exc
    return GPIO


class RPiGPIOBackend(GPIOBackend):
    name = "rpigpio"

    def __init__(self):
        super().__init__()
        self.gpio = _import_gpio()
        self.gpio.setwarnings(False)
        self.gpio.setmode(self.gpio.BCM)

    def setup_input(self, pin: int, pull_up: Optional[bool] = True) -> None:
        self._claim(pin, "in")
        g = self.gpio
        pull = g.PUD_OFF if pull_up is None else g.PUD_UP if pull_up else g.PUD_DOWN
        self._call(g.setup, pin, g.IN, pull_up_down=pull)

    def read(self, pin: int) -> bool:
        self._check(pin, "in")
        return bool(self._call(self.gpio.input, pin))

    def setup_output(self, pin: int, initial: bool = False) -> None:
        self._claim(pin, "out")
        g = self.gpio
        self._call(g.setup, pin, g.OUT, initial=g.HIGH if initial else g.LOW)

    def write(self, pin: int, value: bool) -> None:
        self._check(pin, "out")
        self._call(self.gpio.output, pin, self.gpio.HIGH if value else self.gpio.LOW)

    def add_edge_callback(self, pin: int, callback: EdgeCallback) -> None:
        self._check(pin, "in")
        g = self.gpio
        self._call(g.add_event_detect, pin, g.BOTH, callback=lambda ch: callback(ch, bool(g.input(ch))))

    def close(self) -> None:
        pins, self._modes = list(self._modes), {}
        if pins:
            try:
                self.gpio.cleanup(pins)
            except RuntimeError:
                pass

    def _call(self, fn, pin, *args, **kw):
        try:
            return fn(pin, *args, **kw)
        except (RuntimeError, ValueError) as exc:
            raise DeviceError(f"GPIO{pin}: {fn.__name__} failed: {exc} (pin in use by another program, "
                              f"or no access to /dev/gpiomem: gpio group?)") from exc
