"""The sensor board as an input source, and model events back to its actuators.

:class:`SerialInput` is an :class:`imps.io.inputs.InputSource`. It opens the board
with ``serial.serial_for_url``, so a config value is the whole seam: a real
port, a pseudo-terminal path, ``loop://`` or ``hwgrep://`` all work unchanged.
A reader thread decodes binary frames (firmware/PROTOCOL.md) or plain-text
lines, calibrates each board channel (raw min/max -> [0, 1]), maps it to a
control index and emits only values that changed. If the board goes away it
closes the port, looks for it again every ``retry_interval`` seconds and
carries on when it is back; nothing is raised to the engine.

Port specs (``port``: one string or a list, tried in order on every attempt):

- ``"/dev/serial/by-id/usb-Arduino*"``: a path, glob patterns allowed. The
  by-id names survive replugging, unlike ``/dev/ttyACM0``.
- ``"usb:2341"`` or ``"usb:2341:8036"``: the first port with that USB vendor
  (and product) ID, found with ``serial.tools.list_ports``.
- anything with ``://`` is handed to ``serial_for_url`` as it is.

:class:`ActuatorOutput` sends model events (controls in [0, 1]) to the board
as ACTUATOR frames over the same connection.
"""
from __future__ import annotations

import glob
import logging
import os
import threading
import time
from typing import Callable, ClassVar, List, Optional, Sequence, Tuple, Union

import serial
import serial.tools.list_ports

from ..errors import ConfigError
from ..model.rows import to_unit
from ..settings import Section, choice
from ..threads import join_or_complain, start_thread
from .inputs import Emit
from .serial_frames import (
    BoardInfo, Decoder, FrameType, LineDecoder, actuator_frame, hello_frame,
)

log = logging.getLogger(__name__)

#: Where an Arduino-class board usually shows up, most specific first.
DEFAULT_PORTS = ("/dev/serial/by-id/usb-Arduino*", "usb:2341", "usb:2a03")
FORMATS = ("frames", "text")
#: Bad frames or lines are logged at most once per this many seconds (and always counted).
GARBAGE_LOG_INTERVAL = 10.0


class SerialSettings(Section):
    """The ``[serial]`` section. ``channels[i]`` is the control index board channel i
    drives (None drops the channel; no list means channel i -> control i).
    ``calibration[i]`` is the (raw_min, raw_max) of board channel i: frames carry
    0..1, text lines whatever the board prints (0..1023 for raw ADC counts).
    Unknown keys, types and ranges are checked by ``settings.decode``."""
    section: ClassVar[str] = "serial"
    enabled: bool = False                # the box opens the board (SerialInput ignores it)
    port: Union[str, Tuple[str, ...]] = DEFAULT_PORTS
    format: str = "frames"
    baudrate: int = 115200
    channels: Optional[List[Optional[int]]] = None
    calibration: Optional[List[Tuple[float, float]]] = None
    retry_interval: float = 0.5
    read_timeout: float = 0.05
    hello_interval: float = 1.0
    hello_attempts: int = 5

    def __post_init__(self):
        super().__post_init__()
        choice("format", self.format, FORMATS)
        if isinstance(self.port, str):
            self.port = (self.port,)
        self.port = tuple(self.port)
        if not self.port:
            raise ConfigError("port = []: expected a path, a usb:VID[:PID] or a URL")
        for i, (lo, hi) in enumerate(self.calibration or ()):
            if lo == hi:
                raise ConfigError(f"calibration = {list(self.calibration)!r}: board channel {i} "
                                  f"has raw_min == raw_max == {lo}")
        for spec in self.port:
            if spec.startswith("usb:"):
                _parse_usb(spec)


def _parse_usb(spec: str) -> Tuple[int, Optional[int]]:
    parts = spec[4:].split(":")
    try:
        if len(parts) > 2:
            raise ValueError
        return int(parts[0], 16), (int(parts[1], 16) if len(parts) > 1 and parts[1] else None)
    except ValueError:
        raise ConfigError(f"port = {spec!r}: expected usb:VID or usb:VID:PID in hex, "
                          f"e.g. usb:2341:8036") from None


def resolve_port(spec: str) -> Optional[str]:
    """The URL or device path a port spec points at right now, or None if absent."""
    if "://" in spec:
        return spec
    if spec.startswith("usb:"):
        vid, pid = _parse_usb(spec)
        for p in sorted(serial.tools.list_ports.comports(), key=lambda p: p.device):
            if p.vid == vid and (pid is None or p.pid == pid):
                return p.device
        return None
    if any(c in spec for c in "*?["):
        matches = sorted(glob.glob(spec))
        return matches[0] if matches else None
    return spec if os.path.exists(spec) else None


class SerialInput:
    """The sensor board, over pyserial, as an input source (see the module docstring)."""

    name = "serial"

    def __init__(self, settings: Optional[SerialSettings] = None, *, control_count: Optional[int] = None,
                 opener: Callable[..., serial.SerialBase] = serial.serial_for_url, **overrides):
        if settings is not None and overrides:
            raise ConfigError("give SerialInput either settings or keyword overrides, not both")
        self.settings = settings or SerialSettings(**overrides)
        #: The box's control count ([engine] dimension - 1), to check the board's channels against.
        self.control_count = control_count
        self._opener = opener
        s = self.settings
        self._decoder = Decoder() if s.format == "frames" else None
        self._lines = LineDecoder() if s.format == "text" else None
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._lock = threading.Lock()           # guards _port for writers
        self._port: Optional[serial.SerialBase] = None
        self._thread: Optional[threading.Thread] = None
        self._emit: Optional[Emit] = None
        self._last: Optional[List[float]] = None
        self._tx_seq = 0
        self.board: Optional[BoardInfo] = None
        self.port_name: Optional[str] = None
        self.last_error = ""
        #: Why the board's channels do not fit the box's controls ("" when they do).
        self.mismatch = ""
        self._channels_checked = False
        self._hello_pending = False      # a HELLO went out and no reply came yet
        self._garbage_logged = 0         # bad chunks already reported in the log
        self._garbage_logged_at = -GARBAGE_LOG_INTERVAL
        self.counters = dict(connects=0, reconnects=0, events=0, ignored_frames=0, unasked_replies=0,
                             tx_frames=0, tx_dropped=0, callback_errors=0)

    # -- InputSource ----------------------------------------------------------
    def start(self, emit: Emit) -> None:
        if self._thread is not None:
            raise RuntimeError("SerialInput already started")
        self._emit = emit
        self._stop.clear()
        self._thread = start_thread(self._run, "imps-serial-reader")

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        join_or_complain(thread, timeout, f"serial reader for {self.port_name}")

    def status(self) -> dict:
        st = dict(connected=self._connected.is_set(), port=self.port_name,
                  board=(f"fw {self.board.version}, {self.board.channels} ch, {self.board.actuators} act"
                         if self.board else None),
                  last_error=self.last_error, mismatch=self.mismatch, **self.counters)
        if self._decoder is not None:
            st.update(self._decoder.counts())
        if self._lines is not None:
            st.update(self._lines.counts())
        return st

    def summary(self) -> str:
        """The board in the box's status line: ``board ok``, ``NO BOARD``, plus what went wrong."""
        st = self.status()
        text = "board ok" if st["connected"] else "NO BOARD"
        bad = st.get("crc_errors", 0) + st.get("bad_frames", 0) + st.get("bad_lines", 0)
        if bad:
            text += f" bad {bad}"
        if st["reconnects"]:
            text += f" reconnects {st['reconnects']}"
        if st["mismatch"]:
            text += " CHANNELS MISMATCH"
        return text

    @property
    def thread(self):
        """The reader thread while started (the box's supervisor watches it)."""
        return self._thread

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # -- writing (hello, actuator frames) ---------------------------------------
    def send(self, data: bytes) -> bool:
        """Write bytes to the board if connected; False (and counted) if not."""
        with self._lock:
            port = self._port
            if port is None:
                self.counters["tx_dropped"] += 1
                return False
            try:
                port.write(data)
            except (serial.SerialException, OSError) as exc:
                self.counters["tx_dropped"] += 1
                self.last_error = f"write to {self.port_name} failed: {exc}"
                return False
        self.counters["tx_frames"] += 1
        return True

    def next_seq(self) -> int:
        seq, self._tx_seq = self._tx_seq, (self._tx_seq + 1) & 0xFF
        return seq

    # -- the reader thread -----------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            port = self._open()
            if port is None:
                self._stop.wait(self.settings.retry_interval)
                continue
            try:
                self._serve(port)
            except (serial.SerialException, OSError) as exc:
                self.last_error = (f"sensor board at {self.port_name} lost: {exc} "
                                   f"(unplugged? reconnecting every {self.settings.retry_interval} s)")
                log.warning("%s", self.last_error)
            finally:
                self._close()

    def _open(self) -> Optional[serial.SerialBase]:
        s = self.settings
        url = None
        for spec in s.port:
            url = resolve_port(spec)
            if url:
                break
        if url is None:
            msg = (f"no sensor board at {', '.join(s.port)} (unplugged, or set the serial port "
                   f"to its /dev/serial/by-id path or usb:VID:PID)")
            if msg != self.last_error:
                log.warning("%s", msg)
            self.last_error = msg
            return None
        try:
            port = self._opener(url, baudrate=s.baudrate, timeout=s.read_timeout, write_timeout=0.5)
            port.reset_input_buffer()   # bytes queued while nobody listened are stale
        except (serial.SerialException, OSError, ValueError) as exc:
            msg = f"cannot open sensor board {url}: {exc} (in use by another program, or no permission: dialout group?)"
            if msg != self.last_error:
                log.warning("%s", msg)
            self.last_error = msg
            return None
        with self._lock:
            self._port = port
        self.port_name = url
        self.board = None
        self._last = None
        self._channels_checked = False
        self._hello_pending = False
        if self._decoder is not None:
            self._decoder.reset()
        if self._lines is not None:
            self._lines.reset()
        self.counters["connects"] += 1
        self.counters["reconnects"] = self.counters["connects"] - 1
        self.last_error = ""
        self._connected.set()
        log.info("sensor board connected at %s (%s mode)", url, s.format)
        return port

    def _close(self) -> None:
        self._connected.clear()
        with self._lock:
            port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                pass

    def _serve(self, port: serial.SerialBase) -> None:
        s = self.settings
        hellos, last_hello = 0, -1e9
        while not self._stop.is_set():
            if (self._decoder is not None and self.board is None and hellos < s.hello_attempts
                    and time.monotonic() - last_hello >= s.hello_interval):
                if self.send(hello_frame(self.next_seq())):
                    self._hello_pending = True
                hellos, last_hello = hellos + 1, time.monotonic()
            data = port.read(max(1, port.in_waiting))
            if data:
                self._feed(data)
            self._report_garbage()

    def _feed(self, data: bytes) -> None:
        if self._decoder is None:
            for values in self._lines.feed(data):
                self._deliver(values)
            return
        for frame in self._decoder.feed(data):
            if frame.kind == FrameType.SENSOR:
                self._deliver(frame.floats())
            elif frame.kind == FrameType.HELLO_REPLY and self._hello_pending:
                self._hello_reply(frame.board)
            elif frame.kind == FrameType.HELLO_REPLY:
                # Not an answer to our HELLO (a second board on the line, noise that passed the
                # CRC, a replayed capture): the board we asked keeps its identity.
                self.counters["unasked_replies"] += 1
                if self.counters["unasked_replies"] == 1:
                    log.warning("sensor board at %s: a HELLO_REPLY nobody asked for (claims firmware %s, "
                                "%d channels), ignored; still %s", self.port_name, frame.board.version,
                                frame.board.channels, f"firmware {self.board.version}" if self.board else "unknown")
            else:
                self.counters["ignored_frames"] += 1

    def _report_garbage(self) -> None:
        """Bad frames or lines are counted always and logged at most every GARBAGE_LOG_INTERVAL s."""
        decoder = self._decoder or self._lines
        counts = decoder.counts()
        bad = counts.get("crc_errors", 0) + counts.get("bad_frames", 0) + counts.get("bad_lines", 0)
        if bad == self._garbage_logged:
            return
        now = time.monotonic()
        if now - self._garbage_logged_at < GARBAGE_LOG_INTERVAL:
            return
        log.warning("sensor board at %s: %d bad %s since the last report (%d in all), last: %s "
                    "(noise on the cable, a wrong baud rate or format, or another program on the port)",
                    self.port_name, bad - self._garbage_logged, "frames" if self._decoder else "lines", bad,
                    decoder.last_error)
        self._garbage_logged, self._garbage_logged_at = bad, now

    def _hello_reply(self, board: BoardInfo) -> None:
        self.board = board
        self._hello_pending = False
        log.info("sensor board at %s: protocol %d, firmware %s, %d sensor channels, %d actuators",
                 self.port_name, board.protocol, board.version, board.channels, board.actuators)
        self._check_channels(board.channels)

    def _check_channels(self, n: int) -> None:
        """One clear error when the board's channel count does not fit the box's controls."""
        self._channels_checked = True
        mapped, controls = self.settings.channels, self.control_count
        problem = ""
        if mapped is not None:
            if len(mapped) > n:
                problem = (f"[serial] channels maps {len(mapped)} board channels but the board sends {n}: "
                           f"the controls mapped from channels {n}..{len(mapped) - 1} never move. "
                           f"Fix: give channels one entry per board channel, or flash the firmware with "
                           f"SENSOR_COUNT {len(mapped)}")
        elif controls is not None and n != controls:
            fix = ", ".join([str(i) for i in range(min(n, controls))] + ["false"] * max(0, n - controls))
            problem = (f"the board sends {n} channels but the box has {controls} controls "
                       f"([engine] dimension = {controls + 1}): "
                       + (f"channels {controls}..{n - 1} are ignored" if n > controls
                          else f"controls {n}..{controls - 1} never move")
                       + f". Fix: flash the firmware with SENSOR_COUNT {controls} "
                         f"(firmware/imps_sensor_board/config.h), or set [serial] channels = [{fix}], "
                         f"or use a model of dimension {n + 1}")
        if problem and problem != self.mismatch:
            log.error("sensor board at %s: %s", self.port_name, problem)
        elif not problem and self.mismatch:
            log.info("sensor board at %s: its %d channels fit the box now", self.port_name, n)
        self.mismatch = problem

    def _deliver(self, raw: Sequence[float]) -> None:
        s = self.settings
        if not self._channels_checked:
            self._check_channels(len(raw))
        values: List[float] = []
        channels: List[int] = []
        for i, v in enumerate(raw):
            if s.channels is None:
                if self.control_count is not None and i >= self.control_count:
                    continue   # no such control (said once, in _check_channels)
                control = i
            elif i < len(s.channels) and s.channels[i] is not None:
                control = s.channels[i]
            else:
                continue
            if s.calibration is not None and i < len(s.calibration):
                v = to_unit(v, *s.calibration[i])
            else:
                v = 0.0 if v < 0.0 else 1.0 if v > 1.0 else v
            values.append(v)
            channels.append(control)
        if not values or values == self._last:
            return   # a heartbeat, or a channel we do not use: not a gesture
        self._last = values
        self.counters["events"] += 1
        try:
            self._emit(values, channels)
        except Exception:  # the engine's bug must not kill the reader; say so loudly
            self.counters["callback_errors"] += 1
            if self.counters["callback_errors"] == 1:
                log.exception("the input callback raised on serial values %s", values)


class ActuatorOutput:
    """Model events -> ACTUATOR frames to the board.

    ``controls[j]`` is the control index (0-based, dt not counted) that drives
    actuator channel j; with the reference firmware channel 0 is the servo and
    channel 1 the status LED (on at >= 0.5). Call :meth:`send` with a model
    event's controls (or :meth:`send_row` with a whole ``(dt, x1..xn)`` row).
    While the board is away frames are dropped and counted, never queued.
    """

    def __init__(self, link: SerialInput, controls: Sequence[int] = (0,)):
        if link.settings.format != "frames":
            raise ConfigError("actuator output needs the serial link in 'frames' format, not 'text'")
        if not controls or len(controls) > 16 or any(c < 0 for c in controls):
            raise ConfigError(f"actuator controls {list(controls)!r}: give 1 to 16 control indices >= 0")
        self.link = link
        self.control_indices = tuple(controls)
        self.sent = 0
        self.dropped = 0

    def send(self, values: Sequence[float]) -> bool:
        """Send one model event's control values (dt not counted) as an ACTUATOR frame."""
        try:
            values = [values[c] for c in self.control_indices]
        except IndexError:
            raise ConfigError(f"actuator controls {list(self.control_indices)} need an event with more than "
                              f"{len(values)} controls") from None
        if self.link.send(actuator_frame(self.link.next_seq(), values)):
            self.sent += 1
            return True
        self.dropped += 1
        return False

    def send_row(self, row: Sequence[float]) -> bool:
        return self.send(list(row[1:]))

    def status(self) -> dict:
        return {"actuator_sent": self.sent, "actuator_dropped": self.dropped}

    def summary(self) -> str:
        """The actuators in the box's status line."""
        return f"act {self.sent}"
