"""``imps run --simulate``: the box's config for a simulated sensor board, and the board itself."""
from __future__ import annotations

from pathlib import Path

from ..box.config import DEFAULT_PERFORMANCE
from ..errors import ConfigError
from .board import SimulatedBoard
from .performer import ReplayPerformer
from .replay import load_performance

SIMULATED_BOARD = "sensor-board"     # the pty's stable link, in a temporary directory


def simulation_overrides(link: Path) -> dict:
    """Config for --simulate: the serial input reads the simulated board, GPIO is gpiozero's mock,
    and the shutdown button powers nothing off."""
    return {"serial": {"enabled": True, "port": str(link), "format": "frames"},
            "gpio": {"backend": "mock"},
            "panel": {"enabled": True, "shutdown_command": ["true"]},
            "actuators": {"enabled": True}}


#: Actuator frames and sent rows the simulated board remembers (its counters count them all).
KEEP = 1000


def start_simulated_board(config, link: Path) -> SimulatedBoard:
    """A SimulatedBoard replaying the configured (default: bundled) performance at ``link``."""
    p = config.performer
    path = p.dataset or DEFAULT_PERFORMANCE
    rows = load_performance(path, p.performance)
    if rows.shape[1] != config.engine.dimension:
        raise ConfigError(f"--simulate: {path} performance {p.performance} has dimension {rows.shape[1]}, "
                          f"but [engine] dimension = {config.engine.dimension}")
    board = SimulatedBoard(rows, link, time_scale=p.time_scale, loop=p.loop, max_dt=2.0,
                           phrase_seconds=p.phrase_seconds, rest_seconds=p.rest_seconds, keep=KEEP)
    return board.start()


def replay_performer(p) -> ReplayPerformer:
    """``[performer] simulate``: the configured (default: bundled) performance replayed as the performer."""
    rows = load_performance(p.dataset or DEFAULT_PERFORMANCE, p.performance)
    return ReplayPerformer(rows, p.phrase_seconds, p.rest_seconds, p.time_scale, p.loop)
