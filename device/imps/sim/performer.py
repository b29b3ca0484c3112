"""A simulated performer: replays a recorded performance in real time.

An InputSource (see inputs.py) for `make run` and the tests: it plays the
recorded gestures with their recorded timing, in phrases separated by rests
so that call-and-response has silences to answer.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from ..errors import DatasetError
from ..model.dataset import load_dataset


def load_performance(path, index: int = 0) -> np.ndarray:
    dataset = load_dataset(path)
    if not 0 <= index < len(dataset):
        raise DatasetError(f"{path}: no performance {index} (it has {len(dataset)})")
    return dataset.performance(index)


class ReplayPerformer:
    name = "replay"

    def __init__(self, rows: np.ndarray, phrase_seconds: float = 8.0, rest_seconds: float = 4.0,
                 time_scale: float = 1.0, loop: bool = True, max_dt: float = 2.0):
        self.rows = np.asarray(rows, dtype=np.float64)
        self.phrase_seconds = phrase_seconds
        self.rest_seconds = rest_seconds
        self.time_scale = time_scale
        self.loop = loop
        self.max_dt = max_dt
        self.sent = 0
        self.finished = threading.Event()
        self._stop = threading.Event()
        self._thread = None

    def start(self, emit) -> None:
        self._thread = threading.Thread(target=self._run, args=(emit,), name="imps-replay", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)

    def status(self) -> dict:
        return {"sent": self.sent, "finished": self.finished.is_set()}

    def _run(self, emit) -> None:
        due = time.monotonic()
        phrase_start = due
        i = 0
        n = len(self.rows)
        while not self._stop.is_set():
            if i >= n:
                if not self.loop:
                    break
                i = 0
            dt, controls = self.rows[i, 0], self.rows[i, 1:]
            due += min(dt, self.max_dt) * self.time_scale
            if self.rest_seconds > 0 and due - phrase_start >= self.phrase_seconds:
                due += self.rest_seconds  # a rest: the performer listens
                phrase_start = due
            if self._stop.wait(max(0.0, due - time.monotonic())):
                break
            emit(controls.tolist(), None)
            self.sent += 1
            i += 1
        self.finished.set()
