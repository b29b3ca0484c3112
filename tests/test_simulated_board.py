"""The simulated sensor board: replay timing, hello, actuators, plug/unplug, datasets."""
import os
import time

import numpy as np
import pytest
import serial

from imps.model.dataset import Dataset
from imps.errors import DatasetError
from imps.io.serial_frames import (
    BoardInfo, Decoder, FrameType, LineDecoder, actuator_frame, hello_frame,
)
from imps.sim.board import SimulatedBoard
from imps.sim.replay import load_performance

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_until(port, decoder, done, timeout=20.0):
    """Feed what the port gives to decoder until done(items) holds (a busy machine may be slow)."""
    end = time.monotonic() + timeout
    items = []
    while time.monotonic() < end and not done(items):
        items += decoder.feed(port.read(4096))
    return items


def frames_until(port, n, timeout=20.0):
    return read_until(port, Decoder(), lambda frames: len(frames) >= n, timeout)


def open_link(link):
    port = serial.serial_for_url(str(link), timeout=0.02)
    port.reset_input_buffer()
    return port


def rows_ramp(n, dt, d=2):
    rows = np.zeros((n, d + 1), dtype=np.float32)
    rows[:, 0] = dt
    rows[:, 1:] = (np.arange(n) / (n - 1))[:, None]
    return rows


def test_replays_every_row_as_frames_in_order_at_scaled_time(tmp_path):
    rows = rows_ramp(20, dt=0.5)           # 10 s of performance...
    board = SimulatedBoard(rows, tmp_path / "b", time_scale=0.02, loop=False, heartbeat=None)
    board.plug()
    port = open_link(board.link)
    try:
        t0 = time.monotonic()
        board.start()
        assert board.wait_finished(5)          # ...played 50 times faster
        elapsed = time.monotonic() - t0
        frames = frames_until(port, 20)
        frames += Decoder().feed(port.read(4096))     # nothing more: the replay has finished
    finally:
        port.close()
        board.stop()
    assert [f.kind for f in frames] == [FrameType.SENSOR] * 20
    assert [f.seq for f in frames] == list(range(20))
    got = np.array([f.floats() for f in frames])
    assert np.allclose(got, rows[:, 1:], atol=1e-4)
    assert elapsed > 0.1       # ~0.2 s; never early (an upper bound would be a timing assertion)
    assert list(board.sent_rows) == list(range(20))


def test_heartbeat_repeats_last_values(tmp_path):
    rows = rows_ramp(2, dt=0.01)
    with SimulatedBoard(rows, tmp_path / "b", loop=False, heartbeat=0.02) as board:
        port = open_link(board.link)
        try:
            frames = frames_until(port, 8)
        finally:
            port.close()
    assert len(frames) >= 8
    assert all(f.values == frames[-1].values for f in frames[2:])   # 2 rows, then heartbeats


def test_answers_hello_and_records_actuator_frames(tmp_path):
    with SimulatedBoard(rows_ramp(5, 10.0, d=3), tmp_path / "b", firmware=(2, 7), actuators=2) as board:
        port = open_link(board.link)
        try:
            port.write(hello_frame(0) + b"\x13\x37garbage\x00" + actuator_frame(1, [0.5, 1.0]))
            frames = read_until(port, Decoder(), lambda got: any(f.kind == FrameType.HELLO_REPLY for f in got)
                                and board.actuator_log and board.counters["rx_bad"])
        finally:
            port.close()
        replies = [f for f in frames if f.kind == FrameType.HELLO_REPLY]
        assert replies and replies[0].board == BoardInfo(1, (2, 7), 3, 2)
        assert len(board.actuator_log) == 1
        assert board.actuator_log[0][1] == pytest.approx([0.5, 1.0], abs=1e-4)
        st = board.status()
        assert st["hellos"] == 1 and st["rx_bad"] == 1


def test_unplug_removes_link_and_plug_publishes_a_new_pty(tmp_path):
    with SimulatedBoard(rows_ramp(5, 0.01), tmp_path / "by-id" / "board") as board:
        first = os.readlink(board.link)
        port = open_link(board.link)
        board.unplug()
        assert not board.link.exists() and not board.plugged
        with pytest.raises(serial.SerialException):
            for _ in range(50):
                port.read(100)          # the reader sees the device vanish
        port.close()
        board.plug()
        assert board.link.is_symlink() and os.path.exists(os.readlink(board.link))
        port = open_link(board.link)
        try:
            assert frames_until(port, 1)   # frames flow again
        finally:
            port.close()
        assert board.status()["plugs"] == 2
        assert first.startswith("/dev/pts/")


def test_text_format_sends_comma_separated_lines(tmp_path):
    rows = rows_ramp(3, 0.01)
    board = SimulatedBoard(rows, tmp_path / "b", loop=False, heartbeat=None, format="text")
    board.plug()
    port = open_link(board.link)
    try:
        board.start()
        assert board.wait_finished(3)
        lines = read_until(port, LineDecoder(), lambda got: len(got) >= 3)
    finally:
        port.close()
        board.stop()
    assert lines == [[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]]


def test_load_performance_own_format_and_explicit_pickle(tmp_path):
    perfs = [rows_ramp(4, 0.1), rows_ramp(6, 0.2)]
    path = Dataset.from_performances(perfs).save(tmp_path / "own.npz")
    assert np.array_equal(load_performance(path, 1), perfs[1])
    with pytest.raises(DatasetError, match="performance 5"):
        load_performance(path, 5)
    pickled = tmp_path / "published.npz"
    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = perfs
    np.savez(pickled, perfs=arr)
    with pytest.raises(DatasetError, match="perfs"):
        load_performance(pickled)                    # never unpickles unless asked
    assert np.array_equal(load_performance(pickled, 0, trusted_pickle=True), perfs[0])


def test_replays_a_real_project_dataset(tmp_path):
    path = os.path.join(ROOT, "training", "datasets", "lightpad-4d-12k.npz")
    rows = load_performance(path, 0, trusted_pickle=True)[:30]
    assert rows.shape[1] == 4
    board = SimulatedBoard(rows, tmp_path / "b", time_scale=0.01, loop=False, heartbeat=None)
    board.plug()
    port = open_link(board.link)
    try:
        board.start()
        assert board.wait_finished(10)
        frames = frames_until(port, 30)
        frames += Decoder().feed(port.read(4096))
    finally:
        port.close()
        board.stop()
    assert len(frames) == 30
    assert np.allclose([f.floats() for f in frames], np.clip(rows[:, 1:], 0, 1), atol=1e-4)


def test_rejects_bad_rows(tmp_path):
    with pytest.raises(DatasetError):
        SimulatedBoard(np.zeros((0, 3)), tmp_path / "b")
    with pytest.raises(ValueError):
        SimulatedBoard(rows_ramp(3, 0.1), tmp_path / "b", time_scale=0)
