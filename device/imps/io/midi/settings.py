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

from typing import ClassVar, Optional, Tuple

from ... import ranges
from ...errors import ConfigError
from ...settings import Section, Table, choice

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
FULL_RANGE = (0, 127)


class Rule(Table, frozen=True, kw_only=False, omit_defaults=True):
    """One map entry of an input: message kind (type, channel, number) -> control index."""
    output: ClassVar[bool] = False
    type: str
    control: int
    channel: int = 0                      # 1..16; 0 = any channel (inputs only)
    number: Optional[int] = None          # the CC number (control_change) or note number (gate)
    range: Tuple[int, int] = FULL_RANGE   # the MIDI values that mean 0 and 1 (low > high inverts)
    velocity: int = 127                   # outputs: note velocity unless a velocity rule sets it

    @property
    def low(self) -> int:
        return self.range[0]

    @property
    def high(self) -> int:
        return self.range[1]

    def __post_init__(self):
        kind = self.type
        choice("type", kind, OUTPUT_TYPES if self.output else INPUT_TYPES)
        ranges.CONTROL.check("control", self.control)
        (ranges.MIDI_CHANNEL if self.output else ranges.MIDI_CHANNEL_OR_ANY).check("channel", self.channel)
        if kind in ("control_change", "gate"):
            if self.number is None:
                what = "CC number" if kind == "control_change" else "note number"
                raise ConfigError(f"{kind}: number (the {what}, 0..127) is missing")
            ranges.MIDI_VALUE.check("number", self.number)
        elif self.number is not None:
            raise ConfigError(f"{kind}: number = {self.number!r} means nothing here (only control_change and gate)")
        if tuple(self.range) != FULL_RANGE:
            lo, hi = self.range
            if lo == hi or not (ranges.MIDI_VALUE.contains(lo) and ranges.MIDI_VALUE.contains(hi)):
                raise ConfigError(f"range = {list(self.range)!r}: expected [low, high], two different MIDI values 0..127")
            if kind not in ("control_change", "channel_pressure", "note"):
                raise ConfigError(f"{kind}: range applies only to control_change, channel_pressure and note")
        ranges.MIDI_VELOCITY.check("velocity", self.velocity)
        if self.velocity != 127 and not (self.output and kind in ("note", "gate")):
            raise ConfigError(f"{kind}: velocity = {self.velocity} applies only to output note and gate rules")


class OutputRule(Rule, frozen=True):
    """One map entry of an output: control index -> message kind (type, channel, number)."""
    output: ClassVar[bool] = True
    channel: int = 1                      # 1..16


class DeviceSettings(Table):
    """One MIDI input device and its map (``[[midi.input]]``)."""
    device: str                          # port name pattern; for din the serial port (path or URL)
    map: Tuple[Rule, ...]
    transport: str = "alsa"
    baudrate: int = DIN_BAUDRATE         # din only

    def __post_init__(self):
        if not self.device.strip():
            raise ConfigError(f"device = {self.device!r}: expected a port name pattern (or for din the serial port)")
        self.device = self.device.strip()
        choice("transport", self.transport, TRANSPORTS)
        ranges.BAUDRATE.check("baudrate", self.baudrate)
        if self.baudrate != DIN_BAUDRATE and self.transport != "din":
            raise ConfigError(f"baudrate applies only to transport = \"din\" (this is {self.transport!r})")
        self.map = tuple(self.map)
        if not self.map:
            raise ConfigError("map: expected a non-empty list of entries such as "
                              "{type = \"control_change\", channel = 1, number = 7, control = 0}")


class OutputDeviceSettings(DeviceSettings):
    """One MIDI output device and its map (``[[midi.output]]``)."""
    map: Tuple[OutputRule, ...]
    voices: Tuple[str, ...] = ("model",)   # which voices it plays: model, performer (MIDI thru)

    def __post_init__(self):
        super().__post_init__()
        self.voices = tuple(self.voices)
        if not self.voices or any(v not in VOICES for v in self.voices) or len(set(self.voices)) != len(self.voices):
            raise ConfigError(f"voices = {list(self.voices)!r}: expected a list of {' and/or '.join(VOICES)}")


class MidiSettings(Section):
    """The ``[midi]`` section; ``[[midi.input]]`` and ``[[midi.output]]`` tables are its devices."""
    section: ClassVar[str] = "midi"
    enabled: bool = False
    input: Tuple[DeviceSettings, ...] = ()
    output: Tuple[OutputDeviceSettings, ...] = ()
    scan_interval: float = 1.0           # seconds between looks for devices plugged in or out
    max_sysex: int = 65536               # DIN: longer SysEx messages are counted and skipped

    def __post_init__(self):
        super().__post_init__()
        self.input, self.output = tuple(self.input), tuple(self.output)

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
