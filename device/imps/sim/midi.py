"""A MIDI file as the performer, a virtual synth as the output: `imps run --midi-file song.mid`.

The file plays from a virtual device (midifile.MidiFilePlayer) that the box
opens like any controller (transport "virtual"), mapped by the rules
suggested for the file; the model's events go to a virtual synth, and the
status line shows what it was last sent.
"""
from __future__ import annotations

import msgspec

from ..io.midi import virtual
from ..io.midi.midifile import PLAYER_DEVICE, MidiFilePlayer, suggest_rules

SYNTH = "IMPS virtual synth"
#: What the virtual synth plays: control 0 the note, 1 its velocity, then a few common CCs.
SYNTH_CCS = (74, 71, 1, 10, 7, 91, 93, 73, 72)


def rule_table(rule) -> dict:
    """A Rule as the TOML table that makes it (its keys that differ from the defaults)."""
    return msgspec.to_builtins(rule)


def synth_map(n_controls: int) -> list:
    out = [{"type": "note", "channel": 1, "control": 0}]
    if n_controls > 1:
        out.append({"type": "velocity", "channel": 1, "control": 1})
    for i, cc in zip(range(2, n_controls), SYNTH_CCS):
        out.append({"type": "control_change", "channel": 1, "number": cc, "control": i})
    return out


def overrides(path, dimension: int) -> dict:
    """Config overrides: the file's player in, the virtual synth out, no sensor board."""
    n = dimension - 1
    return {"midi": {"enabled": True, "scan_interval": 0.2,
                     "input": [{"device": PLAYER_DEVICE, "transport": "virtual",
                                "map": [rule_table(r) for r in suggest_rules(path, n)]}],
                     "output": [{"device": SYNTH, "transport": "virtual", "map": synth_map(n)}]},
            "serial": {"enabled": False},
            "actuators": {"enabled": False}}


class SimulatedMidi:
    """The file's player started and the virtual synth plugged in; ``stop()`` undoes both."""

    def __init__(self, path, loop: bool = True, time_scale: float = 1.0):
        virtual.SYSTEM.plug(SYNTH)
        try:
            self.player = MidiFilePlayer(path, loop=loop, time_scale=time_scale).start()
        except BaseException:
            virtual.SYSTEM.unplug(SYNTH)
            raise

    def stop(self) -> None:
        self.player.stop()
        virtual.SYSTEM.unplug(SYNTH)


def start_player(path, performer) -> SimulatedMidi:
    """``imps run --midi-file``: play ``path`` as the ``[performer]`` settings say (loop, time scale)."""
    return SimulatedMidi(path, loop=performer.loop, time_scale=performer.time_scale)
