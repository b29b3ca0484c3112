"""What MIDI in (source.py) and MIDI out (voice.py) share: the configured devices behind a
:class:`~imps.io.midi.watcher.PortWatcher`, one supervised thread that looks for them
(hot-plug), a rate for the status line, and one way to stop."""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional

from ...threads import SupervisedThread, join_or_complain
from .watcher import PortWatcher


class Rate:
    """Events per second over the last second or so, from a running total."""

    def __init__(self):
        self._t, self._n, self.value = time.monotonic(), 0, 0.0

    def update(self, total: int) -> float:
        now = time.monotonic()
        if now - self._t >= 1.0:
            self.value = (total - self._n) / (now - self._t)
            self._t, self._n = now, total
        return self.value


class Devices:
    """Base of MidiInput and MidiOutput: subclasses give ``thread_name``, ``what``, ``counters``
    and ``_run`` (the scanning loop, which waits on ``_stop`` or ``_wake``)."""

    thread_name = "imps-midi"
    what = "MIDI"

    def __init__(self, settings, devices, direction: str, open_port: Callable,
                 on_change: Optional[Callable] = None, system=None):
        self.settings = settings
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._rate = Rate()
        extra = {} if on_change is None else {"on_change": on_change}
        self.watcher = PortWatcher(devices, direction, open_port, max_sysex=settings.max_sysex, system=system,
                                   **extra)

    def _start_thread(self) -> None:
        self._thread = SupervisedThread(self._run, self.thread_name)
        self._thread.start()

    def _stop_thread(self, timeout: float) -> None:
        """Stop looking for devices and close every port."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        join_or_complain(thread, timeout, self.what)
        self.watcher.close_all()

    def _run(self) -> None:  # pragma: no cover - every subclass has its own
        raise NotImplementedError

    @property
    def thread(self) -> Optional[threading.Thread]:
        """The running (scanning) thread, None when stopped: for the box's supervision."""
        return self._thread

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _status(self, total: int, **more) -> dict:
        st = dict(self.counters)
        st.update(devices=self.watcher.names(), per_second=self._rate.update(total),
                  last_error=self.watcher.last_error, **more)
        return st
