"""Pure MIDI mapping: messages -> control updates, voice events -> messages.

:class:`InputMap` turns one mido message into ``[(control, value), ...]`` with
values in [0, 1] (``None``: no rule knows this kind of message). :class:`OutputMap`
turns a voice's controls into mido messages and keeps the books on notes: a
rule's previous note is turned off before its next one, and
:meth:`OutputMap.all_notes_off` gives a note-off for every note still sounding
(and "all notes off", CC 123, on every channel that played a note), so
nothing is left stuck. No I/O here: ports live in transports.py.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import mido

from ...model.rows import clip01, to_unit
from .settings import Rule

PITCH_CENTRE = 8192
PITCH_SPAN = 16383
ALL_NOTES_OFF = 123
#: Messages that are not gestures (clock, sysex, ...): neither mapped nor "unmapped".
CHANNEL_TYPES = frozenset(("note_on", "note_off", "control_change", "pitchwheel", "aftertouch",
                           "polytouch", "program_change"))


def to_midi(value: float, low: int = 0, high: int = 127) -> int:
    """A value in [0, 1] (clipped; NaN is 0) as a MIDI data value in [low, high], rounded half up."""
    value = clip01(value)
    return int(low + value * (high - low) + 0.5) if high >= low else int(low - value * (low - high) + 0.5)


def pitch_to_unit(pitch: int) -> float:
    return (pitch + PITCH_CENTRE) / PITCH_SPAN


def unit_to_pitch(value: float) -> int:
    return to_midi(value, 0, PITCH_SPAN) - PITCH_CENTRE if value == value else 0


class InputMap:
    """The input rules of one device, indexed by what a message can match."""

    def __init__(self, rules: Sequence[Rule]):
        self.rules = tuple(rules)
        self._cc: Dict[Tuple[int, int], List[Rule]] = defaultdict(list)     # (channel, cc)
        self._notes: Dict[int, List[Rule]] = defaultdict(list)              # channel: note, velocity
        self._gates: Dict[Tuple[int, int], List[Rule]] = defaultdict(list)  # (channel, note)
        self._bend: Dict[int, List[Rule]] = defaultdict(list)
        self._pressure: Dict[int, List[Rule]] = defaultdict(list)
        for r in self.rules:
            if r.type == "control_change":
                self._cc[(r.channel, r.number)].append(r)
            elif r.type in ("note", "velocity"):
                self._notes[r.channel].append(r)
            elif r.type == "gate":
                self._gates[(r.channel, r.number)].append(r)
            elif r.type == "pitch_bend":
                self._bend[r.channel].append(r)
            elif r.type == "channel_pressure":
                self._pressure[r.channel].append(r)

    def updates(self, msg: mido.Message) -> Optional[List[Tuple[int, float]]]:
        """``[(control, value)]`` for ``msg``; ``[]`` if a rule knows it but nothing changes
        (a note-off for a note rule); ``None`` if no rule knows it."""
        kind = msg.type
        if kind not in CHANNEL_TYPES:
            return None
        ch = msg.channel + 1
        if kind == "control_change":
            rules = self._cc.get((ch, msg.control), []) + self._cc.get((0, msg.control), [])
            return [(r.control, to_unit(msg.value, r.low, r.high)) for r in rules] or None
        if kind == "note_on" and msg.velocity > 0:
            out = []
            for r in self._notes.get(ch, []) + self._notes.get(0, []):
                value = msg.note if r.type == "note" else msg.velocity
                out.append((r.control, to_unit(value, r.low, r.high) if r.type == "note" else value / 127.0))
            for r in self._gates.get((ch, msg.note), []) + self._gates.get((0, msg.note), []):
                out.append((r.control, msg.velocity / 127.0))
            return out or None
        if kind in ("note_on", "note_off"):          # a note-off (or note-on with velocity 0)
            gates = self._gates.get((ch, msg.note), []) + self._gates.get((0, msg.note), [])
            if gates:
                return [(r.control, 0.0) for r in gates]
            return [] if (self._notes.get(ch) or self._notes.get(0)) else None
        if kind == "pitchwheel":
            rules = self._bend.get(ch, []) + self._bend.get(0, [])
            return [(r.control, pitch_to_unit(msg.pitch)) for r in rules] or None
        if kind == "aftertouch":
            rules = self._pressure.get(ch, []) + self._pressure.get(0, [])
            return [(r.control, to_unit(msg.value, r.low, r.high)) for r in rules] or None
        return None


class OutputMap:
    """The output rules of one device and the notes it has sounding.

    Not thread-safe by itself: the voice calls it under its lock.
    """

    def __init__(self, rules: Sequence[Rule]):
        self.rules = tuple(rules)
        self.sounding: Dict[Tuple[str, int], Tuple[int, int]] = {}   # (voice, rule index) -> (channel0, note)
        self._last: Dict[tuple, int] = {}                            # what a CC/bend/pressure last sent
        self._velocity = {}                                          # channel -> the rule that sets it
        for r in self.rules:
            if r.type == "velocity":
                self._velocity.setdefault(r.channel, r)
        self.note_channels = sorted({r.channel - 1 for r in self.rules if r.type in ("note", "gate")})

    def messages(self, voice: str, controls: Sequence[float]) -> List[mido.Message]:
        """The messages for one event of ``voice``, in the order they are sent."""
        return list(self.iter_messages(voice, controls))

    def iter_messages(self, voice: str, controls: Sequence[float]) -> Iterator[mido.Message]:
        """The same, built one at a time, so the first can leave before the rest are built (a
        checked mido message costs about 10-25 us; an event of the 9-D map makes eight).
        Exhaust it: it keeps the books of sounding notes and sent values as it goes."""
        n = len(controls)
        for i, r in enumerate(self.rules):
            if r.control >= n:
                continue
            value = controls[r.control]
            ch = r.channel - 1
            kind = r.type
            if kind == "note":
                yield from self._note_offs((voice, i))
                note = to_midi(value, r.low, r.high)
                yield mido.Message("note_on", channel=ch, note=note, velocity=self._note_velocity(r, controls))
                self.sounding[(voice, i)] = (ch, note)
            elif kind == "gate":
                key = (voice, i)
                if value >= 0.5 and key not in self.sounding:
                    yield mido.Message("note_on", channel=ch, note=r.number,
                                       velocity=self._note_velocity(r, controls))
                    self.sounding[key] = (ch, r.number)
                elif not value >= 0.5:
                    yield from self._note_offs(key)
            elif kind == "control_change":
                v = to_midi(value, r.low, r.high)
                if self._changed(("cc", ch, r.number), v):
                    yield mido.Message("control_change", channel=ch, control=r.number, value=v)
            elif kind == "pitch_bend":
                v = unit_to_pitch(value)
                if self._changed(("bend", ch), v):
                    yield mido.Message("pitchwheel", channel=ch, pitch=v)
            elif kind == "channel_pressure":
                v = to_midi(value, r.low, r.high)
                if self._changed(("pressure", ch), v):
                    yield mido.Message("aftertouch", channel=ch, value=v)

    def all_notes_off(self) -> List[mido.Message]:
        """A note-off for every sounding note, then CC 123 on every note channel; forgets sent values."""
        out: List[mido.Message] = []
        for ch, note in dict.fromkeys(self.sounding.values()):
            out.append(mido.Message("note_off", channel=ch, note=note, velocity=0))
        self.sounding.clear()
        self._last.clear()
        out.extend(mido.Message("control_change", channel=ch, control=ALL_NOTES_OFF, value=0)
                   for ch in self.note_channels)
        return out

    def forget(self) -> None:
        """The device went away (and forgot its notes): nothing is sounding, resend every value."""
        self.sounding.clear()
        self._last.clear()

    # -- helpers ---------------------------------------------------------------
    def _note_offs(self, key) -> Iterator[mido.Message]:
        held = self.sounding.pop(key, None)
        if held is not None and held not in self.sounding.values():   # another rule may hold the same note
            yield mido.Message("note_off", channel=held[0], note=held[1], velocity=0)

    def _note_velocity(self, rule: Rule, controls) -> int:
        vr = self._velocity.get(rule.channel)
        if vr is not None and vr.control < len(controls):
            return max(1, to_midi(controls[vr.control]))   # velocity 0 would be a note-off
        return rule.velocity

    def _changed(self, key: tuple, value: int) -> bool:
        if self._last.get(key) == value:
            return False
        self._last[key] = value
        return True
