"""The engine's outputs as one: each send goes to every voice (the sound engine over OSC,
MIDI synths), so the engine need not know how many there are.

A voice has ``send(address, values)`` for ``/performer``, ``/model`` and ``/silence``
(imps.io.osc) and ``close()``. One voice's bug must not silence the others or kill
the scheduler thread that plays model events: it is logged once and counted.
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class Voices:
    def __init__(self, voices):
        self.voices = [v for v in voices if v is not None]
        self.errors = 0

    def __bool__(self) -> bool:
        return bool(self.voices)

    def send(self, address: str, values=()) -> None:
        for voice in self.voices:
            try:
                voice.send(address, values)
            except Exception:
                self.errors += 1
                if self.errors == 1:
                    log.exception("voice %s failed on %s; counting further failures", type(voice).__name__, address)

    def close(self) -> None:
        for voice in self.voices:
            try:
                voice.close()
            except Exception:
                log.exception("closing voice %s", type(voice).__name__)
