"""The ``[panel]`` settings: which pins, and the times that make a press short, long or a hold."""
from __future__ import annotations

from typing import ClassVar, Optional, Tuple

from ..errors import ConfigError
from ..modes import Mode
from ..settings import Section


class PanelConfig(Section):
    """The ``[panel]`` section of the box config; pins are BCM numbers, None (false in TOML) = not fitted.
    Unknown keys, types and ranges (ranges.RANGES) are checked by ``settings.decode``."""
    section: ClassVar[str] = "panel"
    enabled: bool = True                 # only used when [gpio] backend is not "none"
    mode_button: Optional[int] = 17
    shutdown_button: Optional[int] = 27
    mode_leds: Tuple[int, ...] = (5, 6, 13, 19)
    pull_up: bool = True
    debounce: float = 0.03
    long_press: float = 1.0
    shutdown_hold: float = 3.0
    shutdown_command: Tuple[str, ...] = ("systemctl", "poweroff")

    def __post_init__(self):
        super().__post_init__()
        self.mode_leds = tuple(self.mode_leds or ())
        self.shutdown_command = tuple(self.shutdown_command)
        if self.mode_leds and len(self.mode_leds) != len(Mode):
            raise ConfigError(f"mode_leds = {list(self.mode_leds)}: expected one BCM pin per mode ({len(Mode)}: "
                              f"{', '.join(m.value for m in Mode)})")
        pins = [p for p in (self.mode_button, self.shutdown_button, *self.mode_leds) if p is not None]
        if len(set(pins)) != len(pins):
            raise ConfigError(f"panel pins must all differ, got {pins}")
        if not 0 < self.debounce < self.long_press:
            raise ConfigError(f"debounce = {self.debounce}: must be shorter than long_press ({self.long_press})")
        if not self.shutdown_command:
            raise ConfigError('shutdown_command = []: expected a command as a list, e.g. ["systemctl", "poweroff"]')
