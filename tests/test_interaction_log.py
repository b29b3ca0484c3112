import datetime as dt
import os

import numpy as np

from imps.interaction_log import LogWriter, dimension_from_filename, log_filename, read_log


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


def test_full_disk_stops_logging_but_never_raises(tmp_path, caplog):
    if not os.path.exists("/dev/full"):
        raise AssertionError("/dev/full is needed to simulate a full disk")
    w = LogWriter(tmp_path, dimension=2)
    w._file.close()
    w._file = open("/dev/full", "w", encoding="utf-8")
    for _ in range(5):
        w.write("interface", [0.5])
    w.close()
    assert w.failed and "No space left" in w.failed
    assert sum("interaction log stopped" in r.message for r in caplog.records) == 1
    w.write("interface", [0.5])  # still never raises


def test_read_only_directory_does_not_crash(tmp_path):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    w = LogWriter(blocked / "logs", dimension=2)
    w.write("interface", [0.5])
    w.close()
    assert w.failed
