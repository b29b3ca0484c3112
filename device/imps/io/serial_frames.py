"""Serial frames between the sensor board and the Pi: the one Python codec.

The byte layout is written once, in ``firmware/PROTOCOL.md``; the test vectors
in ``firmware/vectors.json`` are shared with the C firmware tests. In short::

    wire  = COBS(raw) 0x00
    raw   = type:u8 seq:u8 n:u8 body crc:u16le
    crc   = CRC-16/CCITT-FALSE over type..body

Everything here is a pure function over bytes, except the two small streaming
decoders (:class:`Decoder` for frames, :class:`LineDecoder` for the plain-text
line mode), which hold a partial chunk and count what they reject. Nothing
here touches a port.
"""
from __future__ import annotations

import binascii
import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import List, Optional, Sequence, Tuple

from ..errors import SerialFrameError
from ..model.rows import clip01

PROTOCOL_VERSION = 1
MAX_CHANNELS = 16
HEADER_LEN = 3
CRC_LEN = 2
#: Longest raw (un-COBSed) frame: a sensor or actuator frame with MAX_CHANNELS values.
MAX_RAW = HEADER_LEN + 2 * MAX_CHANNELS + CRC_LEN
#: Longest COBS chunk between delimiters (raw + one code byte; raw < 254 bytes).
MAX_ENCODED = MAX_RAW + 1
FIXED_ONE = 0xFFFF
HELLO_BODY_LEN = 4


class FrameType(IntEnum):
    SENSOR = 0x01       # board -> Pi: n sensor values
    ACTUATOR = 0x02     # Pi -> board: n actuator values
    HELLO = 0x03        # Pi -> board: who are you? (n = 0, no body)
    HELLO_REPLY = 0x04  # board -> Pi: protocol, firmware version, channel counts


@dataclass(frozen=True)
class BoardInfo:
    """What a board says about itself in a HELLO_REPLY."""
    protocol: int
    firmware: Tuple[int, int]
    channels: int       # sensor channels it sends
    actuators: int      # actuator channels it accepts

    @property
    def version(self) -> str:
        return f"{self.firmware[0]}.{self.firmware[1]}"


@dataclass(frozen=True)
class Frame:
    kind: FrameType
    seq: int
    values: Tuple[int, ...] = ()          # u16 fixed point, SENSOR and ACTUATOR only
    board: Optional[BoardInfo] = None     # HELLO_REPLY only

    def floats(self) -> List[float]:
        """The values as floats in [0, 1]."""
        return [from_fixed(v) for v in self.values]


def _fail(reason: str, message: str) -> SerialFrameError:
    exc = SerialFrameError(message)
    exc.reason = reason  # one of: cobs, short, crc, type, count, length, long
    return exc


# -- wire primitives ---------------------------------------------------------

def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor
    (binascii's CRC-CCITT, in C: the bitwise loop in Python cost far more per frame)."""
    return binascii.crc_hqx(data, crc)


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode ``data``; the result contains no 0x00 (delimiter not added)."""
    out = bytearray()
    block = bytearray()
    for byte in data:
        if byte == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(byte)
            if len(block) == 254:
                out.append(255)
                out += block
                block.clear()
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def cobs_decode(chunk: bytes) -> bytes:
    """Decode one COBS chunk (no delimiter). Raises SerialFrameError (reason 'cobs')."""
    out = bytearray()
    i, n = 0, len(chunk)
    while i < n:
        code = chunk[i]
        if code == 0:
            raise _fail("cobs", f"COBS chunk has a 0x00 inside at byte {i}: not a single frame")
        end = i + code
        if end > n:
            raise _fail("cobs", f"COBS code {code} at byte {i} runs past the end of a "
                                f"{n}-byte chunk (truncated frame or noise)")
        out += chunk[i + 1:end]
        i = end
        if code != 255 and i < n:
            out.append(0)
    return bytes(out)


def to_fixed(x: float) -> int:
    """A control in [0, 1] as u16 fixed point (clipped; NaN becomes 0)."""
    return int(round(clip01(float(x)) * FIXED_ONE))


def from_fixed(v: int) -> float:
    return v / FIXED_ONE


# -- frames ------------------------------------------------------------------

def _body_len(kind: int, n: int) -> int:
    if kind in (FrameType.SENSOR, FrameType.ACTUATOR):
        return 2 * n
    if kind == FrameType.HELLO:
        return 0
    return HELLO_BODY_LEN


def pack_raw(frame: Frame) -> bytes:
    """The raw frame bytes (header, body, CRC) before COBS."""
    kind = FrameType(frame.kind)
    if kind == FrameType.HELLO_REPLY:
        b = frame.board
        if b is None:
            raise _fail("length", "a HELLO_REPLY frame needs board info")
        n = b.channels
        body = bytes([b.protocol, b.firmware[0], b.firmware[1], b.actuators])
    elif kind == FrameType.HELLO:
        n, body = 0, b""
    else:
        n = len(frame.values)
        body = b"".join(int(v).to_bytes(2, "little") for v in frame.values)
    if n > MAX_CHANNELS:
        raise _fail("count", f"{n} channels in a {kind.name} frame, at most {MAX_CHANNELS}")
    raw = bytes([kind, frame.seq & 0xFF, n]) + body
    return raw + crc16(raw).to_bytes(2, "little")


def encode_frame(frame: Frame) -> bytes:
    """A frame as wire bytes: COBS chunk plus the 0x00 delimiter."""
    return cobs_encode(pack_raw(frame)) + b"\x00"


def unpack_raw(raw: bytes) -> Frame:
    """Parse raw (COBS-decoded) frame bytes; raises SerialFrameError with a ``reason``."""
    if len(raw) < HEADER_LEN + CRC_LEN:
        raise _fail("short", f"frame of {len(raw)} bytes is shorter than the "
                             f"{HEADER_LEN + CRC_LEN}-byte minimum (truncated)")
    got = int.from_bytes(raw[-2:], "little")
    want = crc16(raw[:-2])
    if got != want:
        raise _fail("crc", f"CRC mismatch: frame says 0x{got:04X}, bytes give 0x{want:04X} "
                           f"(line noise or a dropped byte)")
    kind, seq, n = raw[0], raw[1], raw[2]
    try:
        kind = FrameType(kind)
    except ValueError:
        raise _fail("type", f"unknown frame type 0x{kind:02X} (firmware newer than this decoder?)") from None
    if n > MAX_CHANNELS:
        raise _fail("count", f"{kind.name} frame claims {n} channels, at most {MAX_CHANNELS}")
    body = raw[HEADER_LEN:-CRC_LEN]
    if len(body) != _body_len(kind, n):
        raise _fail("length", f"{kind.name} frame with n={n} has a {len(body)}-byte body, "
                              f"expected {_body_len(kind, n)}")
    if kind == FrameType.HELLO and n != 0:
        raise _fail("count", f"HELLO frame must have n=0, got {n}")
    if kind == FrameType.HELLO_REPLY:
        info = BoardInfo(protocol=body[0], firmware=(body[1], body[2]), channels=n, actuators=body[3])
        return Frame(kind, seq, (), info)
    values = tuple(int.from_bytes(body[i:i + 2], "little") for i in range(0, len(body), 2))
    return Frame(kind, seq, values)


def decode_frame(chunk: bytes) -> Frame:
    """Decode one COBS chunk (delimiter stripped) into a Frame."""
    if len(chunk) > MAX_ENCODED:
        raise _fail("long", f"chunk of {len(chunk)} bytes is longer than any frame "
                            f"({MAX_ENCODED}): a lost delimiter or noise")
    return unpack_raw(cobs_decode(chunk))


def sensor_frame(seq: int, values: Sequence[float]) -> bytes:
    """Wire bytes of a SENSOR frame carrying float values in [0, 1]."""
    return encode_frame(Frame(FrameType.SENSOR, seq, tuple(to_fixed(v) for v in values)))


def actuator_frame(seq: int, values: Sequence[float]) -> bytes:
    """Wire bytes of an ACTUATOR frame carrying float values in [0, 1]."""
    return encode_frame(Frame(FrameType.ACTUATOR, seq, tuple(to_fixed(v) for v in values)))


def hello_frame(seq: int = 0) -> bytes:
    return encode_frame(Frame(FrameType.HELLO, seq))


def hello_reply_frame(seq: int, info: BoardInfo) -> bytes:
    return encode_frame(Frame(FrameType.HELLO_REPLY, seq, (), info))


# -- streaming ---------------------------------------------------------------

COUNTER_NAMES = ("bytes", "frames", "crc_errors", "bad_frames", "resyncs", "seq_gaps")


@dataclass
class Decoder:
    """Turns arbitrary byte chunks into frames, counting what it rejects.

    Every non-empty run of bytes ending in 0x00 becomes exactly one of: a frame,
    a CRC error or a bad frame (bad COBS, too short or long, unknown type, wrong
    length). So ``frames + crc_errors + bad_frames`` equals the number of
    non-empty delimited chunks seen. ``resyncs`` counts the times a good frame
    followed rejected bytes (the stream came back into sync); ``seq_gaps``
    counts frames missing by sequence number. Never raises on input.
    """
    max_chunk: int = MAX_ENCODED
    bytes: int = 0
    frames: int = 0
    crc_errors: int = 0
    bad_frames: int = 0
    resyncs: int = 0
    seq_gaps: int = 0
    last_error: str = ""
    _buf: bytearray = field(default_factory=bytearray, repr=False)
    _overflow: bool = field(default=False, repr=False)
    _lost: bool = field(default=False, repr=False)
    _last_seq: Optional[int] = field(default=None, repr=False)

    def feed(self, data: bytes) -> List[Frame]:
        data = bytes(data)
        self.bytes += len(data)
        out: List[Frame] = []
        start = 0
        while True:
            i = data.find(0, start)
            if i < 0:
                self._append(data[start:])
                return out
            self._append(data[start:i])
            self._finish(out)
            start = i + 1

    def reset(self) -> None:
        """Forget a partial chunk and the sequence (a new connection); keep counters."""
        self._buf.clear()
        self._overflow = False
        self._last_seq = None

    def counts(self) -> dict:
        return {name: getattr(self, name) for name in COUNTER_NAMES}

    def _append(self, piece: bytes) -> None:
        if not piece or self._overflow:
            return
        if len(self._buf) + len(piece) > self.max_chunk:
            self._overflow = True
            self._buf.clear()
        else:
            self._buf += piece

    def _finish(self, out: List[Frame]) -> None:
        if self._overflow:
            self._overflow = False
            self._reject("bad_frames", f"chunk longer than {self.max_chunk} bytes (lost delimiter or noise)")
            return
        if not self._buf:
            return  # idle delimiter
        chunk = bytes(self._buf)
        self._buf.clear()
        try:
            frame = decode_frame(chunk)
        except SerialFrameError as exc:
            self._reject("crc_errors" if exc.reason == "crc" else "bad_frames", str(exc))
            return
        self.frames += 1
        if self._lost:
            self.resyncs += 1
            self._lost = False
        if self._last_seq is not None:
            self.seq_gaps += (frame.seq - self._last_seq - 1) & 0xFF
        self._last_seq = frame.seq
        out.append(frame)

    def _reject(self, counter: str, message: str) -> None:
        setattr(self, counter, getattr(self, counter) + 1)
        self.last_error = message
        self._lost = True


# -- plain-text line mode ----------------------------------------------------

def parse_text_line(line: bytes | str) -> List[float]:
    """``"0.1,0.5,0.9"`` -> floats. Raises SerialFrameError on anything else."""
    if isinstance(line, bytes):
        try:
            line = line.decode("ascii")
        except UnicodeDecodeError:
            raise _fail("text", f"text line {line[:40]!r} is not ASCII (binary frames in text mode?)") from None
    text = line.strip()
    if not text:
        raise _fail("text", "empty text line")
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise _fail("text", f"text line {text[:40]!r} is not comma-separated numbers") from None
    if not all(math.isfinite(v) for v in values):
        raise _fail("text", f"text line {text[:40]!r} has a non-finite value")
    if len(values) > MAX_CHANNELS:
        raise _fail("text", f"text line has {len(values)} values, at most {MAX_CHANNELS}")
    return values


@dataclass
class LineDecoder:
    """Splits a byte stream into newline-terminated text lines of floats.

    Blank lines are skipped; a line that does not parse, or runs past
    ``max_line`` bytes without a newline, counts as a bad line.
    """
    max_line: int = 256
    bytes: int = 0
    lines: int = 0
    bad_lines: int = 0
    last_error: str = ""
    _buf: bytearray = field(default_factory=bytearray, repr=False)
    _overflow: bool = field(default=False, repr=False)

    def feed(self, data: bytes) -> List[List[float]]:
        data = bytes(data)
        self.bytes += len(data)
        out: List[List[float]] = []
        start = 0
        while True:
            i = data.find(b"\n", start)
            piece = data[start:] if i < 0 else data[start:i]
            if not self._overflow:
                if len(self._buf) + len(piece) > self.max_line:
                    self._overflow = True
                    self._buf.clear()
                else:
                    self._buf += piece
            if i < 0:
                return out
            start = i + 1
            if self._overflow:
                self._overflow = False
                self.bad_lines += 1
                self.last_error = f"text line longer than {self.max_line} bytes"
                continue
            line = bytes(self._buf)
            self._buf.clear()
            if not line.strip():
                continue
            try:
                out.append(parse_text_line(line))
                self.lines += 1
            except SerialFrameError as exc:
                self.bad_lines += 1
                self.last_error = str(exc)

    def reset(self) -> None:
        self._buf.clear()
        self._overflow = False

    def counts(self) -> dict:
        return {"bytes": self.bytes, "text_lines": self.lines, "bad_lines": self.bad_lines}
