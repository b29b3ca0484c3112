"""End to end: MIDI in -> engine -> MIDI out, in every mode, with no stuck notes.

The box (imps.box.app.Box) runs the bundled model with a MIDI keyboard in and a
synth out (virtual devices; the transport the simulation uses). After every
mode switch, reset, pause and stop, every note the synth was sent must have
had its note-off by the time the engine's silence ("all notes off", CC 123)
arrives. A separate process run over DIN (socat ptys) is stopped with
SIGTERM and must leave no note sounding either.
"""
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import mido
import pytest
import serial

from imps.box.app import Box
from imps.box.config import load_config
from imps.io.midi import virtual
from imps.io.midi.din import DinParser
from imps.modes import Mode

sys.path.insert(0, str(Path(__file__).parent))
from support import stuck_notes, wait_for  # noqa: E402
from test_midi_din import Socat  # noqa: E402


def silences(messages):
    """Indices just past each "all notes off" (CC 123): the engine's silence on the synth."""
    return [i + 1 for i, m in enumerate(messages) if m.type == "control_change" and m.control == 123]


KEYS_MAP = [{"type": "note", "channel": 1, "control": 0}, {"type": "velocity", "channel": 1, "control": 1},
            {"type": "control_change", "channel": 1, "number": 74, "control": 2}]
SYNTH_MAP = [{"type": "note", "channel": 1, "control": 0}, {"type": "velocity", "channel": 1, "control": 1},
             {"type": "control_change", "channel": 1, "number": 74, "control": 2}]


def midi_config(keys, synth, mode, tmp_path, transport="virtual"):
    return {"model": {"seed": 1},
            "engine": {"mode": mode, "response_threshold": 0.3},
            "osc": {"enabled": False},
            "log": {"directory": str(tmp_path / "logs")},
            "status": {"terminal": False},
            "midi": {"enabled": True, "scan_interval": 0.1,
                     "input": [{"device": keys, "transport": transport, "map": KEYS_MAP}],
                     "output": [{"device": synth, "transport": transport, "voices": ["model", "performer"],
                                 "map": SYNTH_MAP}]}}


@pytest.fixture
def rig(tmp_path):
    """A box with a virtual keyboard in and a virtual synth out, in the given mode."""
    made = []

    def make(mode):
        keys, synth = f"keys {uuid.uuid4().hex[:6]}", f"synth {uuid.uuid4().hex[:6]}"
        kdev, sdev = virtual.SYSTEM.plug(keys), virtual.SYSTEM.plug(synth)
        box = Box(load_config(None, midi_config(keys, synth, mode, tmp_path)))
        made.append((box, keys, synth))
        box.start()
        assert wait_for(lambda: box.midi_in.status()["devices"] == [keys]), "the keyboard was not found"
        return box, kdev, sdev
    yield make
    for box, keys, synth in made:
        box.stop()
        virtual.SYSTEM.unplug(keys)
        virtual.SYSTEM.unplug(synth)


def play(kdev, n=12, gap=0.03):
    for i in range(n):
        note = 48 + (i * 5) % 36
        kdev.send(mido.Message("note_on", note=note, velocity=64 + i))
        kdev.send(mido.Message("control_change", control=74, value=(i * 11) % 128))
        time.sleep(gap)
        kdev.send(mido.Message("note_off", note=note))


def expect_silence_without_stuck_notes(sdev, before: int, what: str):
    """Wait for the silence that follows ``what``; no note may sound at that point."""
    assert sdev.wait_for(lambda ms: len(silences(ms)) > before, timeout=10), f"no all-notes-off after {what}"
    messages = sdev.messages()
    cut = silences(messages)[before]
    assert stuck_notes(messages[:cut]) == set(), f"stuck notes after {what}"
    return len(silences(messages))


@pytest.mark.parametrize("mode", [m.value for m in Mode])
def test_midi_in_engine_midi_out_without_stuck_notes(rig, mode):
    box, kdev, sdev = rig(mode)
    play(kdev)
    # the performer comes through (MIDI thru), in every mode
    assert sdev.wait_for(lambda ms: sum(m.type == "note_on" for m in ms) >= 12)
    assert wait_for(lambda: box.engine.status()["performer_events"] >= 24)   # 12 notes + 12 CCs
    if mode != "user":      # the model answers / layers / duets on the synth
        assert wait_for(lambda: box.engine.status()["model_events"] >= 3, timeout=15)
    seen = len(silences(sdev.messages()))
    box.engine.set_mode(Mode(mode).next())
    seen = expect_silence_without_stuck_notes(sdev, seen, "a mode switch")
    play(kdev, 4)
    box.engine.reset_state()
    seen = expect_silence_without_stuck_notes(sdev, seen, "a reset")
    play(kdev, 4)
    box.engine.set_paused(True)
    seen = expect_silence_without_stuck_notes(sdev, seen, "pause")
    box.engine.set_paused(False)
    play(kdev, 4)
    time.sleep(0.5)         # let the model play on (after the 0.3 s threshold in call and response)
    box.stop()
    assert stuck_notes(sdev.messages()) == set(), "notes left sounding after stop"
    st = box.midi_in.status()
    assert st["unmapped"] == 0 and st["errors"] == 0 and box.engine.status()["lost_inputs"] == 0


def test_midi_input_is_logged_like_any_performer_event(rig, tmp_path):
    from imps.io.interaction_log import read_log
    box, kdev, sdev = rig("user")
    kdev.send(mido.Message("control_change", control=74, value=127))
    kdev.send(mido.Message("note_on", note=127, velocity=127))
    assert wait_for(lambda: box.engine.status()["performer_events"] == 2)
    box.stop()
    logs = list((tmp_path / "logs").glob("*.log"))
    assert len(logs) == 1
    rows = read_log(logs[0], 3).source_rows("interface")
    assert [list(r[1:]) for r in rows] == [[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]


def test_status_line_shows_devices_rates_unmapped_and_last_sent(rig):
    box, kdev, sdev = rig("user")
    kdev.send(mido.Message("note_on", note=60, velocity=100))
    kdev.send(mido.Message("pitchwheel", pitch=100))            # no rule: unmapped
    assert wait_for(lambda: box.midi_in.status()["unmapped"] == 1)
    assert sdev.wait_for(lambda ms: len(ms) >= 1)
    line = box.status_line()
    assert "MIDI in 1 dev" in line and "unmapped 1" in line
    assert "MIDI out 1 dev" in line and "n60" in line


def test_sigterm_silences_a_din_synth(tmp_path, device_python):
    """`imps run` over DIN MIDI on two socat pty pairs, stopped with SIGTERM: nothing left sounding."""
    keys_uart, synth_uart = Socat(tmp_path / "keys"), Socat(tmp_path / "synth")
    for u in (keys_uart, synth_uart):
        Path(u.box).parent.mkdir()
        u.start()
    cfg = midi_config(keys_uart.box, synth_uart.box, "duet", tmp_path, transport="din")
    lines = ["[model]", "seed = 1", "[engine]", 'mode = "duet"', "[osc]", "enabled = false",
             "[log]", f'directory = "{tmp_path / "logs"}"', "[midi]", "enabled = true", "scan_interval = 0.1"]
    for direction in ("input", "output"):
        d = cfg["midi"][direction][0]
        lines += [f"[[midi.{direction}]]", f'device = "{d["device"]}"', 'transport = "din"']
        if direction == "output":
            lines.append('voices = ["model", "performer"]')
        lines.append("map = [" + ", ".join("{" + ", ".join(f"{k} = {v!r}".replace("'", '"') for k, v in r.items()) + "}"
                                          for r in d["map"]) + "]")
    (tmp_path / "box.toml").write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([device_python, "-m", "imps", "run", "--config", str(tmp_path / "box.toml"), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    keys = keys_uart.open_line()
    synth = synth_uart.open_line()
    got, parser = [], DinParser()

    def read():
        data = synth.read(synth.in_waiting or 1)
        got.extend(parser.feed(data))
        return data
    try:
        # the duet model plays on its own; the performer's notes come through too
        assert wait_for(lambda: read() is not None and sum(m.type == "note_on" for m in got) >= 5, timeout=30), \
            "the box played nothing on the DIN synth"
        keys.write(bytes([0x90, 60, 100, 62, 100, 0x80, 60, 0, 62, 0]))   # running status
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        while read():
            pass
        assert stuck_notes(got) == set(), "notes left sounding after SIGTERM"
        assert got[-1] == mido.Message("control_change", channel=0, control=123, value=0)
    finally:
        if proc.poll() is None:
            proc.kill()
        keys.close()
        synth.close()
        keys_uart.stop()
        synth_uart.stop()


def test_a_clear_waits_for_the_note_being_played():
    """The engine clears the schedule, then sends silence: a model note already leaving must not
    land after that silence (it would sound forever). clear() waits for a play in flight."""
    import threading
    from imps.box.scheduler import Scheduler
    entered, release = threading.Event(), threading.Event()

    def play(event):
        entered.set()
        release.wait(5)
    sched = Scheduler(play).start()
    try:
        sched.schedule(time.monotonic(), "note")
        assert entered.wait(5)
        cleared = threading.Event()
        threading.Thread(target=lambda: (sched.clear(), cleared.set()), daemon=True).start()
        assert not cleared.wait(0.3), "clear() returned while a note was still being played"
        release.set()
        assert cleared.wait(5)
    finally:
        release.set()
        sched.stop()
