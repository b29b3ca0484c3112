"""The interaction log: one home for the format.

One CSV line per event::

    2026-11-26T13:45:00.123456,interface,0.5,0.25,0.75

``ISO-8601 timestamp,source,x1,..,xn`` where source is ``interface`` (the
performer) or ``rnn`` (the model). Controls only: dt is recovered from the
timestamps. One file per run, named ``<timestamp>-<D>d-mdrnn.log``. This is the
format other MDRNN instrument tools read and write, so it must not change.

Writing never blocks the music: lines go through a bounded queue to a writer
thread that writes every line straight to the file (a kill -9 loses nothing
already queued for more than a moment) and fsyncs within FSYNC_DELAY of any
write, by a timer, not at the next line (a power cut costs at most the last
second). A full or read-only disk, or the file or its directory deleted
while the box runs (found at the next fsync, so within FSYNC_DELAY of a
write), stops logging with one warning; the writer
tries again every RETRY_INTERVAL and, once the disk takes lines again, writes
one gap marker and carries on::

    2026-11-26T13:47:10.250000,gap,412

``timestamp,gap,<events lost>``: the timestamp is when logging resumed. Readers
that keep only ``interface`` (or ``rnn``) lines skip it, as IMPSY's does; ours
reports it in ``LogRecords.gaps``. A line is written whole or not at all: a
write the disk cut short is truncated away, so the file never holds a torn
line in the middle.
"""
from __future__ import annotations

import datetime as _dt
import errno
import logging
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import LogFormatError
from ..threads import join_or_complain, start_thread

log = logging.getLogger(__name__)

SOURCES = ("interface", "rnn")
PERFORMER, MODEL = SOURCES
#: The source field of a gap marker line (never a gesture).
GAP = "gap"
FILE_PATTERN = re.compile(r"^(?P<stamp>.+)-(?P<dim>\d+)d-mdrnn\.log$")
#: Every write is fsynced within this many seconds (by a timer in the writer thread).
FSYNC_DELAY = 0.5
#: While the disk refuses lines, try again this often.
RETRY_INTERVAL = 1.0


def log_filename(dimension: int, when: _dt.datetime | None = None) -> str:
    """``<timestamp>-<D>d-mdrnn.log`` for a run started at ``when`` (default now)."""
    when = when or _dt.datetime.now()
    return f"{when.strftime('%Y-%m-%dT%H-%M-%S')}-{dimension}d-mdrnn.log"


def dimension_from_filename(path: str | os.PathLike) -> int | None:
    """The model dimension a log file's name declares, or None if it has none."""
    m = FILE_PATTERN.match(Path(path).name)
    return int(m.group("dim")) if m else None


def format_line(timestamp: _dt.datetime, source: str, controls) -> str:
    values = ",".join(repr(float(v)) for v in controls)
    return f"{timestamp.isoformat()},{source},{values}\n"


def format_gap(timestamp: _dt.datetime, lost: int) -> str:
    return f"{timestamp.isoformat()},{GAP},{lost}\n"


class LogFile:
    """An append-only file written with plain ``os.write``: each line lands whole or not at all.

    The seam for tests: LogWriter takes any ``opener(path)`` returning an object
    with ``write(bytes)`` (raises OSError), ``sync()`` and ``close()``.
    """

    def __init__(self, path: Path):
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        self.size = os.fstat(self.fd).st_size

    def write(self, data: bytes) -> None:
        done = 0
        try:
            while done < len(data):
                done += os.write(self.fd, data[done:])
        except OSError:
            if done:   # the disk filled mid-line: take the torn piece back out
                try:
                    os.ftruncate(self.fd, self.size)
                except OSError:
                    pass
            raise
        self.size += len(data)

    def sync(self) -> None:
        os.fsync(self.fd)
        if self.gone():
            raise FileNotFoundError(errno.ENOENT, "the log file or its directory was deleted while the box ran")

    def gone(self) -> bool:
        """Whether the path no longer names this file (deleted, or its directory was): writes would vanish."""
        try:
            here, ours = os.stat(self.path), os.fstat(self.fd)
        except OSError:
            return True
        return (here.st_dev, here.st_ino) != (ours.st_dev, ours.st_ino)

    def close(self) -> None:
        os.close(self.fd)


class LogWriter:
    """Writes one run's interaction log from a background thread.

    ``write()`` never blocks: when the queue is full the line is dropped and
    counted in ``dropped``. While the disk refuses lines, ``failed`` says why,
    the lines are counted in ``lost`` and the music goes on; logging resumes by
    itself (with a gap marker, counted in ``gaps``) when the disk takes lines again.
    """

    def __init__(self, directory: str | os.PathLike, dimension: int, queue_size: int = 10000,
                 opener=LogFile):
        self.dimension = dimension
        self.directory = Path(directory)
        self.path = self.directory / log_filename(dimension)
        self.written = 0
        self.dropped = 0
        self.lost = 0                    # lines the disk refused (in all)
        self.gaps = 0                    # gap markers written
        self.syncs = 0
        self.failed: str | None = None
        self._opener = opener
        self._lost_in_gap = 0
        self._unsynced = 0               # lines written since the last fsync (lost if the file turns out deleted)
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._file = None
        self._open()
        self._thread = start_thread(self._run, "imps-log")

    def write(self, source: str, controls, timestamp: _dt.datetime | None = None) -> None:
        """Queue one event; ``controls`` are the n control values (no dt)."""
        if len(controls) != self.dimension - 1:
            raise LogFormatError(
                f"log {self.path.name}: expected {self.dimension - 1} controls, got {len(controls)}")
        try:
            self._queue.put_nowait((timestamp or _dt.datetime.now(), source, tuple(controls)))
        except queue.Full:
            self.dropped += 1

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued, fsync and close."""
        self._queue.put(None)
        join_or_complain(self._thread, timeout, "log writer")
        if self._file is not None:
            try:
                self._file.sync()
                self._file.close()
            except OSError as exc:
                self._fail(exc)
            self._file = None

    def summary(self) -> str:
        """The log's part of the status line: '' while every line reaches the disk.
        ``LOG OFF`` while the disk refuses lines; afterwards how many were lost to
        the disk (and in how many gaps) and to a full queue (a disk too slow)."""
        if self.failed:
            return "LOG OFF"
        parts = []
        if self.lost:
            parts.append(f"{self.lost} lost to the disk in {max(self.gaps, 1)} gap{'s' * (self.gaps > 1)}")
        if self.dropped:
            parts.append(f"{self.dropped} dropped (queue full)")
        return ("log " + ", ".join(parts)) if parts else ""

    @property
    def thread(self):
        """The writer thread (the box's supervisor watches it)."""
        return self._thread

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _open(self) -> bool:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._file = self._opener(self.path)
            return True
        except OSError as exc:
            self._fail(exc)
            return False

    def _fail(self, exc: OSError) -> None:
        if not self.failed:
            self.failed = f"{self.path}: {exc.strerror or exc}"
            log.warning("interaction log stopped, the music goes on (trying again every %.0f s): %s",
                        RETRY_INTERVAL, self.failed)

    def _write(self, data: bytes) -> bool:
        try:
            self._file.write(data)
            return True
        except OSError as exc:
            self._fail(exc)
            return False

    def _resume(self) -> bool:
        """Try the disk again: the gap marker first; True when logging is back."""
        if self._file is None and not self._open():
            return False
        if not self._write(format_gap(_dt.datetime.now(), self._lost_in_gap).encode()):
            return False
        log.warning("interaction log resumed after %s; %d events lost, marked by a gap line",
                    self.failed.split(": ", 1)[-1], self._lost_in_gap)
        self.failed, self._lost_in_gap = None, 0
        self.gaps += 1
        return True

    def _run(self) -> None:
        dirty_since = None               # when the oldest unsynced write was made
        next_retry = time.monotonic()
        while True:
            now = time.monotonic()
            if dirty_since is not None:
                timeout = max(0.0, dirty_since + FSYNC_DELAY - now)
            elif self.failed:
                timeout = max(0.0, next_retry - now)
            else:
                timeout = None
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = ()
            if item is None:
                return
            now = time.monotonic()
            if self.failed and now >= next_retry:
                next_retry = now + RETRY_INTERVAL
                if self._resume():
                    dirty_since = dirty_since or now
            if item:
                if self.failed:
                    self.lost += 1
                    self._lost_in_gap += 1
                elif self._write(format_line(*item).encode()):
                    self.written += 1
                    self._unsynced += 1
                    dirty_since = dirty_since or now
                else:
                    self.lost += 1
                    self._lost_in_gap += 1
                    next_retry = now + RETRY_INTERVAL
            if dirty_since is not None and time.monotonic() - dirty_since >= FSYNC_DELAY:
                dirty_since = None
                if self._file is not None:
                    try:
                        self._file.sync()
                        self.syncs += 1
                        self._unsynced = 0
                    except FileNotFoundError as exc:   # deleted under us: what went there since the last sync is lost
                        self._fail(exc)
                        self.written -= self._unsynced
                        self.lost += self._unsynced
                        self._lost_in_gap += self._unsynced
                        self._unsynced = 0
                        self._close_quietly()
                        next_retry = time.monotonic()
                    except OSError as exc:
                        self._fail(exc)

    def _close_quietly(self) -> None:
        try:
            self._file.close()
        except OSError:
            pass
        self._file = None


@dataclass
class LogRecords:
    """What a log file holds: one entry per good line, plus what was skipped."""
    path: Path
    times: np.ndarray        # seconds since the epoch, float64
    sources: list[str]
    controls: np.ndarray     # (N, n) float32
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    stamps: list[_dt.datetime] = field(default_factory=list)      # the timestamps as written
    gaps: list[tuple[float, int]] = field(default_factory=list)   # (resumed at, events lost)

    def source_rows(self, source: str = PERFORMER) -> np.ndarray:
        """Gesture rows (dt, x1..xn) for one source; dt from consecutive timestamps (the first row's is 0).

        dt is the exact difference of the written timestamps (microseconds), as IMPSY computes it,
        not a difference of float epoch seconds (which would be off by up to 0.2 us).
        """
        mask = np.array([s == source for s in self.sources], dtype=bool)
        rows = np.empty((int(mask.sum()), self.controls.shape[1] + 1), dtype=np.float32)
        if len(rows):
            stamps = [t for t, keep in zip(self.stamps, mask) if keep]
            try:
                rows[1:, 0] = [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:])]
            except (TypeError, ValueError):  # no stamps kept, or naive and zoned ones mixed by hand
                rows[1:, 0] = np.diff(self.times[mask])
            rows[0, 0] = 0.0
            rows[:, 1:] = self.controls[mask]
        return rows


def read_log(path: str | os.PathLike, n_controls: int | None = None) -> LogRecords:
    """Read a log, skipping what cannot be trusted (torn last line, garbage).

    Never raises for bad lines: each is reported in ``skipped``. The control
    count comes from ``n_controls``, else the file name, else the first good line.
    """
    path = Path(path)
    if n_controls is None:
        dim = dimension_from_filename(path)
        n_controls = dim - 1 if dim else None
    stamps, sources, controls, skipped, gaps = [], [], [], [], []
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    torn = lines[-1] != b""  # a last line without newline was being written at a crash
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        if torn and number == len(lines):
            skipped.append((number, "torn last line"))
            continue
        reason, parsed = _parse(raw, n_controls)
        if reason == GAP:
            gaps.append(parsed)
            continue
        if reason:
            skipped.append((number, reason))
            continue
        stamp, source, values = parsed
        if n_controls is None:
            n_controls = len(values)
        stamps.append(stamp)
        sources.append(source)
        controls.append(values)
    width = n_controls or 0
    return LogRecords(path, np.array([t.timestamp() for t in stamps], dtype=np.float64), sources,
                      np.array(controls, dtype=np.float32).reshape(-1, width), skipped, stamps, gaps)


def _parse(raw: bytes, n_controls: int | None):
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return "not UTF-8 text", None
    parts = text.split(",")
    if len(parts) < 3:
        return "too few fields", None
    try:
        stamp = _dt.datetime.fromisoformat(parts[0])
        stamp.timestamp()                 # out of range for the platform: a bad line, not a crash later
    except (ValueError, OverflowError, OSError):
        return f"bad timestamp {parts[0][:40]!r}", None
    source = parts[1]
    if source == GAP and len(parts) == 3 and parts[2].isdigit():
        return GAP, (stamp.timestamp(), int(parts[2]))
    if source not in SOURCES:
        return f"unknown source {source[:20]!r}", None
    try:
        values = [float(v) for v in parts[2:]]
    except ValueError:
        return "non-numeric value", None
    if n_controls is not None and len(values) != n_controls:
        return f"{len(values)} values, expected {n_controls}", None
    return None, (stamp, source, values)
