"""SIGHUP's diff: what a changed config file may change in a running box, and what waits for a restart."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from ..errors import ConfigError
from .config import Config, apply_reloadable, changes, reloadable

log = logging.getLogger(__name__)


@dataclass
class Reload:
    config: Config              # the running config with the file's reloadable keys applied
    pending: list               # (section, key, running value, value on disk) not applied

    @property
    def restart_needed(self) -> list:
        """"[section] key" changed on disk that only a restart applies."""
        return [f"[{section}] {key}" for section, key, _, _ in self.pending if not reloadable(section, key)]

    def warn(self) -> None:
        """One warning per key the running box does not take (once the reload went through)."""
        for section, key, old, value in self.pending:
            log.warning("reload: [%s] %s %r -> %r needs a restart (systemctl restart imps); running with %r",
                        section, key, old, value, old)


def plan_reload(running: Config, new: Config) -> Reload:
    """Merge what may change now and list what may not. A new dimension is refused."""
    if new.engine.dimension != running.engine.dimension:
        raise ConfigError(f"{new.source}: [engine] dimension {running.engine.dimension} -> "
                          f"{new.engine.dimension} needs a restart (the model and the log depend on it)")
    merged = apply_reloadable(running, new)
    return Reload(merged, changes(merged, new))
