"""IMPSY's ``[midi]`` (and ``[serialmidi]``) config sections -> the box's ``[midi]`` table.

IMPSY maps by position: entry i of a device's list is control i. Its entries
(channels 1..16) become our rules one for one:

    ["control_change", ch, cc]            control_change (and [.., min, max] -> range)
    ["note_on", ch]  /  ["note_on", ch, v] note (output: fixed velocity v)
    ["note_velocity", ch]                 velocity
    ["pitch_bend", ch]                    pitch_bend

Both of IMPSY's layouts are read: the current one (``in_device = ["X"]``,
``input."X" = [...]``) and the older one (``in_device = "X"``, ``input = [...]``).
IMPSY matches port names by substring, as we do (ours ignores case).
``[interaction] input_thru`` and ``thru_matrix`` become the "performer" voice
on the outputs they name. What has no counterpart is returned as notes, so an
importer can say what it left out; nothing is dropped silently.
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

from ...errors import ConfigError
from ...settings import decode
from .settings import MidiSettings

_KINDS = {"control_change": "control_change", "note_on": "note", "note_velocity": "velocity",
          "pitch_bend": "pitch_bend"}


def rule_from_impsy(entry: Any, control: int, output: bool) -> dict:
    """One IMPSY mapping entry (a list) as one of our map tables."""
    if not isinstance(entry, (list, tuple)) or len(entry) < 2 or entry[0] not in _KINDS:
        raise ConfigError(f"IMPSY mapping entry {entry!r}: expected [kind, channel, ...] with kind one of "
                          f"{', '.join(_KINDS)}")
    kind, channel, rest = entry[0], entry[1], list(entry[2:])
    rule: Dict[str, Any] = {"type": _KINDS[kind], "channel": channel, "control": control}
    if kind == "control_change":
        if not rest:
            raise ConfigError(f"IMPSY mapping entry {entry!r}: control_change needs a CC number")
        rule["number"] = rest[0]
        if len(rest) >= 3:
            rule["range"] = [rest[1], rest[2]]
    elif kind == "note_on" and rest and output:
        rule["velocity"] = min(max(int(rest[0]), 1), 127)   # IMPSY clamps it the same way
    return rule


def _by_device(section: dict, key: str) -> List[Tuple[str, list]]:
    """[(device name, entries)] for key "input" or "output", from either IMPSY layout."""
    devices = section.get("in_device" if key == "input" else "out_device")
    mapping = section.get(key)
    if mapping is None:
        return []
    if isinstance(mapping, dict):                     # input."X-TOUCH" = [...]
        names = devices if isinstance(devices, list) else list(mapping)
        missing = [n for n in names if n not in mapping]
        if missing:
            raise ConfigError(f"IMPSY [midi] {'in' if key == 'input' else 'out'}_device {missing[0]!r} "
                              f"has no {key}.{missing[0]!r} mapping")
        return [(n, mapping[n]) for n in names]
    if isinstance(devices, str):                      # the older layout: one device, one list
        return [(devices, mapping)]
    if isinstance(devices, list) and len(devices) == 1:
        return [(devices[0], mapping)]
    raise ConfigError(f"IMPSY [midi] {key} is a list but the devices are {devices!r}: expected one device name")


#: A note on the import: (IMPSY key, carried over (True) or not (False), what to know).
ImportNote = Tuple[str, bool, str]


def midi_section(midi: dict, input_thru: bool = False) -> Tuple[dict, List[ImportNote]]:
    """Our ``[midi]`` table (validated) from IMPSY's ``[midi]`` table, and notes on the import."""
    notes: List[ImportNote] = []
    thru_matrix = midi.get("thru_matrix") or {}
    thru_outputs = {o for outs in thru_matrix.values() for o in outs}
    out: Dict[str, Any] = {"enabled": True, "input": [], "output": []}
    for name, entries in _by_device(midi, "input"):
        out["input"].append({"device": name, "transport": "alsa",
                             "map": [rule_from_impsy(e, i, False) for i, e in enumerate(entries)]})
    for name, entries in _by_device(midi, "output"):
        voices = ["model", "performer"] if (input_thru or name in thru_outputs) else ["model"]
        out["output"].append({"device": name, "transport": "alsa", "voices": voices,
                              "map": [rule_from_impsy(e, i, True) for i, e in enumerate(entries)]})
    if out["input"] or out["output"]:
        notes.append(("[midi]", True, "devices and mappings carried over one for one (entry i of a device's list "
                                      "drives control i); port names match by substring, ignoring case"))
    if thru_matrix:
        notes.append(("[midi] thru_matrix", True, "each output it names plays the performer too, from any input"))
    if midi.get("feedback_protection"):
        notes.append(("[midi] feedback_protection", False, "no counterpart: the box sends its MIDI input back out "
                                                           "only to outputs that list the performer voice"))
    for key in sorted(set(midi) - {"in_device", "out_device", "input", "output", "thru_matrix",
                                   "feedback_protection", "feedback_threshold"}):
        notes.append((f"[midi] {key}", False, "no counterpart, left out"))
    _validate(out)
    return out, notes


def serialmidi_section(serialmidi: dict, input_thru: bool = False) -> Tuple[dict, List[ImportNote]]:
    """IMPSY's ``[serialmidi]`` (DIN MIDI on a UART) as our ``[midi]`` devices with transport din."""
    port = serialmidi.get("port")
    if not isinstance(port, str):
        raise ConfigError(f"IMPSY [serialmidi] port = {port!r}: expected the serial port, e.g. /dev/ttyAMA0")
    out: Dict[str, Any] = {"enabled": True, "input": [], "output": []}
    if serialmidi.get("input"):
        out["input"].append({"device": port, "transport": "din",
                             "map": [rule_from_impsy(e, i, False) for i, e in enumerate(serialmidi["input"])]})
    if serialmidi.get("output"):
        out["output"].append({"device": port, "transport": "din",
                              "voices": ["model", "performer"] if input_thru else ["model"],
                              "map": [rule_from_impsy(e, i, True) for i, e in enumerate(serialmidi["output"])]})
    _validate(out)
    return out, [("[serialmidi]", True, f"DIN MIDI on {port} at 31,250 baud (transport \"din\"), mappings one for one")]


def _validate(section: dict) -> None:
    decode(MidiSettings, section)
