"""A recording of the run: the sound engine writes what it plays to a WAV file.

The box does not render sound; the sound engine (Pure Data, deploy/sound/imps.pd)
does, so the recording is a command to it: ``/record FILE.wav`` starts it
(ignored while it records already), ``/record`` alone finishes the file. The
path is sent absolute (Pd would read a relative one from the patch's folder).

The box sends ``/record FILE.wav`` at READY and again on every ``poll()``
until the file exists (a sound engine that starts after the box, as systemd
may order them, still gets it), never after: a sound engine restarted mid-run
must not start the file again over the take. A full disk stops the recording
in the sound engine, not the music; the status line then says the file stopped
growing (``REC STOPPED``), with the free space when that is the cause.
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import struct
import time
from pathlib import Path

from ..errors import ConfigError
from .osc import RECORD

log = logging.getLogger("imps")

#: A recording whose file has not grown for this long (while the box plays) has stopped.
STALL_SECONDS = 2.0
#: While the file does not exist yet, ask again this often.
RESEND_SECONDS = 1.0


class Recording:
    """One WAV file the sound engine writes for this run: ``start``, ``poll``, ``stop``, ``summary``."""

    def __init__(self, sound, path: str | os.PathLike, clock=time.monotonic):
        self.sound = sound                       # an io.osc.SoundOut
        self.path = Path(path).expanduser().absolute()
        self.clock = clock
        self.started_at: _dt.datetime | None = None   # wall time of the request (the file's time 0, within a few ms)
        self.stopped = False
        self._asked_at: float | None = None
        self._size = -1
        self._grew_at = 0.0

    def start(self) -> "Recording":
        if self.path.exists():
            log.warning("recording: %s exists and will be overwritten", self.path)
        self.started_at = _dt.datetime.now()
        self._ask()
        log.info("recording to %s from %s", self.path, self.started_at.isoformat())
        return self

    def _ask(self) -> None:
        self._asked_at = self.clock()
        self._grew_at = self._asked_at
        self.sound.send_strings(RECORD, [str(self.path)])

    def poll(self) -> None:
        """From the status loop: ask again until the file exists; notice when it stops growing."""
        if self.stopped or self._asked_at is None:
            return
        now = self.clock()
        size = self._file_size()
        if size is None:
            if now - self._asked_at >= RESEND_SECONDS:
                self._ask()
            return
        if size != self._size:
            self._size, self._grew_at = size, now

    def stop(self) -> None:
        """Finish the file (the sound engine updates its header; after a full disk it cannot,
        and no longer writes: the header is repaired here)."""
        if self._asked_at is not None and not self.stopped:
            self.sound.send_strings(RECORD, [])
            if self.stalled() and repair_wav_header(self.path):
                log.warning("recording %s stopped growing before the end (%s); its header was repaired",
                            self.path, _why_stalled(self.path))
        self.stopped = True

    def seconds(self) -> float | None:
        """The length of the file so far, from its header and size; None before it exists."""
        return wav_seconds(self.path)

    def stalled(self) -> bool:
        return (not self.stopped and self._size >= 0
                and self.clock() - self._grew_at > STALL_SECONDS)

    def summary(self) -> str:
        """``REC take.wav 0:42``; ``REC STOPPED ...`` when the file stopped growing."""
        seconds = self.seconds()
        if seconds is None:
            return f"REC {self.path.name} (waiting for the sound engine)"
        length = f"{int(seconds) // 60}:{int(seconds) % 60:02d}"
        if self.stalled():
            return f"REC STOPPED {self.path.name} at {length} ({_why_stalled(self.path)})"
        return f"REC {self.path.name} {length}"

    def _file_size(self) -> int | None:
        try:
            return self.path.stat().st_size
        except OSError:
            return None


def _why_stalled(path: Path) -> str:
    try:
        st = os.statvfs(path.parent)
    except OSError as exc:
        return f"cannot see its folder: {exc.strerror}"
    free = st.f_bavail * st.f_frsize
    return "disk full" if free < 1 << 20 else "the sound engine stopped writing"


def check_folder(path: str | os.PathLike) -> None:
    """A recording on this machine needs its folder (the sound engine would fail in silence)."""
    folder = Path(path).expanduser().absolute().parent
    if not folder.is_dir():
        raise ConfigError(f"[recording] path = {str(path)!r}: the folder {folder} does not exist")


# ---------------------------------------------------------------- the WAV header
def _data_chunk(head: bytes) -> tuple[int, int, int, int] | None:
    """(rate, bytes per frame, offset of the data, data size in the header) of a PCM WAV header."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, rate, frame = 12, None, None
    while pos + 8 <= len(head):
        kind, size = head[pos:pos + 4], struct.unpack("<I", head[pos + 4:pos + 8])[0]
        if kind == b"fmt " and pos + 24 <= len(head):
            channels, rate = struct.unpack("<HI", head[pos + 10:pos + 16])
            bits = struct.unpack("<H", head[pos + 22:pos + 24])[0]
            frame = channels * (bits // 8)
        elif kind == b"data":
            return (rate, frame, pos + 8, size) if rate and frame else None
        pos += 8 + size + (size & 1)
    return None


def wav_seconds(path: Path) -> float | None:
    """Seconds of sound in a WAV file from its size (the header's count lags while it is written)."""
    try:
        with open(path, "rb") as f:
            head = f.read(256)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return None
    chunk = _data_chunk(head)
    if chunk is None:
        return 0.0 if size < 44 else None
    rate, frame, offset, _ = chunk
    return max(size - offset, 0) // frame / rate


def repair_wav_header(path: Path) -> bool:
    """Make the header's sizes those of the file (a sound engine killed before it finished
    the file leaves them at 0); True if it changed anything."""
    try:
        with open(path, "r+b") as f:
            head = f.read(256)
            size = os.fstat(f.fileno()).st_size
            chunk = _data_chunk(head)
            if chunk is None:
                return False
            _, frame, offset, declared = chunk
            data = (size - offset) // frame * frame
            if declared == data:
                return False
            f.seek(4)
            f.write(struct.pack("<I", offset + data - 8))
            f.seek(offset - 4)
            f.write(struct.pack("<I", data))
            return True
    except OSError as exc:
        log.warning("recording %s: could not finish its header: %s", path, exc.strerror or exc)
        return False
