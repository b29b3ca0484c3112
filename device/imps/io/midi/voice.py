"""MIDI synths as a voice beside the sound engine.

:class:`MidiOutput` takes what the engine sends its voices (the same calls
as ``imps.io.osc.SoundOut``): ``send("/model", controls)``, ``send("/performer",
controls)`` and ``send("/silence")``. Each ``[[midi.output]]`` device plays
the voices it lists, through its :class:`~imps.io.midi.mapping.OutputMap`.

No stuck notes: a note rule turns its previous note off before the next one,
and ``/silence`` (which the engine sends on every mode change, reset, pause
and stop, SIGTERM included) turns off every note still sounding and sends
"all notes off" on each note channel. :meth:`close` does the same before the
ports close. Ports come and go with the device (watcher.py, rescanned on the
``imps-midi-out`` thread); while a device is away its messages are counted as
dropped, never queued.
"""
from __future__ import annotations

import logging
import threading
from collections import deque

from ..osc import MODEL_VOICE, PERFORMER_VOICE, SILENCE
from .devices import Devices
from .mapping import OutputMap
from .settings import MidiSettings

log = logging.getLogger(__name__)

VOICE_OF = {MODEL_VOICE: "model", PERFORMER_VOICE: "performer"}


def describe(msg) -> str:
    """A few characters for the status line: n60 (note on), -n60 (off), cc42=64, pb+120, at90."""
    t = msg.type
    if t == "note_on":
        return f"n{msg.note}" if msg.velocity else f"-n{msg.note}"
    if t == "note_off":
        return f"-n{msg.note}"
    if t == "control_change":
        return f"cc{msg.control}={msg.value}"
    if t == "pitchwheel":
        return f"pb{msg.pitch:+d}"
    if t == "aftertouch":
        return f"at{msg.value}"
    return t


class MidiOutput(Devices):
    """The ``[[midi.output]]`` devices as one voice."""

    thread_name = "imps-midi-out"
    what = "MIDI output scanner"

    def __init__(self, settings: MidiSettings, system=None):
        super().__init__(settings, settings.output, "output", self._open_port, self._changed, system=system)
        self.maps = [OutputMap(d.map) for d in settings.output]
        self.voices = [frozenset(d.voices) for d in settings.output]
        self.counters = dict(sent=0, dropped=0, errors=0)
        self.last = deque(maxlen=6)          # the last messages sent, for the status line
        self._lock = threading.Lock()        # the engine and scheduler threads both send

    # -- the voice -----------------------------------------------------------------
    def send(self, address: str, values=()) -> None:
        if address == SILENCE:
            self.silence()
            return
        voice = VOICE_OF.get(address)
        if voice is None:
            return
        with self._lock:
            for i, m in enumerate(self.maps):
                if voice in self.voices[i]:
                    self._write(i, m.iter_messages(voice, values))

    def silence(self) -> None:
        """A note-off for every sounding note and CC 123 on every note channel, on every device."""
        with self._lock:
            for i, m in enumerate(self.maps):
                self._write(i, m.all_notes_off())

    def start(self) -> "MidiOutput":
        self.watcher.scan()                  # outputs present at start are there before the first note
        self._start_thread()
        return self

    def close(self) -> None:
        """Silence, stop looking for devices, close the ports."""
        self.silence()
        self._stop_thread(2.0)

    def status(self) -> dict:
        return self._status(self.counters["sent"], last=" ".join(self.last))

    # -- ports ---------------------------------------------------------------------
    def _write(self, index: int, messages) -> None:
        """Send ``messages`` (a list or an iterator) to every open port of output ``index``.
        Each message leaves as soon as it is built: the first of an event is not held up by the
        building of the rest."""
        ports = list(self.watcher.open_ports(index))
        failed = set()
        count = 0
        for msg in messages:                 # exhaust it even with no port: it keeps the map's books
            count += 1
            for port in ports:
                if port in failed:
                    continue
                try:
                    port.send(msg)
                except (OSError, ValueError) as exc:   # a DIN port that failed; the scanner reopens it
                    failed.add(port)
                    self.counters["errors"] += 1
                    if self.counters["errors"] == 1:
                        log.warning("MIDI output %s: %s", port.name, exc)
            if ports:
                self.last.append(describe(msg))
        if not ports:
            self.counters["dropped"] += count
        else:
            self.counters["sent"] += count * (len(ports) - len(failed))

    def _open_port(self, index: int, transport, name: str):
        return transport.open_output(name)

    def _changed(self, index: int, name: str, opened: bool) -> None:
        # A device that was away forgot its notes and controls: start its books afresh.
        if len(self.watcher.open_ports(index)) <= (1 if opened else 0):
            with self._lock:
                self.maps[index].forget()

    def _run(self) -> None:
        interval = self.settings.scan_interval
        while not self._stop.wait(interval):
            try:
                self.watcher.scan()
            except Exception:
                self.counters["errors"] += 1
                log.exception("MIDI output: scanning for devices")
