"""The box's configuration: one TOML file, validated at start.

Every section is a settings struct (``settings.Section``, a msgspec Struct);
its fields, types and defaults are the documentation of the file (see
box.example.toml). ``settings.decode`` is the one home of refusing a file:
unknown sections and keys, wrong types, numbers outside their range in
``ranges.RANGES`` and each section's own checks are errors that name the key,
the value and what was expected. Defaults work: with no file at all the box
runs with the bundled model.
"""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import ClassVar, List, Optional

import msgspec

from ..errors import ConfigError
from ..ranges import shorten
from ..io.midi.settings import MidiSettings, check_controls
from ..io.serial_input import SerialSettings
from ..modes import Mode
from ..panel.pins import BACKENDS as GPIO_BACKENDS
from ..panel.settings import PanelConfig
from ..settings import Section, choice, decode, keys
from ..tomlfile import read_toml
from . import impsy_config

PACKAGE_DIR = Path(__file__).resolve().parents[1]   # imps/: the bundled models, data and examples
DEFAULT_MODEL = PACKAGE_DIR / "models" / "default.tflite"
DEFAULT_PERFORMANCE = PACKAGE_DIR / "data" / "lightpad-performance.npz"
RUNTIMES = ("auto", "tflite-runtime", "ai-edge-litert")


class ModelConfig(Section):
    section: ClassVar[str] = "model"
    path: str = ""                       # empty: the bundled default model
    runtime: str = "auto"                # auto, tflite-runtime, ai-edge-litert
    threads: int = 1
    pi_temperature: Optional[float] = None     # None: the model sidecar's recommendation
    sigma_temperature: Optional[float] = None
    seed: Optional[int] = None           # set for reproducible runs

    def __post_init__(self):
        super().__post_init__()
        choice("runtime", self.runtime, RUNTIMES)

    def resolved_path(self) -> Path:
        return Path(self.path).expanduser() if self.path else DEFAULT_MODEL


class EngineConfig(Section):
    section: ClassVar[str] = "engine"
    mode: str = "call_response"          # user, call_response, layered, duet
    dimension: int = 4                   # D: dt plus the number of controls
    response_threshold: float = 1.0      # seconds of performer silence before the model answers
    time_scale: float = 1.0              # > 1 plays the model slower, < 1 faster
    queue_size: int = 256                # bound on queued input events
    max_dt: float = 5.0                  # longest pause fed to the model (as in training)

    def __post_init__(self):
        super().__post_init__()
        try:
            Mode.parse(self.mode)
        except ConfigError as exc:
            raise ConfigError(f"mode = {shorten(self.mode, repr)}: {exc}") from None


def _ipv4(key: str, value: str) -> None:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise ConfigError(f"{key} = {shorten(value, repr)}: expected an IPv4 address such as 127.0.0.1 "
                          f"(0.0.0.0 listens on every interface)") from None


class OscConfig(Section):
    section: ClassVar[str] = "osc"
    interface_host: str = "127.0.0.1"    # /interface f.. from controllers (0.0.0.0 to accept the LAN)
    interface_port: int = 5000
    control_host: str = "127.0.0.1"      # /mode, /reset, /pause, temperatures, /time_scale
    control_port: int = 5002
    sound_host: str = "127.0.0.1"        # the sound engine: /performer, /model, /silence
    sound_port: int = 4000
    receive_buffer: int = 1048576        # bytes of kernel buffer per listening socket (capped by net.core.rmem_max)
    enabled: bool = True

    def __post_init__(self):
        super().__post_init__()
        for key in ("interface_host", "control_host", "sound_host"):
            _ipv4(key, getattr(self, key))
        if self.enabled and self.interface_port and self.interface_port == self.control_port:
            raise ConfigError(f"interface_port = control_port = {self.interface_port}: expected two different "
                              "ports (the box listens on both)")


class LogConfig(Section):
    section: ClassVar[str] = "log"
    directory: str = "logs"
    enabled: bool = True


class PerformerConfig(Section):
    """A simulated performer replaying a recorded performance (for `make run` and tests)."""
    section: ClassVar[str] = "performer"
    simulate: bool = False
    dataset: str = ""                    # empty: the bundled LightPad performance
    performance: int = 0
    phrase_seconds: float = 8.0          # play this long, then rest, so the model can answer
    rest_seconds: float = 4.0
    time_scale: float = 1.0
    loop: bool = True


class StatusConfig(Section):
    section: ClassVar[str] = "status"
    interval: float = 0.5                # seconds between status updates (terminal and systemd)
    terminal: bool = True                # live one-line status when stdout is a terminal


# -- hardware ------------------------------------------------------------------
# [serial], [panel] and [midi] are the settings classes of the modules that use them:
# SerialSettings (io/serial_input.py), PanelConfig (panel/settings.py), MidiSettings (io/midi/settings.py).

class GpioConfig(Section):
    section: ClassVar[str] = "gpio"
    backend: str = "none"                # none, auto (the box: lgpio or RPi.GPIO), lgpio, rpigpio, mock (tests, --simulate)

    def __post_init__(self):
        super().__post_init__()
        choice("backend", self.backend, GPIO_BACKENDS)


class PadsConfig(Section):
    """GPIO switches or pads as gesture channels: pins[i] drives control index controls[i] (0/1)."""
    section: ClassVar[str] = "pads"
    pins: List[int] = []
    controls: List[int] = []
    pull_up: bool = True
    debounce: float = 0.01

    def __post_init__(self):
        super().__post_init__()
        if len(set(self.pins)) != len(self.pins):
            raise ConfigError(f"pins = {self.pins!r}: expected distinct BCM pin numbers")


class ActuatorsConfig(Section):
    """Model events back to the board as ACTUATOR frames: actuator j follows control controls[j]."""
    section: ClassVar[str] = "actuators"
    enabled: bool = False
    controls: List[int] = msgspec.field(default_factory=lambda: [0])

    def __post_init__(self):
        super().__post_init__()
        if not 1 <= len(self.controls) <= 16:
            raise ConfigError(f"controls = {self.controls!r}: expected 1 to 16 control indices")


def _section(cls):
    return msgspec.field(default_factory=cls)


class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    model: ModelConfig = _section(ModelConfig)
    engine: EngineConfig = _section(EngineConfig)
    osc: OscConfig = _section(OscConfig)
    log: LogConfig = _section(LogConfig)
    performer: PerformerConfig = _section(PerformerConfig)
    status: StatusConfig = _section(StatusConfig)
    serial: SerialSettings = _section(SerialSettings)
    gpio: GpioConfig = _section(GpioConfig)
    panel: PanelConfig = _section(PanelConfig)
    pads: PadsConfig = _section(PadsConfig)
    actuators: ActuatorsConfig = _section(ActuatorsConfig)
    midi: MidiSettings = _section(MidiSettings)
    source: str = "defaults"             # where it was read from (not a file key)


#: {section name: its settings class}
SECTIONS = {name: cls for name, cls in keys(Config).items() if name != "source"}


def build_config(data: dict, source: str = "defaults") -> Config:
    """A validated Config from a parsed TOML dict (unknown sections and keys are errors)."""
    for section in data:
        if section not in SECTIONS:
            raise ConfigError(f"{source}: unknown section [{section}], expected one of: {', '.join(SECTIONS)}")
    config = decode(Config, {**data, "source": source}, source)
    _check_hardware(config)
    return config


def _check_hardware(config: Config) -> None:
    """Checks that span sections: control indices fit the dimension, pins are not shared."""
    src = config.source
    n = config.engine.dimension - 1
    controls = f"a control index 0..{n - 1} ([engine] dimension = {config.engine.dimension} has {n} controls)"
    channels = config.serial.channels
    if config.serial.enabled and channels is not None:
        for c in channels:
            if c is not None and not 0 <= c < n:
                raise ConfigError(f"{src}: [serial] channels = {list(channels)!r}: {c} is not {controls}")
    pads = config.pads
    if len(pads.pins) != len(pads.controls):
        raise ConfigError(f"{src}: [pads] pins = {pads.pins!r}, controls = {pads.controls!r}: "
                          f"expected one control index per pin")
    for c in pads.controls:
        if not 0 <= c < n:
            raise ConfigError(f"{src}: [pads] controls = {pads.controls!r}: {c} is not {controls}")
    if pads.pins and config.gpio.backend == "none":
        raise ConfigError(f"{src}: [pads] pins = {pads.pins!r} need a GPIO backend, "
                          f"but [gpio] backend = \"none\" (expected {', '.join(GPIO_BACKENDS[1:])})")
    if pads.pins and config.panel.enabled:
        p = config.panel
        shared = set(pads.pins) & {q for q in (p.mode_button, p.shutdown_button, *p.mode_leds) if q is not None}
        if shared:
            raise ConfigError(f"{src}: [pads] pins = {pads.pins!r}: GPIO {sorted(shared)} already used by [panel]")
    if config.midi.enabled:
        check_controls(config.midi, n, src)
    act = config.actuators
    if act.enabled:
        if not config.serial.enabled or config.serial.format != "frames":
            raise ConfigError(f"{src}: [actuators] enabled = true: expected [serial] enabled = true "
                              f"with format = \"frames\" (actuator frames go to the sensor board)")
        for c in act.controls:
            if not 0 <= c < n:
                raise ConfigError(f"{src}: [actuators] controls = {act.controls!r}: {c} is not {controls}")


# -- reload (SIGHUP) -------------------------------------------------------------
#: What SIGHUP applies to the running box: section -> keys ("*": the whole section).
#: Every other key (OSC, serial, GPIO, log, ...) needs a restart; a new section needs one by default.
RELOADABLE = {"model": "*", "engine": {"mode", "response_threshold", "time_scale"}, "status": {"interval"}}


def reloadable(section: str, key: str) -> bool:
    names = RELOADABLE.get(section, ())
    return names == "*" or key in names


def settings_of(config: Config) -> dict:
    """{(section, key): value} for every key of the file."""
    return {(section, key): getattr(getattr(config, section), key)
            for section, cls in SECTIONS.items() for key in cls.__struct_fields__}


def changes(old: Config, new: Config) -> list[tuple[str, str, object, object]]:
    """(section, key, old value, new value) for every key that differs."""
    a, b = settings_of(old), settings_of(new)
    return [(section, key, a[(section, key)], b[(section, key)]) for section, key in a if a[(section, key)] != b[(section, key)]]


def apply_reloadable(running: Config, new: Config) -> Config:
    """A copy of ``running`` with the RELOADABLE keys taken from ``new`` (what the box runs after SIGHUP)."""
    merged = {}
    for section, names in RELOADABLE.items():
        if names == "*":
            merged[section] = getattr(new, section)
        else:
            values = {k: getattr(getattr(new, section), k) for k in names}
            merged[section] = msgspec.structs.replace(getattr(running, section), **values)
    return msgspec.structs.replace(running, **merged)


def read_config(path: str | os.PathLike | None = None) -> tuple[dict, str]:
    """The file's sections as a dict, and its name (None: no file, "defaults"); an IMPSY
    config.toml is translated (its notes logged once, here)."""
    if path is None:
        return {}, "defaults"
    path = Path(path)
    data = read_toml(path)
    if impsy_config.looks_like_impsy(data):   # an IMPSY config.toml: run it as far as the box can
        data = impsy_config.as_box_config(path, data)
    return data, str(path)


def with_overrides(data: dict, source: str, overrides: dict | None = None) -> Config:
    """``data`` (from read_config) with overrides {section: {key: value}} (None values: not set), validated."""
    data = {section: dict(values) if isinstance(values, dict) else values for section, values in data.items()}
    for section, values in (overrides or {}).items():
        values = {k: v for k, v in values.items() if v is not None}
        if values and isinstance(data.setdefault(section, {}), dict):  # not a table: build_config says so
            data[section].update(values)
    return build_config(data, source)


def load_config(path: str | os.PathLike | None = None, overrides: dict | None = None) -> Config:
    """Read and validate a TOML file (None: defaults), then apply overrides {section: {key: value}}."""
    return with_overrides(*read_config(path), overrides)
