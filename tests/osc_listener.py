"""A stand-in sound engine for tests: collects OSC messages with arrival times."""
from __future__ import annotations

import socket
import threading
import time

from imps.io.osc import decode


class SoundListener:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.messages: list[tuple[float, str, list]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            now = time.monotonic()
            for address, args in decode(data):
                self.messages.append((now, address, args))

    def of(self, address: str, since: float = 0.0):
        return [(t, args) for t, a, args in list(self.messages) if a == address and t >= since]

    def wait_for(self, address: str, count: int = 1, timeout: float = 5.0, since: float = 0.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.of(address, since)
            if len(found) >= count:
                return found
            time.sleep(0.01)
        raise AssertionError(f"expected {count} {address} messages within {timeout} s, got {len(self.of(address, since))}")

    def close(self):
        self._stop.set()
        self._thread.join(1)
        self.sock.close()


def send(port: int, address: str, *values, host: str = "127.0.0.1"):
    """Send one OSC message with float (or string) arguments."""
    from pythonosc.osc_message_builder import OscMessageBuilder
    b = OscMessageBuilder(address)
    for v in values:
        b.add_arg(v)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b.build().dgram, (host, port))
