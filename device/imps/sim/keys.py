"""Terminal keys for the fake GPIO, for ``--simulate``: a person without the box
presses the panel's buttons from the keyboard and sees its LEDs in the status line.

    keys = KeyboardPanel(fake_backend, panel_config, pads=[22, 23])
    action = keys.handle_key(ch)      # "quit" for q; a description, or None for an unknown key
    status_line += " " + render_leds(fake_backend, panel_config.mode_leds)

Keys: ``m`` short press of the mode button (next mode), ``M`` or ``r`` long
press (reset the model state), ``S`` long press of the shutdown button, ``1``..``9``
toggle gesture pad 1..9, ``q`` quit. A press is held for real time (just past
the debounce for a short press, past the hold time for a long one), so the
panel's own debounce and long-press logic run exactly as with hardware.
"""
from __future__ import annotations

import threading
from typing import Dict, List, Optional, Sequence

from ..modes import Mode
from ..panel.gpio.fake import FakeBackend

#: One letter per mode LED, in Mode order; upper case when lit.
LED_LABELS = "UCLD"


def render_leds(backend: FakeBackend, pins: Sequence[int], labels: str = LED_LABELS) -> str:
    """The mode LEDs as a short string: ``"[U---]"`` with user mode lit, ``"[----]"`` all dark."""
    return "[" + "".join(labels[i] if backend.state(pin) else "-" for i, pin in enumerate(pins)) + "]"


class KeyboardPanel:
    def __init__(self, backend: FakeBackend, config, pads: Sequence[int] = (), timer=threading.Timer):
        self.gpio = backend
        self.config = config
        self.pads = tuple(pads)
        self._timer = timer
        self._pending: List[tuple] = []   # (timer, pin) presses waiting for their release
        self._pads_down: Dict[int, bool] = {}
        short = max(4 * config.debounce, 0.12)
        self._keys = {
            "m": (config.mode_button, short, "mode button: next mode"),
            "M": (config.mode_button, config.long_press + 0.2, "mode button held: reset model state"),
            "r": (config.mode_button, config.long_press + 0.2, "mode button held: reset model state"),
            "S": (config.shutdown_button, config.shutdown_hold + 0.2, "shutdown button held"),
        }

    def handle_key(self, ch: str) -> Optional[str]:
        if ch == "q":
            return "quit"
        if ch in self._keys:
            pin, hold, what = self._keys[ch]
            if pin is None:
                return f"{what}: no such button configured"
            self.gpio.press(pin)
            t = self._timer(hold, self.gpio.release, args=(pin,))
            t.daemon = True
            self._pending = [(p, q) for p, q in self._pending if p.is_alive()] + [(t, pin)]
            t.start()
            return what
        if ch.isdigit() and 1 <= int(ch) <= len(self.pads):
            pin = self.pads[int(ch) - 1]
            down = not self._pads_down.get(pin, False)
            self._pads_down[pin] = down
            (self.gpio.press if down else self.gpio.release)(pin)
            return f"pad {ch} {'down' if down else 'up'}"
        return None

    def help(self) -> str:
        pads = f", 1-{len(self.pads)} pads" if self.pads else ""
        return f"keys: m mode, M/r reset, S shutdown{pads}, q quit; LEDs {'/'.join(m.value for m in Mode)}"

    def close(self) -> None:
        """Cancel presses still waiting to be released (and release them)."""
        for t, pin in self._pending:
            if t.is_alive():
                t.cancel()
                self.gpio.release(pin)
        self._pending.clear()
