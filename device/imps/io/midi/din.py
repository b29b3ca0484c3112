"""DIN MIDI on a UART (or any pyserial URL) as mido ports.

Bytes are decoded by mido's own Parser. mido 1.3 leaves out two rules of the
MIDI 1.0 byte stream that DIN gear relies on (mido issue #340, planned for
mido 2): *running status* (a channel message may omit its status byte when
it repeats the previous one; mido drops such messages) and *real-time bytes
anywhere* (clock and active sensing may arrive between the bytes of another
message; mido then loses that message). :class:`DinParser` applies exactly
those two rules in front of mido's parser, which still frames and decodes
every message, and counts what the stream got wrong instead of ignoring it.

On a Raspberry Pi the UART is ``/dev/ttyAMA0`` (GPIO 14 TXD, GPIO 15 RXD;
docs/hardware.md has the opto-isolated input circuit). 31,250 baud is asked
for directly: the PL011's 48 MHz clock divides to it exactly.
"""
from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Callable, List, Optional

import mido
import mido.ports
import serial

from ...threads import SupervisedThread, join_or_complain
from .ports import CallbackInput

log = logging.getLogger(__name__)

SYSEX, EOX = 0xF0, 0xF7
UNDEFINED = frozenset((0xF4, 0xF5, 0xF9, 0xFD))


class DinParser:
    """MIDI bytes -> mido messages, with running status and real-time bytes anywhere.

    ``counts`` says what was dropped: ``stray_bytes`` (data with no status to
    belong to), ``undefined`` (status bytes MIDI 1.0 leaves undefined),
    ``truncated`` (a message cut short by the next status byte) and
    ``sysex_too_long`` (longer than ``max_sysex`` data bytes; skipped whole).
    """

    def __init__(self, max_sysex: int = 65536):
        self.max_sysex = max_sysex
        self.counts: Counter = Counter()
        self.reset()

    def reset(self) -> None:
        self._parser = mido.Parser()
        self._running: Optional[int] = None   # the last channel status byte
        self._pending = 0                     # bytes of an unfinished message inside mido's parser
        self._sysex: Optional[int] = None     # data bytes so far while inside a SysEx
        self._skipping = False                # inside a SysEx that is too long

    @property
    def garbage(self) -> int:
        return sum(self.counts.values())

    def feed(self, data: bytes) -> List[mido.Message]:
        out: List[mido.Message] = []
        for b in data:
            if b >= 0xF8:                                  # real time: anywhere, touches nothing
                if b in UNDEFINED:
                    self.counts["undefined"] += 1
                else:
                    out.append(mido.Message.from_bytes((b,)))
                continue
            if b >= 0x80:
                self._status(b, out)
            elif self._skipping:
                continue
            elif self._sysex is not None:
                if self._sysex >= self.max_sysex:
                    self.counts["sysex_too_long"] += 1
                    self._parser = mido.Parser()           # drop what mido has gathered
                    self._sysex, self._pending, self._skipping = None, 0, True
                    continue
                self._sysex += 1
                self._feed(b, out)
            elif self._pending:
                self._feed(b, out)
            elif self._running is not None:                # running status: the status byte is implied
                self._feed(self._running, out)
                self._feed(b, out)
            else:
                self.counts["stray_bytes"] += 1
        return out

    def _status(self, b: int, out: list) -> None:
        skipped, self._skipping = self._skipping, False
        if b == EOX:
            if self._sysex is not None:
                self._feed(b, out)
            elif not skipped:
                self.counts["truncated" if self._pending else "stray_bytes"] += 1
                self._parser.feed_byte(b)                  # mido drops its unfinished message on EOX
                self._pending = 0
            self._sysex = None
            self._running = None
            return
        if self._pending:                                  # the previous message never finished
            self.counts["truncated"] += 1
        self._sysex = None
        if b in UNDEFINED:
            self.counts["undefined"] += 1
            self._parser, self._pending, self._running = mido.Parser(), 0, None
            return
        self._running = b if b < 0xF0 else None           # system common messages cancel running status
        if b == SYSEX:
            self._sysex = 0
        self._feed(b, out)

    def _feed(self, b: int, out: list) -> None:
        parser = self._parser
        parser.feed_byte(b)
        self._pending += 1
        if parser.pending():
            out.extend(parser)
            self._pending = 0
            if b == EOX:
                self._sysex = None


class DinInput(CallbackInput):
    """A DIN MIDI input on a serial port: a reader thread feeds :class:`DinParser` and
    calls ``callback(msg)`` (or queues messages for ``receive()`` when there is none).

    If the port fails (a USB-serial adapter unplugged) the port closes itself
    and ``last_error`` says why; the watcher opens it again when it is back.
    """

    _device_type = "DIN MIDI"

    def __init__(self, name: str, callback: Optional[Callable] = None, baudrate: int = 31250,
                 max_sysex: int = 65536, opener=serial.serial_for_url):
        self.callback = callback
        self.stream = DinParser(max_sysex)
        self.received = 0
        self.last_error = ""
        super().__init__(name, baudrate=baudrate, opener=opener)
        self._thread.start()   # only now: mido's BaseInput sets up its message queue after _open

    def _open(self, baudrate: int, opener):
        try:
            self._serial = opener(self.name, baudrate=baudrate, timeout=0.1)
            self._serial.reset_input_buffer()   # bytes queued while nobody listened are stale
        except (serial.SerialException, OSError, ValueError) as exc:
            raise OSError(f"cannot open DIN MIDI input {self.name} at {baudrate} baud: {exc} "
                          "(UART not enabled, in use, or no permission: dialout group?)") from None
        self._stop = threading.Event()
        self._thread = SupervisedThread(self._run, "imps-midi-din-in")

    def _run(self) -> None:
        port = self._serial
        try:
            while not self._stop.is_set():
                data = port.read(max(1, port.in_waiting))
                if not data:
                    continue
                for msg in self.stream.feed(data):
                    self.received += 1
                    self._deliver(msg)
        except (serial.SerialException, OSError, TypeError) as exc:   # pyserial raises TypeError on a closed fd
            if not self._stop.is_set():
                self.last_error = f"DIN MIDI input {self.name} lost: {exc}"
                log.warning("%s", self.last_error)
        finally:
            self.closed = True
            try:
                port.close()
            except (serial.SerialException, OSError):
                pass

    def _close(self) -> None:
        self._stop.set()
        if threading.current_thread() is not self._thread:
            join_or_complain(self._thread, 1.0, f"DIN MIDI reader for {self.name}")

    def counts(self) -> dict:
        return dict(self.stream.counts)


class DinOutput(mido.ports.BaseOutput):
    """A DIN MIDI output on a serial port: each message's bytes written as they are."""

    _device_type = "DIN MIDI"

    def __init__(self, name: str, baudrate: int = 31250, opener=serial.serial_for_url):
        super().__init__(name, baudrate=baudrate, opener=opener)

    def _open(self, baudrate: int, opener):
        try:
            self._serial = opener(self.name, baudrate=baudrate, timeout=0.1, write_timeout=0.5)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise OSError(f"cannot open DIN MIDI output {self.name} at {baudrate} baud: {exc} "
                          "(UART not enabled, in use, or no permission: dialout group?)") from None

    def _send(self, msg: mido.Message) -> None:
        try:
            self._serial.write(msg.bin())
        except (serial.SerialException, OSError, TypeError) as exc:
            self.closed = True
            raise OSError(f"DIN MIDI output {self.name} lost: {exc}") from None

    def _close(self) -> None:
        try:
            self._serial.close()
        except (serial.SerialException, OSError):
            pass
