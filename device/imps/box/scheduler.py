"""Play events at their due time on the monotonic clock.

A heap of (due, event) served by one thread. It sleeps on a condition until
shortly before the next event is due, then spins for the last ~2 ms, so an
event leaves within a fraction of a millisecond of its due time without
burning a core between events. The heap is bounded: when full, new events
are dropped and counted. ``clear()`` drops everything queued at once (when
the performer takes over, or the mode changes).

Nothing a caller passes can stop the thread: a due time that is not finite is
refused and counted, a sleep never exceeds MAX_SLEEP (so no wait overflows,
and a far-off event is looked at again), and an event whose ``play`` raises
is counted and logged (rate-limited), and the next one plays.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
import time
from collections import deque
from typing import Callable

from ..threads import SupervisedThread, join_or_complain

log = logging.getLogger(__name__)

SPIN = 0.002       # seconds before the due time when sleeping gives way to spinning
MAX_SLEEP = 0.5    # longest single sleep: the heap is looked at again at least this often


class Scheduler:
    def __init__(self, play: Callable[[object], None], capacity: int = 64,
                 on_played: Callable[[], None] | None = None, clock=time.monotonic):
        self.play = play
        self.capacity = capacity
        self.on_played = on_played
        self.clock = clock
        self.lateness: deque = deque(maxlen=20000)   # seconds late, per played event
        self.played = 0
        self.dropped_full = 0
        self.dropped_cleared = 0
        self.refused = 0          # due times that were not finite numbers
        self.play_errors = 0      # events whose play() raised
        self._heap: list = []
        self._order = itertools.count()
        self._generation = 0
        self._cond = threading.Condition()
        self._playing = threading.Lock()   # held while an event is checked and played
        self._stop = threading.Event()
        self.thread = SupervisedThread(self._run, "imps-scheduler")

    def start(self) -> "Scheduler":
        self.thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify()
        join_or_complain(self.thread, timeout, "scheduler")

    def schedule(self, due: float, event) -> bool:
        """Queue ``event`` to be played at monotonic time ``due``; False if full or ``due`` is not finite."""
        if not (isinstance(due, (int, float)) and math.isfinite(due)):
            self.refused += 1
            return False
        with self._cond:
            if len(self._heap) >= self.capacity:
                self.dropped_full += 1
                return False
            heapq.heappush(self._heap, (due, next(self._order), self._generation, event))
            if self._heap[0][3] is event:
                self._cond.notify()
        return True

    def clear(self) -> int:
        """Drop every queued event (and one being waited for); returns how many, once an event
        already being played has left (so what the caller sends next comes after it)."""
        with self._cond:
            dropped = len(self._heap)
            self._heap.clear()
            self._generation += 1
            self.dropped_cleared += dropped
            self._cond.notify()
        with self._playing:     # an event already leaving finishes first (see _run)
            pass
        return dropped

    def pending(self) -> int:
        return len(self._heap)

    def due_times(self) -> list[float]:
        """The due times queued, soonest first."""
        with self._cond:
            return sorted(item[0] for item in self._heap)

    def play_due(self) -> int:
        """Play, in the caller's thread, every event due by the clock; how many played. For a
        scheduler that is not started, on a clock of its own (tests)."""
        played = 0
        while True:
            with self._cond:
                if not self._heap or self._heap[0][0] > self.clock():
                    return played
                due, _, _, event = heapq.heappop(self._heap)
            self.play(event)
            self.lateness.append(self.clock() - due)
            self.played += 1
            played += 1
            if self.on_played:
                self.on_played()

    def _run(self) -> None:
        clock = self.clock
        while not self._stop.is_set():
            with self._cond:
                if not self._heap:
                    self._cond.wait(0.5)
                    continue
                due = self._heap[0][0]
                wait = due - clock()
                if wait > SPIN:
                    self._cond.wait(min(wait - SPIN, MAX_SLEEP))
                    continue  # the heap may have changed while we slept
                due, _, generation, event = heapq.heappop(self._heap)
            while clock() < due:  # the last moments: spin (releases the GIL between checks)
                time.sleep(0)
            # clear() waits for a play in flight (_playing), so the silence that follows a clear (mode
            # change, reset, pause) always comes after the note, never before it: no stuck note.
            with self._playing:
                if generation != self._generation:  # cleared while we spun
                    continue
                try:
                    self.play(event)
                except Exception:  # one bad event must not end the schedule
                    self.play_errors += 1
                    if self.play_errors == 1 or self.play_errors % 1000 == 0:
                        log.exception("scheduler: playing an event failed (%d so far); playing on", self.play_errors)
                    continue
                late = clock() - due   # when the event has left (sent), not before
            self.lateness.append(late)
            self.played += 1
            if self.on_played:
                self.on_played()
