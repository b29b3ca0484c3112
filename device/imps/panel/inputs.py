"""Buttons and pads on GPIO: gpiozero devices whose level counts once it has settled.

A level counts only once it has held for ``debounce`` seconds (contact bounce
and glitches shorter than that are ignored), on every pin factory alike.
gpiozero's own ``bounce_time`` is not used because it means three different
things: lgpio waits for the level to settle (as here), RPi.GPIO ignores edges
for a while after one (and can miss the final level of a bounce), and the
MockFactory does nothing. So :class:`SettleMixin` takes the pin's raw edges and
hands gpiozero's event machinery the settled level: ``when_pressed``,
``when_released``, ``hold_time`` and ``when_held`` then work as gpiozero
documents, counted from the settled press.

:class:`Pads` makes switches or pads gesture channels: an input source that
emits 1.0 (pressed) or 0.0 (released) for given control indices.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, Optional, Sequence

from gpiozero import Button
from gpiozero.threads import GPIOThread

from ..errors import ConfigError, DeviceError
from ..io.inputs import Emit

log = logging.getLogger(__name__)


def guarded(what: str, fn: Callable, counters: dict, key: str = "errors") -> Callable[[], None]:
    """``fn`` as a gpiozero event handler that logs and counts what it raises.

    gpiozero calls handlers on its own threads (the pin's, the hold thread);
    one exception there would end that thread without a word.
    """
    def handler() -> None:
        try:
            fn()
        except Exception:
            counters[key] = counters.get(key, 0) + 1
            log.exception("panel: %s raised", what)
    return handler


class SettleMixin:
    """Fire gpiozero's events only once the pin's level has held ``debounce`` seconds."""

    def __init__(self, *args, debounce: float, **kwargs):
        if not debounce > 0:
            raise ConfigError(f"debounce must be > 0 s, got {debounce!r}")
        self._debounce = float(debounce)
        self._edge = threading.Event()
        self._settler: Optional[GPIOThread] = None
        self.settle_errors = 0
        super().__init__(*args, bounce_time=None, **kwargs)
        self._settler = GPIOThread(self._settle, name=f"imps-settle-{self.pin}")
        self._settler.start()

    def _pin_changed(self, ticks, state):      # called by gpiozero on every raw edge
        self._edge.set()

    def _settle(self) -> None:
        stopping = self._settler.stopping
        while not stopping.is_set():
            if not self._edge.wait(1.0):
                continue
            self._edge.clear()
            while self._edge.wait(self._debounce):    # changed again: start the settle time over
                self._edge.clear()
            if stopping.is_set():
                return
            try:                   # the level now, not the edge's: a missed edge cannot stick
                self._fire_events(self.pin_factory.ticks(), self.is_active)
            except Exception:
                self.settle_errors += 1
                log.exception("GPIO %s: an event handler raised", self.pin)

    def close(self) -> None:
        settler, self._settler = self._settler, None
        if settler is not None:
            settler.stopping.set()
            self._edge.set()
            settler.stop(2.0)
        super().close()


class SettledButton(SettleMixin, Button):
    """A gpiozero Button (``when_pressed``, ``when_released``, ``hold_time``, ``when_held``) with settling."""


def claim(what: str, pin: int, make: Callable):
    """``make()`` a gpiozero device, with any failure as a DeviceError naming the role and the pin.

    gpiozero, lgpio and RPi.GPIO each raise their own exceptions (pin in use,
    fixed pull, no access); the box needs one kind to play on without the panel.
    """
    try:
        return make()
    except Exception as exc:
        raise DeviceError(f"{what} on GPIO{pin}: {type(exc).__name__}: {exc}") from exc


class Pads:
    """GPIO switches or pads as gesture channels: an input source of 0/1 values.

    ``pins[i]`` drives control index ``controls[i]``; pressed emits 1.0,
    released 0.0, each change settled for ``debounce`` seconds. The pins are
    claimed at construction, so a busy pin is an error at bring-up.
    """

    name = "gpio"

    def __init__(self, factory, pins: Sequence[int], controls: Sequence[int], *,
                 pull_up: bool = True, debounce: float = 0.01):
        if len(pins) != len(controls) or not pins:
            raise ConfigError(f"digital inputs need one control index per pin, got pins {list(pins)} "
                              f"and controls {list(controls)}")
        self.pins = tuple(pins)
        self.controls = tuple(controls)
        self._emit: Optional[Emit] = None
        self.counters = {"events": 0, "callback_errors": 0}
        self.buttons = []
        try:
            for pin, control in zip(self.pins, self.controls):
                button = claim("pad", pin, lambda: SettledButton(pin, pull_up=pull_up, debounce=debounce,
                                                                  pin_factory=factory))
                button.when_pressed = guarded(f"pad GPIO{pin}", lambda c=control: self._send(1.0, c),
                                              self.counters, "callback_errors")
                button.when_released = guarded(f"pad GPIO{pin}", lambda c=control: self._send(0.0, c),
                                               self.counters, "callback_errors")
                self.buttons.append(button)
        except BaseException:
            self.stop()
            raise

    def _send(self, value: float, control: int) -> None:
        emit = self._emit
        if emit is not None:          # before start(): pressed pads are not gestures yet
            self.counters["events"] += 1
            emit([value], [control])

    def setup(self, emit: Emit) -> None:
        self._emit = emit

    def start(self, emit: Emit) -> None:
        self.setup(emit)

    def stop(self, timeout: float = 2.0) -> None:
        self._emit = None
        buttons, self.buttons = self.buttons, []
        for button in buttons:
            button.close()

    def status(self) -> dict:
        return {"gpio_events": self.counters["events"], "gpio_callback_errors": self.counters["callback_errors"]}
