"""The ``[panel]`` settings: which pins, and the times that make a press short, long or a hold."""
from __future__ import annotations

import os
import stat
from typing import ClassVar, Optional, Tuple

from ..errors import ConfigError
from ..modes import Mode
from ..ranges import shorten
from ..settings import Section

#: Shutdown commands the box runs by name (the one the polkit rule allows, and the simulation's no-op).
#: Anything else must start with the absolute path of an executable that only its owner may change.
SHUTDOWN_COMMANDS = {("systemctl", "poweroff"), ("systemctl", "halt"), ("systemctl", "reboot"), ("true",)}


def check_shutdown_command(command: Tuple[str, ...]) -> None:
    """ConfigError unless ``command`` is in SHUTDOWN_COMMANDS or names a safe absolute executable.

    A config file could otherwise make the shutdown button run anything (issue #27)."""
    if not command:
        raise ConfigError('shutdown_command = []: expected a command as a list, e.g. ["systemctl", "poweroff"]')
    if tuple(command) in SHUTDOWN_COMMANDS:
        return
    shown = shorten(list(command), repr)
    program = command[0]
    allowed = " or ".join(f"{list(c)}" for c in sorted(SHUTDOWN_COMMANDS))
    if not os.path.isabs(program):
        raise ConfigError(f"shutdown_command = {shown}: expected {allowed}, or a command starting with an "
                          "absolute path")
    try:
        st = os.stat(program)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"shutdown_command = {shown}: {program!r:.80}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111:
        raise ConfigError(f"shutdown_command = {shown}: {program!r:.80} is not an executable file")
    if st.st_mode & 0o022:
        raise ConfigError(f"shutdown_command = {shown}: {program!r:.80} may be changed by others than its owner "
                          "(group or world writable)")


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
        check_shutdown_command(self.shutdown_command)
