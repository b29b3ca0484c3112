"""IMPSY's [midi] section imported: against IMPSY's own config files (tests/fixtures/impsy).

The mapping must give, message for message, what IMPSY's own code gives for
the same config: the expected values below are IMPSY 1.2.1's
``midi_message_to_updates`` and ``MidiOutputState.messages`` semantics
(position i in a device's list is control i; values /127; note_on sends a
note-off for the rule's previous note first).
"""
import sys
from pathlib import Path

import mido
import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from imps.errors import ConfigError
from imps.io.midi.impsy import midi_section, rule_from_impsy, serialmidi_section
from imps.io.midi.mapping import InputMap, OutputMap
from imps.io.midi.settings import MidiSettings
from imps.settings import decode

FIXTURES = Path(__file__).parent / "fixtures" / "impsy"


def load(name):
    with open(FIXTURES / name, "rb") as f:
        return tomllib.load(f)


def settings(section):
    return decode(MidiSettings, section)


@pytest.mark.parametrize("name", ["default-1.2.1.toml", "xtouch-to-volca-fm.toml"])
def test_xtouch_in_volca_fm_out(name):
    impsy = load(name)
    section, notes = midi_section(impsy["midi"], impsy["interaction"]["input_thru"])
    s = settings(section)
    assert [d.device for d in s.input] == ["X-TOUCH"] and [d.device for d in s.output] == ["Studio 1824c"]
    assert s.output[0].voices == ("model", "performer")          # input_thru = true
    xtouch = InputMap(s.input[0].map)
    for knob in range(1, 9):                                     # knob k on channel 11 -> control k - 1
        msg = mido.Message("control_change", channel=10, control=knob, value=127)
        assert xtouch.updates(msg) == [(knob - 1, 1.0)]
    assert xtouch.updates(mido.Message("control_change", channel=0, control=1, value=127)) is None
    volca = OutputMap(s.output[0].map)
    out = volca.messages("model", [60 / 127, 0.0, 1 / 127, 0.5, 1.0, 0.0, 0.0, 1.0])
    assert out[0] == mido.Message("note_on", channel=0, note=60, velocity=127)
    assert [(m.control, m.value) for m in out[1:]] == [(42, 0), (43, 1), (44, 64), (45, 127), (46, 0), (47, 0), (48, 127)]
    out = volca.messages("model", [62 / 127] + [0.0] * 7)
    assert out[:2] == [mido.Message("note_off", channel=0, note=60, velocity=0),
                       mido.Message("note_on", channel=0, note=62, velocity=127)]
    assert [n[0] for n in notes] == ["[midi]"] and notes[0][1] is True


def test_two_devices_each_way_and_feedback_protection_noted():
    impsy = load("roland-s-1-xtouch.toml")
    section, notes = midi_section(impsy["midi"], impsy["interaction"]["input_thru"])
    s = settings(section)
    assert [d.device for d in s.input] == ["S-1", "X-TOUCH"] and [d.device for d in s.output] == ["S-1", "X-TOUCH"]
    assert all(d.voices == ("model",) for d in s.output)         # input_thru = false
    s1 = InputMap(s.input[0].map)
    assert s1.updates(mido.Message("note_on", channel=2, note=127, velocity=1)) == [(0, 1.0)]
    assert s1.updates(mido.Message("control_change", channel=2, control=25, value=0)) == [(7, 0.0)]
    assert ("[midi] feedback_protection", False) in [n[:2] for n in notes]


def test_entries_ranges_velocity_and_bad_ones():
    assert rule_from_impsy(["control_change", 2, 7, 10, 20], 3, False) == {
        "type": "control_change", "channel": 2, "control": 3, "number": 7, "range": [10, 20]}
    assert rule_from_impsy(["note_on", 1, 300], 0, True)["velocity"] == 127
    assert rule_from_impsy(["note_velocity", 1], 1, True)["type"] == "velocity"
    assert rule_from_impsy(["pitch_bend", 16], 2, False)["type"] == "pitch_bend"
    for bad in (["sysex", 1], ["control_change", 1], "note_on", ["note_on"]):
        with pytest.raises(ConfigError):
            rule_from_impsy(bad, 0, False)
    with pytest.raises(ConfigError, match="channel = 17"):
        midi_section({"in_device": ["A"], "out_device": [], "input": {"A": [["control_change", 17, 1]]}})
    with pytest.raises(ConfigError, match="has no input"):
        midi_section({"in_device": ["A", "B"], "input": {"A": [["control_change", 1, 1]]}})


def test_serialmidi_becomes_din_on_the_uart():
    impsy = load("default-1.2.1.toml")
    section, _ = serialmidi_section(impsy["serialmidi"])
    s = settings(section)
    assert s.input[0].transport == "din" and s.input[0].device == "/dev/ttyAMA0"
    assert s.output[0].map[0].type == "note"


def test_an_imported_impsy_config_runs_in_the_box(tmp_path):
    """IMPSY's default config (X-Touch Mini in, Volca FM out via a Studio 1824c, D = 9), imported
    and run: a knob turned on the X-Touch reaches the model, and the model plays notes and CCs
    out. Only the transport differs (virtual devices named like the real ones: no /dev/snd here)."""
    import time
    import uuid

    from imps.box.app import Box
    from imps.box.config import PACKAGE_DIR, load_config
    from imps.io.midi import virtual

    impsy = load("default-1.2.1.toml")
    section, _ = midi_section(impsy["midi"], impsy["interaction"]["input_thru"])
    tag = uuid.uuid4().hex[:6]
    for d in section["input"] + section["output"]:
        d["transport"] = "virtual"
    xtouch = virtual.SYSTEM.plug(f"X-TOUCH MINI:X-TOUCH MINI MIDI 1 {tag}")
    studio = virtual.SYSTEM.plug(f"Studio 1824c:Studio 1824c MIDI 1 {tag}")
    section["input"][0]["device"] = f"X-TOUCH*{tag}"
    section["output"][0]["device"] = f"Studio 1824c*{tag}"
    section["scan_interval"] = 0.1
    config = load_config(None, {
        "model": {"path": str(PACKAGE_DIR / "models" / "bench" / "u64-d9.tflite"), "seed": 0},
        "engine": {"dimension": impsy["model"]["dimension"], "mode": "call_response", "response_threshold": 0.3},
        "osc": {"enabled": False}, "log": {"enabled": False}, "status": {"terminal": False}, "midi": section})
    box = Box(config).start()
    try:
        deadline = time.monotonic() + 10
        while box.midi_in.status()["devices"] == [] and time.monotonic() < deadline:
            time.sleep(0.01)
        for v in (0, 40, 80, 127):
            xtouch.send(mido.Message("control_change", channel=10, control=3, value=v))
        assert studio.wait_for(lambda ms: sum(m.type == "note_on" for m in ms) >= 6, timeout=15)
        assert box.engine.status()["performer_events"] == 4
        played = studio.messages()
        assert {m.control for m in played if m.type == "control_change"} <= set(range(42, 49)) | {123}
        assert all(m.channel == 0 for m in played)
    finally:
        box.stop()
        virtual.SYSTEM.unplug(xtouch.name)
        virtual.SYSTEM.unplug(studio.name)
    from support import stuck_notes
    assert stuck_notes(studio.messages()) == set()


def test_imps_config_import_writes_midi_tables_that_load(tmp_path, capsys):
    """`imps config import` (imps.box.impsy_config) carries [midi] over as [[midi.input]]/[[midi.output]] tables."""
    from imps.cli import main
    from imps.box.config import load_config
    assert main(["config", "import", str(FIXTURES / "roland-s-1-xtouch.toml")]) == 0
    out, err = capsys.readouterr()
    assert "[[midi.input]]" in out and "[[midi.output]]" in out
    assert "not honoured: [midi] feedback_protection" in err
    (tmp_path / "box.toml").write_text(out)
    section = load_config(tmp_path / "box.toml").midi
    m = section
    assert section.enabled and [d.device for d in m.input] == ["S-1", "X-TOUCH"]
    assert [r.number for r in m.output[1].map] == list(range(9, 17))
    assert m.input[0].map[0].type == "note" and m.input[0].map[0].channel == 3
