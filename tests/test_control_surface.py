"""The control surface under hostile input: OSC control and interface ports, ranges, the scheduler.

Every test here reproduces a fault found against a running box (issue #10): on the
code before the fix each one fails (a listener thread dies, a scheduler overflows,
a made-up 0.0 is played); now each is refused, counted and shown, and the box
keeps answering. Real UDP on 127.0.0.1, the bundled model, no fakes.
"""
from __future__ import annotations

import math
import queue
import socket
import struct
import threading
import time

import numpy as np
import pytest

from imps.box.config import load_config
from imps.errors import ConfigError
from imps.modes import Mode
from imps.io.osc import decode, encode_floats
from imps.model.rows import MAX_DT, MIN_DT
from imps.model.sampling import Sampler
from imps.box.scheduler import Scheduler
from osc_listener import send
from support import free_port, wait_until


def raw(port: int, data: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(data, ("127.0.0.1", port))


def osc(address: str, tags: str = ",", payload: bytes = b"") -> bytes:
    def pad(b):
        return b + b"\0" * (4 - len(b) % 4)
    return pad(address.encode()) + pad(tags.encode()) + payload


@pytest.fixture
def box(boxes):
    return boxes      # box(mode="user", **sections): a real box with the bundled model (conftest.py)


def control(b):
    return b.receiver("control")


# ---------------------------------------------------------------- item 1
@pytest.mark.parametrize("address", ["/mode", "/pi_temperature", "/sigma_temperature", "/time_scale",
                                     "/threshold"])
def test_a_control_message_without_arguments_never_kills_the_listener(box, address):
    b = box()
    port = control(b).port
    raw(port, osc(address))                         # the repro: `printf '/mode\0\0\0,\0\0\0' | socat ...`
    send(port, address, "no", "such", 1.0)          # wrong count and types too
    wait_until(lambda: control(b).errors["bad arguments"] == 2, what="two bad arguments counted")
    assert control(b).thread.is_alive()
    send(port, "/mode", "duet")                     # the listener still works
    wait_until(lambda: b.engine.mode is Mode.DUET, what="/mode duet applied after the bad ones")
    assert "osc control bad args 2" in b.status_line()
    assert b.supervisor.healthy()


def test_a_full_engine_inbox_is_counted_as_busy_and_the_listener_lives(box):
    b = box(engine={"queue_size": 2})
    busy, release = threading.Event(), threading.Event()
    b.engine.submit(lambda: (busy.set(), release.wait(20)))   # the prediction loop is busy...
    assert busy.wait(10)
    for _ in range(10):
        b.engine.performer_event([0.5, 0.5, 0.5])   # ...and its inbox is full
    port = control(b).port
    send(port, "/reset")                            # engine.submit raises queue.Full after its timeout
    wait_until(lambda: control(b).errors["busy"] == 1, timeout=15, what="the busy control message counted")
    release.set()
    assert control(b).thread.is_alive()
    send(port, "/mode", "layered")
    wait_until(lambda: b.engine.mode is Mode.LAYERED, what="/mode applied once the engine has room")
    assert "busy 1" in b.status_line()


def test_a_handler_bug_is_counted_with_its_traceback_and_the_listener_lives(box, caplog):
    b = box()
    receiver = control(b)
    receiver.route("/bug", lambda args: {}["no such key"])
    send(receiver.port, "/bug", 1.0)
    send(receiver.port, "/bug", 2.0)
    wait_until(lambda: receiver.errors["handler error"] == 2, what="handler errors counted")
    assert receiver.thread.is_alive()
    wait_until(lambda: any("KeyError" in (r.exc_text or "") for r in caplog.records), what="the traceback logged")
    assert sum("KeyError" in (r.exc_text or "") for r in caplog.records) == 1   # once, not per message


def test_the_interface_listener_survives_every_wrong_argument(box, sound):
    b = box()
    port = b.receiver("interface").port
    for data in (osc("/interface"), osc("/interface", ",s", b"abc\0"), osc("/interface", ",T"),
                 encode_floats("/interface", [math.inf, 0.5, 0.5]), encode_floats("/interface", [0.5] * 9)):
        raw(port, data)
    wait_until(lambda: b.receiver("interface").errors["bad arguments"] == 5, what="five bad /interface counted")
    send(port, "/interface", 0.25, 0.5, 0.75)
    got = sound.wait_for("/performer", 1)
    assert got[0][1] == pytest.approx([0.25, 0.5, 0.75])
    assert b.engine.stats.bad_inputs == 0          # refused at the door, never reached the engine


# ---------------------------------------------------------------- item 2 and 3: ranges
@pytest.mark.parametrize("address, value", [("/time_scale", math.inf), ("/time_scale", 1e12),
                                            ("/time_scale", 1e-300), ("/sigma_temperature", math.inf),
                                            ("/pi_temperature", 0.0), ("/threshold", math.nan),
                                            ("/threshold", 1e9)])
def test_control_values_out_of_range_are_refused_with_the_range(box, address, value, caplog):
    b = box("duet")
    send(control(b).port, address, value)
    wait_until(lambda: control(b).errors["bad arguments"] == 1, what="refused")
    wait_until(lambda: "out of range, expected" in caplog.text, what="the refusal in the log, naming the range")
    assert b.engine.time_scale == 1.0 and b.engine.response_threshold == 1.0
    before = b.engine.stats.model_events
    wait_until(lambda: b.engine.stats.model_events > before + 3, what="the model still playing")
    assert b.engine.scheduler.thread.is_alive()


@pytest.mark.parametrize("text, fragment", [
    ("[engine]\ntime_scale = inf\n", "[engine] time_scale = inf: out of range, expected 0.01 to 100"),
    ("[engine]\ntime_scale = 1e12\n", "[engine] time_scale = 1000000000000.0: out of range"),
    ("[engine]\ntime_scale = 1e-300\n", "[engine] time_scale = 1e-300: out of range"),
    ("[model]\nsigma_temperature = inf\n", "[model] sigma_temperature = inf: out of range"),
    ("[model]\npi_temperature = nan\n", "[model] pi_temperature = nan: out of range"),
    ("[status]\ninterval = inf\n", "[status] interval = inf: out of range, expected 0.05 to 60 s"),
    ("[status]\ninterval = 1e12\n", "[status] interval = 1000000000000.0: out of range"),
    ("[model]\nseed = -1\n", "[model] seed = -1: out of range"),
    ("[engine]\nmax_dt = 1e308\n", "[engine] max_dt = 1e+308: out of range"),
    ("[osc]\nreceive_buffer = 1\n", "[osc] receive_buffer = 1: out of range, expected a whole number 4096"),
    ("[serial]\nretry_interval = inf\n", "[serial] retry_interval = inf: out of range"),
    ("[panel]\ndebounce = 0.0\n", "[panel] debounce = 0.0: out of range"),
    ("[pads]\ndebounce = 1e9\n", "[pads] debounce = 1000000000.0: out of range"),
    ("[osc]\ncontrol_host = \"box.local\"\n", "[osc] control_host = 'box.local': expected an IPv4 address"),
])
def test_config_numbers_out_of_range_name_key_value_and_range(tmp_path, text, fragment):
    path = tmp_path / "box.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert fragment in str(err.value)


def test_every_number_in_the_config_has_a_finite_range():
    """A new numeric key (a new section too) must add its range to ranges.RANGES."""
    import typing

    from imps.box.config import SECTIONS
    from imps.ranges import RANGES
    from imps.settings import keys

    def numeric(t):
        args = typing.get_args(t)
        return t in (int, float) or any(numeric(a) for a in args)
    missing = [f"[{section}] {key}" for section, cls in SECTIONS.items()
               for key, t in keys(cls).items()
               if numeric(t) and (section, key) not in RANGES]
    assert missing == [], f"numbers without a range in ranges.RANGES: {missing}"
    for r in RANGES.values():
        assert math.isfinite(r.lo) and math.isfinite(r.hi) and r.lo <= r.hi


def test_the_example_config_documents_every_range():
    import re

    from imps.box.config import PACKAGE_DIR
    from imps.ranges import RANGES
    lines, section = {}, None
    for line in (PACKAGE_DIR / "box.example.toml").read_text().splitlines():
        header = re.match(r"\[(\w+)\]", line)
        key = re.match(r"#? ?(\w+) =", line)
        if header:
            section = header.group(1)
        elif key:
            lines.setdefault((section, key.group(1)), line)
    for (section, key), r in RANGES.items():
        line = lines.get((section, key))
        assert line is not None, f"[{section}] {key} not in box.example.toml"
        shown = f"{_n(r.lo)}..{_n(r.hi)}"
        assert shown in line, f"[{section}] {key}: range {shown} not on its line: {line!r}"


def _n(x):
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def test_a_model_sidecar_recommending_an_absurd_temperature_is_refused(tmp_path):
    import json
    import shutil

    from imps.box.loading import load_model
    from imps.box.config import DEFAULT_MODEL
    from imps.errors import ModelError
    model = tmp_path / "m.tflite"
    shutil.copy(DEFAULT_MODEL, model)
    sidecar = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    sidecar["sigma_temperature"] = 1e30
    model.with_suffix(".json").write_text(json.dumps(sidecar))
    with pytest.raises(ModelError, match="sigma_temperature = 1e\\+30: out of range"):
        load_model(load_config(None, {"model": {"path": str(model)}}))


def test_sampled_dt_is_clamped_from_above_too():
    def params(mu_dt):
        return np.array([mu_dt, 0.5, 0.5] + [0.1, 0.1, 0.1] + [0.0], dtype=np.float64)
    s = Sampler(3, 1, input_scale=1.0, sigma_temperature=0.0, seed=1)
    assert s.sample(params(1e30))[0] == MAX_DT
    assert s.sample(params(math.inf))[0] == MAX_DT
    assert s.sample(params(30.0))[0] == 30.0
    s.sigma_temperature = 1e300   # a spread that overflows: still a finite dt
    rows = [s.sample(params(0.5)) for _ in range(200)]
    assert all(MIN_DT <= r[0] <= MAX_DT for r in rows)


def test_the_scheduler_refuses_non_finite_times_and_lives_on():
    played = []
    sched = Scheduler(played.append, capacity=8).start()
    try:
        assert not sched.schedule(math.inf, "inf")
        assert not sched.schedule(math.nan, "nan")
        assert sched.schedule(time.monotonic() + 1e12, "far away")   # finite: queued, slept on in short naps
        assert sched.schedule(time.monotonic() + 0.01, "soon")
        wait_until(lambda: played == ["soon"], what="the next event played")
        assert sched.thread.is_alive() and sched.refused == 2
    finally:
        sched.stop()


def test_a_failing_play_is_counted_and_the_next_event_plays():
    played = []

    def play(event):
        if event == "bad":
            raise RuntimeError("sound card gone")
        played.append(event)
    sched = Scheduler(play, capacity=8).start()
    try:
        now = time.monotonic()
        sched.schedule(now + 0.01, "bad")
        sched.schedule(now + 0.02, "good")
        wait_until(lambda: played == ["good"], what="the event after the failing one")
        assert sched.play_errors == 1 and sched.thread.is_alive()
    finally:
        sched.stop()


def test_the_minimum_gap_between_model_events_holds_whatever_the_time_scale(box):
    b = box("user")
    e = b.engine
    dues = []
    original = e.scheduler.schedule

    def recording(due, event):
        dues.append(due)
        return original(due, event)
    e.submit(lambda: setattr(e.scheduler, "schedule", recording))
    e.submit(lambda: setattr(e, "time_scale", 1e-300))  # below the range: as if a bug let it in
    e.set_mode("duet")
    wait_until(lambda: len(dues) > 200, what="200 model events scheduled")
    e.set_paused(True)
    gaps = np.diff(dues[:200])
    assert gaps.min() >= MIN_DT - 1e-9, f"model events {gaps.min() * 1e6:.1f} us apart"


# ---------------------------------------------------------------- item 8: strict decoding
TWO_OF_THREE = osc("/interface", ",fff", struct.pack(">ff", 0.25, 0.5))   # tags promise 3 floats, 2 sent


@pytest.mark.parametrize("data, why", [
    (TWO_OF_THREE, "promise more arguments"),
    (osc("/interface", ",fff", struct.pack(">fff", 0.1, 0.2, 0.3)) + b"\0\0\0\0", "after the arguments"),
    (osc("/mode", ",s", b"duet"), "no terminating NUL"),
    (osc("/mode", ",s", b"du\0t"), "padding is not NUL"),
    (osc("/x", ",q", b"\0\0\0\1"), "unsupported type tag"),
    (b"/mode\0\0", "not a multiple of 4"),
    (b"", "empty"),
    (b"#bundle\0" + b"\0" * 8 + struct.pack(">i", 64) + TWO_OF_THREE, "does not fit"),
    (b"#bundle\0" + b"\0" * 8 + struct.pack(">i", len(TWO_OF_THREE)) + TWO_OF_THREE, "promise more arguments"),
    (osc("/x", ",b", struct.pack(">i", 100) + b"abcd"), "does not fit"),
    (osc("interface", ",f", struct.pack(">f", 1)), "does not start with /"),
])
def test_decode_rejects_every_malformed_packet(data, why):
    from imps.errors import OscError
    with pytest.raises(OscError, match=why):
        decode(data)


def test_decode_reads_what_controllers_send():
    assert decode(encode_floats("/interface", [0.25, 0.5, 0.75])) == [("/interface", [0.25, 0.5, 0.75])]
    assert decode(osc("/mode", ",s", b"duet\0\0\0\0")) == [("/mode", ["duet"])]
    assert decode(osc("/pause", ",iT", struct.pack(">i", 1))) == [("/pause", [1, True])]
    assert decode(b"/reset\0\0") == [("/reset", [])]                     # no type tags at all
    inner = encode_floats("/a", [1.0])
    bundle = b"#bundle\0" + b"\0" * 8 + struct.pack(">i", len(inner)) + inner
    assert decode(bundle) == [("/a", [1.0])]
    assert decode(osc("/d", ",dh", struct.pack(">dq", 0.5, -3))) == [("/d", [0.5, -3])]


def test_a_truncated_message_is_counted_and_never_played(box, sound):
    b = box()
    port = b.receiver("interface").port
    raw(port, TWO_OF_THREE)
    wait_until(lambda: b.receiver("interface").errors["malformed"] == 1, what="the truncated message counted")
    send(port, "/interface", 0.75, 0.5, 0.25)
    got = sound.wait_for("/performer", 1)
    assert [args for _, args in got] == [pytest.approx([0.75, 0.5, 0.25])]   # only the whole one
    assert "osc interface malformed 1" in b.status_line()


# ---------------------------------------------------------------- item 9: shown by kind, journal rate-limited
def test_a_flood_of_bad_osc_is_shown_by_kind_and_barely_reaches_the_journal(tmp_path, device_python, sound):
    import os
    import re
    import signal
    import subprocess

    from notify_socket import NotifySocket
    config = tmp_path / "box.toml"
    port = free_port()
    config.write_text(f'[engine]\nmode = "user"\n[osc]\ninterface_port = {port}\ncontrol_port = 0\n'
                      f'sound_port = {sound.port}\n[log]\nenabled = false\n[status]\ninterval = 0.1\n')
    bad_bundle = b"#bundle\0" + b"\0" * 8 + struct.pack(">i", 8) + b"garbage!"   # python-osc warned per element
    kinds = {"malformed": bad_bundle, "unknown": osc("/nowhere"), "bad args": osc("/interface", ",s", b"x\0\0\0")}
    with NotifySocket() as sd:
        proc = subprocess.Popen([device_python, "-m", "imps", "run", "--config", str(config), "-v"],
                                env=sd.env(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            sd.wait_for("READY", timeout=60)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for i in range(3000):
                    for data in kinds.values():
                        s.sendto(data, ("127.0.0.1", port))
                    if i % 50 == 0:
                        time.sleep(0.005)   # paced: this test is about the journal, not the kernel buffer

            def shown():
                status = sd.last("STATUS") or ""
                got = {k: int(m.group(1)) for k in kinds
                       if (m := re.search(rf"osc interface [^|]*?\b{k} (\d+)", status))}
                lost = re.search(r"lost (\d+)", status)
                return status, got, int(lost.group(1)) if lost else 0
            wait_until(lambda: sum(shown()[1].values()) + shown()[2] >= 9000 and len(shown()[1]) == 3, timeout=60,
                     what=f"the status line to count all 9000 bad packets by kind: {shown()[0]!r}")
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
    osc_lines = [line for line in err.splitlines() if "OSC" in line or "pythonosc" in line or "parse" in line]
    assert len(osc_lines) <= 10, "\n".join(osc_lines[:20])
    assert len(err.splitlines()) < 40




# ---------------------------------------------------------------- item 10: lost input apart from dropped notes
def test_discarded_model_notes_are_not_counted_as_lost_input(box):
    b = box("layered")
    port = b.receiver("interface").port
    for i in range(600):                       # far more companions than the schedule holds
        send(port, "/interface", (i % 10) / 10, 0.5, 0.5)
        if i % 20 == 0:
            time.sleep(0.01)
    wait_until(lambda: b.engine.stats.performer_events + b.engine.status()["lost_inputs"]
             + (b.receiver("interface").kernel_drops() or 0) == 600, timeout=60, what="all 600 events played or counted")
    s = b.engine.status()
    assert s["dropped_notes"] > 0
    line = b.status_line()
    assert f"notes dropped {s['dropped_notes']}" in line
    lost = s["lost_inputs"] + (b.receiver("interface").kernel_drops() or 0)
    assert f"lost {lost}" in line
    assert lost < s["dropped_notes"], "model notes must not be counted as lost performer input"


# ---------------------------------------------------------------- item 11: the kernel's drops, a deliberate buffer
def test_what_the_kernel_drops_is_counted_and_the_buffer_is_sized():
    from imps.io.osc import OscReceiver
    release, calls = threading.Event(), []

    def slow(args):
        calls.append(args)
        release.wait(20)
    receiver = OscReceiver("127.0.0.1", 0, {"/interface": slow}, "interface", receive_buffer=4096).start()
    try:
        assert receiver.receive_buffer < 64 * 1024                    # small, as asked (the kernel doubles it)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(500):
                s.sendto(encode_floats("/interface", [0.5, 0.5, 0.5]), ("127.0.0.1", receiver.port))
        wait_until(lambda: calls, what="the first packet")
        release.set()
        wait_until(lambda: receiver.received + (receiver.kernel_drops() or 0) == 500, timeout=30,
                 what="every packet either received or counted as dropped by the kernel")
        assert receiver.kernel_drops() > 0
    finally:
        release.set()
        receiver.stop()
    big = OscReceiver("127.0.0.1", 0, {}, "x", receive_buffer=200_000)
    try:
        assert big.receive_buffer >= 200_000        # within net.core.rmem_max here: granted (doubled)
    finally:
        big.stop()


# ---------------------------------------------------------------- item 13 (part): the sound socket listens nowhere
def test_the_sound_socket_is_not_bound_to_every_interface(sound):
    from imps.io.osc import SoundOut
    out = SoundOut("127.0.0.1", sound.port)
    try:
        out.send("/model", [0.5])
        sound.wait_for("/model", 1)
        host, _ = out.sock.getsockname()
        assert host == "127.0.0.1", f"the sound socket is bound to {host}"
        assert out.sock.getpeername() == ("127.0.0.1", sound.port)
    finally:
        out.close()


def test_osc_address_patterns_route_through_the_dispatcher(box):
    b = box("duet")
    send(control(b).port, "/*_temperature", 0.5)          # both temperatures at once
    wait_until(lambda: b.engine.model.pi_temperature == 0.5 and b.engine.model.sigma_temperature == 0.5,
             what="both temperatures set by one pattern")
    send(control(b).port, "/{mode,nothing}", "layered")
    wait_until(lambda: b.engine.mode is Mode.LAYERED, what="/mode through a pattern")
    send(control(b).port, "/no*where", 1.0)
    wait_until(lambda: control(b).errors["unknown address"] == 1, what="a pattern matching nothing counted")


def test_the_journal_gets_a_few_lines_per_call_site_and_the_count_of_the_rest():
    import io
    import logging

    from imps.journal import RateLimit
    now = [0.0]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    limit = RateLimit(burst=3, window=10.0, clock=lambda: now[0])
    handler.addFilter(limit)
    logger = logging.getLogger("test.journal")
    logger.addHandler(handler)
    logger.propagate = False

    def bad(i):
        logger.warning(f"bad packet {i}")       # one call site, a different message every time
    try:
        for i in range(1000):
            bad(i)
        logger.warning("another site")
        now[0] = 11.0
        bad(1000)
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines == ["bad packet 0", "bad packet 1", "bad packet 2", "another site",
                     "bad packet 1000 [and 997 more like this in the last 11 s, not shown]"]
    assert limit.suppressed == 997


def test_an_engine_error_is_counted_and_shown(box):
    b = box("user")
    b.engine.submit(lambda: 1 / 0)          # a bug in one inbox item
    wait_until(lambda: b.engine.status()["errors"] == 1, what="the error counted")
    assert "engine errors 1" in b.status_line()
    assert b.engine.alive() and b.supervisor.healthy()


def test_an_absent_sound_engine_is_shown_not_hidden(box):
    b = box("duet", osc={"sound_port": free_port()})     # nothing listens there
    wait_until(lambda: b.sound.errors > 0, what="a refused send")
    assert "NO SOUND ENGINE" in b.status_line()
    before = b.engine.stats.model_events
    wait_until(lambda: b.engine.stats.model_events > before + 2, what="the model playing on regardless")
