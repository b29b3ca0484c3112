"""The systemd notify seam: READY, STATUS, WATCHDOG, RELOADING, STOPPING.

The box runs as a ``Type=notify`` service. systemd passes the socket to talk
to in ``$NOTIFY_SOCKET`` and, when ``WatchdogSec=`` is set, the watchdog
timeout in ``$WATCHDOG_USEC``. Without ``$NOTIFY_SOCKET`` (run from a shell,
in tests) every call is a no-op, so the engine calls these unconditionally.

What the engine calls, and where:

- ``ready(status)``   once inputs are open and the model is loaded (and again
                      after a reload);
- ``status(text)``    whenever the mode or the event rates change (cheap);
- ``watchdog()``      on every pass of the prediction loop itself, never from a
                      helper thread, so a hung loop stops the pings and
                      systemd restarts the service. Pings are throttled to
                      ``watchdog_interval()``, so calling it often is cheap;
- ``reloading()``     on SIGHUP, before re-reading config and model, then
                      ``ready()`` when done (whether the new model was taken
                      or refused);
- ``stopping()``      on SIGTERM, before flushing logs and silencing sound.

Backends: systemd-python's ``systemd.daemon.notify`` when it is importable
(the ``pi`` extra installs it on the box), else a few lines of plain socket
code doing the same thing (AF_UNIX datagram to ``$NOTIFY_SOCKET``, ``@`` for
abstract names). Choose one explicitly with ``Notifier(backend=...)`` or
``IMPS_NOTIFY_BACKEND=systemd|socket``; the automatic choice is logged.
Notification never raises into the music: failures are counted and logged
once.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from typing import Callable, Mapping, Optional

log = logging.getLogger(__name__)

BACKENDS = ("auto", "systemd", "socket")


def socket_notify(message: str, env: Mapping[str, str] | None = None) -> bool:
    """Send one notification datagram to ``$NOTIFY_SOCKET``; False when unset.

    The same protocol as ``sd_notify(3)``: newline-separated ``KEY=value``
    assignments in one datagram; a leading ``@`` names an abstract socket.
    """
    env = os.environ if env is None else env
    address = env.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address[0] == "@":
        address = "\0" + address[1:]
    elif address[0] != "/":
        raise OSError(f"NOTIFY_SOCKET={address!r} is neither an absolute path nor an @abstract name")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.sendto(message.encode("utf-8"), address)
    return True


def _systemd_notify() -> Optional[Callable[[str], bool]]:
    try:
        from systemd import daemon  # systemd-python
    except ImportError:
        return None
    return daemon.notify


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, as systemd wants in MONOTONIC_USEC."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    """Talks to systemd for one service process; a no-op outside systemd."""

    def __init__(self, backend: str | None = None, env: Mapping[str, str] | None = None):
        self._env = os.environ if env is None else env
        choice = (backend or self._env.get("IMPS_NOTIFY_BACKEND") or "auto").strip().lower()
        if choice == "auto" and env is not None:
            choice = "socket"  # systemd-python only reads the process environment, not ``env``
        if choice not in BACKENDS:
            raise ValueError(f"unknown notify backend {choice!r}, expected one of: {', '.join(BACKENDS)}")
        send = None
        if choice in ("auto", "systemd"):
            send = _systemd_notify()
            if send is None and choice == "systemd":
                raise ImportError("notify backend 'systemd' needs systemd-python "
                                  "(pip install systemd-python; needs libsystemd-dev and pkg-config)")
        if send is None:
            self.backend = "socket"
            self._send = lambda message: socket_notify(message, self._env)
        else:
            self.backend = "systemd"
            self._send = send
        self.sent = 0
        self.errors = 0
        self._last_ping = float("-inf")
        self._interval = self._watchdog_interval()
        if self.enabled:
            log.info("systemd notify via %s backend to %s; watchdog %s", self.backend,
                     self._env["NOTIFY_SOCKET"],
                     f"every {self._interval:.3f} s" if self._interval else "off")

    @property
    def enabled(self) -> bool:
        """True when started by systemd with a notify socket."""
        return bool(self._env.get("NOTIFY_SOCKET"))

    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings (half of WatchdogSec), None when off."""
        return self._interval

    def _watchdog_interval(self) -> float | None:
        usec = self._env.get("WATCHDOG_USEC")
        pid = self._env.get("WATCHDOG_PID")
        if not usec or (pid and pid.strip() != str(os.getpid())):
            return None
        try:
            value = int(usec)
        except ValueError:
            log.warning("ignoring WATCHDOG_USEC=%r: not an integer", usec)
            return None
        return value / 2e6 if value > 0 else None

    def notify(self, message: str) -> bool:
        """Send raw ``KEY=value`` lines; True if sent, never raises."""
        if not self.enabled:
            return False
        try:
            ok = bool(self._send(message))
        except (OSError, ValueError) as exc:
            ok = False
            if not self.errors:
                log.warning("systemd notify to %s failed (%s); the box plays on",
                            self._env.get("NOTIFY_SOCKET"), exc)
        if ok:
            self.sent += 1
        else:
            self.errors += 1
        return ok

    def ready(self, status: str | None = None) -> bool:
        """READY=1 (after start or reload), with an optional status line."""
        return self.notify("READY=1" + (f"\nSTATUS={_one_line(status)}" if status else ""))

    def status(self, text: str) -> bool:
        """STATUS=, the line `systemctl status imps` shows."""
        return self.notify(f"STATUS={_one_line(text)}")

    def watchdog(self, force: bool = False, healthy: Callable[[], bool] | None = None) -> bool:
        """WATCHDOG=1, at most once per ``watchdog_interval()`` unless forced.

        ``healthy`` is asked only when a ping is due; False withholds it (a dead thread).
        """
        if self._interval is None and not force:
            return False
        now = time.monotonic()
        if not force and now - self._last_ping < self._interval:
            return False
        if healthy is not None and not healthy():
            return False
        self._last_ping = now
        return self.notify("WATCHDOG=1")

    def reloading(self) -> bool:
        """RELOADING=1 with MONOTONIC_USEC (what Type=notify-reload in systemd >= 253 expects)."""
        return self.notify(f"RELOADING=1\nMONOTONIC_USEC={monotonic_usec()}")

    def stopping(self, status: str | None = None) -> bool:
        """STOPPING=1 at the start of a clean shutdown."""
        return self.notify("STOPPING=1" + (f"\nSTATUS={_one_line(status)}" if status else ""))


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
