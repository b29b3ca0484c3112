"""The box's configuration: one TOML file, validated at start.

Every section is a dataclass below; its fields, types and defaults are the
documentation of the file (see box.example.toml). Unknown sections and keys
are errors, and every error names the key, the value and what was expected.
Defaults work: with no file at all the box runs with the bundled model.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .modes import Mode

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the Pi runs 3.11
    import tomli as tomllib

PACKAGE_DIR = Path(__file__).resolve().parent
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


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    osc: OscConfig = field(default_factory=OscConfig)
    log: LogConfig = field(default_factory=LogConfig)
    performer: PerformerConfig = field(default_factory=PerformerConfig)
    status: StatusConfig = field(default_factory=StatusConfig)
    source: str = "defaults"             # where it was read from (not a file key)


SECTIONS = {f.name: f.type for f in dataclasses.fields(Config) if f.name != "source"}

_CHECKS = {
    ("model", "runtime"): (lambda v: v in ("auto", "tflite-runtime", "ai-edge-litert"),
                           "auto, tflite-runtime or ai-edge-litert"),
    ("model", "threads"): (lambda v: 1 <= v <= 64, "a thread count from 1 to 64"),
    ("model", "pi_temperature"): (lambda v: v is None or v > 0, "a number > 0"),
    ("model", "sigma_temperature"): (lambda v: v is None or v >= 0, "a number >= 0"),
    ("engine", "dimension"): (lambda v: v >= 2, "an integer >= 2 (dt plus at least one control)"),
    ("engine", "response_threshold"): (lambda v: v > 0, "seconds > 0"),
    ("engine", "time_scale"): (lambda v: v > 0, "a number > 0"),
    ("engine", "queue_size"): (lambda v: v >= 1, "an integer >= 1"),
    ("engine", "max_dt"): (lambda v: v > 0, "seconds > 0"),
    ("performer", "time_scale"): (lambda v: v > 0, "a number > 0"),
    ("status", "interval"): (lambda v: v > 0, "seconds > 0"),
}
for _key in ("interface_port", "control_port", "sound_port"):
    _CHECKS[("osc", _key)] = (lambda v: 0 <= v <= 65535, "a UDP port from 0 to 65535 (0: any free port)")


def _section_types(cls):
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(where: str, value, expected):
    """Value as the expected type, or a ConfigError naming key, value and type."""
    optional = typing.get_origin(expected) is typing.Union
    base = [t for t in typing.get_args(expected) if t is not type(None)][0] if optional else expected
    if value is None and optional:
        return None
    if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if base is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if base in (str, bool) and type(value) is base:
        return value
    raise ConfigError(f"{where} = {value!r}: expected {base.__name__}")


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
        for key, value in values.items():
            where = f"{source}: [{section}] {key}"
            if key not in types:
                raise ConfigError(f"{where}: unknown key, expected one of: {', '.join(types)}")
            value = _coerce(where, value, types[key])
            check = _CHECKS.get((section, key))
            if check and value is not None and not check[0](value):
                raise ConfigError(f"{where} = {value!r}: expected {check[1]}")
            setattr(target, key, value)
    Mode.parse(config.engine.mode)  # a clear error for an unknown mode
    return config


def load_config(path: str | os.PathLike | None = None, overrides: dict | None = None) -> Config:
    """Read and validate a TOML file (None: defaults), then apply overrides {section: {key: value}}."""
    data: dict = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})
    try:
        Mode.parse(data.get("engine", {}).get("mode", "call_response"))
    except ConfigError as exc:
        raise ConfigError(f"{source}: [engine] mode: {exc}") from None
    return build_config(data, source)
