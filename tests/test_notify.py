"""The systemd notify seam against a real AF_UNIX datagram socket bound by the test."""
from __future__ import annotations

import threading
import time

import pytest

from imps.io import notify
from imps.io.notify import Notifier, monotonic_usec
from notify_socket import NotifySocket

BACKENDS = ["socket", "systemd"]   # systemd-python is in requirements/work.txt


@pytest.fixture
def sd(monkeypatch):
    """A notify socket with a 200 ms watchdog, announced in the process environment."""
    with NotifySocket(watchdog_usec=200_000) as sock:
        for key, value in sock.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        monkeypatch.delenv("IMPS_NOTIFY_BACKEND", raising=False)
        yield sock


@pytest.mark.parametrize("backend", BACKENDS)
def test_ready_status_watchdog_reloading_stopping_arrive(sd, backend):
    n = Notifier(backend=backend)
    assert n.backend == backend and n.enabled
    assert n.ready("mode=user")
    assert n.status("mode=duet performer 3.0/s model 2.5/s")
    assert n.watchdog()
    before = monotonic_usec()
    assert n.reloading()
    assert n.stopping()
    sd.wait_for("STOPPING")
    ready = sd.wait_for("READY")
    assert ready.fields == {"READY": "1", "STATUS": "mode=user"}
    assert sd.values("STATUS") == ["mode=user", "mode=duet performer 3.0/s model 2.5/s"]
    assert sd.values("WATCHDOG") == ["1"]
    reload = sd.wait_for("RELOADING")
    assert before <= int(reload.fields["MONOTONIC_USEC"]) <= monotonic_usec()
    order = [next(iter(m.fields)) for m in sd.messages]
    assert order == ["READY", "STATUS", "WATCHDOG", "RELOADING", "STOPPING"]
    assert n.sent == 5 and n.errors == 0


def test_abstract_socket_name(monkeypatch):
    with NotifySocket(abstract=True) as sock:
        assert sock.address.startswith("@")
        monkeypatch.setenv("NOTIFY_SOCKET", sock.address)
        assert Notifier(backend="socket").ready()
        assert sock.wait_for("READY").fields["READY"] == "1"


def test_status_is_one_line(sd):
    Notifier(backend="socket").status("mode=duet\nINJECTED=1")
    assert sd.wait_for("STATUS").fields == {"STATUS": "mode=duet INJECTED=1"}


def test_auto_backend_prefers_systemd_python(sd):
    assert Notifier().backend == "systemd"


def test_backend_from_environment_and_unknown_backend(sd, monkeypatch):
    monkeypatch.setenv("IMPS_NOTIFY_BACKEND", "socket")
    assert Notifier().backend == "socket"
    with pytest.raises(ValueError, match="unknown notify backend 'dbus'"):
        Notifier(backend="dbus")


def test_systemd_backend_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(notify, "_systemd_notify", lambda: None)
    with pytest.raises(ImportError, match="needs systemd-python"):
        Notifier(backend="systemd")
    assert Notifier().backend == "socket"   # auto falls back


def test_no_socket_is_a_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    n = Notifier(backend="socket")
    assert not n.enabled
    assert not n.ready() and not n.status("x") and not n.watchdog(force=True) and not n.stopping()
    assert n.sent == 0 and n.errors == 0


def test_watchdog_interval_is_half_the_timeout():
    assert Notifier(env={"WATCHDOG_USEC": "5000000"}).watchdog_interval() == 2.5
    assert Notifier(env={}).watchdog_interval() is None
    assert Notifier(env={"WATCHDOG_USEC": "0"}).watchdog_interval() is None
    assert Notifier(env={"WATCHDOG_USEC": "soon"}).watchdog_interval() is None
    # WATCHDOG_PID names another process: the watchdog is not ours to feed.
    assert Notifier(env={"WATCHDOG_USEC": "5000000", "WATCHDOG_PID": "1"}).watchdog_interval() is None


def test_watchdog_pings_are_throttled(sd):
    n = Notifier(backend="socket")
    for _ in range(1000):
        n.watchdog()
    assert n.sent == 1
    assert n.watchdog(force=True) and n.sent == 2


def test_a_dead_socket_never_raises(monkeypatch, caplog, tmp_path):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    n = Notifier(backend="socket")
    assert not n.ready() and not n.status("still playing")
    assert n.errors == 2
    assert "systemd notify to" in caplog.text and caplog.text.count("failed") == 1
    monkeypatch.setenv("NOTIFY_SOCKET", "relative/path")
    assert not n.ready() and n.errors == 3


class PredictionLoop:
    """A stand-in for the engine's prediction loop: one pass every ``period``,
    feeding the watchdog from the loop itself. ``hang()`` blocks the loop on
    an event, the way a stuck model step or a deadlock would."""

    def __init__(self, notifier: Notifier, period: float = 0.005):
        self.notifier = notifier
        self.period = period
        self.passes = 0
        self._stop = threading.Event()
        self._unhung = threading.Event()
        self._unhung.set()
        self._thread = threading.Thread(target=self._run, name="prediction-loop", daemon=True)

    def start(self):
        self.notifier.ready("mode=call_response")
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.period):
            self._unhung.wait()
            self.passes += 1
            self.notifier.watchdog()

    def hang(self):
        self._unhung.clear()

    def resume(self):
        self._unhung.set()

    def stop(self):
        self._stop.set()
        self._unhung.set()
        self._thread.join(2)
        assert not self._thread.is_alive(), "prediction loop thread did not stop"


def test_watchdog_stops_when_the_loop_hangs(sd):
    n = Notifier(backend="socket")
    interval = n.watchdog_interval()
    assert interval == 0.1
    loop = PredictionLoop(n).start()
    try:
        sd.wait_for("READY")
        sd.wait_for("WATCHDOG", count=5, timeout=5)
        running = sd.times("WATCHDOG")
        gaps = [b - a for a, b in zip(running, running[1:])]
        # Pings come at the half-timeout period, not on every 5 ms loop pass
        # (arrival times jitter a little on a busy machine, hence the margin).
        assert all(g >= interval * 0.5 for g in gaps), gaps
        assert loop.passes > 2 * len(running)

        loop.hang()
        time.sleep(interval * 3)             # let a ping already under way land
        hung_at = time.monotonic()
        hung_count = len(sd.times("WATCHDOG"))
        time.sleep(interval * 5)              # 2.5 watchdog timeouts: systemd would restart now
        assert len(sd.times("WATCHDOG")) == hung_count, "pings went on while the loop was hung"
        assert all(t < hung_at for t in sd.times("WATCHDOG"))

        loop.resume()
        sd.wait_for("WATCHDOG", count=hung_count + 2, timeout=5)
    finally:
        loop.stop()
