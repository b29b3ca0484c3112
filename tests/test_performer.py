"""The simulated performer (ReplayPerformer): recorded gestures replayed with their timing."""
import threading
import time

import numpy as np
import pytest

from imps.box.config import DEFAULT_PERFORMANCE
from imps.errors import DatasetError
from imps.sim.performer import ReplayPerformer
from imps.sim.replay import load_performance
from support import wait_for


class Recorder:
    def __init__(self):
        self.events = []          # (monotonic, values, channels)
        self.lock = threading.Lock()

    def __call__(self, values, channels):
        with self.lock:
            self.events.append((time.monotonic(), list(values), channels))


def rows(n, dt=0.01):
    r = np.zeros((n, 4))
    r[:, 0] = dt
    r[:, 1] = np.arange(n) / n
    r[:, 2] = 0.5
    r[:, 3] = 1 - np.arange(n) / n
    return r


def test_replays_every_gesture_in_order_at_its_time_then_finishes():
    performance = rows(30, dt=0.02)
    performer = ReplayPerformer(performance, phrase_seconds=100, rest_seconds=0, time_scale=1.0, loop=False)
    got = Recorder()
    started = time.monotonic()
    performer.start(got)
    assert performer.finished.wait(30)
    performer.stop()
    assert performer.sent == 30 and len(got.events) == 30
    np.testing.assert_allclose([v for _, v, _ in got.events], performance[:, 1:])
    assert all(c is None for _, _, c in got.events)          # every control, in order
    # Recorded timing: event i is due i+1 dts after the start, never earlier (sleeps never end early).
    times = np.array([t for t, _, _ in got.events]) - started
    assert (times >= np.cumsum(performance[:, 0]) - 1e-3).all()
    assert performer.status() == {"sent": 30, "finished": True}


def test_phrases_are_separated_by_rests_and_time_scale_stretches():
    performance = rows(40, dt=0.01)
    performer = ReplayPerformer(performance, phrase_seconds=0.1, rest_seconds=0.25, time_scale=2.0, loop=False)
    got = Recorder()
    started = time.monotonic()
    performer.start(got)
    assert performer.finished.wait(30)
    times = np.array([t for t, _, _ in got.events]) - started
    rests = int((np.diff(times) >= 0.25).sum())
    # At 2x, a phrase of 0.1 s holds 5 or 6 gestures of 0.02 s: 40 gestures make at least 6 rests
    # (a busy machine can stall a gap past 0.25 s too, so no upper bound).
    assert rests >= 6
    # Never early: 0.01 s stretched to 0.02 s per gesture, plus the rests so far.
    due = np.cumsum(np.full(40, 0.02))
    assert (times >= due - 1e-3).all() and times[-1] >= due[-1] + rests * 0.25 - 1e-3


def test_long_pauses_are_capped_and_stop_is_prompt():
    performance = rows(5, dt=100.0)                            # recorded with 100 s pauses
    performer = ReplayPerformer(performance, phrase_seconds=1000, rest_seconds=0, loop=True, max_dt=0.05)
    got = Recorder()
    performer.start(got)
    assert wait_for(lambda: len(got.events) >= 12)            # capped to 0.05 s, and it loops
    assert [v for _, v, _ in got.events[5:10]] == [v for _, v, _ in got.events[:5]]
    slow = ReplayPerformer(rows(3, dt=1.0), max_dt=60.0, rest_seconds=0)
    slow.start(Recorder())
    t = time.monotonic()
    slow.stop()
    performer.stop()
    assert time.monotonic() - t < 1.5 and slow.finished.is_set()


def test_load_performance_from_the_bundled_data():
    first = load_performance(DEFAULT_PERFORMANCE, 0)
    assert first.ndim == 2 and first.shape[1] == 4 and len(first) > 100
    assert (first[:, 0] >= 0).all() and ((first[:, 1:] >= 0) & (first[:, 1:] <= 1)).all()
    with pytest.raises(DatasetError, match="performance 99999 asked for"):
        load_performance(DEFAULT_PERFORMANCE, 99999)
