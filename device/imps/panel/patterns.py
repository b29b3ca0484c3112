"""What the mode LEDs show, as pure data: no GPIO here.

One LED per mode, in :class:`imps.modes.Mode` order (user, call and response,
layered, duet). The current mode's LED is lit, the others dark. An error makes
the lit LED blink (:data:`ERROR_PATTERNS`), repeating every second:

- ``no_model``: slow blink, 0.5 s on, 0.5 s off (the box runs user-only);
- ``no_sensor_board``: double blink, 0.1 on, 0.1 off, 0.1 on, 0.7 off;
- ``shutdown_failed``: every mode LED blinks fast, 0.1 on, 0.1 off.

:func:`frames` turns a mode and an error into the LED board's values, one
tuple per :data:`STEP`; :mod:`imps.panel.leds` plays them with gpiozero.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

from ..modes import Mode

NO_MODEL = "no_model"
NO_SENSOR_BOARD = "no_sensor_board"
SHUTDOWN_FAILED = "shutdown_failed"
#: Error kind -> one second of (duration, lit) steps, repeated. Durations are whole STEPs.
ERROR_PATTERNS = {
    NO_MODEL: ((0.5, True), (0.5, False)),
    NO_SENSOR_BOARD: ((0.1, True), (0.1, False), (0.1, True), (0.7, False)),
    SHUTDOWN_FAILED: ((0.1, True), (0.1, False)) * 5,  # on every mode LED at once
}
#: The LEDs change at most this often (every pattern step is a whole number of them).
STEP = 0.1
#: All mode LEDs light this long to confirm a reset (a long press of the mode button).
RESET_FLASH = 0.3

Frame = Tuple[bool, ...]


def pattern_lit(pattern, t: float) -> bool:
    """Whether a repeating (duration, lit) pattern is lit at t seconds into it."""
    period = sum(d for d, _ in pattern)
    t %= period
    for duration, lit in pattern:
        if t < duration:
            return lit
        t -= duration
    return pattern[-1][1]


def led_levels(mode: Mode, error: Optional[str], t_error: float, n_leds: int = len(Mode)) -> Frame:
    """The mode LEDs for a mode and an error shown for ``t_error`` seconds."""
    lit = pattern_lit(ERROR_PATTERNS[error], t_error) if error else True
    index = list(Mode).index(mode)
    return tuple(lit and i == index for i in range(n_leds))


def steps(pattern) -> int:
    """How many STEPs one period of a pattern lasts (ValueError if a duration is not whole STEPs)."""
    for duration, _ in pattern:
        if abs(duration / STEP - round(duration / STEP)) > 1e-9 or duration <= 0:
            raise ValueError(f"LED pattern step {duration} s is not a whole number of {STEP} s steps")
    return round(sum(d for d, _ in pattern) / STEP)


def frames(mode: Mode, error: Optional[str], n_leds: int = len(Mode)) -> List[Frame]:
    """One period of what the LEDs show, one frame per STEP; a single frame when nothing blinks."""
    if error is None:
        return [led_levels(mode, None, 0.0, n_leds)]
    return [led_levels(mode, error, (i + 0.5) * STEP, n_leds) for i in range(steps(ERROR_PATTERNS[error]))]


def all_frames(pattern, n_leds: int) -> List[Frame]:
    """Every LED together, following a pattern (shutdown failed)."""
    return [(pattern_lit(pattern, (i + 0.5) * STEP),) * n_leds for i in range(steps(pattern))]
