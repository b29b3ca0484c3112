"""MIDI above the port: settings, mapping, hot-plug, the note-off policy.

/dev/snd is absent here, so these run through mido's port interface on the
virtual transport (imps.io.midi.virtual, part of the product: the simulation
uses it), whose ports behave as python-rtmidi's ALSA ports do: opening a
missing name fails, an unplugged device's name leaves the list while its
open ports go quiet. The ALSA transport itself is checked as far as this
machine allows (python-rtmidi imports; no sequencer gives a clear error).
"""
import uuid
from pathlib import Path

import mido
import pytest

from imps.errors import ConfigError
from imps.io.midi import virtual
from imps.io.midi.mapping import InputMap, OutputMap, to_midi, unit_to_pitch, pitch_to_unit
from imps.model.rows import to_unit
from imps.io.midi.settings import MidiSettings, OutputRule, Rule, check_controls
from imps.io.midi.source import MidiInput
from imps.io.midi.transports import AlsaTransport, matches
from imps.io.midi.voice import MidiOutput
from imps.settings import decode
from support import Emitted, stuck_notes, wait_for


def unique(name):
    return f"{name} {uuid.uuid4().hex[:6]}"




# -- settings ----------------------------------------------------------------------
def test_settings_read_tables_and_name_what_is_wrong():
    s = decode(MidiSettings, {"input": [{"device": "X-TOUCH", "map": [
        {"type": "control_change", "channel": 11, "number": 1, "control": 0, "range": [10, 20]}]}],
        "output": [{"device": "volca", "voices": ["model", "performer"], "map": [
            {"type": "note", "channel": 1, "control": 0, "velocity": 100}]}]})
    assert s.input[0].map[0] == Rule("control_change", 0, 11, 1, (10, 20))
    assert s.output[0].voices == ("model", "performer")
    bad = [
        ({"input": [{"device": "x", "map": [{"type": "cc", "control": 0}]}]}, "type = 'cc'"),
        ({"input": [{"device": "x", "map": [{"type": "control_change", "channel": 17, "number": 1,
                                              "control": 0}]}]}, "channel = 17"),
        ({"input": [{"device": "x", "map": [{"type": "control_change", "control": 0}]}]}, "number"),
        ({"output": [{"device": "x", "map": [{"type": "note", "channel": 0, "control": 0}]}]}, "channel = 0"),
        ({"input": [{"device": "x", "map": [{"type": "note", "control": 0, "number": 3}]}]}, "means nothing"),
        ({"input": [{"device": "x", "transport": "usb", "map": []}]}, "transport"),
        ({"input": [{"device": "x", "map": []}]}, "non-empty"),
        ({"output": [{"device": "x", "voices": ["robot"], "map": [{"type": "note", "control": 0}]}]}, "voices"),
        ({"input": [{"device": "x", "map": [{"type": "gate", "number": 200, "control": 0}]}]}, "number = 200"),
        ({"input": [{"device": "x", "map": [{"type": "control_change", "number": 1, "control": 0,
                                              "range": [5, 5]}]}]}, "range"),
        ({"scan_interval": 0}, "scan_interval"),
        ({"inputs": []}, "unknown"),
    ]
    for d, words in bad:
        with pytest.raises(ConfigError, match=words.replace("[", r"\[")):
            decode(MidiSettings, d)
    with pytest.raises(ConfigError, match=r"\[\[midi.input\]\] 0 \('X-TOUCH'\) map\[0\]: control = 8"):
        check_controls(decode(MidiSettings, {"input": [{"device": "X-TOUCH", "map": [
            {"type": "pitch_bend", "control": 8}]}]}), 8)


def test_port_name_patterns():
    assert matches("x-touch", "X-TOUCH MINI:X-TOUCH MINI MIDI 1 20:0")
    assert matches("X-TOUCH*MIDI 1*", "X-TOUCH MINI:X-TOUCH MINI MIDI 1 20:0")
    assert not matches("volca", "X-TOUCH MINI:X-TOUCH MINI MIDI 1 20:0")
    assert not matches("X-TOUCH", "Midi Through:Midi Through Port-0 14:0")


# -- mapping -----------------------------------------------------------------------
def test_scaling_both_ways():
    assert [to_midi(v) for v in (0.0, 0.5, 1.0, -3.0, 7.0, float("nan"))] == [0, 64, 127, 0, 127, 0]
    assert to_midi(1.0, 127, 0) == 0 and to_midi(0.0, 10, 20) == 10 and to_midi(1.0, 10, 20) == 20
    for v in range(128):
        assert to_midi(to_unit(v, 0, 127)) == v
        assert to_midi(to_unit(v, 20, 100), 20, 100) == min(max(v, 20), 100)
    assert to_unit(50, 127, 0) == pytest.approx(77 / 127)
    assert unit_to_pitch(0.0) == -8192 and unit_to_pitch(1.0) == 8191 and unit_to_pitch(pitch_to_unit(0)) == 0


def test_input_map_every_message_kind():
    m = InputMap([Rule("control_change", 0, 11, 1), Rule("control_change", 1, 0, 2, (0, 63)),
                  Rule("note", 2, 1), Rule("velocity", 3, 1), Rule("gate", 4, 10, 36),
                  Rule("pitch_bend", 5, 2), Rule("channel_pressure", 6, 0)])
    cc = lambda ch, n, v: mido.Message("control_change", channel=ch - 1, control=n, value=v)
    assert m.updates(cc(11, 1, 127)) == [(0, 1.0)]
    assert m.updates(cc(3, 2, 63)) == [(1, 1.0)]                 # any channel, range 0..63
    assert m.updates(cc(11, 2, 126)) == [(1, 1.0)]               # clipped
    assert m.updates(cc(10, 1, 5)) is None                       # wrong channel: unmapped
    assert m.updates(mido.Message("note_on", channel=0, note=127, velocity=127)) == [(2, 1.0), (3, 1.0)]
    assert m.updates(mido.Message("note_off", channel=0, note=127)) == []          # known, nothing changes
    assert m.updates(mido.Message("note_on", channel=0, note=60, velocity=0)) == []  # a note-off too
    assert m.updates(mido.Message("note_on", channel=9, note=36, velocity=127)) == [(4, 1.0)]
    assert m.updates(mido.Message("note_off", channel=9, note=36, velocity=64)) == [(4, 0.0)]
    assert m.updates(mido.Message("note_on", channel=9, note=37, velocity=127)) is None
    assert m.updates(mido.Message("pitchwheel", channel=1, pitch=8191)) == [(5, 1.0)]
    assert m.updates(mido.Message("aftertouch", channel=4, value=0)) == [(6, 0.0)]
    assert m.updates(mido.Message("clock")) is None
    assert m.updates(mido.Message("sysex", data=[1, 2])) is None


def test_output_map_note_off_before_every_new_note_and_all_off():
    m = OutputMap([Rule("note", 0, 1), Rule("velocity", 1, 1), Rule("control_change", 2, 1, 42),
                   OutputRule("gate", 3, 10, 36, velocity=90), Rule("pitch_bend", 2, 2), Rule("channel_pressure", 1, 3)])
    first = m.messages("model", [0.5, 0.0, 0.5, 1.0])
    assert first == [mido.Message("note_on", channel=0, note=64, velocity=1),   # velocity 0 would be a note-off
                     mido.Message("control_change", channel=0, control=42, value=64),
                     mido.Message("note_on", channel=9, note=36, velocity=90),
                     mido.Message("pitchwheel", channel=1, pitch=0),
                     mido.Message("aftertouch", channel=2, value=0)]
    second = m.messages("model", [1.0, 1.0, 0.5, 0.0])
    assert second == [mido.Message("note_off", channel=0, note=64, velocity=0),
                      mido.Message("note_on", channel=0, note=127, velocity=127),
                      mido.Message("note_off", channel=9, note=36, velocity=0),
                      mido.Message("aftertouch", channel=2, value=127)]           # unchanged CC/bend not resent
    thru = m.messages("performer", [1.0, 1.0, 0.0, 1.0])                         # another voice, same note
    off = m.all_notes_off()
    assert stuck_notes(first + second + thru + off) == set()
    assert off[-2:] == [mido.Message("control_change", channel=0, control=123, value=0),
                        mido.Message("control_change", channel=9, control=123, value=0)]
    assert [x.type for x in off[:-2]] == ["note_off", "note_off"]                 # 127 once, 36 once
    assert m.messages("model", [1.0, 1.0, 0.5, 0.0])[1:] == [                      # values resent after silence
        mido.Message("control_change", channel=0, control=42, value=64),
        mido.Message("pitchwheel", channel=1, pitch=0), mido.Message("aftertouch", channel=2, value=127)]


def test_output_map_fuzz_never_leaves_a_note():
    import random
    rng = random.Random(5)
    m = OutputMap([Rule("note", 0, 1), Rule("note", 1, 1), Rule("gate", 2, 2, 60), Rule("velocity", 3, 1)])
    sent = []
    for i in range(3000):
        voice = rng.choice(("model", "performer"))
        sent += m.messages(voice, [rng.choice((0.5, rng.random())), rng.random(), rng.random(), rng.random()])
        if rng.random() < 0.02:
            sent += m.all_notes_off()
            assert stuck_notes(sent) == set()
    sent += m.all_notes_off()
    assert stuck_notes(sent) == set()


# -- virtual ports behave like ALSA ports ----------------------------------------
def test_virtual_ports_open_close_and_vanish():
    system = virtual.VirtualMidi()
    with pytest.raises(OSError):
        system.open_input("nothing here")
    dev = system.plug("keys")
    got = []
    inp = system.open_input("keys", callback=got.append)
    out = system.open_output("keys")
    dev.send(mido.Message("note_on", note=60))
    out.send(mido.Message("control_change", control=1, value=2))
    assert got == [mido.Message("note_on", note=60)] and dev.messages() == [mido.Message("control_change", control=1, value=2)]
    system.unplug("keys")
    assert system.names() == [] and not inp.closed          # still open, but quiet, as rtmidi's are
    dev.send(mido.Message("note_on", note=61))
    out.send(mido.Message("control_change", control=1, value=3))
    assert len(got) == 1 and len(dev.messages()) == 1
    dev2 = system.plug("keys")                              # plugged back: a new device
    dev2.send(mido.Message("note_on", note=62))
    assert len(got) == 1                                    # the old port stays quiet
    inp.close()
    out.close()
    with pytest.raises(ValueError):
        out.send(mido.Message("note_on"))
    polled = system.open_input("keys")
    dev2.send(mido.Message("note_on", note=63))
    assert polled.receive(block=False) == mido.Message("note_on", note=63)


def test_alsa_transport_is_there_or_says_why():
    """python-rtmidi is installed; without an ALSA sequencer (no /dev/snd here) the names say so clearly."""
    import os
    t = AlsaTransport()
    if os.path.exists("/dev/snd/seq"):
        assert isinstance(t.input_names(), list)
    else:
        with pytest.raises(OSError, match="ALSA"):
            t.input_names()
        with pytest.raises(OSError, match="ALSA"):
            t.output_names()


# -- the input source ------------------------------------------------------------
def settings_in(*devices, **kw):
    return decode(MidiSettings, dict(input=[{"device": d, "transport": "virtual", "map": m} for d, m in devices],
                                     scan_interval=kw.get("scan_interval", 0.05)))


def test_several_devices_at_once_hot_plugged():
    knobs, keys = unique("knob box"), unique("keyboard")
    s = settings_in((knobs, [{"type": "control_change", "channel": 0, "number": 1, "control": 0}]),
                    (keys, [{"type": "note", "channel": 1, "control": 1}, {"type": "velocity", "channel": 1, "control": 2}]))
    events = Emitted()
    source = MidiInput(s)
    source.start(events)
    try:
        kdev = virtual.SYSTEM.plug(knobs)                  # plugged in after start
        assert wait_for(lambda: source.status()["devices"] == [knobs])
        kdev.send(mido.Message("control_change", control=1, value=127))
        assert wait_for(lambda: len(events) == 1)
        keydev = virtual.SYSTEM.plug(keys)
        assert wait_for(lambda: len(source.status()["devices"]) == 2)
        keydev.send(mido.Message("note_on", note=127, velocity=127))
        keydev.send(mido.Message("note_off", note=127))
        keydev.send(mido.Message("program_change", program=3))   # no rule: unmapped
        kdev.send(mido.Message("clock"))                            # not a gesture: ignored
        assert wait_for(lambda: source.status()["unmapped"] == 1 and source.status()["ignored"] == 1)
        assert events.items == [([1.0], [0]), ([1.0, 1.0], [1, 2])]
        virtual.SYSTEM.unplug(knobs)                        # unplugged ...
        assert wait_for(lambda: source.status()["devices"] == [keys])
        kdev.send(mido.Message("control_change", control=1, value=0))   # a dead device says nothing
        kdev = virtual.SYSTEM.plug(knobs)                   # ... and plugged back
        assert wait_for(lambda: len(source.status()["devices"]) == 2)
        kdev.send(mido.Message("control_change", control=1, value=0))
        assert wait_for(lambda: len(events) == 3)
        assert events.items[-1] == ([0.0], [0])
        assert source.status()["reconnects"] == 1 and source.alive()
    finally:
        source.stop()
        virtual.SYSTEM.unplug(knobs)
        virtual.SYSTEM.unplug(keys)
    assert source.watcher.ports == {}


def test_a_bad_emit_is_counted_and_the_source_lives_on():
    name = unique("knobs")
    dev = virtual.SYSTEM.plug(name)
    source = MidiInput(settings_in((name, [{"type": "control_change", "number": 1, "control": 0}])))
    calls = []

    def emit(values, channels):
        calls.append(values)
        if len(calls) == 1:
            raise RuntimeError("engine bug")
    source.start(emit)
    try:
        assert wait_for(lambda: source.status()["devices"] == [name])
        dev.send(mido.Message("control_change", control=1, value=1))
        dev.send(mido.Message("control_change", control=1, value=2))
        assert wait_for(lambda: len(calls) == 2)
        assert source.status()["callback_errors"] == 1 and source.alive()
    finally:
        source.stop()
        virtual.SYSTEM.unplug(name)


# -- the output voice -------------------------------------------------------------
def test_voice_plays_model_and_thru_and_silences_every_device():
    synth, drums = unique("synth"), unique("drums")
    s = decode(MidiSettings, dict(output=[
        {"device": synth, "transport": "virtual", "voices": ["model", "performer"],
         "map": [{"type": "note", "channel": 1, "control": 0}, {"type": "control_change", "channel": 1, "number": 74, "control": 1}]},
        {"device": drums, "transport": "virtual", "map": [{"type": "gate", "channel": 10, "number": 36, "control": 2}]}],
        scan_interval=0.05))
    sdev, ddev = virtual.SYSTEM.plug(synth), virtual.SYSTEM.plug(drums)
    voice = MidiOutput(s).start()
    try:
        voice.send("/model", [0.5, 0.5, 1.0])
        voice.send("/performer", [0.25, 0.5, 1.0])        # thru to the synth only
        assert [m.type for m in sdev.messages()] == ["note_on", "control_change", "note_on"]
        assert [m.type for m in ddev.messages()] == ["note_on"]
        voice.send("/silence")
        assert stuck_notes(sdev.messages()) == set() and stuck_notes(ddev.messages()) == set()
        assert "cc123=0" in voice.status()["last"]
        virtual.SYSTEM.unplug(synth)                       # the synth is unplugged mid-note
        voice.send("/model", [0.9, 0.1, 0.0])
        assert wait_for(lambda: voice.status()["devices"] == [drums])
        voice.send("/model", [0.7, 0.1, 0.0])
        assert voice.status()["dropped"] >= 2
        sdev = virtual.SYSTEM.plug(synth)                  # back: its books start afresh
        assert wait_for(lambda: len(voice.status()["devices"]) == 2)
        voice.send("/model", [0.6, 0.1, 0.0])
        assert sdev.messages() == [mido.Message("note_on", channel=0, note=76, velocity=127),
                                   mido.Message("control_change", channel=0, control=74, value=13)]
    finally:
        voice.close()
        virtual.SYSTEM.unplug(synth)
        virtual.SYSTEM.unplug(drums)
    assert stuck_notes(sdev.messages()) == set()           # close() silenced it
    assert voice.watcher.ports == {}


@pytest.mark.parametrize("name, model, inputs, outputs", [
    ("box.midi-knobs.example.toml", "xtouch-9d", ["control_change"] * 8, ["note"] + ["control_change"] * 7),
    ("box.midi-keyboard.example.toml", "default", ["note", "velocity", "control_change"],
     ["note", "velocity", "control_change"]),
])
def test_the_example_setups_fit_the_bundled_models(name, model, inputs, outputs):
    """Each MIDI example drives every control of the bundled model it is for, no more."""
    from imps.box.config import PACKAGE_DIR, load_config
    from imps.model.model_file import read_sidecar
    config = load_config(PACKAGE_DIR / name)
    m = config.midi
    dimension = read_sidecar(PACKAGE_DIR / "models" / f"{model}.tflite").dimension
    assert config.midi.enabled and config.engine.dimension == dimension
    assert Path(config.model.path or "default.tflite").stem == model
    assert [r.type for r in m.input[0].map] == inputs and [r.type for r in m.output[0].map] == outputs
    assert [r.control for r in m.input[0].map] == list(range(dimension - 1))
    assert sorted(r.control for r in m.output[0].map) == list(range(dimension - 1))
