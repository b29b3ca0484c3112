"""A recorded performance: loading one, and when each of its events is due when replayed.

Shared by the simulated performer (performer.py: events straight to the box)
and the simulated sensor board (board.py: the same events as serial frames).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import DatasetError
from ..model.dataset import load_dataset


def load_performance(path, index: int = 0, *, trusted_pickle: bool = False) -> np.ndarray:
    """Rows (N, D) of one performance from a dataset file.

    The project's own format loads without pickle. A published pickled dataset
    (``perfs`` object array) loads only with ``trusted_pickle=True``: unpickling
    can run code, so it is an explicit choice.
    """
    try:
        ds = load_dataset(path)
        if not 0 <= index < len(ds):
            raise DatasetError(f"{path}: performance {index} asked for, it has {len(ds)}")
        return ds.performance(index)
    except DatasetError:
        try:
            with np.load(path, allow_pickle=False) as z:   # listing the members never unpickles
                pickled = "perfs" in z.files
        except (OSError, ValueError):
            pickled = False
        if not pickled:
            raise
        if not trusted_pickle:
            raise DatasetError(f"{path}: a published pickled dataset ('perfs'); loading it can run code, "
                               f"so pass trusted_pickle=True (--trusted-pickle) if you trust the file") from None
    with np.load(path, allow_pickle=True) as z:
        perfs = z["perfs"]
        if not 0 <= index < len(perfs):
            raise DatasetError(f"{path}: performance {index} asked for, it has {len(perfs)}")
        rows = np.asarray(perfs[index], dtype=np.float32)
    if rows.ndim != 2 or rows.shape[1] < 2:
        raise DatasetError(f"{path}: performance {index} has shape {rows.shape}, expected (N, D>=2)")
    return rows


class Phrasing:
    """Recorded timing, replayed: each event's dt (capped at ``max_dt``) times ``time_scale``,
    and after every ``phrase_seconds`` of playing a rest of ``rest_seconds`` (None or 0: no
    rests), so call and response has silences to answer."""

    def __init__(self, time_scale: float = 1.0, max_dt: Optional[float] = None,
                 phrase_seconds: Optional[float] = None, rest_seconds: float = 0.0, start: float = 0.0):
        self.time_scale = time_scale
        self.max_dt = max_dt
        self.phrase_seconds = phrase_seconds
        self.rest_seconds = rest_seconds
        self.phrase_start = start

    def gap(self, dt: float) -> float:
        dt = float(dt)
        if self.max_dt is not None:
            dt = min(dt, self.max_dt)
        return dt * self.time_scale

    def next_due(self, due: float, dt: float, floor: float = float("-inf")) -> float:
        """When the event ``dt`` after one due at ``due`` is due (never before ``floor``)."""
        due = max(due + self.gap(dt), floor)
        if self.phrase_seconds and self.rest_seconds > 0 and due - self.phrase_start >= self.phrase_seconds:
            due += self.rest_seconds   # a rest: the performer listens
            self.phrase_start = due
        return due
