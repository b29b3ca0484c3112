"""Standard MIDI files: rows as the engine would log them, suggested mappings, real-time playback."""
import time

import mido
import numpy as np
import pytest

from imps.errors import DatasetError
from imps.io.midi import virtual
from imps.io.midi.midifile import MidiFilePlayer, performance_rows, suggest_rules
from imps.io.midi.settings import Rule


def write_song(path, tempo=500000):
    """Two tracks at 120 bpm (480 ticks per beat): notes on one, a filter CC sweep and a bend on the other."""
    mid = mido.MidiFile(ticks_per_beat=480)
    notes, knobs = mido.MidiTrack(), mido.MidiTrack()
    notes.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
    for i, n in enumerate((60, 64, 67)):
        notes.append(mido.Message("note_on", note=n, velocity=100, time=0 if i == 0 else 240))
        notes.append(mido.Message("note_off", note=n, velocity=0, time=240))
    for i in range(4):
        knobs.append(mido.Message("control_change", control=74, value=i * 40, time=0 if i == 0 else 480))
    knobs.append(mido.Message("control_change", control=1, value=5, time=0))
    knobs.append(mido.Message("pitchwheel", pitch=8191, time=0))
    mid.tracks += [notes, knobs]
    mid.save(path)
    return path


def test_rows_follow_the_mapping_and_the_tempo(tmp_path):
    song = write_song(tmp_path / "song.mid")
    rules = [Rule("note", 0), Rule("velocity", 1), Rule("control_change", 2, 0, 74)]
    rows = performance_rows(song, rules, 3)
    # one row per gesture: note 60 and CC74=0 at 0 s, note 64 and CC74=40 at 0.5 s, 67 and 80 at 1 s, 120 at 1.5 s
    assert rows.dtype == np.float32 and rows.shape == (7, 4)
    t = np.cumsum(rows[:, 0])
    assert np.allclose(t, [0, 0, 0.5, 0.5, 1.0, 1.0, 1.5], atol=1e-6)
    assert np.allclose(rows[-1, 1:], [67 / 127, 100 / 127, 120 / 127])
    assert np.round(rows[:, 3] * 127).astype(int).tolist() == [0, 0, 0, 40, 40, 80, 120]


def test_suggested_mapping_notes_first_then_the_busiest_controllers(tmp_path):
    song = write_song(tmp_path / "song.mid")
    assert suggest_rules(song, 3) == [Rule("note", 0), Rule("velocity", 1), Rule("control_change", 2, 1, 74)]
    assert suggest_rules(song, 6)[3:] == [Rule("control_change", 3, 1, 1), Rule("pitch_bend", 4)]


def test_bad_files_say_so(tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd garbage")
    with pytest.raises(DatasetError, match="not a standard MIDI file"):
        performance_rows(bad, [Rule("note", 0)], 1)
    with pytest.raises(DatasetError, match="does not exist"):
        suggest_rules(tmp_path / "missing.mid", 2)
    with pytest.raises(DatasetError, match="no message matches"):
        performance_rows(write_song(tmp_path / "s.mid"), [Rule("gate", 0, 1, 1)], 1)


def test_player_plays_in_real_time_through_a_virtual_device(tmp_path):
    song = write_song(tmp_path / "song.mid", tempo=100000)   # 5x faster: 0.3 s of music
    system = virtual.VirtualMidi()
    player = MidiFilePlayer(song, "file", loop=False, system=system, lead_in=0.3)
    got = []
    player.start()
    port = system.open_input("file", callback=lambda m: got.append((time.monotonic(), m)))
    try:
        assert player.finished.wait(10)
    finally:
        player.stop()
    assert system.names() == []                      # unplugged when stopped
    kinds = [m.type for _, m in got]
    assert kinds.count("note_on") == 3 and kinds.count("control_change") >= 4
    span = got[-1][0] - got[0][0]
    assert 0.15 < span < 5.0                         # it waited between events, it did not dump them
    port.close()


def long_song(path, notes=150):
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    for i in range(notes):
        track.append(mido.Message("note_on", note=40 + (i * 7) % 48, velocity=30 + i % 90, time=120))
        track.append(mido.Message("control_change", control=1, value=i % 128, time=0))
        track.append(mido.Message("note_off", note=40 + (i * 7) % 48, time=100))
    mid.save(path)
    return path


def test_training_imports_midi_files_as_a_dataset(tmp_path, capsys):
    from imps.box.config import PACKAGE_DIR
    from imps.model.dataset import load_dataset
    from imps_train.cli import main
    a, b = long_song(tmp_path / "a.mid"), long_song(tmp_path / "b.mid", 60)
    assert main(["dataset", str(a), str(b), "-o", str(tmp_path / "suggested.npz"), "--dimension", "4"]) == 0
    out = capsys.readouterr().out
    assert "note -> control 0" in out and "control_change 1 ch 1 -> control 2" in out
    data = load_dataset(tmp_path / "suggested.npz")
    assert len(data) == 2 and data.dimension == 4 and len(data.rows) == 2 * (150 + 60)
    assert data.info["source"] == "midi-files"
    assert np.allclose(data.performance(0)[0:6:2, 1], [(40 + 7 * i) / 127 for i in (0, 1, 2)])   # a row per note and CC
    # mapped the way a box config maps its keyboard: the same controls the box will feed the model
    assert main(["dataset", str(a), "-o", str(tmp_path / "mapped.npz"),
                 "--midi-map", str(PACKAGE_DIR / "box.midi-keyboard.example.toml")]) == 0
    mapped = load_dataset(tmp_path / "mapped.npz")
    assert mapped.dimension == 4 and np.allclose(mapped.performance(0)[2:4, 1:], [[47 / 127, 31 / 127, 0.0], [47 / 127, 31 / 127, 1 / 127]])


def test_imps_run_plays_a_midi_file_as_the_performer(tmp_path, device_python):
    """`make run MIDI=song.mid`: the file through a virtual MIDI device into the box, the model out to
    the virtual synth, whose last notes show in the final status line."""
    import subprocess
    song = long_song(tmp_path / "song.mid", 40)
    (tmp_path / "box.toml").write_text("[osc]\ninterface_port = 0\ncontrol_port = 0\n")   # any free ports
    r = subprocess.run([device_python, "-m", "imps", "run", "--config", str(tmp_path / "box.toml"),
                        "--midi-file", str(song), "--mode", "layered",
                        "--duration", "4", "-q", "--no-log", "--seed", "1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    final = r.stderr.strip().splitlines()[-1]
    assert "MIDI in 1 dev" in final and "MIDI out 1 dev" in final, final
    assert " n" in final.split("MIDI out")[1], final          # notes were played to the virtual synth
    assert "MIDI input connected: IMPS MIDI file player" in r.stderr
