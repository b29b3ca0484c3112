"""The box's own sound engine for `imps run` on a workstation: Pure Data playing deploy/sound/imps.pd.

On the Pi the sound engine is its own service (deploy/systemd/imps-sound.service);
here `imps run` starts it beside the box and stops it with the box. Pd plays on
the machine's default audio output (ALSA "default", which reaches PulseAudio or
PipeWire on a desktop); without an audio device it still renders, on the system
clock, so a recording works on a headless machine too.

Nothing is left behind: Pd runs in its own process group (a Ctrl-C at the
terminal reaches the box, which finishes the recording first, not Pd), and the
kernel sends it SIGTERM if the box dies, even by SIGKILL (PR_SET_PDEATHSIG).

Missing Pd, a port another sound engine already listens on, or a Pd that does not
come up never stop the box: one line says why, and the box plays on as before.
"""
from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import deque
from pathlib import Path

from ..box.config import PACKAGE_DIR
from ..io.recording import repair_wav_header

log = logging.getLogger("imps")

#: The patch, in a checkout and in a release on the box (device/imps -> the repository's deploy/).
PATCH = PACKAGE_DIR.parents[1] / "deploy" / "sound" / "imps.pd"
INSTALL = "sudo apt-get install puredata-core"
#: The same audio flags as imps-sound.service: ALSA's default device, output only.
AUDIO = ["-alsa", "-alsaadd", "default", "-audioaddoutdev", "default", "-noadc", "-outchannels", "2",
         "-blocksize", "64", "-audiobuf", "50"]
RATE = 48000
#: Pd loads its patch in well under a second; a busy machine gets far longer than that.
START_TIMEOUT = 15.0
#: A recording being finished: how long to wait for Pd to say so before it is stopped anyway.
FINISH_TIMEOUT = 3.0
#: What Pd says when it has no audio device (it then runs on the system clock, silently).
NO_DEVICE = ("ALSA output error", "audio I/O stuck", "audio I/O error")

_PR_SET_PDEATHSIG = 1


def port_taken(host: str, port: int) -> bool:
    """Whether something already listens on the sound port (another sound engine: play to it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _die_with_parent(parent: int):
    """A preexec function: SIGTERM to the child when this process dies (set before exec)."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl   # looked up before the fork

    def preexec():
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:        # the box died between fork and prctl
            os._exit(1)
    return preexec


class SoundEngine:
    """One Pd process playing the patch on ``port``; ``summary()`` for the status line, ``stop()``."""

    def __init__(self, port: int, pd: str, audio: bool = True, patch: Path = PATCH):
        self.port = port
        self.lines: deque[str] = deque(maxlen=30)      # Pd's last words, for the error message
        self.no_device = False
        self._listening = threading.Event()
        self._recording = False
        self._finished = threading.Event()
        self._stopping = False
        flags = AUDIO if audio else ["-nosound"]
        self.proc = subprocess.Popen(
            [pd, "-nogui", "-noprefs", "-nomidi", "-nrt", "-stderr", *flags, "-r", str(RATE),
             "-open", str(patch), "-send", f"imps-port {port}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, errors="replace", start_new_session=True, preexec_fn=_die_with_parent(os.getpid()))
        self._reader = threading.Thread(target=self._read, name="imps-sound-engine", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        """Pd's stderr: readiness, the recording's start and end, errors to the journal."""
        for line in self.proc.stderr:
            line = line.rstrip("\n")
            self.lines.append(line)
            if line == f"imps: listening on UDP port {self.port}":
                self._listening.set()
            elif line.startswith("record: started"):
                self._recording, self._finished = True, threading.Event()
            elif line == "record: stopped":
                self._recording = False
                self._finished.set()
            elif any(text in line for text in NO_DEVICE):
                if not self.no_device:
                    log.warning("sound engine: no audio device (%s); it renders silently (recordings work)", line)
                self.no_device = True
            elif line.startswith("error:"):
                log.warning("sound engine: %s", line)
        code = self.proc.wait()          # stderr closed: Pd has gone
        if self._listening.is_set() and not self._stopping:   # (a failed start says so itself)
            log.error("sound engine: Pd exited (code %s): %s; playing on silently", code,
                      " / ".join(list(self.lines)[-3:]) or "nothing on stderr")

    def wait_listening(self, timeout: float = START_TIMEOUT) -> bool:
        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                return False
        return True

    def alive(self) -> bool:
        return self.proc.poll() is None

    def summary(self) -> str:
        if not self.alive():
            return f"SOUND ENGINE EXITED ({self.proc.returncode})"
        return "sound Pd" + (" (no audio device)" if self.no_device else "")

    def stop(self, recording_path: Path | None = None) -> None:
        """Let Pd finish the recording (the box asked it to), then stop it; repair the file's header
        if Pd could not finish it."""
        deadline = time.monotonic() + FINISH_TIMEOUT
        while self._recording and self.alive() and time.monotonic() < deadline:
            self._finished.wait(0.05)
        self._stopping = True
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(2)
        if recording_path is not None:
            if repair_wav_header(recording_path):
                log.warning("recording %s: the sound engine did not finish it; its header was repaired",
                            recording_path)


def start_sound_engine(host: str, port: int, audio: bool = True) -> SoundEngine | None:
    """Pd on ``port`` if it is installed and the port is free; None (and one line why) otherwise."""
    if not host.startswith("127."):
        log.info("the sound engine is at %s:%d, not on this machine: none started here", host, port)
        return None
    pd = shutil.which("pd")
    if pd is None:
        log.warning("no sound engine: Pure Data is not installed (%s); playing on silently", INSTALL)
        return None
    if not PATCH.exists():
        log.warning("no sound engine: the patch %s is missing; playing on silently", PATCH)
        return None
    if port_taken(host, port):
        log.info("a sound engine already listens on %s:%d; playing to it", host, port)
        return None
    engine = SoundEngine(port, pd, audio)
    if not engine.wait_listening():
        engine.stop()
        log.error("sound engine did not start (Pd exit code %s): %s; playing on silently",
                  engine.proc.returncode, " / ".join(list(engine.lines)[-5:]) or "nothing on stderr")
        return None
    log.info("sound engine: Pd %d playing %s on UDP port %d%s", engine.proc.pid, PATCH.name, port,
             "" if audio else " (no audio output)")
    return engine
