"""The ``[midi]`` settings: which devices, which transport, which message drives which control.

In the box's TOML (see box.example.toml and docs/hardware.md)::

    [midi]
    enabled = true
    scan_interval = 1.0          # seconds between looks for devices plugged in or out

    [[midi.input]]
    device = "X-TOUCH MINI"      # port name: case-insensitive substring, or a glob (* ?)
    transport = "alsa"           # alsa (USB MIDI), din (device = the UART), virtual
    map = [{type = "control_change", channel = 11, number = 1, control = 0}]

    [[midi.output]]
    device = "volca"
    voices = ["model"]           # "performer" too sends the performer through (MIDI thru)
    map = [{type = "note", channel = 1, control = 0}]

A map entry (a :class:`Rule`) links one kind of message to one control index
(0-based, dt not counted). Channels are 1..16 as printed on devices; on inputs
0 means any channel. Every number has a range, and every error names the
device, the entry, the key and what was expected.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Optional, Tuple

from ... import ranges
from ...errors import ConfigError

#: Input rule types and what they give (all scaled to [0, 1]):
#: control_change the CC value; note the note number of each note-on; velocity
#: its velocity; gate (one note ``number``) velocity while held, 0 at note-off;
#: pitch_bend the 14-bit bend; channel_pressure the aftertouch value.
INPUT_TYPES = ("control_change", "note", "velocity", "gate", "pitch_bend", "channel_pressure")
#: Output rule types: control_change, pitch_bend and channel_pressure follow the
#: control; note plays the control as a note number (the previous note of that
#: rule is turned off first); velocity sets the velocity of the notes on its
#: channel; gate holds note ``number`` while the control is >= 0.5.
OUTPUT_TYPES = ("control_change", "note", "velocity", "gate", "pitch_bend", "channel_pressure")
TRANSPORTS = ("alsa", "din", "virtual")
VOICES = ("model", "performer")
DIN_BAUDRATE = 31250


@dataclass(frozen=True)
class Rule:
    """One map entry: message kind (type, channel, number) <-> control index."""
    type: str
    control: int
    channel: int = 0                 # 1..16; 0 = any channel (inputs only)
    number: Optional[int] = None     # the CC number (control_change) or note number (gate)
    low: int = 0                     # the MIDI value that means 0 ...
    high: int = 127                  # ... and 1 (control_change, channel_pressure, note; low > high inverts)
    velocity: int = 127              # outputs: note velocity unless a velocity rule sets it

    @classmethod
    def from_dict(cls, d: Any, output: bool) -> "Rule":
        if not isinstance(d, dict):
            raise ConfigError(f"{d!r}: expected a table such as "
                              "{type = \"control_change\", channel = 1, number = 7, control = 0}")
        known = {f.name for f in fields(cls)} | {"range"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown key {unknown[0]!r}, expected one of: {', '.join(sorted(known - {'low', 'high'}))}")
        types = OUTPUT_TYPES if output else INPUT_TYPES
        kind = d.get("type")
        if kind not in types:
            raise ConfigError(f"type = {kind!r}: expected one of {', '.join(types)}")
        if "control" not in d:
            raise ConfigError(f"{kind}: control (the control index it drives) is missing")
        control = _int(d, "control", ranges.CONTROL)
        channel = _int(d, "channel", ranges.MIDI_CHANNEL if output else ranges.MIDI_CHANNEL_OR_ANY, 1 if output else 0)
        number = d.get("number")
        if kind in ("control_change", "gate"):
            if number is None:
                what = "CC number" if kind == "control_change" else "note number"
                raise ConfigError(f"{kind}: number (the {what}, 0..127) is missing")
            number = _int(d, "number", ranges.MIDI_VALUE)
        elif number is not None:
            raise ConfigError(f"{kind}: number = {number!r} means nothing here (only control_change and gate)")
        low, high = 0, 127
        if "range" in d:
            r = d["range"]
            if (not isinstance(r, (list, tuple)) or len(r) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 127 for v in r)
                    or r[0] == r[1]):
                raise ConfigError(f"range = {r!r}: expected [low, high], two different MIDI values 0..127")
            if kind not in ("control_change", "channel_pressure", "note"):
                raise ConfigError(f"{kind}: range applies only to control_change, channel_pressure and note")
            low, high = r
        velocity = _int(d, "velocity", ranges.MIDI_VELOCITY, 127)
        if "velocity" in d and not (output and kind in ("note", "gate")):
            raise ConfigError(f"{kind}: velocity applies only to output note and gate rules")
        return cls(kind, control, channel, number, low, high, velocity)


@dataclass(frozen=True)
class DeviceSettings:
    """One MIDI device (input or output) and its map."""
    device: str                          # port name pattern; for din the serial port (path or URL)
    map: Tuple[Rule, ...]
    transport: str = "alsa"
    baudrate: int = DIN_BAUDRATE         # din only
    voices: Tuple[str, ...] = ("model",)  # outputs only: which voices it plays

    @classmethod
    def from_dict(cls, d: Any, output: bool) -> "DeviceSettings":
        if not isinstance(d, dict):
            raise ConfigError(f"{d!r}: expected a table with device, transport and map")
        known = {"device", "map", "transport", "baudrate"} | ({"voices"} if output else set())
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown key {unknown[0]!r}, expected one of: {', '.join(sorted(known))}")
        device = d.get("device")
        if not isinstance(device, str) or not device.strip():
            raise ConfigError(f"device = {device!r}: expected a port name pattern (or for din the serial port)")
        transport = d.get("transport", "alsa")
        if transport not in TRANSPORTS:
            raise ConfigError(f"transport = {transport!r}: expected one of {', '.join(TRANSPORTS)}")
        baudrate = _int(d, "baudrate", ranges.BAUDRATE, DIN_BAUDRATE)
        if "baudrate" in d and transport != "din":
            raise ConfigError(f"baudrate applies only to transport = \"din\" (this is {transport!r})")
        voices = d.get("voices", ["model"])
        if (not isinstance(voices, (list, tuple)) or not voices
                or any(v not in VOICES for v in voices) or len(set(voices)) != len(voices)):
            raise ConfigError(f"voices = {voices!r}: expected a list of {' and/or '.join(VOICES)}")
        entries = d.get("map")
        if not isinstance(entries, (list, tuple)) or not entries:
            raise ConfigError("map: expected a non-empty list of entries such as "
                              "{type = \"control_change\", channel = 1, number = 7, control = 0}")
        rules = []
        for i, entry in enumerate(entries):
            try:
                rules.append(Rule.from_dict(entry, output))
            except ConfigError as exc:
                raise ConfigError(f"map[{i}]: {exc}") from None
        return cls(device.strip(), tuple(rules), transport, baudrate, tuple(voices))


@dataclass
class MidiSettings:
    """Everything in ``[midi]`` but ``enabled``. ``input``/``output`` are read from
    lists of tables (``[[midi.input]]``) into DeviceSettings by :meth:`from_dict`."""
    input: Any = ()                      # Tuple[DeviceSettings, ...]
    output: Any = ()                     # Tuple[DeviceSettings, ...]
    scan_interval: float = 1.0           # seconds between looks for devices plugged in or out
    max_sysex: int = 65536               # DIN: longer SysEx messages are counted and skipped

    def __post_init__(self):
        ranges.check("midi", "scan_interval", self.scan_interval, "scan_interval")
        ranges.check("midi", "max_sysex", self.max_sysex, "max_sysex")
        self.input = _devices(self.input, "input", output=False)
        self.output = _devices(self.output, "output", output=True)

    @classmethod
    def from_dict(cls, d: dict) -> "MidiSettings":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown midi settings {unknown}; known: {sorted(known)}")
        return cls(**d)

    def controls(self):
        """(where, control index) for every rule, to check against the model's dimension."""
        for direction in ("input", "output"):
            for i, dev in enumerate(getattr(self, direction)):
                for j, rule in enumerate(dev.map):
                    yield f"[[midi.{direction}]] {i} ({dev.device!r}) map[{j}]", rule.control


def check_controls(settings: MidiSettings, n_controls: int, source: str = "") -> None:
    """ConfigError unless every rule's control index is one of the model's ``n_controls``."""
    for where, control in settings.controls():
        if not 0 <= control < n_controls:
            raise ConfigError(f"{source + ': ' if source else ''}{where}: control = {control} is not a control "
                              f"index 0..{n_controls - 1} (the model has {n_controls} controls)")


def _devices(value, direction: str, output: bool) -> Tuple[DeviceSettings, ...]:
    if isinstance(value, DeviceSettings):
        value = (value,)
    if isinstance(value, dict):          # one [midi.input] table instead of [[midi.input]]
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{direction} = {value!r}: expected [[midi.{direction}]] tables")
    devices = []
    for i, d in enumerate(value):
        if isinstance(d, DeviceSettings):
            devices.append(d)
            continue
        try:
            devices.append(DeviceSettings.from_dict(d, output))
        except ConfigError as exc:
            name = d.get("device") if isinstance(d, dict) else None
            raise ConfigError(f"[[midi.{direction}]] {i}" + (f" ({name!r})" if name else "") + f": {exc}") from None
    return tuple(devices)


def _int(d: dict, key: str, allowed: "ranges.Range", default: Optional[int] = None) -> int:
    value = d.get(key, default)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} = {value!r}: expected {allowed}")
    return allowed.check(key, value)
