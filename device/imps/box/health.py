"""What the panel LEDs say is wrong: the health policy, apart from the panel that shows it.

In order: the sensor board away for longer than ``NO_BOARD_GRACE`` (not at
every start-up or brief replug) blinks ``no_sensor_board``; a box without a
usable model blinks ``no_model``; otherwise nothing.
"""
from __future__ import annotations

from ..panel.patterns import NO_MODEL, NO_SENSOR_BOARD

#: The sensor board must be away this long before the LEDs say so (not at every start-up).
NO_BOARD_GRACE = 1.0


class Health:
    def __init__(self, grace: float = NO_BOARD_GRACE):
        self.grace = grace
        self._board_down_since: float | None = None

    def check(self, board_connected: bool | None, model_error: str | None, now: float) -> str | None:
        """The error kind to show (``board_connected`` None: the box has no board)."""
        if board_connected is False:
            if self._board_down_since is None:
                self._board_down_since = now
            if now - self._board_down_since >= self.grace:
                return NO_SENSOR_BOARD
        else:
            self._board_down_since = None
        return NO_MODEL if model_error else None
