"""The Pure Data sound engine patch receives and handles the box's OSC sound messages.

Runs the real patch in a real `pd -nogui -nosound` (not -batch: a batch Pd does
not poll the network) on a free UDP port, sends /performer, /model and
/silence with python-osc, and reads what the patch's [print] objects report
on stderr: the note (MIDI, pentatonic), brightness and loudness each voice
computed from the controls.
"""
from __future__ import annotations

import queue
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from pythonosc.udp_client import SimpleUDPClient

from support import stop_process, wait_for

PATCH = Path(__file__).resolve().parents[1] / "deploy" / "sound" / "imps.pd"
PD = shutil.which("pd") or "/usr/bin/pd"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PdProcess:
    def __init__(self, port: int):
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.proc = subprocess.Popen(
            [PD, "-nogui", "-nosound", "-nomidi", "-noprefs", "-stderr",
             "-open", str(PATCH), "-send", f"imps-port {port}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, cwd=PATCH.parent)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.put(line.rstrip("\n"))

    def expect(self, prefix: str, timeout: float = 10.0) -> str:
        """The next stderr line starting with ``prefix``; fails naming what Pd said instead."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(left, 0.001))
            except queue.Empty:
                raise AssertionError(f"Pd never printed {prefix!r} within {timeout} s; it printed: "
                                     f"{self.seen[-15:]} (exit code {self.proc.poll()})") from None
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def stop(self):
        stop_process(self.proc)


@pytest.fixture
def pd():
    port = free_udp_port()
    proc = PdProcess(port)
    try:
        proc.expect(f"imps: listening on UDP port {port}")
        proc.client = SimpleUDPClient("127.0.0.1", port)
        yield proc
    finally:
        proc.stop()


def values(line: str) -> list[float]:
    return [float(v) for v in line.split(":", 1)[1].split()]


def test_performer_voice_plays_pentatonic_notes_from_c4(pd):
    pd.client.send_message("/performer", [0.0, 0.5, 0.5])
    assert values(pd.expect("performer:")) == [60, 0.5, 0.5]
    pd.client.send_message("/performer", [1.0, 0.2, 0.9])
    assert values(pd.expect("performer:")) == [60 + 24 + 9, 0.2, 0.9]     # top of 3 octaves
    pd.client.send_message("/performer", [0.5, 0.1, 0.3, 0.9, 0.9])     # extra controls ignored
    assert values(pd.expect("performer:")) == [60 + 12 + 4, 0.1, 0.3]


def test_model_voice_is_an_octave_above(pd):
    pd.client.send_message("/model", [0.0, 0.8, 0.4])
    assert values(pd.expect("model:")) == [72, 0.8, 0.4]
    pd.client.send_message("/model", [0.3, 0.8, 0.4, 0.1])
    assert values(pd.expect("model:")) == [72 + 9, 0.8, 0.4]


def test_missing_and_out_of_range_controls_are_tolerated(pd):
    pd.client.send_message("/model", [0.7])                   # one knob: defaults for the rest
    assert values(pd.expect("model:")) == [72 + 24, 0.7, 0.7]     # 0.7 -> step 10 of 15
    pd.client.send_message("/performer", [1.5, -1.0, 2.0])    # clipped into [0, 1]
    assert values(pd.expect("performer:")) == [93, 0.0, 1.0]


def test_silence_and_unknown_addresses(pd):
    pd.client.send_message("/silence", [])
    assert pd.expect("silence:") == "silence: bang"
    pd.client.send_message("/volume", [0.5])
    assert pd.expect("unknown-osc:") == "unknown-osc: volume 0.5"
    pd.client.send_message("/performer", [0.2, 0.5, 0.5])   # still playing afterwards
    assert values(pd.expect("performer:"))[0] == 60 + 4


def test_patch_loads_without_errors(pd):
    pd.client.send_message("/silence", [])
    pd.expect("silence:")
    problems = [line for line in pd.seen
                if any(word in line.lower() for word in ("error", "couldn't create", "bad arguments"))]
    assert problems == []


def test_record_starts_once_and_finishes_the_file(pd, tmp_path):
    take, other = tmp_path / "take.wav", tmp_path / "other.wav"
    pd.client.send_message("/record", str(take))
    assert pd.expect("record:") == f"record: started {take}"
    pd.client.send_message("/record", str(other))          # ignored while recording
    pd.client.send_message("/performer", [0.5, 0.5, 0.5])
    pd.expect("performer:")
    # Stop only once sound has reached the file: start and stop can otherwise arrive
    # between two of Pd's DSP ticks, and an empty take (CI saw one) proves nothing.
    wrote = lambda: take.exists() and take.stat().st_size > 44  # noqa: E731
    wait_for(lambda: wrote() or pd.proc.poll() is not None, 10.0)
    assert wrote(), f"Pd wrote no sound to {take} within 10 s (exit {pd.proc.poll()}); it printed: {pd.seen[-15:]}"
    pd.client.send_message("/record", [])
    assert pd.expect("record:") == "record: stopped"
    assert not other.exists()
    import wave
    with wave.open(str(take)) as w:                        # finished: the header counts the frames
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2) and w.getnframes() > 0
        assert w.getnframes() * 2 + 44 == take.stat().st_size
