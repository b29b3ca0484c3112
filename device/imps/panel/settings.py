"""The ``[panel]`` settings: which pins, and the times that make a press short, long or a hold."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional, Sequence

from ..errors import ConfigError
from ..modes import Mode


@dataclass
class PanelConfig:
    """The ``[panel]`` settings of the box config; pins are BCM numbers, None (false in TOML) = not fitted."""
    mode_button: Optional[int] = 17
    shutdown_button: Optional[int] = 27
    mode_leds: Sequence[int] = (5, 6, 13, 19)
    pull_up: bool = True
    debounce: float = 0.03
    long_press: float = 1.0
    shutdown_hold: float = 3.0
    shutdown_command: Sequence[str] = ("systemctl", "poweroff")

    def __post_init__(self):
        self.mode_leds = tuple(self.mode_leds or ())
        if self.mode_leds and len(self.mode_leds) != len(Mode):
            raise ConfigError(f"mode_leds needs one BCM pin per mode ({len(Mode)}: "
                              f"{', '.join(m.value for m in Mode)}), got {list(self.mode_leds)}")
        pins = [p for p in (self.mode_button, self.shutdown_button, *self.mode_leds) if p is not None]
        if len(set(pins)) != len(pins):
            raise ConfigError(f"panel pins must all differ, got {pins}")
        if not 0 < self.debounce < self.long_press:
            raise ConfigError(f"debounce ({self.debounce}) must be > 0 and shorter than long_press ({self.long_press})")

    @classmethod
    def from_dict(cls, d: dict) -> "PanelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown gpio panel settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)
