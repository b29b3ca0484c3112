"""``imps run --simulate`` and ``--midi-file``: the simulated parts, their config, and their lifetime.

``Simulation`` is a context manager around the box: it says which config keys
the simulation sets, starts the simulated sensor board or the MIDI file's
player before the box, adds the replayed performer and the keyboard LEDs to
it, and stops each of them once, after the box, however the run ends.
"""
from __future__ import annotations

import shutil
import tempfile
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


class Simulation:
    """The simulated parts of one ``imps run`` (``simulate``: a sensor board on a pty; ``midi_file``:
    a MIDI file as the performer, instead of the board)::

        with Simulation(args.simulate, args.midi_file) as sim:
            config = ... overrides=sim.overrides(dimension) ...
            sim.start(config)
            box = sim.attach(Box(config))
    """

    def __init__(self, simulate: bool = False, midi_file: str | None = None):
        self.simulate = simulate
        self.midi_file = midi_file
        self.folder = Path(tempfile.mkdtemp(prefix="imps-simulate-")) if simulate else None
        self.board: SimulatedBoard | None = None
        self.player = None

    @property
    def link(self) -> Path | None:
        """Where the simulated board's pty is linked (the serial port the config names)."""
        return self.folder / SIMULATED_BOARD if self.folder is not None else None

    @property
    def needs_dimension(self) -> bool:
        """True when the overrides depend on the config's dimension (a MIDI file's mapping)."""
        return self.midi_file is not None

    def overrides(self, dimension: int | None = None) -> dict:
        """The config keys the simulation sets (``dimension``: the config's, for a MIDI file)."""
        extra = simulation_overrides(self.link) if self.simulate else {}
        if self.midi_file and dimension is not None:   # the MIDI file plays the performer, not the board
            from . import midi
            extra.update(midi.overrides(self.midi_file, dimension))
        return extra

    def start(self, config) -> "Simulation":
        if self.midi_file:
            from . import midi
            self.player = midi.start_player(self.midi_file, config.performer)
        elif self.simulate:
            self.board = start_simulated_board(config, self.link)
        return self

    def attach(self, box):
        """Add what the simulation shows in the box: the replayed performer, the LEDs in the status line."""
        if box.config.performer.simulate:
            box.add_source(replay_performer(box.config.performer))
        if box.config.gpio.backend != "none":        # the LEDs in the status line, on mock pins
            from .keys import led_status
            box.status_parts.append(lambda: led_status(box))
        return box

    def describe(self) -> str:
        return f"MIDI file {self.midi_file}" if self.midi_file else f"sensor board at {self.link}"

    def close(self) -> None:
        """Stop what started (each once), and remove the pty's folder."""
        player, self.player = self.player, None
        board, self.board = self.board, None
        if player is not None:
            player.stop()            # and the virtual synth unplugged
        if board is not None:
            board.stop()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "Simulation":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
