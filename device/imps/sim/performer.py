"""A simulated performer: replays a recorded performance in real time.

An InputSource (see inputs.py) for `make run` and the tests: it plays the
recorded gestures with their recorded timing, in phrases separated by rests
so that call-and-response has silences to answer.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from ..threads import join_or_complain
from .replay import Phrasing


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
        thread, self._thread = self._thread, None
        join_or_complain(thread, 2.0, "simulated performer")

    def status(self) -> dict:
        return {"sent": self.sent, "finished": self.finished.is_set()}

    def _run(self, emit) -> None:
        due = time.monotonic()
        phrasing = Phrasing(self.time_scale, self.max_dt, self.phrase_seconds, self.rest_seconds, start=due)
        i = 0
        n = len(self.rows)
        while not self._stop.is_set():
            if i >= n:
                if not self.loop:
                    break
                i = 0
            dt, controls = self.rows[i, 0], self.rows[i, 1:]
            due = phrasing.next_due(due, dt)
            if self._stop.wait(max(0.0, due - time.monotonic())):
                break
            emit(controls.tolist(), None)
            self.sent += 1
            i += 1
        self.finished.set()
