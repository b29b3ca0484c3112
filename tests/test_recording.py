"""A recording of a run: `imps run --record x.wav` and what is in the WAV.

The acceptance test runs the real simulated box (`imps run --simulate`) with its
own real sound engine (Pure Data rendering deploy/sound/imps.pd, no audio device)
and reads the WAV back: every note the interaction log says started out of
silence starts in the WAV within 50 ms of the logged time, nothing sounds that
the log does not explain, both voices are heard, and /silence silences.
The rest covers io/recording.py on its own: the status text, the file's length
while it grows, a file that stops growing (a full disk) and the header repair.
"""
from __future__ import annotations

import datetime as _dt
import os
import re
import struct
import subprocess
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from pythonosc.udp_client import SimpleUDPClient

from imps.box.config import load_config
from imps.errors import ConfigError
from imps.io.interaction_log import read_log
from imps.io.recording import Recording, repair_wav_header, wav_seconds

from support import wait_for
from test_sound_engine import free_udp_port

FRAME = 0.005                 # seconds per envelope frame
QUIET = 1e-4                  # rms below this is silence (Pd renders exact zeros between notes)
LOUD = 1e-3                   # rms above this is a note
#: A voice has decayed to nothing this long after its last note (performer 605 ms, model 352 ms).
DECAY = 0.7
MATCH = 0.05                  # the acceptance: onsets within 50 ms of the logged events


def box_toml(tmp_path: Path, sound_port: int) -> Path:
    config = tmp_path / "box.toml"
    config.write_text(f"""
[osc]
interface_port = 0
control_port = 0
sound_port = {sound_port}
[model]
seed = 1
[engine]
response_threshold = 1.0
[performer]
phrase_seconds = 3.0
rest_seconds = 3.0
""")
    return config


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768
        return data, w.getframerate()


def envelope(samples: np.ndarray, rate: int) -> np.ndarray:
    n = int(rate * FRAME)
    frames = samples[: len(samples) // n * n].reshape(-1, n)
    return np.sqrt((frames ** 2).mean(axis=1))


def onsets(env: np.ndarray) -> list[float]:
    """Times (s) where sound rises out of silence: the first frame that is not quiet after
    100 ms of quiet ones, when a loud one follows within 20 ms."""
    quiet_before, rise = int(0.1 / FRAME), int(0.02 / FRAME)
    padded = np.concatenate([np.zeros(quiet_before), env])
    return [i * FRAME for i in range(len(env))
            if env[i] >= QUIET and padded[i: i + quiet_before].max() < QUIET and env[i: i + rise].max() > LOUD]


#: The least loudness (the third control) that is a note above LOUD, per voice (the model's is filtered).
AUDIBLE = {"interface": 0.02, "rnn": 0.1}


def note_starts(times: np.ndarray, sources: list[str], loudness: np.ndarray, silenced_at: float) -> list:
    """(time, source) of the logged events that start a note out of silence: the previous
    event is DECAY or more before, or it is the first after /silence."""
    starts = []
    for i, t in enumerate(times):
        after_silence = i == 0 or t - times[i - 1] >= DECAY or times[i - 1] < silenced_at <= t
        if after_silence and loudness[i] >= AUDIBLE[sources[i]]:
            starts.append((t, sources[i]))
    return starts


def test_imps_run_record_holds_the_notes_the_box_played(tmp_path, device_python):
    wav, logs = tmp_path / "x.wav", tmp_path / "logs"
    err_path = tmp_path / "stderr.txt"
    with open(err_path, "w") as err:
        proc = subprocess.Popen(
            [device_python, "-m", "imps", "run", "--simulate", "--record", str(wav), "--duration", "10",
             "--config", str(box_toml(tmp_path, free_udp_port())), "--log-dir", str(logs), "-q",
             "--sound-output", "none"],           # no audio device needed (and none disturbed)
            cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)

    def stderr() -> str:
        return err_path.read_text()

    def died() -> bool:
        if proc.poll() is not None and proc.returncode != 0:
            raise AssertionError(f"imps run exited {proc.returncode}: {stderr()[-3000:]}")
        return False

    try:
        # The control port, then the first model notes: pause the model right after one (/silence).
        assert wait_for(lambda: died() or re.search(r"control :(\d+)", stderr()), 60), stderr()[-3000:]
        control = SimpleUDPClient("127.0.0.1", int(re.search(r"control :(\d+)", stderr()).group(1)))
        log_file = Path(re.search(r"; log (\S+?\.log)", stderr()).group(1))

        def model_lines() -> int:
            return log_file.read_text().count(",rnn,") if log_file.exists() else 0
        assert wait_for(lambda: died() or model_lines() >= 3, 30), stderr()[-3000:]
        seen = model_lines()
        assert wait_for(lambda: died() or model_lines() > seen, 10, step=0.002), "the model stopped early"
        paused_at = time.time()
        control.send_message("/pause", [1.0])
        assert proc.wait(60) == 0, stderr()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = stderr()
    start = _dt.datetime.fromisoformat(re.search(r"recording to \S+ from (\S+)", out).group(1)).timestamp()
    assert "REC x.wav 0:" in out.splitlines()[-1], out[-500:]      # the final status line

    samples, rate = read_wav(wav)
    assert 9.0 <= len(samples) / rate <= 11.0
    env = envelope(samples, rate)
    records = read_log(log_file)
    times = records.times - start
    heard = onsets(env)
    paused = paused_at - start
    expected = note_starts(times, records.sources, records.controls[:, 2], paused)
    print(f"onsets in the WAV (s): {[round(t, 3) for t in heard]}")
    print(f"note starts in the log (s): {[(round(t, 3), s) for t, s in expected]}")
    # Every note the log starts out of silence is in the WAV, within 50 ms.
    for t, source in expected:
        nearest = min(heard, key=lambda h: abs(h - t), default=None)
        assert nearest is not None and abs(nearest - t) <= MATCH, \
            f"{source} note at {t:.3f} s: nearest onset {nearest} (onsets {heard})"
    worst = max(min(abs(h - t) for h in heard) for t, _ in expected)
    print(f"figure: the farthest onset from its logged event: {worst * 1e3:.1f} ms ({len(expected)} notes)")
    # Nothing starts in the WAV that the log does not explain.
    for h in heard:
        assert np.min(np.abs(times - h)) <= MATCH, f"an onset at {h:.3f} s with no logged event near it"
    # Both voices are heard: loud in the 100 ms after a note of each.
    for source in ("interface", "rnn"):
        starts = [t for t, s in expected if s == source]
        assert starts, f"no {source} note started out of silence in {expected}"
        assert max(env[int(t / FRAME): int((t + 0.1) / FRAME)].max() for t in starts) > LOUD
    # /silence (the /pause sent just after a model note): quiet at once, until the next logged event.
    after = times[times > paused]
    until = after[0] if len(after) else len(samples) / rate
    assert until - paused > 0.3, f"the performer came back {until - paused:.3f} s after the pause"
    assert env[int((paused - 0.3) / FRAME): int(paused / FRAME)].max() > LOUD, "nothing sounded before /pause"
    tail = env[int((paused + 0.05) / FRAME): int((until - 0.01) / FRAME)]
    print(f"after /silence: rms at most {tail.max():.6f} for {until - paused:.2f} s")
    assert tail.max() < QUIET


# ---------------------------------------------------------------- the Recording on its own
class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class SentTo:
    """The seam: what the Recording asked of the sound engine."""
    def __init__(self):
        self.sent = []

    def send_strings(self, address, values=()):
        self.sent.append((address, list(values)))


def wav_header(rate=48000, data_bytes=0) -> bytes:
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate,
            rate * 2, 2, 16) + b"data" + struct.pack("<I", data_bytes))


def test_recording_asks_until_the_file_exists_then_reports_its_length(tmp_path):
    clock, sound = FakeClock(), SentTo()
    path = tmp_path / "take.wav"
    rec = Recording(sound, path, clock=clock).start()
    assert sound.sent == [("/record", [str(path)])]
    assert rec.summary() == "REC take.wav (waiting for the sound engine)"
    clock.now += 1.5
    rec.poll()                                     # no file yet: asked again
    assert len(sound.sent) == 2
    path.write_bytes(wav_header() + b"\0" * 2 * 48000 * 62)   # 62 s of sound, header not yet updated
    rec.poll()
    clock.now += 5
    rec.poll()
    assert len(sound.sent) == 2                    # the file exists: never asked again
    assert wav_seconds(path) == 62.0
    with open(path, "ab") as f:                    # still growing
        f.write(b"\0" * 2 * 48000)
    rec.poll()
    assert rec.summary() == "REC take.wav 1:03"
    rec.stop()
    assert sound.sent[-1] == ("/record", [])


def test_a_recording_that_stops_growing_says_so(tmp_path):
    clock, sound = FakeClock(), SentTo()
    path = tmp_path / "take.wav"
    rec = Recording(sound, path, clock=clock).start()
    path.write_bytes(wav_header() + b"\0" * 96000)
    rec.poll()
    clock.now += 3                                 # no growth for longer than STALL_SECONDS
    rec.poll()
    assert rec.summary() == "REC STOPPED take.wav at 0:01 (the sound engine stopped writing)"


def test_repair_gives_a_killed_recording_its_length(tmp_path):
    path = tmp_path / "cut.wav"
    path.write_bytes(wav_header() + b"\1\0" * 4800 + b"\1")   # 0.1 s and a torn sample
    assert repair_wav_header(path)
    with wave.open(str(path)) as w:
        assert w.getnframes() == 4800
    assert not repair_wav_header(path)             # already right: untouched


@pytest.mark.parametrize("path, error", [
    ("take.mp3", "ending in .wav"), (".wav", "ending in .wav"), ("-r.wav", "no leading '-'"),
    ("a\nb.wav", "no control characters"), ("x" * 1100 + ".wav", "at most 1024")])
def test_recording_path_is_checked(path, error):
    with pytest.raises(ConfigError, match=re.escape(error)):
        load_config(None, {"recording": {"path": path}})


def test_recording_needs_the_sound_engine():
    with pytest.raises(ConfigError, match=r"\[recording\] path = 'x.wav' needs the sound engine"):
        load_config(None, {"recording": {"path": "x.wav"}, "osc": {"enabled": False}})


# ---------------------------------------------------------------- Pd's side of a full disk
@pytest.fixture
def tiny_filesystem(tmp_path):
    """A real 64 KiB tmpfs (mounting needs root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root; test_a_recording_that_stops_growing_says_so covers the "
                    "status text without it")
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_the_recording_not_the_music(tiny_filesystem, tmp_path):
    from imps.io.osc import SoundOut
    from imps.sim.sound_engine import start_sound_engine
    port = free_udp_port()
    engine = start_sound_engine("127.0.0.1", port, audio=False)
    assert engine is not None
    sound = SoundOut("127.0.0.1", port)
    try:
        rec = Recording(sound, tiny_filesystem / "take.wav").start()
        assert wait_for(lambda: (rec.poll(), rec.stalled())[1], 20), rec.summary()
        assert rec.summary().startswith("REC STOPPED take.wav at 0:00 (disk full)")
        engine.lines.clear()
        sound.send("/performer", [0.5, 0.5, 0.5])            # Pd still plays
        assert wait_for(lambda: any(line.startswith("performer:") for line in list(engine.lines)), 10), \
            list(engine.lines)
        assert engine.alive()
        rec.stop()                                  # Pd cannot finish the header on a full disk: repaired
    finally:
        sound.close()
        engine.stop()
    take = tiny_filesystem / "take.wav"
    with wave.open(str(take)) as w:                 # the take up to the full disk, its header finished
        print(f"kept {w.getnframes() / w.getframerate():.2f} s of {take.stat().st_size} bytes")
        assert w.getnframes() > 0 and w.getnframes() * 2 + 44 <= take.stat().st_size
