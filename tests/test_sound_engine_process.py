"""`imps run` starts its own sound engine (Pure Data) and stops it with the box (sim/sound_engine.py).

Real `imps run --simulate` processes and a real Pd: the status line shows it, the box's
exit takes it along, and so does a kill -9 of the box (PR_SET_PDEATHSIG); without Pd,
with --no-sound-engine, or with another sound engine on the port the box plays on
without one. Also here: a start that fails (a taken port) leaves no file under logs/.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import wave
from pathlib import Path

import pytest

from support import ROOT, wait_for
from test_sound_engine import free_udp_port


def config(tmp_path: Path, sound_port: int, interface_port: int = 0) -> Path:
    path = tmp_path / "box.toml"
    path.write_text(f"[osc]\ninterface_port = {interface_port}\ncontrol_port = 0\nsound_port = {sound_port}\n"
                    f"[model]\nseed = 1\n")
    return path


def run_box(tmp_path, device_python, *args, sound_port=None, env=None):
    err = open(tmp_path / "stderr.txt", "w")
    proc = subprocess.Popen(
        [device_python, "-m", "imps", "run", "--simulate", "-q", "--sound-output", "none",
         "--config", str(config(tmp_path, sound_port or free_udp_port())), "--log-dir", str(tmp_path / "logs"),
         *args], cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env)
    err.close()
    return proc


def stderr(tmp_path) -> str:
    return (tmp_path / "stderr.txt").read_text()


def pd_pid(tmp_path, proc) -> int:
    def started():
        if proc.poll() is not None:
            raise AssertionError(f"imps run exited {proc.returncode}: {stderr(tmp_path)[-3000:]}")
        return re.search(r"sound engine: Pd (\d+) playing", stderr(tmp_path))
    assert wait_for(started, 60), stderr(tmp_path)[-3000:]
    return int(started().group(1))


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_the_sound_engine_starts_and_stops_with_the_box(tmp_path, device_python):
    proc = run_box(tmp_path, device_python, "--duration", "4")
    try:
        pid = pd_pid(tmp_path, proc)
        assert running(pid)
        assert os.getpgid(pid) == pid                # its own process group: a Ctrl-C reaches the box only
        assert proc.wait(60) == 0, stderr(tmp_path)[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert wait_for(lambda: not running(pid), 10), f"Pd {pid} left behind"
    assert "| sound Pd" in stderr(tmp_path).splitlines()[-1]     # the status line showed it


def test_a_killed_box_leaves_no_pd_behind(tmp_path, device_python):
    proc = run_box(tmp_path, device_python, "--duration", "60")
    try:
        pid = pd_pid(tmp_path, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert wait_for(lambda: not running(pid), 10), f"Pd {pid} outlived the killed box"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])   # systemctl stop; Ctrl-C
def test_a_stop_signal_finishes_the_recording(tmp_path, device_python, sig):
    wav = tmp_path / "take.wav"
    proc = run_box(tmp_path, device_python, "--duration", "60", "--record", str(wav))
    try:
        pid = pd_pid(tmp_path, proc)
        assert wait_for(lambda: wav.exists() and wav.stat().st_size > 48000 * 2, 30), stderr(tmp_path)[-3000:]
        proc.send_signal(sig)
        assert proc.wait(60) == 0, stderr(tmp_path)[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not running(pid)
    with wave.open(str(wav)) as w:                   # the header counts every frame: Pd finished it
        assert w.getnframes() * 2 + 44 == wav.stat().st_size and w.getnframes() >= 48000
    assert "header was repaired" not in stderr(tmp_path)


def test_a_sound_engine_that_dies_is_shown_and_its_recording_still_opens(tmp_path, device_python):
    wav = tmp_path / "take.wav"
    proc = run_box(tmp_path, device_python, "--duration", "60", "--record", str(wav))
    try:
        pid = pd_pid(tmp_path, proc)
        assert wait_for(lambda: wav.exists() and wav.stat().st_size > 48000 * 2, 30), stderr(tmp_path)[-3000:]
        os.kill(pid, signal.SIGKILL)                 # Pd cannot finish the file's header
        assert wait_for(lambda: "sound engine: Pd exited (code -9)" in stderr(tmp_path), 10), stderr(tmp_path)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, stderr(tmp_path)[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = stderr(tmp_path)
    final = [line for line in out.splitlines() if line.startswith("mode ")][-1]   # the last status line
    assert "SOUND ENGINE EXITED (-9)" in final
    assert "the sound engine did not finish it; its header was repaired" in out
    with wave.open(str(wav)) as w:
        assert w.getnframes() * 2 + 44 == wav.stat().st_size and w.getnframes() >= 48000


def test_without_pd_the_box_says_how_to_install_it_and_plays_on(tmp_path, device_python):
    empty = tmp_path / "bin"
    empty.mkdir()
    proc = run_box(tmp_path, device_python, "--duration", "2", env=dict(os.environ, PATH=str(empty)))
    assert proc.wait(60) == 0, stderr(tmp_path)[-3000:]
    out = stderr(tmp_path)
    assert "Pure Data is not installed (sudo apt-get install puredata-core); playing on silently" in out
    assert "mode call_response" in out.splitlines()[-1]


def test_no_sound_engine_flag_and_a_port_already_served(tmp_path, device_python):
    proc = run_box(tmp_path, device_python, "--duration", "1", "--no-sound-engine")
    assert proc.wait(60) == 0, stderr(tmp_path)[-3000:]
    assert "Pd " not in stderr(tmp_path) and "NO SOUND ENGINE" in stderr(tmp_path).splitlines()[-1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:   # another sound engine
        other.bind(("127.0.0.1", 0))
        proc = run_box(tmp_path, device_python, "--duration", "1", sound_port=other.getsockname()[1])
        assert proc.wait(60) == 0, stderr(tmp_path)[-3000:]
    assert "a sound engine already listens on 127.0.0.1:" in stderr(tmp_path)
    assert "Pd " not in stderr(tmp_path)


def test_a_start_that_fails_leaves_no_log_file(tmp_path, device_python):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        err = open(tmp_path / "stderr.txt", "w")
        proc = subprocess.run(
            [device_python, "-m", "imps", "run", "-q", "--no-sound-engine", "--log-dir", str(tmp_path / "logs"),
             "--config", str(config(tmp_path, free_udp_port(), interface_port=taken.getsockname()[1]))],
            cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, timeout=60)
        err.close()
    assert proc.returncode == 2, stderr(tmp_path)[-3000:]
    assert "in use" in stderr(tmp_path).lower() or "address already" in stderr(tmp_path).lower()
    assert list((tmp_path / "logs").glob("*")) == []


def test_make_run_starts_the_sound_engine_records_with_wav_and_sound_off_turns_it_off():
    def command(*variables):
        r = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(ROOT), "run", *variables],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return " ".join(r.stdout.replace("\\\n", " ").split())   # the recipe's lines joined
    plain = command().split()
    assert plain[plain.index("run") - 1].endswith("imps") and {"--simulate", "--sound-engine"} <= set(plain)
    assert "--sound-engine --record take.wav" in command("WAV=take.wav")
    assert "--no-sound-engine" in command("SOUND=off").split()


def test_a_recording_into_a_missing_folder_is_one_line_and_opens_nothing(tmp_path, device_python):
    r = subprocess.run(
        [device_python, "-m", "imps", "run", "--simulate", "-q", "--sound-output", "none", "--duration", "5",
         "--record", str(tmp_path / "no" / "such" / "x.wav"), "--log-dir", str(tmp_path / "logs"),
         "--config", str(config(tmp_path, free_udp_port()))],
        cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr[-3000:]
    assert r.stderr.splitlines()[-1] == (f"imps: error: [recording] path = '{tmp_path}/no/such/x.wav': "
                                         f"the folder {tmp_path}/no/such does not exist")
    assert not (tmp_path / "logs").exists()
    pid = int(re.search(r"Pd (\d+) playing", r.stderr).group(1))
    assert not running(pid)
