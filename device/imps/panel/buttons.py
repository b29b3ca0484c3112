"""The box's front panel (mode and shutdown buttons, mode LEDs) and GPIO gesture pads.

Buttons are wired from a BCM pin to ground and read with the internal pull-up
(pressed = low), unless ``pull_up`` is False. Both buttons are polled every
``poll_interval`` and debounced: a level counts only once it has held for
``debounce`` seconds.

Buttons:

- mode, short press (released before ``long_press``): ``controller.cycle_mode()``,
  then the LEDs show ``controller.mode``.
- mode, long press (held ``long_press`` seconds; fires while still held, once):
  ``controller.reset_state()``; all mode LEDs light for 0.3 s to confirm.
- shutdown, long press (held ``shutdown_hold`` seconds): runs
  ``shutdown_command`` once (default ``systemctl poweroff``) and checks its exit
  status; all mode LEDs stay lit from then on. If the command fails (not
  installed, or not allowed: the service user needs the polkit rule that
  deploy/provision.sh writes), its error goes to the log and all mode LEDs blink
  fast (``shutdown_failed``) until the button is held again. A short press does
  nothing, so a knock cannot power off the box.

LEDs: one per mode, in :class:`imps.modes.Mode` order (user, call and
response, layered, duet). The current mode's LED is lit, the others dark. An
error makes the lit LED blink (:data:`ERROR_PATTERNS`), repeating every second:

- ``no_model``: slow blink, 0.5 s on, 0.5 s off (the box runs user-only);
- ``no_sensor_board``: double blink, 0.1 on, 0.1 off, 0.1 on, 0.7 off;
- ``shutdown_failed``: every mode LED blinks fast, 0.1 on, 0.1 off.

The panel talks to the engine only through a controller object with::

    controller.mode            # the current imps.modes.Mode (property)
    controller.cycle_mode()    # go to the next mode
    controller.reset_state()   # reset the model's LSTM state

and the engine tells the panel what to show with ``panel.show_mode(mode)``
(e.g. after an OSC mode change) and ``panel.show_error(kind or None)``.

:class:`DigitalInputs` turns switches or pads on GPIO into gesture channels:
an input source that emits 1.0 (pressed) or 0.0 (released) for given control
indices.
"""
from __future__ import annotations

import logging
import subprocess
import threading
import time
from dataclasses import dataclass, fields
from typing import Callable, List, Optional, Protocol, Sequence, Tuple

from ..errors import ConfigError
from ..io.inputs import Emit
from ..modes import Mode
from ..threads import join_or_complain
from .gpio import GPIOBackend

log = logging.getLogger("imps.panel")

NO_MODEL = "no_model"
NO_SENSOR_BOARD = "no_sensor_board"
SHUTDOWN_FAILED = "shutdown_failed"
#: The shutdown command gets this long to answer (systemctl poweroff returns at once).
SHUTDOWN_TIMEOUT = 30.0
#: Error kind -> one second of (duration, lit) steps, repeated.
ERROR_PATTERNS = {
    NO_MODEL: ((0.5, True), (0.5, False)),
    NO_SENSOR_BOARD: ((0.1, True), (0.1, False), (0.1, True), (0.7, False)),
    SHUTDOWN_FAILED: ((0.1, True), (0.1, False)) * 5,  # on every mode LED at once
}
RESET_FLASH = 0.3


class Controller(Protocol):
    @property
    def mode(self) -> Mode: ...

    def cycle_mode(self) -> None: ...

    def reset_state(self) -> None: ...


class Debouncer:
    """Pure button logic over (active, time) samples.

    :meth:`update` returns the events it recognises, in order: ``press``,
    ``release``, ``long`` (held for ``long_press``, once, while still held) and
    ``short`` (released before a ``long``).
    """

    def __init__(self, debounce: float, long_press: Optional[float] = None, active: bool = False):
        self.debounce = debounce
        self.long_press = long_press
        self.active = active          # the debounced state
        self._raw = active
        self._since = 0.0
        self._pressed_at = 0.0
        self._long_fired = False

    def update(self, raw: bool, now: float) -> List[str]:
        events: List[str] = []
        if raw != self._raw:
            self._raw, self._since = raw, now
        if self._raw != self.active and now - self._since >= self.debounce:
            self.active = self._raw
            if self.active:
                self._pressed_at, self._long_fired = self._since, False
                events.append("press")
            else:
                events.append("release")
                if not self._long_fired:
                    events.append("short")
        if (self.active and not self._long_fired and self.long_press is not None
                and now - self._pressed_at >= self.long_press):
            self._long_fired = True
            events.append("long")
        return events


def run_shutdown_command(cmd: Sequence[str]) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=SHUTDOWN_TIMEOUT)


def pattern_lit(pattern, t: float) -> bool:
    """Whether a repeating (duration, lit) pattern is lit at t seconds into it."""
    period = sum(d for d, _ in pattern)
    t %= period
    for duration, lit in pattern:
        if t < duration:
            return lit
        t -= duration
    return pattern[-1][1]


def led_levels(mode: Mode, error: Optional[str], t_error: float, n_leds: int = len(Mode)) -> Tuple[bool, ...]:
    """The mode LEDs for a mode and an error shown for ``t_error`` seconds."""
    lit = pattern_lit(ERROR_PATTERNS[error], t_error) if error else True
    index = list(Mode).index(mode)
    return tuple(lit and i == index for i in range(n_leds))


@dataclass
class PanelConfig:
    """The ``[panel]`` settings of the box config; pins are BCM numbers, None (false in TOML) = not fitted."""
    mode_button: Optional[int] = 17
    shutdown_button: Optional[int] = 27
    mode_leds: Sequence[int] = (5, 6, 13, 19)
    pull_up: bool = True
    debounce: float = 0.03
    long_press: float = 1.0
    shutdown_hold: float = 3.0
    shutdown_command: Sequence[str] = ("systemctl", "poweroff")
    poll_interval: float = 0.005

    def __post_init__(self):
        self.mode_leds = tuple(self.mode_leds or ())
        if self.mode_leds and len(self.mode_leds) != len(Mode):
            raise ConfigError(f"mode_leds needs one BCM pin per mode ({len(Mode)}: "
                              f"{', '.join(m.value for m in Mode)}), got {list(self.mode_leds)}")
        pins = [p for p in (self.mode_button, self.shutdown_button, *self.mode_leds) if p is not None]
        if len(set(pins)) != len(pins):
            raise ConfigError(f"panel pins must all differ, got {pins}")
        if not 0 < self.debounce < self.long_press:
            raise ConfigError(f"debounce ({self.debounce}) must be > 0 and shorter than long_press ({self.long_press})")

    @classmethod
    def from_dict(cls, d: dict) -> "PanelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown gpio panel settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


class Panel:
    """Mode and shutdown buttons and mode LEDs (see the module docstring)."""

    def __init__(self, backend: GPIOBackend, controller: Controller, config: Optional[PanelConfig] = None, *,
                 run_command: Callable[[Sequence[str]], subprocess.CompletedProcess] = None,
                 clock: Callable[[], float] = time.monotonic):
        self.gpio = backend
        self.controller = controller
        self.config = config or PanelConfig()
        self._run_command = run_command or run_shutdown_command
        self._clock = clock
        c = self.config
        self._mode_button = Debouncer(c.debounce, c.long_press)
        self._shutdown_button = Debouncer(c.debounce, c.shutdown_hold)
        self._mode = controller.mode
        self._error: Optional[str] = None
        self._error_since = 0.0
        self._flash_until = -1.0
        self.shutting_down = False
        self.shutdown_failed: Optional[str] = None     # why the last shutdown command failed
        self._shutdown_failed_at = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._set_up = False
        self.counters = dict(mode_presses=0, resets=0, shutdowns=0, errors=0)

    def setup(self) -> None:
        """Claim the pins (start() does this; tests that poll by hand call it)."""
        if self._set_up:
            return
        c = self.config
        for pin in (c.mode_button, c.shutdown_button):
            if pin is not None:
                self.gpio.setup_input(pin, pull_up=c.pull_up)
        for pin in c.mode_leds:
            self.gpio.setup_output(pin, False)
        self._set_up = True
        self._update_leds(self._clock())

    def start(self) -> None:
        self.setup()
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="imps-panel", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        join_or_complain(thread, timeout, "GPIO panel thread")
        if self._set_up:
            for pin in self.config.mode_leds:
                self.gpio.write(pin, False)

    # -- from the engine --------------------------------------------------------
    def show_mode(self, mode: Mode) -> None:
        with self._lock:
            self._mode = Mode(mode)
        self._update_leds(self._clock())

    def show_error(self, kind: Optional[str]) -> None:
        if kind is not None and kind not in ERROR_PATTERNS:
            raise ConfigError(f"unknown panel error {kind!r}; expected None or one of {sorted(ERROR_PATTERNS)}")
        with self._lock:
            if kind != self._error:
                self._error, self._error_since = kind, self._clock()
        self._update_leds(self._clock())

    def status(self) -> dict:
        return dict(mode=self._mode.value, error=self._error, shutting_down=self.shutting_down,
                    shutdown_failed=self.shutdown_failed, **self.counters)

    # -- polling ------------------------------------------------------------------
    def poll(self, now: Optional[float] = None) -> None:
        """Read the buttons, act on their events, refresh the LEDs."""
        now = self._clock() if now is None else now
        c = self.config
        if c.mode_button is not None:
            for event in self._mode_button.update(self._active(c.mode_button), now):
                if event == "short":
                    self.counters["mode_presses"] += 1
                    self._call("cycle_mode", self.controller.cycle_mode)
                    self.show_mode(self.controller.mode)
                elif event == "long":
                    self.counters["resets"] += 1
                    self._call("reset_state", self.controller.reset_state)
                    self._flash_until = now + RESET_FLASH
        if c.shutdown_button is not None:
            for event in self._shutdown_button.update(self._active(c.shutdown_button), now):
                if event == "long" and not self.shutting_down:
                    self._shutdown()
        self._update_leds(now)

    def _active(self, pin: int) -> bool:
        return self.gpio.read(pin) != self.config.pull_up

    def _call(self, what: str, fn) -> None:
        try:
            fn()
        except Exception:
            self.counters["errors"] += 1
            log.exception("panel: controller.%s() raised", what)

    def _shutdown(self) -> None:
        self.shutting_down = True
        self.shutdown_failed = None
        self.counters["shutdowns"] += 1
        cmd = list(self.config.shutdown_command)
        log.warning("shutdown button held %.1f s: running %s", self.config.shutdown_hold, " ".join(cmd))
        try:
            result = self._run_command(cmd)
            if result.returncode != 0:
                said = (result.stderr or result.stdout or "").strip().splitlines()
                why = f"exit status {result.returncode}" + (f": {said[-1]}" if said else "")
            else:
                return
        except (OSError, subprocess.SubprocessError) as exc:
            why = str(exc)
        # Not powering off after all: say so on the LEDs, not "shutting down" forever.
        self.counters["errors"] += 1
        self.shutting_down = False
        self.shutdown_failed, self._shutdown_failed_at = why, self._clock()
        log.error("shutdown command %s failed, the box stays on: %s (is it installed, and may this user "
                  "run it? the service user needs the polkit rule deploy/provision.sh writes, "
                  "see docs/appliance.md)", " ".join(cmd), why)

    def led_levels(self, now: Optional[float] = None) -> Tuple[bool, ...]:
        now = self._clock() if now is None else now
        n = len(self.config.mode_leds)
        if self.shutting_down or now < self._flash_until:
            return (True,) * n
        if self.shutdown_failed:
            return (pattern_lit(ERROR_PATTERNS[SHUTDOWN_FAILED], now - self._shutdown_failed_at),) * n
        with self._lock:
            mode, error, since = self._mode, self._error, self._error_since
        return led_levels(mode, error, now - since, n) if n else ()

    def _update_leds(self, now: float) -> None:
        if not self._set_up:
            return
        for pin, lit in zip(self.config.mode_leds, self.led_levels(now)):
            self.gpio.write(pin, lit)

    def _run(self) -> None:
        while not self._stop.wait(self.config.poll_interval):
            try:
                self.poll()
            except Exception:   # a failing pin must not silently kill the panel: log, back off, retry
                self.counters["errors"] += 1
                log.exception("GPIO panel poll failed")
                self._stop.wait(1.0)


class DigitalInputs:
    """GPIO switches or pads as gesture channels: an input source of 0/1 values.

    ``pins[i]`` drives control index ``controls[i]``; pressed (active) emits 1.0,
    released 0.0, each change debounced.
    """

    name = "gpio"

    def __init__(self, backend: GPIOBackend, pins: Sequence[int], controls: Sequence[int], *,
                 pull_up: bool = True, debounce: float = 0.01, poll_interval: float = 0.002,
                 clock: Callable[[], float] = time.monotonic):
        if len(pins) != len(controls) or not pins:
            raise ConfigError(f"digital inputs need one control index per pin, got pins {list(pins)} "
                              f"and controls {list(controls)}")
        self.gpio = backend
        self.pins = tuple(pins)
        self.controls = tuple(controls)
        self.pull_up = pull_up
        self.poll_interval = poll_interval
        self._clock = clock
        self._debouncers = [Debouncer(debounce) for _ in pins]
        self._emit: Optional[Emit] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.events = 0
        self.callback_errors = 0

    def setup(self, emit: Emit) -> None:
        self._emit = emit
        for pin in self.pins:
            self.gpio.setup_input(pin, pull_up=self.pull_up)

    def start(self, emit: Emit) -> None:
        self.setup(emit)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="imps-gpio-inputs", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        join_or_complain(thread, timeout, "GPIO inputs thread")

    def status(self) -> dict:
        return {"gpio_events": self.events, "gpio_callback_errors": self.callback_errors}

    def poll(self, now: Optional[float] = None) -> None:
        now = self._clock() if now is None else now
        for pin, control, deb in zip(self.pins, self.controls, self._debouncers):
            for event in deb.update(self.gpio.read(pin) != self.pull_up, now):
                if event in ("press", "release"):
                    self.events += 1
                    try:
                        self._emit([1.0 if event == "press" else 0.0], [control])
                    except Exception:
                        self.callback_errors += 1
                        log.exception("the input callback raised on GPIO%d", pin)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_interval):
            self.poll()
