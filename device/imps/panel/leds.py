"""The mode LEDs: a gpiozero LEDBoard that plays frames (see patterns.py).

A steady display is one frame, written at once. A blinking one is gpiozero's
``source``: the board's value follows an endless iterator of frames, one per
:data:`~imps.panel.patterns.STEP`, on gpiozero's own source thread, which
showing something else stops. Showing what is already shown changes nothing,
so a blink is not restarted by the status loop asking again.
"""
from __future__ import annotations

import logging
import threading
from itertools import chain, cycle
from typing import List, Sequence

from gpiozero import LEDBoard

from .inputs import claim
from .patterns import STEP, Frame

log = logging.getLogger(__name__)


class _Board(LEDBoard):
    """An LEDBoard whose writes log their failure instead of ending gpiozero's source thread."""

    def __init__(self, *pins, **kwargs):
        self.write_errors = 0
        super().__init__(*pins, **kwargs)

    def _set_value(self, value):
        try:
            LEDBoard.value.fset(self, value)
        except Exception:
            self.write_errors += 1
            log.exception("mode LEDs: writing %s failed", value)

    value = property(LEDBoard.value.fget, _set_value)


class ModeLeds:
    def __init__(self, factory, pins: Sequence[int]):
        self.pins = tuple(pins)
        self.board = claim("mode LEDs", self.pins[0],
                           lambda: _Board(*self.pins, pin_factory=factory))
        self.board.source_delay = STEP
        self._lock = threading.Lock()
        self._shown: List[Frame] = []

    def __len__(self) -> int:
        return len(self.pins)

    def show(self, frames: List[Frame], lead: Sequence[Frame] = ()) -> None:
        """Show ``frames`` (looped when more than one) after the ``lead`` frames (played once)."""
        with self._lock:
            if frames == self._shown and not lead:
                return
            self._shown = list(frames)
            self.board.source = None                   # stops the running pattern, if any
            if len(frames) == 1 and not lead:
                self.board.value = frames[0]
            else:
                self.board.source = chain(lead, cycle(frames) if len(frames) > 1 else frames)

    def off(self) -> None:
        with self._lock:
            self._shown = []
            self.board.source = None
            self.board.value = (False,) * len(self.pins)

    def close(self) -> None:
        self.off()
        self.board.close()
