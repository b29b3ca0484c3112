"""A virtual sensor board on a pseudo-terminal, for ``--simulate`` and the tests.

It replays a recorded performance (rows ``(dt, x1..xn)``) as real SENSOR
frames at real time (times ``time_scale``), with a heartbeat when nothing
moves, like the firmware. It answers HELLO with a HELLO_REPLY and records every
ACTUATOR frame it receives. The pty's slave end is published at a stable
symlink (``link``), as udev publishes /dev/serial/by-id/...; ``unplug()``
closes the pty and removes the link, ``plug()`` makes a new pty behind the same
link, so a :class:`imps.io.serial_input.SerialInput` pointed at ``link`` finds the
board again by itself.

Run one by hand:  python -m imps.sim.board DATASET.npz --link /tmp/imps-board
"""
from __future__ import annotations

import argparse
import errno
import logging
import os
import select
import threading
import time
import tty
from pathlib import Path
from collections import deque
from typing import Deque, List, Optional, Tuple

import numpy as np

from ..errors import DatasetError, DeviceError
from ..io.serial_frames import (
    BoardInfo, Decoder, FrameType, PROTOCOL_VERSION, hello_reply_frame, sensor_frame,
)
from ..threads import join_or_complain
from .replay import Phrasing, load_performance

log = logging.getLogger(__name__)


class SimulatedBoard:
    """A replaying sensor board behind a pty (see the module docstring)."""

    def __init__(self, rows, link, *, time_scale: float = 1.0, loop: bool = True,
                 heartbeat: Optional[float] = 0.05, firmware: Tuple[int, int] = (1, 0),
                 actuators: int = 2, format: str = "frames", max_dt: Optional[float] = None,
                 phrase_seconds: Optional[float] = None, rest_seconds: float = 0.0, keep: Optional[int] = None):
        rows = np.asarray(rows, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] < 2 or len(rows) == 0:
            raise DatasetError(f"simulated board needs rows (N, D>=2), got shape {rows.shape}")
        if time_scale <= 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        if format not in ("frames", "text"):
            raise ValueError(f"format must be 'frames' or 'text', got {format!r}")
        self.rows = rows
        self.link = Path(link)
        self.time_scale = time_scale
        self.loop = loop
        self.heartbeat = heartbeat
        self.format = format
        self.max_dt = max_dt                   # cap on a recorded pause (None: as recorded)
        self.phrase_seconds = phrase_seconds   # play this long, then rest (None: no rests),
        self.rest_seconds = rest_seconds       # so call and response has silences to answer
        self.info = BoardInfo(PROTOCOL_VERSION, tuple(firmware), rows.shape[1] - 1, actuators)
        # The last ``keep`` of each (None: all, for tests; `imps run --simulate` keeps a bounded few,
        # or a box simulated for days grows ~0.4 MB a minute). The counters count them all.
        self.actuator_log: Deque[Tuple[float, List[float]]] = deque(maxlen=keep)   # (monotonic time, values)
        self.sent_rows: Deque[int] = deque(maxlen=keep)                          # row indices sent, in order
        self.counters = dict(frames_sent=0, frames_dropped=0, hellos=0, plugs=0, rx_bad=0, rows_sent=0,
                             actuator_frames=0)
        self._decoder = Decoder()
        self._seq = 0
        self._lock = threading.Lock()        # guards the fds against unplug() mid-I/O
        self._master: Optional[int] = None
        self._slave: Optional[int] = None
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # -- the cable ---------------------------------------------------------------
    def plug(self) -> str:
        """Make a new pty and point the link at it. Returns the slave's path."""
        with self._lock:
            if self._master is not None:
                return os.ttyname(self._slave)
            master, slave = os.openpty()
            tty.setraw(slave)            # no echo or newline mangling before the reader opens it
            os.set_blocking(master, False)
            name = os.ttyname(slave)
            self.link.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.link.with_name(self.link.name + ".new")
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            os.symlink(name, tmp)
            os.replace(tmp, self.link)
            self._master, self._slave = master, slave
            self._decoder.reset()
            self.counters["plugs"] += 1
        log.info("simulated board plugged in at %s -> %s", self.link, name)
        return name

    def unplug(self) -> None:
        """Close the pty (the reader sees the device vanish) and remove the link."""
        with self._lock:
            for fd in (self._master, self._slave):
                if fd is not None:
                    os.close(fd)
            self._master = self._slave = None
            if self.link.is_symlink():
                self.link.unlink()

    @property
    def plugged(self) -> bool:
        return self._master is not None

    # -- running -------------------------------------------------------------------
    def start(self) -> "SimulatedBoard":
        if self._thread is not None:
            raise RuntimeError("simulated board already started")
        self.plug()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="imps-simboard", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        join_or_complain(thread, timeout, "simulated board thread")
        self.unplug()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def wait_finished(self, timeout: float) -> bool:
        """Wait until a non-looping replay has sent its last row."""
        return self._finished.wait(timeout)

    def inject(self, data: bytes) -> bool:
        """Write raw bytes (garbage, hand-made frames) to the reader, if plugged."""
        with self._lock:
            return self._write(data)

    def status(self) -> dict:
        return dict(plugged=self.plugged, link=str(self.link), **self.counters)

    # -- the thread ------------------------------------------------------------------
    def _run(self) -> None:
        index = 0
        now = time.monotonic()
        phrasing = Phrasing(self.time_scale, self.max_dt, self.phrase_seconds, self.rest_seconds, start=now)
        due = now + phrasing.gap(self.rows[0, 0])
        last_sent = now
        values = None
        while not self._stop.is_set():
            now = time.monotonic()
            wait = max(0.0, min(due - now, 0.05))
            with self._lock:
                if self._master is not None:
                    self._poll_input(wait)
            if self._master is None:
                self._stop.wait(wait)
            now = time.monotonic()
            if now >= due and index < len(self.rows):
                values = self.rows[index, 1:]
                with self._lock:
                    self._send_values(values)
                self.sent_rows.append(index)
                self.counters["rows_sent"] += 1
                last_sent = now
                index += 1
                if index == len(self.rows):
                    if self.loop:
                        index = 0
                    else:
                        self._finished.set()
                if index < len(self.rows):
                    due = phrasing.next_due(due, self.rows[index, 0], floor=now - 0.5)
                else:
                    due = float("inf")
            elif (self.heartbeat and values is not None and now - last_sent >= self.heartbeat):
                with self._lock:
                    self._send_values(values)
                last_sent = now

    def _poll_input(self, wait: float) -> None:
        ready, _, _ = select.select([self._master], [], [], wait)
        if not ready:
            return
        try:
            data = os.read(self._master, 4096)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EIO):
                return
            raise
        for frame in self._decoder.feed(data):
            if frame.kind == FrameType.HELLO:
                self.counters["hellos"] += 1
                self._write(hello_reply_frame(self._next_seq(), self.info))
            elif frame.kind == FrameType.ACTUATOR:
                self.actuator_log.append((time.monotonic(), frame.floats()))
                self.counters["actuator_frames"] += 1
        self.counters["rx_bad"] = self._decoder.crc_errors + self._decoder.bad_frames

    def _send_values(self, values) -> None:
        if self.format == "text":
            data = (",".join(f"{float(v):.6g}" for v in values) + "\n").encode()
        else:
            data = sensor_frame(self._next_seq(), values)
        if self._write(data):
            self.counters["frames_sent"] += 1
        else:
            self.counters["frames_dropped"] += 1

    def _next_seq(self) -> int:
        seq, self._seq = self._seq, (self._seq + 1) & 0xFF
        return seq

    def _write(self, data: bytes) -> bool:
        """Non-blocking write to the master (caller holds the lock). False if dropped."""
        if self._master is None:
            return False
        try:
            return os.write(self._master, data) == len(data)
        except BlockingIOError:
            return False   # nobody reads and the pty buffer is full: a real board drops too
        except OSError as exc:
            raise DeviceError(f"simulated board {self.link}: write failed: {exc}") from exc


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="A simulated IMPS sensor board on a pseudo-terminal.")
    p.add_argument("dataset", help="a dataset .npz (the project's format, or a pickled one with --trusted-pickle)")
    p.add_argument("--index", type=int, default=0, help="which performance to replay")
    p.add_argument("--link", default="/tmp/imps-board", help="stable path the pty is published at")
    p.add_argument("--time-scale", type=float, default=1.0)
    p.add_argument("--text", action="store_true", help="send plain-text lines instead of frames")
    p.add_argument("--trusted-pickle", action="store_true", help="allow a pickled dataset (runs code!)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    rows = load_performance(a.dataset, a.index, trusted_pickle=a.trusted_pickle)
    board = SimulatedBoard(rows, a.link, time_scale=a.time_scale, format="text" if a.text else "frames")
    with board:
        print(f"simulated board: {len(rows)} rows, {rows.shape[1] - 1} channels at {a.link}; Ctrl-C stops")
        try:
            while True:
                time.sleep(1.0)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
