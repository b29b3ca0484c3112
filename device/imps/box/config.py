"""The box's configuration: one TOML file, validated at start.

Every section is a dataclass below; its fields, types and defaults are the
documentation of the file (see box.example.toml). Unknown sections and keys
are errors, and every error names the key, the value and what was expected.
Defaults work: with no file at all the box runs with the bundled model.
"""
from __future__ import annotations

import collections.abc
import dataclasses
import ipaddress
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

from .. import ranges
from ..errors import ConfigError
from ..io.midi.settings import MidiSettings, check_controls
from ..io.serial_input import SerialSettings
from ..modes import Mode
from ..panel.pins import BACKENDS as GPIO_BACKENDS
from ..panel.settings import PanelConfig
from ..tomlfile import read_toml
from . import impsy_config

PACKAGE_DIR = Path(__file__).resolve().parents[1]   # imps/: the bundled models, data and examples
DEFAULT_MODEL = PACKAGE_DIR / "models" / "default.tflite"
DEFAULT_PERFORMANCE = PACKAGE_DIR / "data" / "lightpad-performance.npz"


@dataclass
class ModelConfig:
    path: str = ""                       # empty: the bundled default model
    runtime: str = "auto"                # auto, tflite-runtime, ai-edge-litert
    threads: int = 1
    pi_temperature: typing.Optional[float] = None     # None: the model sidecar's recommendation
    sigma_temperature: typing.Optional[float] = None
    seed: typing.Optional[int] = None    # set for reproducible runs

    def resolved_path(self) -> Path:
        return Path(self.path).expanduser() if self.path else DEFAULT_MODEL


@dataclass
class EngineConfig:
    mode: str = "call_response"          # user, call_response, layered, duet
    dimension: int = 4                   # D: dt plus the number of controls
    response_threshold: float = 1.0      # seconds of performer silence before the model answers
    time_scale: float = 1.0              # > 1 plays the model slower, < 1 faster
    queue_size: int = 256                # bound on queued input events
    max_dt: float = 5.0                  # longest pause fed to the model (as in training)


@dataclass
class OscConfig:
    interface_host: str = "127.0.0.1"    # /interface f.. from controllers (0.0.0.0 to accept the LAN)
    interface_port: int = 5000
    control_host: str = "127.0.0.1"      # /mode, /reset, /pause, temperatures, /time_scale
    control_port: int = 5002
    sound_host: str = "127.0.0.1"        # the sound engine: /performer, /model, /silence
    sound_port: int = 4000
    receive_buffer: int = 1048576        # bytes of kernel buffer per listening socket (capped by net.core.rmem_max)
    enabled: bool = True


@dataclass
class LogConfig:
    directory: str = "logs"
    enabled: bool = True


@dataclass
class PerformerConfig:
    """A simulated performer replaying a recorded performance (for `make run` and tests)."""
    simulate: bool = False
    dataset: str = ""                    # empty: the bundled LightPad performance
    performance: int = 0
    phrase_seconds: float = 8.0          # play this long, then rest, so the model can answer
    rest_seconds: float = 4.0
    time_scale: float = 1.0
    loop: bool = True


@dataclass
class StatusConfig:
    interval: float = 0.5                # seconds between status updates (terminal and systemd)
    terminal: bool = True                # live one-line status when stdout is a terminal


# -- hardware ------------------------------------------------------------------
# [serial] and [panel] keep their keys in one home each: every key but
# `enabled` is a field of SerialSettings (serial_input.py) or PanelConfig
# (panel/settings.py), validated by their from_dict. Those become ``.settings``.

@dataclass
class SerialConfig:
    """The sensor board over USB serial (see serial_input.py for every other key)."""
    enabled: bool = False
    settings: SerialSettings = field(default_factory=SerialSettings)


@dataclass
class GpioConfig:
    backend: str = "none"                # none, auto (the box: lgpio or RPi.GPIO), lgpio, rpigpio, mock (tests, --simulate)


@dataclass
class PanelSection:
    """Mode and shutdown buttons and the mode LEDs (see panel/settings.py for every other key)."""
    enabled: bool = True                 # only used when [gpio] backend is not "none"
    settings: PanelConfig = field(default_factory=PanelConfig)


@dataclass
class PadsConfig:
    """GPIO switches or pads as gesture channels: pins[i] drives control index controls[i] (0/1)."""
    pins: List[int] = field(default_factory=list)
    controls: List[int] = field(default_factory=list)
    pull_up: bool = True
    debounce: float = 0.01


@dataclass
class ActuatorsConfig:
    """Model events back to the board as ACTUATOR frames: actuator j follows control controls[j]."""
    enabled: bool = False
    controls: List[int] = field(default_factory=lambda: [0])


@dataclass
class MidiSection:
    """MIDI controllers in, synths out (see midi/settings.py for every other key)."""
    enabled: bool = False
    settings: MidiSettings = field(default_factory=MidiSettings)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    osc: OscConfig = field(default_factory=OscConfig)
    log: LogConfig = field(default_factory=LogConfig)
    performer: PerformerConfig = field(default_factory=PerformerConfig)
    status: StatusConfig = field(default_factory=StatusConfig)
    serial: SerialConfig = field(default_factory=SerialConfig)
    gpio: GpioConfig = field(default_factory=GpioConfig)
    panel: PanelSection = field(default_factory=PanelSection)
    pads: PadsConfig = field(default_factory=PadsConfig)
    actuators: ActuatorsConfig = field(default_factory=ActuatorsConfig)
    midi: MidiSection = field(default_factory=MidiSection)
    source: str = "defaults"             # where it was read from (not a file key)


SECTIONS = {f.name: f.type for f in dataclasses.fields(Config) if f.name != "source"}
#: Sections whose keys (except their own, such as `enabled`) belong to a settings class.
DELEGATED = {"serial": SerialSettings, "panel": PanelConfig, "midi": MidiSettings}

def _ipv4(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


#: Checks beyond types and numeric ranges (those live in ranges.RANGES, shared with the control port).
_CHECKS = {
    ("model", "runtime"): (lambda v: v in ("auto", "tflite-runtime", "ai-edge-litert"),
                           "auto, tflite-runtime or ai-edge-litert"),
    ("gpio", "backend"): (lambda v: v in GPIO_BACKENDS, ", ".join(GPIO_BACKENDS[:-1]) + " or " + GPIO_BACKENDS[-1]),
    ("pads", "pins"): (lambda v: len(set(v)) == len(v), "distinct BCM pin numbers"),
    ("panel", "shutdown_command"): (lambda v: len(v) >= 1, "a command as a list, e.g. [\"systemctl\", \"poweroff\"]"),
    ("actuators", "controls"): (lambda v: 1 <= len(v) <= 16, "1 to 16 control indices"),
}
for _key in ("interface_host", "control_host", "sound_host"):
    _CHECKS[("osc", _key)] = (_ipv4, "an IPv4 address such as 127.0.0.1 (0.0.0.0 listens on every interface)")


def _section_types(cls):
    hints = typing.get_type_hints(cls)
    types = {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.name != "settings"}
    for section, settings_cls in DELEGATED.items():
        if cls is _section_class(section):
            types.update(_settings_types(settings_cls))
    return types


def _section_class(section: str):
    return typing.get_type_hints(Config)[section]


def _settings_types(cls):
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


class _Mismatch(Exception):
    pass


def _convert(value, expected):
    """``value`` (from TOML) as ``expected`` (a type hint), or _Mismatch.

    Lists stand for Sequence/List/Tuple hints; ``false`` stands for None in an
    Optional (TOML has no null: ``shutdown_button = false`` is "not fitted").
    """
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if origin is typing.Union:
        options = [t for t in args if t is not type(None)]
        if value is None and len(options) < len(args):
            return None
        for option in options:
            try:
                return _convert(value, option)
            except _Mismatch:
                pass
        if value is False and len(options) < len(args):
            return None
        raise _Mismatch
    if origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise _Mismatch
            return tuple(_convert(v, t) for v, t in zip(value, args))
        item = args[0] if args else typing.Any
        return [_convert(v, item) for v in value]
    if expected is typing.Any:
        return value
    if expected is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if expected is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if expected in (str, bool) and type(value) is expected:
        return value
    raise _Mismatch


def _describe(expected) -> str:
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if origin is typing.Union:
        options = [_describe(t) for t in args if t is not type(None)]
        return " or ".join(options + (["false (none)"] if type(None) in args else []))
    if origin in (list, tuple, collections.abc.Sequence):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} ({', '.join(_describe(t) for t in args)})"
        return f"a list of {_describe(args[0]) if args else 'values'}"
    return getattr(expected, "__name__", str(expected))


def _coerce(where: str, value, expected):
    """Value as the expected type, or a ConfigError naming key, value and type."""
    try:
        return _convert(value, expected)
    except _Mismatch:
        raise ConfigError(f"{where} = {value!r}: expected {_describe(expected)}") from None


def _settings(source: str, section: str, cls, values: dict):
    """A settings object from its own from_dict; its errors name the [section] key and value."""
    try:
        return cls.from_dict(values)
    except (ConfigError, TypeError, ValueError) as exc:
        error = exc
    for key, value in values.items():   # which key alone is wrong, so the error can name it
        try:
            cls.from_dict({key: value})
        except (ConfigError, TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: [{section}] {key} = {value!r}: {exc}") from None
    keys = ", ".join(f"{k} = {v!r}" for k, v in values.items())
    raise ConfigError(f"{source}: [{section}] {keys}: {error}") from None


def build_config(data: dict, source: str = "defaults") -> Config:
    """A validated Config from a parsed TOML dict (unknown keys are errors)."""
    config = Config(source=source)
    for section, values in data.items():
        if section not in SECTIONS:
            raise ConfigError(f"{source}: unknown section [{section}], expected one of: {', '.join(SECTIONS)}")
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: {section} must be a [{section}] table, got {values!r}")
        target = getattr(config, section)
        types = _section_types(type(target))
        own = {f.name for f in dataclasses.fields(target)}
        delegated = {}
        for key, value in values.items():
            where = f"{source}: [{section}] {key}"
            if key not in types:
                raise ConfigError(f"{where}: unknown key, expected one of: {', '.join(types)}")
            value = _coerce(where, value, types[key])
            ranges.check(section, key, value, where)
            check = _CHECKS.get((section, key))
            if check and value is not None and not check[0](value):
                raise ConfigError(f"{where} = {value!r}: expected {check[1]}")
            if key in own:
                setattr(target, key, value)
            else:
                delegated[key] = value
        if section in DELEGATED:
            target.settings = _settings(source, section, DELEGATED[section], delegated)
    Mode.parse(config.engine.mode)  # a clear error for an unknown mode
    _check_hardware(config)
    return config


def _check_hardware(config: Config) -> None:
    """Checks that span sections: control indices fit the dimension, pins are not shared."""
    src = config.source
    n = config.engine.dimension - 1
    controls = f"a control index 0..{n - 1} ([engine] dimension = {config.engine.dimension} has {n} controls)"
    channels = config.serial.settings.channels
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
        p = config.panel.settings
        shared = set(pads.pins) & {q for q in (p.mode_button, p.shutdown_button, *p.mode_leds) if q is not None}
        if shared:
            raise ConfigError(f"{src}: [pads] pins = {pads.pins!r}: GPIO {sorted(shared)} already used by [panel]")
    if config.midi.enabled:
        check_controls(config.midi.settings, n, src)
    act = config.actuators
    if act.enabled:
        if not config.serial.enabled or config.serial.settings.format != "frames":
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
    keys = RELOADABLE.get(section, ())
    return keys == "*" or key in keys


def settings_of(config: Config) -> dict:
    """{(section, key): value} for every key of the file, delegated ones (serial, panel) included."""
    flat = {}
    for section in SECTIONS:
        target = getattr(config, section)
        for f in dataclasses.fields(target):
            if f.name == "settings":
                for g in dataclasses.fields(target.settings):
                    flat[(section, g.name)] = getattr(target.settings, g.name)
            else:
                flat[(section, f.name)] = getattr(target, f.name)
    return flat


def changes(old: Config, new: Config) -> list[tuple[str, str, object, object]]:
    """(section, key, old value, new value) for every key that differs."""
    a, b = settings_of(old), settings_of(new)
    return [(section, key, a[(section, key)], b[(section, key)]) for section, key in a if a[(section, key)] != b[(section, key)]]


def apply_reloadable(running: Config, new: Config) -> Config:
    """A copy of ``running`` with the RELOADABLE keys taken from ``new`` (what the box runs after SIGHUP)."""
    merged = dataclasses.replace(running)
    for section, keys in RELOADABLE.items():
        if keys == "*":
            setattr(merged, section, dataclasses.replace(getattr(new, section)))
        else:
            values = {k: getattr(getattr(new, section), k) for k in keys}
            setattr(merged, section, dataclasses.replace(getattr(running, section), **values))
    return merged


def load_config(path: str | os.PathLike | None = None, overrides: dict | None = None) -> Config:
    """Read and validate a TOML file (None: defaults), then apply overrides {section: {key: value}}."""
    data: dict = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        data = read_toml(path)
        if impsy_config.looks_like_impsy(data):   # an IMPSY config.toml: run it as far as the box can
            data = impsy_config.as_box_config(path, data)
    for section, values in (overrides or {}).items():
        values = {k: v for k, v in values.items() if v is not None}
        if values and isinstance(data.setdefault(section, {}), dict):  # not a table: build_config says so
            data[section].update(values)
    engine = data.get("engine")
    try:
        Mode.parse(engine.get("mode", "call_response") if isinstance(engine, dict) else "call_response")
    except ConfigError as exc:
        raise ConfigError(f"{source}: [engine] mode: {exc}") from None
    return build_config(data, source)
