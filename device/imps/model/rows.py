"""The gesture row convention: one home for it.

A gesture row is ``(dt, x1 .. xn)``: ``dt`` is seconds since the previous
event, the controls are in [0, 1]. A model's dimension D counts dt, so a box
with 8 knobs has D = 9.
"""
from __future__ import annotations

import numpy as np

#: Shortest time between two events the box will ever schedule (seconds).
MIN_DT = 0.001
#: Longest time between two events the box will ever schedule (seconds): a sampled dt, or a
#: dt times the time scale, beyond it is shortened to it (a model or a setting can ask for inf).
MAX_DT = 60.0
#: Controls live in this closed range.
CONTROL_MIN, CONTROL_MAX = 0.0, 1.0
#: Default cap on a pause: longer gaps are shortened to this when building datasets.
DEFAULT_MAX_DT = 5.0


def dimension(n_controls: int) -> int:
    """Model dimension for a number of controls (dt counts as one)."""
    return n_controls + 1


def clip01(x: float) -> float:
    """A control held to [0, 1] (NaN becomes 0): the one clip every part of the box uses."""
    return CONTROL_MIN if not x >= CONTROL_MIN else (CONTROL_MAX if x > CONTROL_MAX else x)


def to_unit(value: float, low: float, high: float) -> float:
    """A raw value in [low, high] onto [0, 1], clipped (low > high inverts): calibration, MIDI data."""
    return clip01((value - low) / (high - low))


def valid_rows(rows: np.ndarray, max_dt: float | None = None) -> np.ndarray:
    """Boolean mask of rows that obey the convention.

    Valid means: every value finite, dt >= 0 (and <= max_dt when given), every
    control inside [0, 1].
    """
    rows = np.asarray(rows)
    ok = np.isfinite(rows).all(axis=1)
    with np.errstate(invalid="ignore"):
        ok &= rows[:, 0] >= 0.0
        if max_dt is not None:
            ok &= rows[:, 0] <= max_dt
        ok &= ((rows[:, 1:] >= CONTROL_MIN) & (rows[:, 1:] <= CONTROL_MAX)).all(axis=1)
    return ok
