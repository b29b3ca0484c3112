"""OSC in and out: a pure codec plus thin UDP objects.

Addresses (the contract with controllers and the sound engine):

- in, from controllers:     ``/interface f f ..``  (D - 1 controls in [0, 1])
- out, to the sound engine: ``/performer f ..`` and ``/model f ..`` (the two
  voices, so the sound engine can voice them differently), ``/silence``
- control, on its own port: ``/mode s``, ``/reset``, ``/pause i``,
  ``/pi_temperature f``, ``/sigma_temperature f``, ``/time_scale f``,
  ``/threshold f``

Encoding floats is a few struct calls (python-osc's builder is ~10x slower),
decoding uses python-osc's parser. Bad packets are counted, never swallowed.
"""
from __future__ import annotations

import logging
import socket
import struct
import threading
from collections import Counter
from typing import Callable

from pythonosc.osc_message import OscMessage
from pythonosc.osc_packet import OscPacket, ParseError

log = logging.getLogger(__name__)

INTERFACE = "/interface"
PERFORMER_VOICE = "/performer"
MODEL_VOICE = "/model"
SILENCE = "/silence"


def _padded(text: bytes) -> bytes:
    return text + b"\0" * (4 - len(text) % 4)


def encode_floats(address: str, values) -> bytes:
    """An OSC message with float32 arguments."""
    n = len(values)
    return _padded(address.encode()) + _padded(b"," + b"f" * n) + struct.pack(f">{n}f", *values)


def decode(data: bytes) -> list[tuple[str, list]]:
    """(address, args) for every message in a packet or bundle; raises ParseError."""
    return [(m.message.address, list(m.message.params)) for m in OscPacket(data).messages]


class SoundOut:
    """Sends the two voices to the sound engine over UDP; never raises into the music."""

    def __init__(self, host: str, port: int):
        self.address = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sent = 0
        self.errors = 0

    def send(self, address: str, values=()) -> None:
        try:
            self.sock.sendto(encode_floats(address, values), self.address)
            self.sent += 1
        except OSError as exc:
            if not self.errors:
                log.warning("sound engine at %s:%d unreachable (%s); still playing", *self.address, exc)
            self.errors += 1

    def close(self) -> None:
        self.sock.close()


class OscReceiver:
    """A UDP thread routing OSC messages to handlers by address.

    ``handlers`` maps address -> callable(args). Unknown addresses, malformed
    packets and handlers that raise are counted in ``errors`` and logged once
    per kind, never fatal.
    """

    def __init__(self, host: str, port: int, handlers: dict[str, Callable[[list], None]], name: str = "osc"):
        self.handlers = handlers
        self.name = name
        self.errors: Counter = Counter()
        self.received = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise OSError(exc.errno, f"cannot listen for OSC {name} on {host}:{port}: {exc.strerror} "
                                     "(another box running? change the port in the config)") from None
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"imps-{name}", daemon=True)

    def start(self) -> "OscReceiver":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self.sock.close()

    def _count(self, kind: str, detail: str) -> None:
        if not self.errors[kind]:
            log.warning("OSC %s: %s (%s); counting further ones", self.name, kind, detail)
        self.errors[kind] += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                raise
            try:
                messages = decode(data)
            except (ParseError, ValueError, struct.error, IndexError) as exc:
                self._count("malformed packet", str(exc)[:80])
                continue
            for address, args in messages:
                handler = self.handlers.get(address)
                if handler is None:
                    self._count("unknown address", address[:40])
                    continue
                try:
                    handler(args)
                    self.received += 1
                except (ValueError, TypeError) as exc:
                    self._count("bad arguments", f"{address} {args!r:.60}: {exc}")


__all__ = ["OscMessage", "OscReceiver", "SoundOut", "decode", "encode_floats"]
