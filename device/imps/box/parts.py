"""The box's parts: one small face for every kind of hardware, one list in the Box.

A part is whatever the box starts beside its engine: the OSC receivers, the
sensor board and its actuators, MIDI in and out, the GPIO panel and pads, a
replayed performer. Every part has the same face:

- ``start()``: open and run; returns promptly (a part that needs a thread runs one);
- ``stop()``: release everything; safe twice, and after a failed start;
- ``summary()``: its words in the status line ("" when it has none);
- ``describe()``: its words in the READY line ("" when it has none);
- ``threads``: (label, thread or getter) the Supervisor watches: "alive" is all of them alive;
- ``optional``: a part whose start fails with a DeviceError (no such device) leaves the box
  playing without it; the OSC ports are not optional (a port in use is an error at start).

``Box`` keeps them in one list (``Box.parts``, built by ``build_parts``) and
loops over it to start, describe, supervise, report and stop, so a new input
or output is one class here and one line in ``build_parts``.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..errors import DeviceError
from ..io.inputs import Emit, InputSource
from ..io.midi.source import MidiInput
from ..io.midi.status import status_text as midi_status
from ..io.midi.voice import MidiOutput
from ..io.osc import OscReceiver
from ..io.serial_input import ActuatorOutput, SerialInput
from .controls import osc_routes

if TYPE_CHECKING:              # imported when GPIO is on (GpioPart.start)
    from ..panel.inputs import Pads
    from ..panel.panel import Panel
    from ..panel.pins import Pins

log = logging.getLogger(__name__)


class Part:
    """The face every part has (the defaults: nothing to say, no thread)."""

    name = "part"
    threads: tuple = ()
    optional = True

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def summary(self) -> str:
        return ""

    def describe(self) -> str:
        return ""


class OscPart(Part):
    """The two OSC receivers: ``/interface`` gestures and the control addresses (box/controls.py).
    Their sockets are bound at start, so a port in use fails the start, not the Box's construction."""

    name = "OSC"
    optional = False

    def __init__(self, osc, engine, dimension: int):
        self.osc = osc
        self.routes = osc_routes(osc, engine, dimension)
        self.receivers: dict[str, OscReceiver] = {}          # by name, once started
        self.threads = tuple((f"OSC {name} receiver", lambda name=name: self._thread(name))
                             for name, _, _, _ in self.routes)

    def _thread(self, name: str):
        receiver = self.receivers.get(name)
        return receiver.thread if receiver is not None else None

    def start(self) -> None:
        for name, host, port, handlers in self.routes:
            self.receivers[name] = OscReceiver(host, port, handlers, name,
                                               receive_buffer=self.osc.receive_buffer).start()

    def stop(self) -> None:
        for receiver in self.receivers.values():
            receiver.stop()

    def summary(self) -> str:
        return " | ".join(f"osc {r.name} {text}" for r in self.receivers.values() if (text := r.summary()))

    def describe(self) -> str:
        i, c = self.receivers.get("interface"), self.receivers.get("control")
        if i is None or c is None:
            return "OSC not started"
        return (f"OSC in :{i.port} control :{c.port} (receive buffers {i.receive_buffer // 1024} KiB) "
                f"sound -> {self.osc.sound_host}:{self.osc.sound_port}")

    def kernel_drops(self) -> int:
        return sum(r.kernel_drops() or 0 for r in self.receivers.values())


class SourcePart(Part):
    """Any input source (io/inputs.py) started with the engine's ``emit``: a replayed performer, ..."""

    def __init__(self, source: InputSource, emit: Emit):
        self.source = source
        self.emit = emit
        self.name = f"input {getattr(source, 'name', source)}"

    def start(self) -> None:
        self.source.start(self.emit)

    def stop(self) -> None:
        self.source.stop()


class SerialPart(SourcePart):
    """The sensor board (``[serial]``) and, with ``[actuators]``, model events back to it."""

    name = "sensor board"

    def __init__(self, config, engine):
        self.serial = SerialInput(config.serial, control_count=config.engine.dimension - 1)
        super().__init__(self.serial, engine.performer_event)
        self.name = "sensor board"
        self.actuator = None
        if config.actuators.enabled:
            self.actuator = ActuatorOutput(self.serial, config.actuators.controls)
            engine.actuators.append(self.actuator)
        self.threads = (("serial reader", lambda: self.serial.thread),)

    def summary(self) -> str:
        return self.serial.summary() + (f" | {self.actuator.summary()}" if self.actuator else "")

    def describe(self) -> str:
        return f"sensor board {', '.join(self.serial.settings.port)}" + (" with actuators" if self.actuator else "")


class MidiPart(Part):
    """``[midi]``: the input devices as a gesture source, the output devices (one of the engine's voices)."""

    name = "MIDI"

    def __init__(self, settings, engine, midi_out: MidiOutput | None):
        self.settings = settings
        self.midi_in = MidiInput(settings) if settings.input else None
        self.midi_out = midi_out
        self.emit = engine.performer_event
        self.threads = tuple([("MIDI input", lambda: self.midi_in.thread)] if self.midi_in else []) + \
            tuple([("MIDI output", lambda: self.midi_out.thread)] if midi_out else [])

    def start(self) -> None:
        if self.midi_out is not None:
            self.midi_out.start()
        if self.midi_in is not None:
            self.midi_in.start(self.emit)

    def stop(self) -> None:          # the output is closed with the voices (all notes off first)
        if self.midi_in is not None:
            self.midi_in.stop()

    def summary(self) -> str:
        return midi_status(self.midi_in, self.midi_out)

    def describe(self) -> str:
        m = self.settings
        return "MIDI " + ", ".join([f"in {d.device!r} ({d.transport})" for d in m.input]
                                   + [f"out {d.device!r} ({d.transport})" for d in m.output])


class GpioPart(Part):
    """``[gpio]`` with ``[panel]`` (mode and shutdown buttons, mode LEDs) and ``[pads]`` (gesture channels).
    No GPIO (not a Pi, pins busy) never stops the box: it plays on, and says GPIO OFF."""

    name = "GPIO"

    def __init__(self, config, engine):
        self.config = config
        self.engine = engine
        self.gpio: Pins | None = None   # the open gpiozero pin factory
        self.panel: Panel | None = None
        self.pads: Pads | None = None
        self.error: str | None = None

    def start(self) -> None:
        # gpiozero is imported here, not at the top: a box without GPIO never pays for it.
        from ..panel.inputs import Pads
        from ..panel.panel import Panel
        from ..panel.pins import open_pins
        c = self.config
        try:
            self.gpio = open_pins(c.gpio.backend)
            if c.panel.enabled:
                self.panel = Panel(self.gpio.factory, self.engine, c.panel).start()
                self.engine.on_mode_change(self._show_mode)
            if c.pads.pins:
                self.pads = Pads(self.gpio.factory, c.pads.pins, c.pads.controls,
                                 pull_up=c.pads.pull_up, debounce=c.pads.debounce)
                self.pads.start(self.engine.performer_event)
        except DeviceError as exc:
            self.error = str(exc)
            log.error("%s; playing on without the GPIO panel and pads", exc)
            self.stop()

    def _show_mode(self, mode) -> None:
        panel = self.panel
        if panel is not None:
            panel.show_mode(mode)

    def stop(self) -> None:
        """Pads and panel released, LEDs off, pins closed."""
        pads, self.pads = self.pads, None
        panel, self.panel = self.panel, None
        gpio, self.gpio = self.gpio, None
        for what, thing, close in (("the GPIO pads", pads, lambda: pads.stop()),
                                   ("the GPIO panel", panel, lambda: panel.stop()),
                                   ("GPIO", gpio, lambda: gpio.close())):
            if thing is not None:
                try:
                    close()
                except Exception:      # a broken device must not block shutdown
                    log.exception("stopping %s", what)

    def summary(self) -> str:
        if self.error:
            return "GPIO OFF"
        return "SHUTDOWN FAILED" if self.panel is not None and self.panel.shutdown_failed else ""

    def describe(self) -> str:
        if self.gpio is None:
            return "GPIO off" if self.error else ""
        return (f"GPIO {self.gpio.name}" + (" panel" if self.panel else "")
                + (f" pads {list(self.config.pads.pins)}" if self.pads else ""))


def build_parts(config, engine, midi_out: MidiOutput | None) -> list[Part]:
    """The parts a config asks for, in the order they start (and the status line lists them)."""
    parts: list[Part] = []
    if config.osc.enabled:
        parts.append(OscPart(config.osc, engine, config.engine.dimension))
    if config.serial.enabled:
        parts.append(SerialPart(config, engine))
    if config.midi.enabled and (config.midi.input or midi_out is not None):
        parts.append(MidiPart(config.midi, engine, midi_out))
    if config.gpio.backend != "none":
        parts.append(GpioPart(config, engine))
    return parts
