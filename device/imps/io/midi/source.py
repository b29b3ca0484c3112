"""MIDI controllers as an input source (see imps.io.inputs).

Every open port delivers its messages from its own thread (rtmidi's, the
DIN reader's, a virtual device's); each is mapped there with the device's
:class:`~imps.io.midi.mapping.InputMap` and the control updates go straight to
the engine (whose inbox never blocks). One thread, ``imps-midi-in``, looks
for ports every ``scan_interval`` (hot-plug, watcher.py).
Unmapped channel messages are counted; clock, SysEx and other system
messages are counted apart as ignored. Nothing here raises into the music.
"""
from __future__ import annotations

import logging
import threading
from typing import Optional

from ..inputs import Emit
from .devices import Devices
from .mapping import CHANNEL_TYPES, InputMap
from .settings import MidiSettings

log = logging.getLogger(__name__)


class MidiInput(Devices):
    """The ``[[midi.input]]`` devices as one input source."""

    name = "midi"
    thread_name = "imps-midi-in"
    what = "MIDI input"

    def __init__(self, settings: MidiSettings, system=None):
        super().__init__(settings, settings.input, "input", self._open_port, system=system)
        self.maps = [InputMap(d.map) for d in settings.input]
        self.counters = dict(received=0, events=0, unmapped=0, ignored=0, callback_errors=0, errors=0)
        self._count_lock = threading.Lock()   # ports of different devices deliver from different threads
        self._emit: Optional[Emit] = None

    # -- InputSource -------------------------------------------------------------
    def start(self, emit: Emit) -> None:
        if self._thread is not None:
            raise RuntimeError("MidiInput already started")
        self._emit = emit
        self._start_thread()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop_thread(timeout)

    def status(self) -> dict:
        return self._status(self.counters["received"], garbage=self._garbage(),
                            reconnects=max(0, self.watcher.connects - len(self.watcher.ports)))

    # -- ports -------------------------------------------------------------------
    def _open_port(self, index: int, transport, name: str):
        def deliver(msg, index=index):
            # In the port's own thread (rtmidi's, the DIN reader's): map and emit straight away,
            # one hand-over fewer than queueing to our thread; emit never blocks (engine inbox).
            try:
                self._handle(index, msg)
            except Exception:            # a mapping bug must not end MIDI input: say so once, carry on
                self._count("errors")
                if self.counters["errors"] == 1:
                    log.exception("MIDI input: error handling %s", msg)
        return transport.open_input(name, callback=deliver)

    def _garbage(self) -> int:
        with self.watcher.lock:
            ports = list(self.watcher.ports.values())
        return sum(p.stream.garbage for p in ports if hasattr(p, "stream"))

    def _count(self, key: str) -> None:
        with self._count_lock:
            self.counters[key] += 1

    # -- the thread: hot-plug ------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self.watcher.scan()
            self._wake.wait(self.settings.scan_interval)
            self._wake.clear()

    def _handle(self, index: int, msg) -> None:
        self._count("received")
        updates = self.maps[index].updates(msg)
        if updates is None:
            self._count("unmapped" if msg.type in CHANNEL_TYPES else "ignored")
            return
        if not updates:
            return
        self._count("events")
        try:
            self._emit([u[1] for u in updates], [u[0] for u in updates])
        except Exception:   # the engine's bug must not kill the port's thread; say so loudly, once
            self._count("callback_errors")
            if self.counters["callback_errors"] == 1:
                log.exception("the input callback raised on MIDI %s", msg)
