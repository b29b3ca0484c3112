"""MIDI controllers as an input source (see imps.inputs).

Every open port delivers its messages (from its own thread: rtmidi's, the
DIN reader's, a virtual device's) into one bounded queue. One thread,
``imps-midi-in``, takes them in order, maps them with the device's
:class:`~imps.midi.mapping.InputMap` and emits the control updates to the
engine; between messages it rescans the ports (hot-plug, watcher.py).
Unmapped channel messages are counted; clock, SysEx and other system
messages are counted apart as ignored. Nothing here raises into the music.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import List, Optional

from ..inputs import Emit
from ..threads import join_or_complain
from .mapping import CHANNEL_TYPES, InputMap
from .settings import MidiSettings
from .watcher import PortWatcher

log = logging.getLogger("imps.midi")


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


class MidiInput:
    """The ``[[midi.input]]`` devices as one input source."""

    name = "midi"

    def __init__(self, settings: MidiSettings, queue_size: int = 1024, system=None):
        self.settings = settings
        self.maps = [InputMap(d.map) for d in settings.input]
        self.counters = dict(received=0, events=0, unmapped=0, ignored=0, dropped=0, callback_errors=0)
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._emit: Optional[Emit] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._rate = Rate()
        self.watcher = PortWatcher(settings.input, "input", self._open_port,
                                   max_sysex=settings.max_sysex, system=system)

    # -- InputSource -------------------------------------------------------------
    def start(self, emit: Emit) -> None:
        if self._thread is not None:
            raise RuntimeError("MidiInput already started")
        self._emit = emit
        self._thread = threading.Thread(target=self._run, name="imps-midi-in", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        join_or_complain(thread, timeout, "MIDI input")
        self.watcher.close_all()

    @property
    def thread(self) -> Optional[threading.Thread]:
        """The running thread (None when stopped), for the box's supervision."""
        return self._thread

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> dict:
        st = dict(self.counters)
        st.update(devices=self.watcher.names(), per_second=self._rate.update(self.counters["received"]),
                  reconnects=max(0, self.watcher.connects - len(self.watcher.ports)),
                  last_error=self.watcher.last_error, garbage=self._garbage())
        return st

    def rescan(self) -> None:
        """Look for ports now (the thread also does it every scan_interval)."""
        self._queue.put(None)

    # -- ports -------------------------------------------------------------------
    def _open_port(self, index: int, transport, name: str):
        put = self._queue.put_nowait
        counters = self.counters

        def deliver(msg, index=index):   # in the port's own thread: hand over, never block
            try:
                put((index, msg))
            except queue.Full:
                counters["dropped"] += 1
        return transport.open_input(name, callback=deliver)

    def _garbage(self) -> int:
        with self.watcher.lock:
            ports = list(self.watcher.ports.values())
        return sum(p.stream.garbage for p in ports if hasattr(p, "stream"))

    # -- the thread ----------------------------------------------------------------
    def _run(self) -> None:
        interval = self.settings.scan_interval
        next_scan = 0.0
        get = self._queue.get
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_scan:
                self.watcher.scan()
                next_scan = time.monotonic() + interval
            try:
                item = get(timeout=max(0.0, min(next_scan - time.monotonic(), 0.25)))
            except queue.Empty:
                continue
            if item is None:                 # rescan() asked for a look now
                next_scan = 0.0
                continue
            try:
                self._handle(*item)
            except Exception:                # a mapping bug must not end MIDI input: say so, carry on
                self.counters["errors"] = self.counters.get("errors", 0) + 1
                log.exception("MIDI input: error handling %s", item[1])

    def _handle(self, index: int, msg) -> None:
        c = self.counters
        c["received"] += 1
        updates = self.maps[index].updates(msg)
        if updates is None:
            c["unmapped" if msg.type in CHANNEL_TYPES else "ignored"] += 1
            return
        if not updates:
            return
        channels: List[int] = [u[0] for u in updates]
        values: List[float] = [u[1] for u in updates]
        c["events"] += 1
        try:
            self._emit(values, channels)
        except Exception:   # the engine's bug must not kill the reader; say so loudly, once
            c["callback_errors"] += 1
            if c["callback_errors"] == 1:
                log.exception("the input callback raised on MIDI %s", msg)

