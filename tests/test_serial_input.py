"""SerialInput over real pseudo-terminals (os.openpty) and loop://."""
import os
import random
import time
from types import SimpleNamespace

import pytest

from imps.errors import ConfigError
from imps.io.serial_frames import Decoder, FrameType, BoardInfo, hello_reply_frame, sensor_frame
from imps.io.serial_input import ActuatorOutput, SerialInput, SerialSettings, resolve_port
from imps.model.rows import to_unit
from imps.settings import decode
from imps.sim.board import SimulatedBoard
from support import Emitted, performance, wait_for




@pytest.fixture
def source():
    made = []

    def make(**kw):
        kw.setdefault("retry_interval", 0.1)
        s = SerialInput(**kw)
        made.append(s)
        return s
    yield make
    for s in made:
        s.stop()


def test_frames_become_calibrated_events_on_mapped_channels(pty_pair, source):
    master, path = pty_pair
    events = Emitted()
    src = source(port=path, channels=[2, None, 0], calibration=[(0.0, 0.5), (0, 1), (1.0, 0.0)])
    src.start(events)
    assert src.wait_connected(15)
    os.write(master, sensor_frame(0, [0.25, 0.9, 0.25]))
    os.write(master, sensor_frame(1, [0.25, 0.9, 0.25]))   # a heartbeat: same values, no event
    os.write(master, sensor_frame(2, [0.75, 0.1, 1.0]))
    assert wait_for(lambda: len(events) >= 2)
    time.sleep(0.1)
    (v1, c1), (v2, c2) = events.items
    assert c1 == c2 == [2, 0]
    assert v1 == pytest.approx([0.5, 0.75], abs=1e-4)
    assert v2 == pytest.approx([1.0, 0.0], abs=1e-4)   # clipped at raw_max; inverted range
    st = src.status()
    assert st["connected"] and st["frames"] == 3 and st["events"] == 2 and st["seq_gaps"] == 0


def test_hello_on_connect_and_board_info_recorded(pty_pair, source):
    master, path = pty_pair
    src = source(port=path)
    src.start(Emitted())
    assert src.wait_connected(15)
    dec = Decoder()
    got = []
    assert wait_for(lambda: got.extend(dec.feed(_read_some(master))) or got)
    assert got[0].kind == FrameType.HELLO
    os.write(master, hello_reply_frame(0, BoardInfo(1, (1, 3), 6, 2)))
    assert wait_for(lambda: src.board is not None)
    assert src.board.channels == 6 and src.board.version == "1.3"
    assert src.status()["board"] == "fw 1.3, 6 ch, 2 act"


def _read_some(fd):
    import select
    r, _, _ = select.select([fd], [], [], 0.05)
    return os.read(fd, 4096) if r else b""


def test_unplugged_mid_performance_recovers(tmp_path, source):
    rows = performance()
    board = SimulatedBoard(rows, tmp_path / "by-id" / "usb-IMPS_board-if00", loop=True).start()
    try:
        events = Emitted()
        src = source(port=str(tmp_path / "by-id" / "usb-IMPS_*"), retry_interval=0.1)
        src.start(events)
        assert src.wait_connected(15)
        assert wait_for(lambda: len(events) > 20)
        board.unplug()
        assert wait_for(lambda: not src.connected)
        # Depending on where the unplug catches the reader: lost mid-read, gone, or not openable.
        assert any(why in src.status()["last_error"] for why in ("lost", "no sensor board", "cannot open"))
        time.sleep(0.3)          # stays down a while; the reader must keep retrying, not die
        before = len(events)
        board.plug()
        assert src.wait_connected(15), "did not reconnect"    # how fast: `make soak` reports it
        assert wait_for(lambda: len(events) > before + 10), "no events after reconnecting"
        st = src.status()
        assert st["reconnects"] == 1 and st["connected"]
        assert src.board is not None and src.board.channels == 3   # hello answered again
    finally:
        board.stop()


def test_garbage_burst_is_counted_not_fatal(tmp_path, source):
    board = SimulatedBoard(performance(), tmp_path / "board", heartbeat=None).start()
    try:
        events = Emitted()
        src = source(port=str(tmp_path / "board"))
        src.start(events)
        assert src.wait_connected(15) and wait_for(lambda: len(events) > 5)
        rng = random.Random(7)
        for _ in range(20):
            board.inject(bytes(rng.randrange(256) for _ in range(100)) + b"\x00")
        before = len(events)
        assert wait_for(lambda: len(events) > before + 10), "events stopped after garbage"
        st = src.status()
        assert st["crc_errors"] + st["bad_frames"] >= 20
        assert st["resyncs"] >= 1 and st["connected"] and st["reconnects"] == 0
    finally:
        board.stop()


def test_text_line_mode(pty_pair, source):
    master, path = pty_pair
    events = Emitted()
    src = source(port=path, format="text", calibration=[(0, 1023), (0, 1023)])
    src.start(events)
    assert src.wait_connected(15)
    os.write(master, b"0,1023\r\n512,256\nnot numbers\n\n1023,0\n")
    assert wait_for(lambda: len(events) >= 3)
    values = [v for v, _ in events.items]
    assert values[0] == [0.0, 1.0]
    assert values[1] == pytest.approx([512 / 1023, 256 / 1023])
    assert values[2] == [1.0, 0.0]
    st = src.status()
    assert st["text_lines"] == 3 and st["bad_lines"] == 1
    assert _read_some(master) == b""   # no binary hello in text mode


def test_missing_port_retries_quietly_and_stops_promptly(tmp_path, source):
    src = source(port=str(tmp_path / "nothing-here"), retry_interval=0.05)
    src.start(Emitted())
    assert wait_for(lambda: str(tmp_path / "nothing-here") in src.status()["last_error"])
    assert not src.status()["connected"]
    t0 = time.monotonic()
    src.stop()
    assert time.monotonic() - t0 < 5.0     # not stuck in a retry (generous: the machine may be busy)


def test_callback_error_is_counted_and_reading_goes_on(pty_pair, source):
    master, path = pty_pair
    calls = []

    def emit(values, channels):
        calls.append(values)
        if len(calls) == 1:
            raise RuntimeError("engine bug")
    src = source(port=path)
    src.start(emit)
    assert src.wait_connected(15)
    os.write(master, sensor_frame(0, [0.1]) + sensor_frame(1, [0.2]))
    assert wait_for(lambda: len(calls) == 2)
    assert src.status()["callback_errors"] == 1


def test_loop_url_echoes_frames_through_the_same_code(source):
    events = Emitted()
    src = source(port="loop://")
    src.start(events)
    assert src.wait_connected(15)
    assert src.send(sensor_frame(9, [0.5, 0.25]))
    assert wait_for(lambda: len(events) == 1)
    assert events.items[0] == ([pytest.approx(0.5, abs=1e-4), pytest.approx(0.25, abs=1e-4)], [0, 1])
    assert src.status()["ignored_frames"] >= 1   # its own HELLO came back and was ignored


def test_actuator_output_reaches_the_board(tmp_path, source):
    board = SimulatedBoard(performance(), tmp_path / "board").start()
    try:
        src = source(port=str(tmp_path / "board"))
        src.start(Emitted())
        assert src.wait_connected(15)
        out = ActuatorOutput(src, controls=[2, 0])
        assert out.send([0.1, 0.2, 0.75])
        assert out.send_row([0.05, 1.0, 0.0, 0.0])
        assert wait_for(lambda: len(board.actuator_log) == 2)
        assert board.actuator_log[0][1] == pytest.approx([0.75, 0.1], abs=1e-4)
        assert board.actuator_log[1][1] == pytest.approx([0.0, 1.0], abs=1e-4)
        assert out.status() == {"actuator_sent": 2, "actuator_dropped": 0}
        with pytest.raises(ConfigError, match="more than 2 controls"):
            out.send([0.1, 0.2])
    finally:
        board.stop()


def test_actuator_output_drops_while_disconnected(tmp_path, source):
    src = source(port=str(tmp_path / "absent"))
    out = ActuatorOutput(src, controls=[0])
    assert not out.send([0.5])
    assert out.status()["actuator_dropped"] == 1
    with pytest.raises(ConfigError, match="frames"):
        ActuatorOutput(source(port="loop://", format="text"))


def test_resolve_port_specs(tmp_path, monkeypatch):
    (tmp_path / "usb-Arduino_Leonardo-if00").touch()
    assert resolve_port(str(tmp_path / "usb-Arduino*")) == str(tmp_path / "usb-Arduino_Leonardo-if00")
    assert resolve_port(str(tmp_path / "usb-Teensy*")) is None
    assert resolve_port("loop://") == "loop://"
    ports = [SimpleNamespace(device="/dev/ttyUSB0", vid=0x0403, pid=0x6001),
             SimpleNamespace(device="/dev/ttyACM0", vid=0x2341, pid=0x8036)]
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: ports)
    assert resolve_port("usb:2341") == "/dev/ttyACM0"
    assert resolve_port("usb:2341:8036") == "/dev/ttyACM0"
    assert resolve_port("usb:2341:0043") is None
    with pytest.raises(ConfigError, match="usb:VID"):
        SerialSettings(port="usb:arduino")


def test_settings_reject_unknown_and_bad_values():
    with pytest.raises(ConfigError, match=r"\[serial\] prot: unknown key, expected one of: .*port"):
        decode(SerialSettings, {"prot": "/dev/ttyACM0"})
    with pytest.raises(ConfigError, match="format"):
        SerialSettings(format="json")
    with pytest.raises(ConfigError, match="channel 1"):
        SerialSettings(calibration=[(0, 1), (5, 5)])
    assert to_unit(0.5, 0.0, 2.0) == 0.25 and to_unit(-1, 0, 1) == 0.0   # calibration


def _answer_hello(master, info, timeout=3.0):
    """Wait for the box's HELLO, then answer it as a board would."""
    dec, got = Decoder(), []
    assert wait_for(lambda: got.extend(dec.feed(_read_some(master))) or
                    any(f.kind == FrameType.HELLO for f in got), timeout)
    os.write(master, hello_reply_frame(0, info))


def test_more_board_channels_than_controls_is_one_clear_error_and_plays_on(pty_pair, source, caplog):
    master, path = pty_pair
    events = Emitted()
    src = source(port=path, control_count=3)
    src.start(events)
    assert src.wait_connected(15)
    _answer_hello(master, BoardInfo(1, (1, 0), 4, 2))
    assert wait_for(lambda: src.board is not None)
    for seq in range(20):
        os.write(master, sensor_frame(seq, [seq / 20, 0.5, 0.25, 0.75]))
    assert wait_for(lambda: len(events) == 20), "frames from a 4-channel board were dropped"
    assert all(channels == [0, 1, 2] for _, channels in events.items)
    errors = [r.message for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1, errors
    assert "sends 4 channels" in errors[0] and "has 3 controls" in errors[0]
    assert "SENSOR_COUNT 3" in errors[0] and "channels = [0, 1, 2, false]" in errors[0]
    assert "sends 4 channels" in src.status()["mismatch"]


def test_fewer_board_channels_than_controls_is_said_once_from_the_frames(pty_pair, source, caplog):
    master, path = pty_pair
    src = source(port=path, control_count=3, hello_attempts=0)   # an old board that never answers HELLO
    events = Emitted()
    src.start(events)
    assert src.wait_connected(15)
    for seq in range(5):
        os.write(master, sensor_frame(seq, [seq / 5, 0.5]))
    assert wait_for(lambda: len(events) == 5)
    errors = [r.message for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "sends 2 channels" in errors[0] and "controls 2..2 never move" in errors[0]


def test_an_unasked_hello_reply_does_not_replace_the_board(pty_pair, source, caplog):
    master, path = pty_pair
    src = source(port=path)
    src.start(Emitted())
    assert src.wait_connected(15)
    _answer_hello(master, BoardInfo(1, (1, 0), 3, 2))
    assert wait_for(lambda: src.board is not None)
    os.write(master, hello_reply_frame(1, BoardInfo(1, (9, 9), 16, 0)) + sensor_frame(2, [0.5]))
    assert wait_for(lambda: src.status()["unasked_replies"] == 1)
    assert src.board == BoardInfo(1, (1, 0), 3, 2)
    assert any("nobody asked for" in r.message for r in caplog.records)


def test_garbage_is_logged_rate_limited_as_well_as_counted(pty_pair, source, caplog):
    master, path = pty_pair
    src = source(port=path, hello_attempts=0)
    events = Emitted()
    src.start(events)
    assert src.wait_connected(15)
    for i in range(10):
        os.write(master, b"\x07garbage that is no frame\x00" + sensor_frame(i, [i / 10]))
    assert wait_for(lambda: len(events) == 10)
    st = src.status()
    assert st["bad_frames"] + st["crc_errors"] == 10
    reports = [r.message for r in caplog.records if "bad frames since the last report" in r.message]
    assert 1 <= len(reports) <= 2, reports          # logged, but not once per bad frame
    assert str(path) in reports[0]
