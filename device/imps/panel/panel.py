"""The box's front panel: mode and shutdown buttons, and the mode LEDs, on gpiozero.

Buttons are wired from a BCM pin to ground and read with the internal pull-up
(pressed = low), unless ``pull_up`` is False. A level counts once it has held
``debounce`` seconds (inputs.py).

- mode, short press (released before ``long_press``): ``controller.cycle_mode()``,
  then the LEDs show ``controller.mode``.
- mode, long press (held ``long_press`` seconds; gpiozero's ``when_held``, fires
  while still held, once): ``controller.reset_state()``; all mode LEDs light
  for 0.3 s to confirm.
- shutdown, held ``shutdown_hold`` seconds: runs ``shutdown_command`` once
  (default ``systemctl poweroff``) and checks its exit status; all mode LEDs
  stay lit from then on. If the command fails (not installed, or not allowed:
  the service user needs the polkit rule that deploy/provision.sh writes), its
  error goes to the log and all mode LEDs blink fast (``shutdown_failed``)
  until the button is held again. A short press does nothing, so a knock
  cannot power off the box.

The LEDs show the mode and blink errors (patterns.py). The panel talks to the
engine only through a controller object with::

    controller.mode            # the current imps.modes.Mode (property)
    controller.cycle_mode()    # go to the next mode
    controller.reset_state()   # reset the model's LSTM state

and the engine tells the panel what to show with ``panel.show_mode(mode)``
(e.g. after an OSC mode change) and ``panel.show_error(kind or None)``.
Handlers run on gpiozero's threads; whatever they raise is logged and counted
in ``status()["errors"]``, and the threads live on.
"""
from __future__ import annotations

import logging
import subprocess
import threading
from typing import Callable, Optional, Protocol, Sequence

from ..errors import ConfigError
from ..modes import Mode
from .inputs import SettledButton, claim, guarded
from .leds import ModeLeds
from .patterns import ERROR_PATTERNS, RESET_FLASH, SHUTDOWN_FAILED, STEP, all_frames, frames
from .settings import PanelConfig

log = logging.getLogger(__name__)

#: The shutdown command gets this long to answer (systemctl poweroff returns at once).
SHUTDOWN_TIMEOUT = 30.0


class Controller(Protocol):
    @property
    def mode(self) -> Mode: ...

    def cycle_mode(self) -> None: ...

    def reset_state(self) -> None: ...


def run_shutdown_command(cmd: Sequence[str]) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=SHUTDOWN_TIMEOUT)


class Panel:
    """Mode and shutdown buttons and mode LEDs (see the module docstring)."""

    def __init__(self, factory, controller: Controller, config: Optional[PanelConfig] = None, *,
                 run_command: Callable[[Sequence[str]], subprocess.CompletedProcess] = None):
        self.factory = factory
        self.controller = controller
        self.config = config or PanelConfig()
        self._run_command = run_command or run_shutdown_command
        self._mode = controller.mode
        self._error: Optional[str] = None
        self._mode_held = False
        self.shutting_down = False
        self.shutdown_failed: Optional[str] = None     # why the last shutdown command failed
        self._lock = threading.RLock()
        self.leds: Optional[ModeLeds] = None
        self.buttons: list = []
        self.counters = dict(mode_presses=0, resets=0, shutdowns=0, errors=0)

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> "Panel":
        """Claim the pins (a DeviceError names the one that failed) and light the mode's LED."""
        if self.buttons or self.leds is not None:
            return self
        c = self.config
        try:
            if c.mode_leds:
                self.leds = ModeLeds(self.factory, c.mode_leds)
            if c.mode_button is not None:
                button = self._button("mode button", c.mode_button, c.long_press)
                button.when_pressed = guarded("mode button press", self._mode_pressed, self.counters)
                button.when_held = guarded("mode button long press", self._reset, self.counters)
                button.when_released = guarded("mode button release", self._mode_released, self.counters)
            if c.shutdown_button is not None:
                button = self._button("shutdown button", c.shutdown_button, c.shutdown_hold)
                button.when_held = guarded("shutdown button hold", self._shutdown, self.counters)
        except BaseException:
            self.stop()
            raise
        self._render()
        return self

    def _button(self, what: str, pin: int, hold: float) -> SettledButton:
        c = self.config
        button = claim(what, pin, lambda: SettledButton(pin, pull_up=c.pull_up, debounce=c.debounce,
                                                        hold_time=hold, pin_factory=self.factory))
        self.buttons.append(button)
        return button

    def stop(self, timeout: float = 2.0) -> None:
        """Release the buttons, LEDs dark."""
        buttons, self.buttons = self.buttons, []
        for button in buttons:
            button.close()
        leds, self.leds = self.leds, None
        if leds is not None:
            leds.close()

    # -- from the engine ----------------------------------------------------------
    def show_mode(self, mode: Mode) -> None:
        with self._lock:
            self._mode = Mode(mode)
            self._render()

    def show_error(self, kind: Optional[str]) -> None:
        if kind is not None and kind not in ERROR_PATTERNS:
            raise ConfigError(f"unknown panel error {kind!r}; expected None or one of {sorted(ERROR_PATTERNS)}")
        with self._lock:
            self._error = kind
            self._render()

    def status(self) -> dict:
        return dict(mode=self._mode.value, error=self._error, shutting_down=self.shutting_down,
                    shutdown_failed=self.shutdown_failed, **self.counters)

    # -- the buttons (on gpiozero's threads) ----------------------------------------
    def _mode_pressed(self) -> None:
        self._mode_held = False

    def _mode_released(self) -> None:
        if self._mode_held:          # the end of a long press: it has done its job
            return
        self.counters["mode_presses"] += 1
        self.controller.cycle_mode()
        self.show_mode(self.controller.mode)

    def _reset(self) -> None:
        self._mode_held = True
        self.counters["resets"] += 1
        try:
            self.controller.reset_state()
        finally:
            with self._lock:
                self._render(flash=True)

    def _shutdown(self) -> None:
        if self.shutting_down:
            return
        with self._lock:
            self.shutting_down = True
            self.shutdown_failed = None
            self._render()
        self.counters["shutdowns"] += 1
        cmd = list(self.config.shutdown_command)
        log.warning("shutdown button held %.1f s: running %s", self.config.shutdown_hold, " ".join(cmd))
        try:
            result = self._run_command(cmd)
            if result.returncode == 0:
                return
            said = (result.stderr or result.stdout or "").strip().splitlines()
            why = f"exit status {result.returncode}" + (f": {said[-1]}" if said else "")
        except (OSError, subprocess.SubprocessError) as exc:
            why = str(exc)
        # Not powering off after all: say why in the journal first, then on the LEDs and in
        # the counters (whoever sees the failure there finds its reason already logged).
        log.error("shutdown command %s failed, the box stays on: %s (is it installed, and may this user "
                  "run it? the service user needs the polkit rule deploy/provision.sh writes, "
                  "see docs/appliance.md)", " ".join(cmd), why)
        self.counters["errors"] += 1
        with self._lock:
            self.shutting_down = False
            self.shutdown_failed = why
            self._render()

    # -- the LEDs -----------------------------------------------------------------
    def _render(self, flash: bool = False) -> None:
        """Show the state on the LEDs: shutting down > shutdown failed > mode (with its error)."""
        leds = self.leds
        if leds is None:
            return
        n = len(leds)
        if self.shutting_down:
            shown = [(True,) * n]
        elif self.shutdown_failed:
            shown = all_frames(ERROR_PATTERNS[SHUTDOWN_FAILED], n)
        else:
            shown = frames(self._mode, self._error, n)
        lead = [(True,) * n] * round(RESET_FLASH / STEP) if flash else []
        leds.show(shown, lead)
