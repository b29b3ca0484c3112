"""Standard MIDI files (.mid) as performances.

- :func:`performance_rows`: a file -> gesture rows ``(dt, x1..xn)``, mapped by
  the same input rules a live device uses, exactly as the engine would log
  them (one row per mapped message; unmapped controls keep their last value).
- :func:`suggest_rules`: input rules for a file nobody has mapped: notes first
  (note number, velocity), then the busiest controllers.
- :class:`MidiFilePlayer`: plays a file in real time from a virtual device, so
  the simulation's performer goes through the real MIDI input path.

mido reads the file (every track merged, tempo changes applied).
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import List, Optional, Sequence

import mido
import numpy as np

from ...errors import DatasetError
from ...threads import join_or_complain
from . import virtual
from .mapping import InputMap
from .settings import Rule

PLAYER_DEVICE = "IMPS MIDI file player"


def read_midi_file(path) -> mido.MidiFile:
    path = Path(path)
    try:
        return mido.MidiFile(path)
    except FileNotFoundError:
        raise DatasetError(f"MIDI file {path} does not exist") from None
    except (OSError, EOFError, ValueError, KeyError, IndexError) as exc:
        raise DatasetError(f"{path} is not a standard MIDI file ({exc})") from None


def timed_messages(midi: mido.MidiFile):
    """(seconds since the previous message, message) for every non-meta message, in playing order."""
    pending = 0.0
    for msg in midi:                    # mido merges the tracks and converts ticks to seconds
        pending += msg.time
        if msg.is_meta:
            continue
        yield pending, msg
        pending = 0.0


def suggest_rules(path, n_controls: int) -> List[Rule]:
    """Input rules for ``path``: if it has notes, control 0 = note number and 1 = velocity;
    then the most used controllers (then pitch bend, then channel pressure) fill the rest."""
    counts: Counter = Counter()
    for _, msg in timed_messages(read_midi_file(path)):
        if msg.type == "note_on" and msg.velocity > 0:
            counts["note"] += 1
        elif msg.type == "control_change":
            counts[("cc", msg.channel + 1, msg.control)] += 1
        elif msg.type == "pitchwheel":
            counts["bend"] += 1
        elif msg.type == "aftertouch":
            counts["pressure"] += 1
    rules: List[Rule] = []
    if counts["note"]:
        rules += [Rule("note", 0), Rule("velocity", 1)]
    for key, _ in counts.most_common():
        if isinstance(key, tuple):
            rules.append(Rule("control_change", len(rules), key[1], key[2]))
    if counts["bend"]:
        rules.append(Rule("pitch_bend", len(rules)))
    if counts["pressure"]:
        rules.append(Rule("channel_pressure", len(rules)))
    if not rules:
        raise DatasetError(f"{path}: no notes, controllers, pitch bend or pressure to map")
    return [r for r in rules if r.control < n_controls]


def performance_rows(path, rules: Sequence[Rule], n_controls: int) -> np.ndarray:
    """The file as rows ``(dt, x1..xn)``, float32; dt in seconds since the previous row."""
    mapping = InputMap(rules)
    controls = [0.0] * n_controls
    rows = []
    dt = 0.0
    for delta, msg in timed_messages(read_midi_file(path)):
        dt += delta
        updates = mapping.updates(msg)
        if not updates:
            continue
        for control, value in updates:
            if control < n_controls:
                controls[control] = value
        rows.append([dt] + controls)
        dt = 0.0
    if not rows:
        raise DatasetError(f"{path}: no message matches the mapping ({len(rules)} rules)")
    rows[0][0] = 0.0                    # nothing came before the first gesture
    return np.asarray(rows, dtype=np.float32)


class MidiFilePlayer:
    """Plays a MIDI file in real time from a virtual device called ``device``.

    It plugs its device in at start and plays after ``lead_in`` seconds (time
    for the box to find it, as a player would plug in a keyboard and then play).
    Long pauses are cut to ``max_pause`` seconds; ``loop`` starts again at the end.
    Unplugs its device when stopped, so the box sees it go.
    """

    def __init__(self, path, device: str = PLAYER_DEVICE, loop: bool = True, time_scale: float = 1.0,
                 max_pause: float = 4.0, lead_in: float = 1.0, system: Optional[virtual.VirtualMidi] = None):
        self.path = Path(path)
        self.events = list(timed_messages(read_midi_file(path)))   # read now: a bad file fails at start
        if not self.events:
            raise DatasetError(f"{path}: no MIDI messages to play")
        self.device_name = device
        self.loop = loop
        self.time_scale = time_scale
        self.max_pause = max_pause
        self.lead_in = lead_in
        self.system = system or virtual.SYSTEM
        self.sent = 0
        self.finished = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "MidiFilePlayer":
        self.device = self.system.plug(self.device_name)
        self._thread = threading.Thread(target=self._run, name="imps-midi-file", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        join_or_complain(self._thread, 2.0, "MIDI file player")
        self.system.unplug(self.device_name)

    def _run(self) -> None:
        due = time.monotonic() + self.lead_in
        while not self._stop.is_set():
            for delta, msg in self.events:
                due += min(delta, self.max_pause) * self.time_scale
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    return
                self.device.send(msg)
                self.sent += 1
            if not self.loop:
                break
            self.device.send(mido.Message("control_change", control=123))   # all notes off between loops
        self.finished.set()
