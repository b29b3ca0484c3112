"""The input-source seam: anything that turns a performer's gestures into events.

The engine does not know where gestures come from. A source (OSC, the serial
sensor board, GPIO pads, a replayed performance) is started with an ``emit``
callback and calls it from its own thread whenever the performer moves:

    emit(values, channels=None)

``values`` are control values in [0, 1] (no dt: the engine timestamps the
event on arrival). ``channels`` says which control indices (0-based, dt not
counted) the values are for; None means all controls in order. A source that
owns only some channels (two GPIO pads beside six knobs) passes their indices
and the engine keeps the others at their last value.
"""
from __future__ import annotations

from typing import Callable, Optional, Protocol, Sequence

Emit = Callable[[Sequence[float], Optional[Sequence[int]]], None]


class InputSource(Protocol):
    name: str

    def start(self, emit: Emit) -> None:
        """Begin delivering events; must return promptly (run a thread if needed)."""

    def stop(self) -> None:
        """Stop delivering events and release the device; safe to call twice."""

    def status(self) -> dict:
        """Counters and state for the status line (connected, frames, errors...)."""
