"""DIN MIDI on a UART: real pseudo-terminals from socat, opened at 31,250 baud.

The byte streams hold what DIN gear really sends (running status, clock and
active sensing between the bytes of other messages, SysEx of any length) and
what a bad cable or a wrong baud rate gives (garbage): nothing may crash,
every valid message must arrive in order, and the garbage must be counted.
"""
import os
import random
import signal
import subprocess
import threading

import mido
import pytest
import serial

from imps.io.midi.din import DinInput, DinOutput, DinParser
from imps.io.midi.settings import MidiSettings
from imps.io.midi.source import MidiInput
from imps.io.midi.voice import MidiOutput
from imps.settings import decode
from support import wait_for


class Socat:
    """A pseudo-terminal pair made by socat: ``box`` is the UART the box opens, ``line`` the other end."""

    def __init__(self, directory):
        self.box = str(directory / "uart")
        self.line = str(directory / "line")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["socat", f"pty,raw,echo=0,link={self.box}",
                                      f"pty,raw,echo=0,link={self.line}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_for(lambda: os.path.exists(self.box) and os.path.exists(self.line)), "socat made no ptys"
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
            self.proc = None
        assert wait_for(lambda: not os.path.exists(self.box))

    def open_line(self):
        return serial.serial_for_url(self.line, baudrate=31250, timeout=0.5)


@pytest.fixture
def uart(tmp_path):
    s = Socat(tmp_path).start()
    yield s
    if s.proc is not None:
        s.stop()


def realtime(msg):
    # not msg.is_realtime: mido 1.3 leaves active sensing out of it
    return msg.bytes()[0] >= 0xF8


class Collect:
    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()

    def __call__(self, msg):
        with self.lock:
            self.messages.append(msg)

    def channel(self):
        with self.lock:
            return [m for m in self.messages if not realtime(m)]

    def realtime(self):
        with self.lock:
            return [m for m in self.messages if realtime(m)]


def encode(messages, rng, realtime_rate=0.3):
    """Messages as a DIN byte stream: running status wherever allowed, and real-time bytes
    (clock, active sensing) inserted between any two bytes, even inside messages and SysEx.
    Returns the bytes and how many real-time bytes went in."""
    out, running, inserted = [], None, 0
    for msg in messages:
        data = msg.bytes()
        status = data[0]
        if status < 0xF0 and status == running:
            data = data[1:]                      # running status: the status byte is implied
        running = status if status < 0xF0 else None
        for b in data:
            out.append(b)
            if rng.random() < realtime_rate:
                out.append(rng.choice((0xF8, 0xFE)))
                inserted += 1
    return bytes(out), inserted


def performance(rng, n=400):
    """A keyboard-and-knobs performance: long runs of one status (running status), SysEx of many sizes."""
    msgs = []
    for i in range(n):
        kind = rng.random()
        ch = rng.choice((0, 0, 0, 10))
        if kind < 0.4:
            msgs.append(mido.Message("note_on", channel=ch, note=rng.randrange(128), velocity=rng.randrange(1, 128)))
        elif kind < 0.55:
            msgs.append(mido.Message("note_on", channel=ch, note=rng.randrange(128), velocity=0))
        elif kind < 0.8:
            msgs.append(mido.Message("control_change", channel=ch, control=rng.randrange(120), value=rng.randrange(128)))
        elif kind < 0.88:
            msgs.append(mido.Message("pitchwheel", channel=ch, pitch=rng.randrange(-8192, 8192)))
        elif kind < 0.94:
            msgs.append(mido.Message("aftertouch", channel=ch, value=rng.randrange(128)))
        elif kind < 0.97:
            msgs.append(mido.Message("program_change", channel=ch, program=rng.randrange(128)))
        else:
            size = rng.choice((0, 1, 3, 127, 1000, 20000))
            msgs.append(mido.Message("sysex", data=[rng.randrange(128) for _ in range(size)]))
    return msgs


def test_parser_running_status_realtime_and_sysex_in_one_stream():
    rng = random.Random(1)
    msgs = performance(rng)
    data, inserted = encode(msgs, rng)
    p = DinParser(max_sysex=65536)
    got = []
    for i in range(0, len(data), 7):            # in odd-sized chunks, as a UART delivers them
        got.extend(p.feed(data[i:i + 7]))
    assert [m for m in got if not realtime(m)] == msgs
    assert len([m for m in got if realtime(m)]) == inserted
    assert p.garbage == 0


def test_parser_counts_garbage_and_keeps_what_follows():
    p = DinParser(max_sysex=16)
    cc = mido.Message("control_change", channel=2, control=7, value=99)
    stream = (bytes([0x3C, 0x40])                   # stray data: no status yet
              + bytes([0xF4, 0xF5, 0xF9, 0xFD])      # undefined status bytes
              + bytes([0x90, 0x3C])                  # a note cut short ...
              + cc.bin()                             # ... by the next message
              + bytes([0xF7])                        # an end of SysEx with no SysEx
              + bytes([0xF0]) + bytes(40) + bytes([0xF7])   # SysEx longer than max_sysex
              + bytes([0xF1, 0x10]) + bytes([0x22])  # system common cancels running status: 0x22 is stray
              + cc.bin())
    got = p.feed(stream)
    assert got == [cc, mido.Message("quarter_frame", frame_type=1, frame_value=0), cc]
    assert p.counts == {"stray_bytes": 4, "undefined": 4, "truncated": 1, "sysex_too_long": 1}


def test_parser_survives_random_bytes_and_resynchronises():
    rng = random.Random(7)
    p = DinParser()
    for _ in range(200):
        p.feed(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))))
    p.feed(bytes([0xF7]))                           # whatever state the noise left, end it
    note = mido.Message("note_on", channel=5, note=64, velocity=90)
    assert p.feed(note.bin()) == [note]
    assert p.garbage > 0


def test_din_input_over_a_pty_delivers_every_message(uart):
    rng = random.Random(3)
    msgs = performance(rng, 300)
    data, inserted = encode(msgs, rng)
    garbage = bytes([0x40, 0x41, 0xF4])             # at the very start: counted, nothing lost after
    got = Collect()
    port = DinInput(uart.box, callback=got, baudrate=31250)
    try:
        assert port.closed is False
        line = uart.open_line()
        for i in range(0, len(garbage + data), 64):
            line.write((garbage + data)[i:i + 64])
        assert wait_for(lambda: len(got.channel()) >= len(msgs), timeout=30), \
            f"{len(got.channel())} of {len(msgs)} messages arrived"
        assert got.channel() == msgs
        assert len(got.realtime()) == inserted
        assert port.stream.counts == {"stray_bytes": 2, "undefined": 1}
        line.close()
    finally:
        port.close()


def test_din_port_without_callback_queues_for_receive(uart):
    port = DinInput(uart.box)
    try:
        line = uart.open_line()
        line.write(bytes([0xB0, 1, 2, 3, 4]))    # two CCs, the second by running status
        first = port.receive()
        second = port.receive()
        assert (first.control, first.value, second.control, second.value) == (1, 2, 3, 4)
    finally:
        port.close()


def test_din_input_source_maps_and_reconnects_when_the_uart_comes_back(uart):
    settings = decode(MidiSettings, dict(input=[{"device": uart.box, "transport": "din", "map": [
        {"type": "control_change", "channel": 1, "number": 7, "control": 0},
        {"type": "note", "channel": 1, "control": 1},
        {"type": "velocity", "channel": 1, "control": 2}]}], scan_interval=0.1))
    events = []
    source = MidiInput(settings)
    source.start(lambda values, channels: events.append((list(channels), list(values))))
    try:
        assert wait_for(lambda: source.status()["devices"] == [uart.box])
        line = uart.open_line()
        line.write(bytes([0xB0, 7, 127, 0x90, 64, 127, 0xF8, 0x80, 64, 0, 0xB0, 9, 1]))
        assert wait_for(lambda: len(events) >= 2)
        assert events[0] == ([0], [1.0])
        assert events[1] == ([1, 2], [64 / 127, 1.0])
        assert wait_for(lambda: source.status()["unmapped"] == 1)   # CC 9 has no rule
        st = source.status()
        assert st["ignored"] == 1 and st["received"] == 5           # the clock is not a gesture
        line.close()
        uart.stop()                                                  # the USB-serial adapter is pulled
        assert wait_for(lambda: source.status()["devices"] == [])
        uart.start()                                                 # ... and plugged back
        assert wait_for(lambda: source.status()["devices"] == [uart.box])
        line = uart.open_line()
        line.write(bytes([0xB0, 7, 0]))
        assert wait_for(lambda: len(events) >= 3)
        assert events[2] == ([0], [0.0])
        assert source.alive()
        line.close()
    finally:
        source.stop()


def test_din_output_over_a_pty_plays_and_silences(uart):
    settings = decode(MidiSettings, dict(output=[{"device": uart.box, "transport": "din", "map": [
        {"type": "note", "channel": 2, "control": 0},
        {"type": "control_change", "channel": 2, "number": 74, "control": 1}]}], scan_interval=0.1))
    voice = MidiOutput(settings).start()
    line = uart.open_line()
    try:
        assert voice.status()["devices"] == [uart.box]
        voice.send("/model", [0.5, 1.0])
        voice.send("/model", [0.25, 1.0])          # CC unchanged: not resent
        voice.send("/silence")
        parser = DinParser()
        got = []
        assert wait_for(lambda: got.extend(parser.feed(line.read(line.in_waiting or 1))) or len(got) >= 6)
        assert got == [mido.Message("note_on", channel=1, note=64, velocity=127),
                       mido.Message("control_change", channel=1, control=74, value=127),
                       mido.Message("note_off", channel=1, note=64, velocity=0),
                       mido.Message("note_on", channel=1, note=32, velocity=127),
                       mido.Message("note_off", channel=1, note=32, velocity=0),
                       mido.Message("control_change", channel=1, control=123, value=0)]
    finally:
        line.close()
        voice.close()
