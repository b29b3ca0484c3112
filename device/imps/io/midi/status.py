"""MIDI in the box's one-line status: devices, messages per second, unmapped, last sent."""
from __future__ import annotations


def status_text(midi_in=None, midi_out=None) -> str:
    parts = []
    if midi_in is not None:
        st = midi_in.status()
        text = f"MIDI in {len(st['devices'])} dev {st['per_second']:.0f}/s"
        if st["unmapped"]:
            text += f" unmapped {st['unmapped']}"
        if st["garbage"] or st["errors"]:
            text += f" bad {st['garbage'] + st['errors']}"
        parts.append(text)
    if midi_out is not None:
        st = midi_out.status()
        text = f"MIDI out {len(st['devices'])} dev {st['per_second']:.0f}/s"
        if st["dropped"]:
            text += f" lost {st['dropped']}"
        if st["last"]:
            text += f" {st['last']}"
        parts.append(text)
    return " | ".join(parts)
