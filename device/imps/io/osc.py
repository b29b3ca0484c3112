"""OSC in and out: a strict codec plus thin UDP objects.

Addresses (the contract with controllers and the sound engine):

- in, from controllers:     ``/interface f f ..``  (D - 1 controls in [0, 1])
- out, to the sound engine: ``/performer f ..`` and ``/model f ..`` (the two
  voices, so the sound engine can voice them differently), ``/silence``
- control, on its own port: ``/mode s``, ``/reset``, ``/pause i``,
  ``/pi_temperature f``, ``/sigma_temperature f``, ``/time_scale f``,
  ``/threshold f`` (argument checks and ranges in controls.py)

Encoding floats is a few struct calls (python-osc's builder is ~10x slower).
Decoding is our own and strict: python-osc's parser pads a truncated message
with zeros (",fff" with two floats reads as a made-up 0.0) and logs a root
WARNING per bad bundle element. Here a packet that breaks the encoding in any
way (truncated, trailing bytes, unpadded strings, unknown type tags) is
rejected whole with an OscError. OSC address patterns (``/*_temperature``)
work, matched by ``osc_pattern`` without backtracking and within bounds (not
by python-osc's Dispatcher, whose regexes one packet of stars froze for 40 s),
and one packet gets at most PACKET_BUDGET seconds of handling: a bundle of
thousands of messages has the rest of it counted, not handled.

Bad input is counted by kind and shown (``OscReceiver.summary()`` in the
status line), never swallowed; the journal gets the first of each kind and
then at most one summary line per kind every REPORT_EVERY seconds, so a flood
of garbage cannot flood the journal. What the kernel drops before we read
(the socket's receive buffer full) is counted too (``kernel_drops()``).
"""
from __future__ import annotations

import logging
import os
import queue
import socket
import struct
import threading
import time
from collections import Counter
from typing import Callable

from ..errors import NetworkError, OscError
from ..threads import SupervisedThread, join_or_complain
from .osc_pattern import Matcher, is_pattern

log = logging.getLogger(__name__)

INTERFACE = "/interface"
PERFORMER_VOICE = "/performer"
MODEL_VOICE = "/model"
SILENCE = "/silence"
RECORD = "/record"          # /record FILE.wav starts a recording in the sound engine, /record alone ends it

REPORT_EVERY = 10.0     # seconds between journal lines about one kind of bad input
MAX_BUNDLE_DEPTH = 8    # bundles nest at most this deep (a packet is at most 64 KiB anyway)
PACKET_BUDGET = 0.005   # seconds of handling per packet; the messages after it are counted "over budget"

#: The kinds of bad input an OscReceiver counts, as the status line names them.
KINDS = {"malformed": "malformed", "unknown address": "unknown", "bad arguments": "bad args",
         "busy": "busy", "over budget": "over budget", "handler error": "errors"}


def _padded(text: bytes) -> bytes:
    return text + b"\0" * (4 - len(text) % 4)


def encode_floats(address: str, values) -> bytes:
    """An OSC message with float32 arguments."""
    n = len(values)
    return _padded(address.encode()) + _padded(b"," + b"f" * n) + struct.pack(f">{n}f", *values)


def encode_message(address: str, args=()) -> bytes:
    """An OSC message with string (s), integer (i) and float (f) arguments (the control port's kinds)."""
    tags, data = ",", b""
    for a in args:
        if isinstance(a, str):
            tags, data = tags + "s", data + _padded(a.encode())
        elif isinstance(a, int) and not isinstance(a, bool):
            tags, data = tags + "i", data + struct.pack(">i", a)
        elif isinstance(a, float):
            tags, data = tags + "f", data + struct.pack(">f", a)
        else:
            raise TypeError(f"OSC argument {a!r:.40}: expected a string, an integer or a float")
    return _padded(address.encode()) + _padded(tags.encode()) + data


# ---------------------------------------------------------------- strict decoding
_FIXED = {"i": struct.Struct(">i"), "f": struct.Struct(">f"), "d": struct.Struct(">d"), "h": struct.Struct(">q")}
_CONSTANT = {"T": True, "F": False, "N": None}


def _string(data: bytes, start: int, what: str) -> tuple[str, int]:
    end = data.find(b"\0", start)
    if end < 0:
        raise OscError(f"{what} has no terminating NUL (truncated?)")
    after = (end + 4) & ~3
    if after > len(data):
        raise OscError(f"{what} is not padded to 4 bytes (truncated?)")
    if data[end:after].count(0) != after - end:
        raise OscError(f"{what} padding is not NUL bytes")
    try:
        return data[start:end].decode("utf-8"), after
    except UnicodeDecodeError:
        raise OscError(f"{what} is not UTF-8") from None


def _message(data: bytes) -> tuple[str, list]:
    address, i = _string(data, 0, "address")
    if not address.startswith("/"):
        raise OscError(f"address {address[:40]!r} does not start with /")
    if i == len(data):
        return address, []          # no type tag string at all (OSC 1.0 allows it): no arguments
    tags, i = _string(data, i, "type tags")
    if not tags.startswith(","):
        raise OscError(f"type tags {tags[:20]!r} do not start with ','")
    args: list = []
    for tag in tags[1:]:
        fixed = _FIXED.get(tag)
        if fixed is not None:
            if i + fixed.size > len(data):
                raise OscError(f"type tags {tags[:20]!r} promise more arguments than the packet holds")
            args.append(fixed.unpack_from(data, i)[0])
            i += fixed.size
        elif tag in _CONSTANT:
            args.append(_CONSTANT[tag])
        elif tag in "sS":
            value, i = _string(data, i, f"string argument {len(args) + 1}")
            args.append(value)
        elif tag == "b":
            if i + 4 > len(data):
                raise OscError("blob size missing (truncated?)")
            size = _FIXED["i"].unpack_from(data, i)[0]
            end = i + 4 + size
            after = (end + 3) & ~3
            if size < 0 or after > len(data):
                raise OscError(f"blob of {size} bytes does not fit the packet")
            args.append(data[i + 4:end])
            i = after
        else:
            raise OscError(f"unsupported type tag {tag!r}")
    if i != len(data):
        raise OscError(f"{len(data) - i} bytes after the arguments that the type tags {tags[:20]!r} do not declare")
    return address, args


def _bundle(data: bytes, out: list, depth: int) -> None:
    if depth > MAX_BUNDLE_DEPTH:
        raise OscError(f"bundles nested deeper than {MAX_BUNDLE_DEPTH}")
    if len(data) < 16:
        raise OscError("bundle without a time tag (truncated?)")
    i = 16
    while i < len(data):
        if i + 4 > len(data):
            raise OscError("bundle element size missing (truncated?)")
        size = _FIXED["i"].unpack_from(data, i)[0]
        i += 4
        if size <= 0 or size % 4 or i + size > len(data):
            raise OscError(f"bundle element of {size} bytes does not fit the packet")
        _packet(data[i:i + size], out, depth + 1)
        i += size


def _packet(data: bytes, out: list, depth: int) -> None:
    if len(data) % 4:
        raise OscError(f"packet of {len(data)} bytes is not a multiple of 4")
    if data.startswith(b"#bundle\0"):
        _bundle(data, out, depth)
    else:
        out.append(_message(data))


def decode(data: bytes) -> list[tuple[str, list]]:
    """(address, args) for every message in a packet or bundle; OscError for anything malformed.

    Strict: every byte is accounted for, so a truncated message is rejected, never completed.
    Argument types: i f d h (numbers), s S (strings), b (bytes), T F N (True, False, None).
    """
    if not data:
        raise OscError("empty packet")
    out: list = []
    _packet(bytes(data), out, 0)
    return out


# ---------------------------------------------------------------- sockets
class SoundOut:
    """Sends the two voices to the sound engine over UDP; never raises into the music.

    The socket is connected to the sound engine, so it is bound to the one local
    address that reaches it (127.0.0.1 for a local Pd), never to 0.0.0.0: it listens
    for nothing, and the kernel accepts datagrams only from the sound engine. A
    connected socket also hears "nothing listens there" (ECONNREFUSED), so the
    status line can say the sound engine is away (``unreachable()``).
    """

    def __init__(self, host: str, port: int):
        self.address = (host, port)
        self.sent = 0
        self.errors = 0
        self.last_error_at: float | None = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.connect(self.address)
        except OSError as exc:
            self.sock.close()
            raise _network_error(exc, f"cannot reach the sound engine at {host}:{port}: "
                                      f"{exc.strerror or exc} (check [osc] sound_host)") from None

    def send(self, address: str, values=()) -> None:
        self._send(address, encode_floats(address, values))

    def send_strings(self, address: str, values=()) -> None:
        """A command to the sound engine with string arguments (``/record FILE.wav``)."""
        self._send(address, encode_message(address, [str(v) for v in values]))

    def _send(self, address: str, packet: bytes) -> None:
        try:
            self.sock.send(packet)
            self.sent += 1
        except OSError as exc:  # e.g. ECONNREFUSED: nothing listens there (yet)
            if not self.errors:
                log.warning("sound engine at %s:%d unreachable (%s); still playing", *self.address, exc)
            self.errors += 1
            self.last_error_at = time.monotonic()

    def unreachable(self, within: float = 3.0) -> bool:
        """Whether a send failed in the last ``within`` seconds (the sound engine is not listening)."""
        return self.last_error_at is not None and time.monotonic() - self.last_error_at < within

    def close(self) -> None:
        self.sock.close()


def _network_error(exc: OSError, message: str) -> NetworkError:
    error = NetworkError(message)       # one argument: str() is the message alone, no "[Errno 98]"
    error.errno = exc.errno
    return error


def udp_drops(sock: socket.socket) -> int | None:
    """Datagrams the kernel dropped on this socket (receive buffer full), from /proc/net/udp; None if unknown."""
    try:
        inode = str(os.fstat(sock.fileno()).st_ino)
        for table in ("/proc/net/udp", "/proc/net/udp6"):
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if len(fields) >= 13 and fields[9] == inode:
                        return int(fields[12])
    except (OSError, ValueError, StopIteration):
        pass
    return None


class OscReceiver:
    """A UDP thread routing OSC messages to handlers by address or OSC address pattern.

    ``handlers`` maps address -> callable(args). A handler signals bad arguments
    with ValueError or TypeError (ConfigError included) and an engine too busy to
    take a command with queue.Full; anything else it raises is a bug, logged with
    its traceback. All of them, like malformed packets and unknown addresses, are
    counted by kind in ``errors``; none of them ends the thread.
    """

    def __init__(self, host: str, port: int, handlers: dict[str, Callable[[list], None]], name: str = "osc",
                 receive_buffer: int | None = None):
        self.name = name
        self._literal: dict[str, Callable[[list], None]] = {}  # address -> handler
        self._matcher = Matcher([])
        for address, handler in handlers.items():
            self.route(address, handler)
        self.errors: Counter = Counter()
        self.received = 0
        self.packets = 0
        self._reported: dict[str, tuple[float, int]] = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            if receive_buffer:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise _network_error(exc, f"cannot listen for OSC {name} on {host}:{port}: {exc.strerror or exc} "
                                      f"(another box running? change [osc] {name}_port in the config)") from None
        self.receive_buffer = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        if receive_buffer and self.receive_buffer < receive_buffer:
            log.info("OSC %s: receive buffer %d KiB, asked for %d KiB (the kernel caps it at "
                     "net.core.rmem_max; raise that to get more)", name, self.receive_buffer // 1024,
                     receive_buffer // 1024)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self.thread = SupervisedThread(self._run, f"imps-{name}")

    def route(self, address: str, handler: Callable[[list], None]) -> None:
        """Send messages for ``address`` (or a pattern matching it) to ``handler(args)``."""
        self._literal[address] = handler
        self._matcher = Matcher(self._literal)

    def start(self) -> "OscReceiver":
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        join_or_complain(self.thread, 2.0, f"OSC {self.name} receiver")
        self.sock.close()

    def kernel_drops(self) -> int | None:
        """Datagrams lost in the kernel before this receiver read them (None: not known here)."""
        if self.sock.fileno() < 0:
            return None
        return udp_drops(self.sock)

    def summary(self) -> str:
        """The counted bad input by kind, for the status line ("" when there was none)."""
        return ", ".join(f"{short} {self.errors[kind]}" for kind, short in KINDS.items() if self.errors[kind])

    def _count(self, kind: str, detail: str, traceback: bool = False) -> None:
        self.errors[kind] += 1
        count = self.errors[kind]
        now = time.monotonic()
        last = self._reported.get(kind)
        if last is None:
            log.warning("OSC %s: %s: %s (counted in the status line; repeats summed up here at most every %.0f s)",
                        self.name, kind, detail, REPORT_EVERY, exc_info=traceback)
        elif now - last[0] >= REPORT_EVERY:
            log.warning("OSC %s: %d more %s in the last %.0f s, latest: %s", self.name, count - last[1], kind,
                        now - last[0], detail, exc_info=traceback)
        else:
            return
        self._reported[kind] = (now, count)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                raise  # the socket is gone: the thread ends and the supervisor says so
            self.handle_packet(data)

    def handle_packet(self, data: bytes) -> None:
        """Decode one datagram and call the handlers of each message in it; count whatever is wrong."""
        self.packets += 1
        try:
            messages = decode(data)
        except OscError as exc:
            self._count("malformed", f"{exc} ({len(data)} bytes)")
            return
        deadline = time.monotonic() + PACKET_BUDGET if len(messages) > 1 else None
        for n, (address, args) in enumerate(messages):
            if deadline is not None and time.monotonic() > deadline:
                self._count("over budget", f"{len(messages) - n} of {len(messages)} messages in one packet "
                                           f"left after {PACKET_BUDGET * 1e3:.0f} ms")
                return
            if not is_pattern(address):
                callbacks = [self._literal[address]] if address in self._literal else []
            else:   # an OSC address pattern (/*_temperature): bounded, no backtracking
                try:
                    callbacks = [self._literal[a] for a in self._matcher.match(address)]
                except OscError as exc:
                    self._count("malformed", str(exc))
                    continue
            for callback in callbacks:
                self._call(callback, address, args)
            if not callbacks:
                self._count("unknown address", repr(address[:40]))

    def _call(self, callback, address: str, args: list) -> None:
        try:
            callback(args)
            self.received += 1
        except (ValueError, TypeError) as exc:
            self._count("bad arguments", f"{address[:40]!r} {args!r:.60}: {exc}")
        except queue.Full:
            self._count("busy", f"{address[:40]!r}: the engine's inbox is full")
        except Exception as exc:  # a bug in a handler: loud, counted, and the listener lives on
            self._count("handler error", f"{address[:40]!r} {args!r:.60}: {type(exc).__name__}: {exc}",
                        traceback=True)


__all__ = ["OscReceiver", "SoundOut", "decode", "encode_floats", "encode_message", "udp_drops"]
