import datetime as dt
import errno
import os
import subprocess
import threading
import time

import numpy as np
import pytest

from imps.io.interaction_log import (FSYNC_DELAY, LogFile, LogWriter, dimension_from_filename, log_filename,
                                  read_log)
from support import wait_for


def test_writer_then_reader_round_trip(tmp_path):
    with LogWriter(tmp_path, dimension=3) as w:
        t0 = dt.datetime(2026, 11, 26, 12, 0, 0)
        w.write("interface", [0.1, 0.2], t0)
        w.write("rnn", [0.3, 0.4], t0 + dt.timedelta(seconds=0.5))
        w.write("interface", [0.5, 0.6], t0 + dt.timedelta(seconds=1.25))
    assert dimension_from_filename(w.path) == 3
    rec = read_log(w.path)
    assert rec.sources == ["interface", "rnn", "interface"]
    assert rec.skipped == []
    rows = rec.source_rows("interface")
    np.testing.assert_allclose(rows, [[0.0, 0.1, 0.2], [1.25, 0.5, 0.6]], rtol=1e-6)


def test_reader_survives_torn_last_line_and_garbage(tmp_path):
    path = tmp_path / log_filename(3)
    path.write_bytes(
        b"2026-11-26T12:00:00.000000,interface,0.1,0.2\n"
        b"complete garbage\n"
        b"\xff\xfe\x00binary\n"
        b"2026-11-26T12:00:00.500000,interface,0.1\n"          # wrong field count
        b"2026-11-26T12:00:00.600000,someone,0.1,0.2\n"         # unknown source
        b"not-a-date,interface,0.1,0.2\n"
        b"2026-11-26T12:00:01.000000,rnn,0.3,abc\n"            # non-numeric
        b"2026-11-26T12:00:02.000000,interface,0.7,0.8\n"
        b"2026-11-26T12:00:03.000000,interf")                  # torn by a power cut
    rec = read_log(path)
    assert len(rec.sources) == 2
    np.testing.assert_allclose(rec.controls, [[0.1, 0.2], [0.7, 0.8]], rtol=1e-6)
    reasons = [r for _, r in rec.skipped]
    assert len(reasons) == 7
    assert reasons[-1] == "torn last line"


def test_writer_flushes_each_line_before_close(tmp_path):
    w = LogWriter(tmp_path, dimension=2)
    for i in range(50):
        w.write("interface", [i / 50])
    deadline = 2.0
    import time
    start = time.monotonic()
    while w.written < 50 and time.monotonic() - start < deadline:
        time.sleep(0.01)
    # The lines are on disk (not in a userspace buffer) while the writer is still open.
    assert len(read_log(w.path).sources) == 50
    w.close()


class FaultyDisk:
    """A LogFile seam that fails like a full disk on request (root-free) and records fsyncs."""

    def __init__(self):
        self.full = False
        self.events = []          # ("write", monotonic) and ("sync", monotonic)
        self.files = []

    def open(self, path):
        disk = self

        class File(LogFile):
            def write(self, data):
                if disk.full:
                    raise OSError(errno.ENOSPC, "No space left on device")
                super().write(data)
                disk.events.append(("write", time.monotonic()))

            def sync(self):
                super().sync()
                disk.events.append(("sync", time.monotonic()))
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        f = File(path)
        self.files.append(f)
        return f


def test_a_lone_write_is_fsynced_by_the_timer_not_the_next_line(tmp_path):
    disk = FaultyDisk()
    w = LogWriter(tmp_path, dimension=2, opener=disk.open)
    try:
        w.write("interface", [0.5])     # and then a quiet stretch: no later line comes
        assert wait_for(lambda: any(kind == "sync" for kind, _ in disk.events)), \
            "a line was left unsynced through a quiet stretch"
        (first, wrote_at), (second, synced_at) = disk.events[:2]
        assert (first, second) == ("write", "sync")
        assert synced_at - wrote_at >= FSYNC_DELAY * 0.9     # by the timer, after the write
    finally:
        w.close()


def read_like_impsy(path, dimension):
    """IMPSY's own log reader (impsy/dataset.py, transform_log_to_sequence_example)."""
    import pandas as pd
    names = ["date", "source"] + [f"x{i}" for i in range(dimension - 1)]
    df = pd.read_csv(path, header=None, parse_dates=True, index_col=0, names=names)
    df = df[df.source == "interface"]
    df["t"] = df.index
    df.t = df.t.diff()
    df.t = df.t.dt.total_seconds()
    df = df.dropna()
    return np.array(df[["t"] + names[2:]])


def check_gap_log(path, before, after, lost):
    """The log after a full disk: every line before and after, one gap marker, nothing torn."""
    rec = read_log(path)
    assert rec.skipped == [], rec.skipped
    assert len(rec.sources) == before + after
    assert [n for _, n in rec.gaps] == [lost]
    rows = read_like_impsy(path, 2)       # IMPSY's reader skips the marker and keeps every line
    assert rows.shape == (before + after - 1, 2) and np.isfinite(rows.astype(float)).all()


def test_full_disk_then_freed_resumes_with_a_gap_marker(tmp_path, caplog):
    disk = FaultyDisk()
    w = LogWriter(tmp_path, dimension=2, opener=disk.open)
    try:
        for i in range(5):
            w.write("interface", [i / 10])
        assert wait_for(lambda: w.written == 5)
        disk.full = True
        for i in range(3):
            w.write("interface", [0.9])
        assert wait_for(lambda: w.lost == 3)
        assert w.failed and "No space left" in w.failed
        assert w.summary() == "LOG OFF"                    # what the status line shows meanwhile
        disk.full = False                                  # space returns; no new line needed
        assert wait_for(lambda: w.failed is None), "logging did not resume by itself"
        assert w.summary() == "log 3 lost to the disk in 1 gap"
        for i in range(4):
            w.write("interface", [i / 10])
        assert wait_for(lambda: w.written == 9)
    finally:
        w.close()
    assert w.gaps == 1 and w.lost == 3
    assert sum("interaction log stopped" in r.message for r in caplog.records) == 1
    assert sum("interaction log resumed" in r.message for r in caplog.records) == 1
    check_gap_log(w.path, 5, 4, 3)


def test_a_full_queue_is_counted_and_shown(tmp_path):
    """A disk slower than the music: write() never blocks, the lines it could not queue are
    counted, and the status line says so (a person sees that the log has holes)."""
    disk = FaultyDisk()
    release = threading.Event()

    def slow_open(path):
        f = disk.open(path)
        write = f.write
        f.write = lambda data: (release.wait(30), write(data))
        return f
    w = LogWriter(tmp_path, dimension=2, queue_size=4, opener=slow_open)
    try:
        assert w.summary() == ""
        for i in range(20):
            w.write("interface", [i / 100])
        assert w.dropped >= 20 - 4 - 1          # the queue holds 4, the writer holds at most 1
        assert w.summary() == f"log {w.dropped} dropped (queue full)"
        release.set()
        assert wait_for(lambda: w.written == 20 - w.dropped)
    finally:
        release.set()
        w.close()
    assert len(read_log(w.path).sources) == 20 - w.dropped


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A real 64 KiB tmpfs (mounting needs root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root; the FaultyDisk tests cover the same logic without it")
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_real_full_filesystem_then_freed(tiny_filesystem):
    filler = tiny_filesystem / "filler"
    w = LogWriter(tiny_filesystem / "logs", dimension=2)
    try:
        for i in range(10):
            w.write("interface", [i / 10])
        assert wait_for(lambda: w.written == 10)
        with open(filler, "wb", buffering=0) as f:          # fill the disk to the last byte
            try:
                while True:
                    f.write(b"x" * 4096)
                    f.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        for i in range(200):                                # enough to need a new block
            w.write("interface", [0.123456789])
        assert wait_for(lambda: w.lost > 0 and w.written + w.lost == 210)
        assert w.failed
        filler.unlink()
        assert wait_for(lambda: w.failed is None), "logging did not resume when space returned"
        for i in range(5):
            w.write("interface", [i / 10])
        assert wait_for(lambda: w.written + w.lost == 215)
    finally:
        w.close()
    check_gap_log(w.path, w.written - 5, 5, w.lost)


def test_read_only_directory_does_not_crash(tmp_path):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    w = LogWriter(blocked / "logs", dimension=2)
    w.write("interface", [0.5])
    assert wait_for(lambda: w.lost == 1)
    w.close()
    assert w.failed
