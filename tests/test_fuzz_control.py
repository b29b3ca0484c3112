"""A property-based fuzz of the whole control surface, against a really running box.

Hypothesis generates OSC packets (any address, pattern or not; any type tags;
any values, NaN and inf included; truncated, padded with junk, bundled) and
sends them over real UDP to both OSC ports of an ``imps run`` process under a
real notify socket with a watchdog. It also generates config files (random
sections, keys and values, and plain bytes) for the loader and, through
SIGHUP, for the running box. The properties: no thread is ever lost (the
watchdog pings go on and the status line never says THREAD DIED), the process
never exits, the interaction log never holds a NaN or an inf, and the box
still obeys a good control message at the end.
"""
from __future__ import annotations

import math
import os
import signal
import socket
import struct
import subprocess
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imps.box.config import SECTIONS as CONFIG_SECTIONS
from imps.box.config import load_config, settings_of
from imps.errors import ConfigError
from imps.ranges import RANGES
from notify_socket import NotifySocket
from osc_listener import send
from support import toml_value

CONTROL = ["/mode", "/reset", "/pause", "/pi_temperature", "/sigma_temperature", "/time_scale", "/threshold"]
ADDRESSES = CONTROL + ["/interface", "/*", "/*_temperature", "/{mode,pause}", "/[a-z]*", "/mode/", "/", "//"]
NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                    st.sampled_from([0.0, -0.0, 1e-300, 1e12, -1.0, 0.01, 100.0, 1e38]))


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (4 - len(b) % 4)


def _arg(value) -> tuple[str, bytes]:
    kind, v = value
    if kind == "f":
        return "f", struct.pack(">f", v)
    if kind == "d":
        return "d", struct.pack(">d", v)
    if kind == "i":
        return "i", struct.pack(">i", v)
    if kind == "h":
        return "h", struct.pack(">q", v)
    if kind == "s":
        return "s", _pad(v.encode("utf-8", "surrogatepass"))
    if kind == "b":
        return "b", struct.pack(">i", len(v)) + v + b"\0" * (-len(v) % 4)
    return v, b""   # T F N: no payload


ARGS = st.one_of(
    st.tuples(st.just("f"), NUMBERS),
    st.tuples(st.just("d"), st.floats(allow_nan=True, allow_infinity=True)),
    st.tuples(st.just("i"), st.integers(-2**31, 2**31 - 1)),
    st.tuples(st.just("h"), st.integers(-2**63, 2**63 - 1)),
    st.tuples(st.just("s"), st.one_of(st.sampled_from(["user", "duet", "layered", "call_response", "karaoke", ""]),
                                      st.text(max_size=12))),
    st.tuples(st.just("b"), st.binary(max_size=12)),
    st.tuples(st.just("c"), st.sampled_from(["T", "F", "N"])),
)


@st.composite
def osc_packets(draw) -> bytes:
    address = draw(st.one_of(st.sampled_from(ADDRESSES), st.text(max_size=16).map(lambda t: "/" + t)))
    args = draw(st.lists(ARGS, max_size=5))
    encoded = [_arg(a) for a in args]
    tags = "," + "".join(t for t, _ in encoded)
    tags = draw(st.one_of(st.just(tags), st.text(alphabet=",ifdhsSbTFNIcrmt[]xq", max_size=8)))
    data = _pad(address.encode("utf-8", "surrogatepass")) + _pad(tags.encode()) + b"".join(p for _, p in encoded)
    mutation = draw(st.sampled_from(["none", "none", "truncate", "junk", "bundle", "bytes"]))
    if mutation == "truncate" and data:
        data = data[:draw(st.integers(0, len(data) - 1))]
    elif mutation == "junk":
        data += draw(st.binary(min_size=1, max_size=12))
    elif mutation == "bundle":
        size = draw(st.one_of(st.just(len(data)), st.integers(-8, 200)))
        data = b"#bundle\0" + b"\0" * 8 + struct.pack(">i", size) + data
    elif mutation == "bytes":
        data = draw(st.binary(max_size=64))
    return data[:60000]


@pytest.fixture(scope="module")
def running_box(tmp_path_factory, device_python):
    """An `imps run` process (duet, the bundled model) under a notify socket with a 0.5 s watchdog."""
    from osc_listener import SoundListener
    tmp = tmp_path_factory.mktemp("fuzz")
    sound = SoundListener()
    ports = []
    for _ in range(2):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    text = (f'[model]\nseed = 1\n[engine]\nmode = "duet"\n'
            f'[osc]\ninterface_port = {ports[0]}\ncontrol_port = {ports[1]}\nsound_port = {sound.port}\n'
            f'[log]\ndirectory = "{tmp / "logs"}"\n[status]\ninterval = 0.1\n')
    config = tmp / "box.toml"
    config.write_text(text)
    with NotifySocket(watchdog_usec=1_000_000) as sd:
        proc = subprocess.Popen([device_python, "-m", "imps", "run", "--config", str(config), "-q"],
                                env=sd.env(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        box = dict(proc=proc, sd=sd, sound=sound, ports=ports, config=config, text=text, logs=tmp / "logs",
                   readies=1)
        try:
            sd.wait_for("READY", timeout=60)
            yield box
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                _, box["stderr"] = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
            sound.close()


def assert_box_works(box):
    """Alive, pinging, no dead thread, obeys /mode, and no NaN or inf in the interaction log."""
    proc, sd = box["proc"], box["sd"]
    assert proc.poll() is None, "the box exited"
    since = time.monotonic()
    sd.wait_for("WATCHDOG", count=len(sd.times("WATCHDOG")) + 2, timeout=20)
    assert [t for t in sd.times("WATCHDOG") if t > since], "no watchdog pings"
    for mode in ("layered", "duet"):
        send(box["ports"][1], "/pause", 0)
        send(box["ports"][1], "/mode", mode)
        deadline = time.monotonic() + 20
        while f"mode {mode}" not in (sd.last("STATUS") or "") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert f"mode {mode}" in sd.last("STATUS"), sd.last("STATUS")
    assert "THREAD DIED" not in " ".join(sd.values("STATUS"))
    for log in box["logs"].glob("*.log"):
        for line in log.read_text().splitlines():
            values = [float(v) for v in line.split(",")[2:]]
            assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values), line


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(packets=st.lists(osc_packets(), min_size=1, max_size=4), port=st.sampled_from([0, 1]))
def test_fuzzed_osc_never_loses_a_thread(running_box, packets, port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for data in packets:
            s.sendto(data, ("127.0.0.1", running_box["ports"][port]))
    assert running_box["proc"].poll() is None


def test_after_the_osc_fuzz_the_box_still_works(running_box):
    assert_box_works(running_box)
    status = running_box["sd"].last("STATUS")
    for port in ("interface", "control"):   # the fuzz reached both ports, and what was wrong is shown
        assert f"osc {port} malformed" in status, status


# ---------------------------------------------------------------- config files
SECTIONS = sorted(CONFIG_SECTIONS) + ["sound"]     # every section of the file, and one that does not exist
KEYS = sorted({key for _, key in RANGES} | {"mode", "path", "runtime", "enabled", "directory", "backend",
                                            "control_host", "port", "format", "simulate", "bogus"})
SCALARS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**63, 2**63 - 1),
                    st.sampled_from([0, 1, -1, 4096, 65535, 65536, 0.01, 1e-300, 1e300]), st.booleans(),
                    st.text(max_size=10), st.sampled_from(["duet", "user", "127.0.0.1", "fake", "none", "frames"]))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=4), st.lists(st.lists(SCALARS, max_size=3), max_size=3))


CONFIG_TEXT = st.dictionaries(st.sampled_from(SECTIONS), st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4),
                              max_size=4).map(
    lambda d: "".join(f"[{s}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in keys.items())
                      for s, keys in d.items()))
CONFIG_BYTES = st.one_of(CONFIG_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=200))


@settings(max_examples=500, deadline=None, database=None)
@given(data=CONFIG_BYTES)
def test_the_loader_either_loads_in_range_or_says_why(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("cfg") / "box.toml"
    path.write_bytes(data)
    try:
        config = load_config(path)
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc).strip()
        return
    for (section, key), value in settings_of(config).items():
        r = RANGES.get((section, key))
        if r is not None:
            r.check(f"[{section}] {key}", value)   # never raises for a loaded config


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=CONFIG_BYTES)
def test_fuzzed_configs_by_sighup_never_stop_the_box(running_box, data):
    box = running_box
    box["config"].write_bytes(data)
    box["proc"].send_signal(signal.SIGHUP)
    box["readies"] += 1
    box["sd"].wait_for("READY", count=box["readies"], timeout=30)
    assert box["proc"].poll() is None, "the box exited on a reload"


def test_after_the_config_fuzz_the_box_still_works(running_box):
    box = running_box
    box["config"].write_text(box["text"])       # the good file back: it reloads and plays on
    box["proc"].send_signal(signal.SIGHUP)
    box["readies"] += 1
    box["sd"].wait_for("READY", count=box["readies"], timeout=30)
    assert_box_works(box)
