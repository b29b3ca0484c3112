"""Every number a person, a config file or a model can set, and its finite range: one home.

``RANGES`` maps ``(section, key)`` of the config file to a closed, finite
``Range``. Each config section (a ``settings.Section``) checks its keys against
it, whether read from a file or built in code, and the OSC control messages (``controls.py``) use the same entries, so ``/time_scale``
and ``[engine] time_scale`` can never disagree. Lists are checked element by
element. A new config section adds its numbers here; a test fails for any
numeric config key without a range.

An out-of-range value is an error naming the key, the value and the range::

    box.toml: [engine] time_scale = 1e12: out of range, expected 0.01 to 100
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class Range:
    """A closed interval [lo, hi] with finite ends; ``integer`` ranges take whole numbers only."""
    lo: float
    hi: float
    unit: str = ""
    integer: bool = False
    what: str = ""            # what the number is, when the key does not say ("a BCM pin number")

    def __post_init__(self):
        if not (math.isfinite(self.lo) and math.isfinite(self.hi) and self.lo <= self.hi):
            raise ValueError(f"a range needs finite ends lo <= hi, got {self.lo}, {self.hi}")

    def __str__(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        what = f"{self.what} " if self.what else ("a whole number " if self.integer else "")
        return f"{what}{_number(self.lo)} to {_number(self.hi)}{unit}"

    def contains(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if isinstance(value, int):          # exact, however many digits (float() would overflow)
            return self.lo <= value <= self.hi
        if self.integer and not value.is_integer():
            return False
        return math.isfinite(value) and self.lo <= value <= self.hi

    def check(self, where: str, value):
        """``value`` if it (or, for a list, each element; None is skipped) is in range, else ConfigError."""
        for v in _elements(value):
            if v is not None and not self.contains(v):
                shown = shorten(value) if v is value else f"{shorten(value, repr)} ({shorten(v, repr)})"
                raise ConfigError(f"{where} = {shown}: out of range, expected {self}")
        return value


def _elements(value):
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from _elements(v)
    else:
        yield value


def shorten(value, show=str, limit: int = 60) -> str:
    """``show(value)``, shortened if very long (a 400-digit integer from a hostile file)."""
    text = show(value)
    return text if len(text) <= limit else f"{text[:limit - 20]}...({len(text)} characters)"


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


SECONDS = "s"
PIN = Range(0, 27, integer=True, what="a BCM pin number")   # on the 40-pin header
CONTROL = Range(0, 63, integer=True, what="a control index")  # 0-based, dt not counted
PORT = Range(0, 65535, integer=True, what="a UDP port")       # 0: any free port (tests)
TIME_SCALE = Range(0.01, 100.0)
BAUDRATE = Range(300, 4_000_000, integer=True)
# MIDI map entries ([[midi.input]] / [[midi.output]] map = [...], checked in midi/settings.py)
MIDI_CHANNEL = Range(1, 16, integer=True, what="a MIDI channel")
MIDI_CHANNEL_OR_ANY = Range(0, 16, integer=True, what="a MIDI channel (0: any)")
MIDI_VALUE = Range(0, 127, integer=True, what="a MIDI data value")
MIDI_VELOCITY = Range(1, 127, integer=True, what="a note-on velocity")

RANGES: dict[tuple[str, str], Range] = {
    ("model", "threads"): Range(1, 64, integer=True),
    ("model", "pi_temperature"): Range(0.01, 100.0),
    ("model", "sigma_temperature"): Range(0.0, 100.0),
    ("model", "seed"): Range(0, 2**32 - 1, integer=True),

    ("engine", "dimension"): Range(2, 65, integer=True),
    ("engine", "response_threshold"): Range(0.05, 600.0, SECONDS),
    ("engine", "time_scale"): TIME_SCALE,
    ("engine", "queue_size"): Range(1, 100_000, integer=True),
    ("engine", "max_dt"): Range(0.01, 600.0, SECONDS),

    ("osc", "interface_port"): PORT,
    ("osc", "control_port"): PORT,
    ("osc", "sound_port"): PORT,
    ("osc", "receive_buffer"): Range(4096, 16 * 1024 * 1024, "bytes", integer=True),

    ("performer", "performance"): Range(0, 1_000_000, integer=True),
    ("performer", "phrase_seconds"): Range(0.1, 3600.0, SECONDS),
    ("performer", "rest_seconds"): Range(0.0, 3600.0, SECONDS),
    ("performer", "time_scale"): TIME_SCALE,

    ("status", "interval"): Range(0.05, 60.0, SECONDS),

    ("serial", "baudrate"): BAUDRATE,
    ("serial", "channels"): CONTROL,
    ("serial", "calibration"): Range(-1e6, 1e6),
    ("serial", "retry_interval"): Range(0.01, 60.0, SECONDS),
    ("serial", "read_timeout"): Range(0.001, 5.0, SECONDS),
    ("serial", "hello_interval"): Range(0.05, 60.0, SECONDS),
    ("serial", "hello_attempts"): Range(0, 1000, integer=True),

    ("actuators", "controls"): CONTROL,

    ("panel", "mode_button"): PIN,
    ("panel", "shutdown_button"): PIN,
    ("panel", "mode_leds"): PIN,
    ("panel", "debounce"): Range(0.001, 1.0, SECONDS),
    ("panel", "long_press"): Range(0.05, 10.0, SECONDS),
    ("panel", "shutdown_hold"): Range(0.5, 60.0, SECONDS),

    ("pads", "pins"): PIN,
    ("pads", "controls"): CONTROL,
    ("pads", "debounce"): Range(0.001, 1.0, SECONDS),

    ("midi", "scan_interval"): Range(0.05, 60.0, SECONDS),
    ("midi", "max_sysex"): Range(16, 16 * 2**20, "bytes", integer=True),
}


#: A model sidecar's numbers (model/model_file.py ``Sidecar``): a model is input like a config file.
SIDECAR: dict[str, Range] = {
    "dimension": RANGES[("engine", "dimension")],
    "units": Range(1, 4096, integer=True),
    "layers": Range(1, 16, integer=True),
    "mixtures": Range(1, 256, integer=True),
    "input_scale": Range(0.001, 1000.0),     # IMPSY's is 10: 1e308 fired ~790 notes/s, 1e-308 was silent
    "pi_temperature": RANGES[("model", "pi_temperature")],
    "sigma_temperature": RANGES[("model", "sigma_temperature")],
    "validation_loss": Range(-1e6, 1e6),
}


def check(section: str, key: str, value, where: str | None = None):
    """``value`` checked against RANGES[(section, key)] (no range: unchanged)."""
    r = RANGES.get((section, key))
    return value if r is None else r.check(where or f"[{section}] {key}", value)
