"""Hot-plug: keep a port open for every present port name a configured device picks.

MIDI has no "unplugged" event that every transport gives (ALSA ports opened
through python-rtmidi just go quiet), so, like the sensor board's reconnect,
the owner calls :meth:`PortWatcher.scan` every ``scan_interval`` seconds: a
port whose name is gone (or that closed itself, as a failed DIN port does)
is closed and forgotten, and a new matching name is opened. A device that
is plugged in after start, or unplugged and plugged back, is picked up
without a restart. Errors are logged once per message and counted, never
raised to the owner's thread.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, Dict, List, Sequence, Tuple

from ...errors import DeviceError
from .settings import DeviceSettings
from .transports import make_transport, port_names

log = logging.getLogger(__name__)

Key = Tuple[int, str]     # (device index in the config, port name)


class PortWatcher:
    """Ports for ``devices`` (one direction: "input" or "output").

    ``open_port(index, transport, name)`` opens one port (the owner decides the
    callback); ``on_change(index, name, opened)`` hears of every open and close.
    """

    def __init__(self, devices: Sequence[DeviceSettings], direction: str,
                 open_port: Callable, on_change: Callable = lambda i, name, opened: None,
                 max_sysex: int = 65536, system=None):
        self.devices = tuple(devices)
        self.direction = direction
        self.open_port = open_port
        self.on_change = on_change
        self.ports: Dict[Key, object] = {}
        self.lock = threading.Lock()          # guards ports: scans and sends come from different threads
        self.connects = 0
        self.errors = 0
        self.last_error = ""
        self._said: set = set()
        self._transports: List[object] = []
        for d in self.devices:
            try:
                self._transports.append(make_transport(d.transport, d.baudrate, max_sysex, system))
            except DeviceError as exc:
                self._transports.append(None)
                self._complain(str(exc))

    def scan(self) -> None:
        for i, device in enumerate(self.devices):
            transport = self._transports[i]
            if transport is None:
                continue
            try:
                present = set(port_names(transport, self.direction, device.device))
            except OSError as exc:
                self._complain(str(exc))
                present = set()
            for key in [k for k in self.ports if k[0] == i]:
                port = self.ports[key]
                if key[1] not in present or port.closed:
                    why = "closed" if port.closed else "gone"
                    self._drop(key)
                    log.warning("MIDI %s %s %s (watching for it every scan)", self.direction, key[1], why)
            for name in sorted(present):
                if (i, name) in self.ports:
                    continue
                try:
                    port = self.open_port(i, transport, name)
                except OSError as exc:
                    self._complain(f"cannot open MIDI {self.direction} {name!r}: {exc}")
                    continue
                with self.lock:
                    self.ports[(i, name)] = port
                self.connects += 1
                self._said.clear()
                log.info("MIDI %s connected: %s (%s)", self.direction, name, device.transport)
                self.on_change(i, name, True)

    def open_ports(self, index: int) -> List[object]:
        with self.lock:
            return [p for k, p in self.ports.items() if k[0] == index]

    def names(self) -> List[str]:
        with self.lock:
            return sorted({name for _, name in self.ports})

    def close_all(self) -> None:
        for key in list(self.ports):
            self._drop(key)

    def _drop(self, key: Key) -> None:
        with self.lock:
            port = self.ports.pop(key, None)
        if port is None:
            return
        try:
            if hasattr(port, "callback"):
                port.callback = None       # detach first: rtmidi may deadlock closing under a callback
            port.close()
        except Exception:                  # a vanished device may fail to close; it is gone either way
            log.debug("closing MIDI port %s", key[1], exc_info=True)
        self.on_change(key[0], key[1], False)

    def _complain(self, message: str) -> None:
        self.errors += 1
        self.last_error = message
        if message not in self._said:
            self._said.add(message)
            log.warning("%s", message)
