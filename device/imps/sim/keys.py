"""Terminal keys for the mock GPIO, for ``--simulate``: a person without the box
presses the panel's buttons from the keyboard and sees its LEDs in the status line.

    keys = KeyboardPanel(mock_factory, panel_config, pads=[22, 23])
    action = keys.handle_key(ch)      # "quit" for q; a description, or None for an unknown key
    status_line += " " + render_leds(mock_factory, panel_config.mode_leds)   # imps.panel.mock

Keys: ``m`` short press of the mode button (next mode), ``M`` or ``r`` long
press (reset the model state), ``S`` long press of the shutdown button, ``1``..``9``
toggle gesture pad 1..9, ``q`` quit. A key drives gpiozero MockPins, and a press
is held for real time (past the settle time for a short press, past the hold
time for a long one), so the panel's own settling and gpiozero's hold logic run
exactly as with hardware.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Dict, List, Optional, Sequence

from ..errors import DeviceError
from ..modes import Mode
from ..panel import mock

log = logging.getLogger(__name__)

#: The keys of ``imps run --simulate`` (:func:`simulation_keys`).
KEYS_HELP = "keys: m mode, M/r reset, S shutdown, u unplug/replug board, g garbage, 1-9 pads, q quit"


class KeyboardPanel:
    def __init__(self, factory, config, pads: Sequence[int] = (), timer=threading.Timer):
        self.factory = factory
        self.config = config
        self.pads = tuple(pads)
        self._timer = timer
        self._pending: List[tuple] = []   # (timer, pin) presses waiting for their release
        self._pads_down: Dict[int, bool] = {}
        short = max(4 * config.debounce, 0.12)
        long = config.debounce + config.long_press + 0.2
        self._keys = {
            "m": (config.mode_button, short, "mode button: next mode"),
            "M": (config.mode_button, long, "mode button held: reset model state"),
            "r": (config.mode_button, long, "mode button held: reset model state"),
            "S": (config.shutdown_button, config.debounce + config.shutdown_hold + 0.2, "shutdown button held"),
        }

    def handle_key(self, ch: str) -> Optional[str]:
        if ch == "q":
            return "quit"
        try:
            return self._handle(ch)
        except DeviceError as exc:        # the panel is gone (stopping, or GPIO failed)
            return f"key {ch!r}: {exc}"

    def _handle(self, ch: str) -> Optional[str]:
        if ch in self._keys:
            pin, hold, what = self._keys[ch]
            if pin is None:
                return f"{what}: no such button configured"
            mock.press(self.factory, pin)
            t = self._timer(hold, self._release, args=(pin,))
            t.daemon = True
            self._pending = [(p, q) for p, q in self._pending if p.is_alive()] + [(t, pin)]
            t.start()
            return what
        if ch.isdigit() and 1 <= int(ch) <= len(self.pads):
            pin = self.pads[int(ch) - 1]
            down = not self._pads_down.get(pin, False)
            (mock.press if down else mock.release)(self.factory, pin)
            self._pads_down[pin] = down
            return f"pad {ch} {'down' if down else 'up'}"
        return None

    def _release(self, pin: int) -> None:
        try:
            mock.release(self.factory, pin)
        except DeviceError as exc:        # released after the panel stopped: nothing left to release
            log.debug("key release of GPIO%d: %s", pin, exc)

    def close(self) -> None:
        """Cancel presses still waiting to be released (and release them)."""
        for t, pin in self._pending:
            if t.is_alive():
                t.cancel()
                self._release(pin)
        self._pending.clear()


def led_status(box) -> Optional[str]:
    """The mode LEDs for the box's status line, when its panel runs on gpiozero's mock pins."""
    if box.gpio is not None and box.gpio.mock and box.panel is not None:
        return "LEDs " + mock.render_leds(box.gpio.factory, box.panel.config.mode_leds)
    return None


def simulation_keys(box, quit_event: threading.Event, board=None):
    """The key handler for --simulate: panel buttons and pads (KeyboardPanel), ``board`` unplug, garbage.

    Returns (on_key, the KeyboardPanel or None without mock GPIO pins)."""
    pads = box.config.pads.pins if box.pads is not None else ()
    on_mock = box.gpio is not None and box.gpio.mock
    panel = KeyboardPanel(box.gpio.factory, box.config.panel, pads=pads) if on_mock else None

    def on_key(ch: str) -> None:
        if ch == "q":
            quit_event.set()
            return
        if ch == "u" and board is not None:
            if board.plugged:
                board.unplug()
                what = "board unplugged (u plugs it back)"
            else:
                board.plug()
                what = "board plugged in"
        elif ch == "g" and board is not None:
            board.inject(os.urandom(200) + b"\x00")
            what = "200 garbage bytes sent"
        elif panel is not None:
            what = panel.handle_key(ch)
        else:
            what = None
        if what:
            box.note = (what, time.monotonic())
    return on_key, panel
