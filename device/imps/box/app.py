"""The box: wiring and lifecycle. Config -> inputs -> engine -> scheduler -> sound, log, LEDs.

``Box`` builds every part from the config, starts them in order, says READY to
systemd and owns the one shutdown path (``stop``: inputs off, silence, flush
the log). ``reload`` (SIGHUP) swaps in a new config and model, or refuses a bad
one with one clear line and plays on. Each policy has its own home:

- which model, and the user-only fallback when it cannot load: ``loading.py``
- the OSC control and ``/interface`` routes: ``controls.py``
- what the panel LEDs say is wrong: ``health.py``
- what SIGHUP may change and what waits for a restart: ``reload.py``
- the one-line status and the main thread's loop: ``status.py``

Supervision: every essential thread (engine, scheduler, OSC receivers, serial
reader, log writer, MIDI) is watched by one Supervisor (imps.threads). The
engine feeds the watchdog only while all are alive; when one dies, the status
line says which and why, and ``imps run`` exits 1 so systemd restarts it.

Hardware comes from the config: ``[serial]`` the sensor board (an input
source, and ``[actuators]`` model events back to it), ``[gpio]`` the backend,
``[panel]`` the mode/shutdown buttons and mode LEDs (the engine is the panel's
controller), ``[pads]`` GPIO switches as gesture channels, ``[midi]`` MIDI in
and out. A missing board or GPIO never stops the box: the panel LEDs blink
the error. ``imps run`` (imps.cli) composes a Box with the simulation
(imps.sim) for ``--simulate``.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from ..errors import DeviceError, ImpsError
from ..io.inputs import InputSource
from ..io.log import LogWriter
from ..io.midi.source import MidiInput
from ..io.midi.voice import MidiOutput
from ..io.notify import Notifier
from ..io.osc import OscReceiver, SoundOut
from ..io.serial_input import ActuatorOutput, SerialInput
from ..io.voices import Voices
from ..modes import Mode
from ..threads import Supervisor
from .config import Config, load_config
from .controls import osc_routes
from .engine import Engine
from .health import Health
from .loading import load_model, load_or_explain
from .reload import plan_reload
from .status import status_line

if TYPE_CHECKING:              # imported when GPIO is on (see _start_hardware)
    from ..panel.inputs import Pads
    from ..panel.panel import Panel
    from ..panel.pins import Pins

log = logging.getLogger("imps")


class Box:
    """Every part of one box, built from a config; ``start``, ``reload``, ``stop``."""

    def __init__(self, config: Config, notifier: Notifier | None = None, board=None):
        self.config = config
        self.notifier = notifier or Notifier()
        self.board = board              # a simulated sensor board (--simulate) the box stops with itself
        self.status_parts = []          # more status-line texts: callables returning a string or None
        self.sources: list[InputSource] = []   # every performer input but OSC (a receiver, below)
        self.serial: SerialInput | None = None
        self.actuator: ActuatorOutput | None = None
        self.gpio: Pins | None = None   # the open gpiozero pin factory
        self.panel: Panel | None = None
        self.pads: Pads | None = None
        self.gpio_error: str | None = None
        self.note = ("", 0.0)           # a short message for the status line (key presses), and when
        self.health = Health()
        self.receivers: list[OscReceiver] = []
        self.supervisor = Supervisor()
        self.restart_needed: list[str] = []   # "[osc] control_port" keys changed on disk, not yet running
        self.midi_in: MidiInput | None = None
        self.started_at = time.monotonic()
        self.ready_at: float | None = None
        self.last_reload: tuple[float, str] | None = None   # (wall time, "reloaded ..." or "refused: why")
        self._stopped = threading.Event()
        e = config.engine

        model, error = load_or_explain(config)
        if error:
            log.error("%s; playing on in user-only mode (the performer is still logged)", error)
        self.logwriter = LogWriter(config.log.directory, e.dimension) if config.log.enabled else None
        self.sound = SoundOut(config.osc.sound_host, config.osc.sound_port) if config.osc.enabled else None
        midi = config.midi
        self.midi_out = MidiOutput(midi) if midi.enabled and midi.output else None
        self.voices = Voices([self.sound, self.midi_out])   # the engine plays to all of them
        self.engine = Engine(model, e.dimension, self.voices or None, self.logwriter, self.notifier, Mode.parse(e.mode),
                             e.response_threshold, e.time_scale, e.queue_size, e.max_dt)
        if error:
            self.engine.error = error
        self.engine.healthy = self.supervisor.healthy
        self.supervisor.watch("prediction loop", self.engine.thread)
        self.supervisor.watch("scheduler", self.engine.scheduler.thread)
        if self.logwriter is not None:
            self.supervisor.watch("log writer", lambda: self.logwriter.thread)

    # ------------------------------------------------------------ parts
    def add_source(self, source: InputSource) -> None:
        self.sources.append(source)

    def _start_hardware(self) -> None:
        """Serial board, actuators, GPIO panel and pads, as configured (before the engine starts)."""
        c = self.config
        if c.midi.enabled and c.midi.input:
            self.midi_in = MidiInput(c.midi)
            self.sources.append(self.midi_in)
            self.supervisor.watch("MIDI input", lambda: self.midi_in.thread if self.midi_in else None)
        if self.midi_out is not None:
            self.midi_out.start()
            self.supervisor.watch("MIDI output", lambda: self.midi_out.thread)
        if c.serial.enabled:
            self.serial = SerialInput(c.serial, controls=c.engine.dimension - 1)
            self.sources.append(self.serial)
            self.supervisor.watch("serial reader", lambda: self.serial.thread if self.serial else None)
            if c.actuators.enabled:
                self.actuator = ActuatorOutput(self.serial, c.actuators.controls)
                self.engine.actuators.append(self.actuator)
        if c.gpio.backend == "none":
            return
        # gpiozero is imported here, not at the top: a box without GPIO never pays for it.
        from ..panel.inputs import Pads
        from ..panel.panel import Panel
        from ..panel.pins import open_pins
        try:
            self.gpio = open_pins(c.gpio.backend)
            if c.panel.enabled:
                self.panel = Panel(self.gpio.factory, self.engine, c.panel).start()
                self.engine.on_mode_change(self._show_mode)
            if c.pads.pins:
                self.pads = Pads(self.gpio.factory, c.pads.pins, c.pads.controls,
                                 pull_up=c.pads.pull_up, debounce=c.pads.debounce)
                self.pads.setup(self.engine.performer_event)
                self.sources.append(self.pads)
        except DeviceError as exc:  # no GPIO (not a Pi, pins busy): play on without the panel
            self.gpio_error = str(exc)
            log.error("%s; playing on without the GPIO panel and pads", exc)
            self._stop_gpio()
        self.check_health()

    def _show_mode(self, mode) -> None:
        panel = self.panel
        if panel is not None:
            panel.show_mode(mode)

    def check_health(self, now: float | None = None) -> str | None:
        """Show what is wrong on the panel LEDs (called from the status loop); returns the error kind."""
        now = time.monotonic() if now is None else now
        error = self.health.check(self.serial.connected if self.serial is not None else None,
                                  self.engine.error, now)
        if self.panel is not None:
            self.panel.show_error(error)
        return error

    def start(self) -> "Box":
        try:
            return self._start()
        except BaseException:
            self.stop(quiet=True)   # release what did start (ports, threads, GPIO), then say why
            raise

    def _start(self) -> "Box":
        c = self.config
        self._start_hardware()
        self.engine.start()
        if c.osc.enabled:
            for name, host, port, handlers in osc_routes(c.osc, self.engine, c.engine.dimension):
                receiver = OscReceiver(host, port, handlers, name, receive_buffer=c.osc.receive_buffer)
                self.receivers.append(receiver)
                self.supervisor.watch(f"OSC {name} receiver", receiver.thread)
                receiver.start()
        for source in self.sources:
            try:
                source.start(self.engine.performer_event)
            except DeviceError as exc:
                log.error("input %s: %s; playing on without it", getattr(source, "name", source), exc)
        self.ready_at = time.monotonic()
        self.notifier.ready(self.status_line())
        since_exec = seconds_since_process_start()
        log.info("ready %s(set up in %.0f ms): %s",
                 f"{since_exec * 1e3:.0f} ms after process start " if since_exec is not None else "",
                 (self.ready_at - self.started_at) * 1e3, self.describe())
        return self

    def describe(self) -> str:
        m = self.engine.model
        model = f"{m.path.name} ({m.runtime}, {m.shape.units} units)" if m else f"no model ({self.engine.error})"
        ports = (f"OSC in :{self.receivers[0].port} control :{self.receivers[1].port} "
                 f"(receive buffers {self.receivers[0].receive_buffer // 1024} KiB) "
                 f"sound -> {self.config.osc.sound_host}:{self.config.osc.sound_port}"
                 if len(self.receivers) == 2 else "OSC off")
        logs = self.logwriter.path if self.logwriter else "off"
        hardware = []
        if self.serial is not None:
            hardware.append(f"sensor board {', '.join(self.serial.settings.port)}"
                            + (" with actuators" if self.actuator else ""))
        if self.gpio is not None:
            hardware.append(f"GPIO {self.gpio.name}" + (" panel" if self.panel else "")
                            + (f" pads {list(self.config.pads.pins)}" if self.pads else ""))
        elif self.gpio_error:
            hardware.append("GPIO off")
        if self.midi_in is not None or self.midi_out is not None:
            m = self.config.midi
            hardware.append("MIDI " + ", ".join([f"in {d.device!r} ({d.transport})" for d in m.input]
                                                + [f"out {d.device!r} ({d.transport})" for d in m.output]))
        return f"{model}; {ports}; log {logs}" + (f"; {', '.join(hardware)}" if hardware else "")

    def reload(self) -> bool:
        """SIGHUP: re-read config and model. A bad config or model is refused and the running
        configuration plays on; keys that need a restart are named and not applied."""
        self.notifier.reloading()
        try:
            ok = self._reload()
            self.last_reload = (time.time(), f"reloaded {self.config.source}")
        except ImpsError as exc:   # ConfigError, ModelError: one clear line
            log.error("reload refused, still playing the previous configuration and model: %s", exc)
            ok = False
            self.last_reload = (time.time(), f"refused: {exc}")
        except Exception as exc:   # not foreseen: refused all the same, with the traceback for the bug report
            log.exception("reload refused, still playing the previous configuration and model: %s", exc)
            ok = False
            self.last_reload = (time.time(), f"refused: {type(exc).__name__}: {exc}")
        self.notifier.ready(self.status_line())
        return ok

    def _reload(self) -> bool:
        running = self.config
        new = load_config(None if running.source == "defaults" else running.source)
        plan = plan_reload(running, new)
        merged = plan.config
        model = load_model(merged)
        e = self.engine
        e.swap_model(model)
        # The file's live settings, changed or not: a reload puts the box in the state the file says
        # (after a missing model, the configured mode comes back with the good one).
        e.set_mode(merged.engine.mode)
        e.set_time_scale(merged.engine.time_scale)
        e.set_threshold(merged.engine.response_threshold)
        self.restart_needed = plan.restart_needed
        plan.warn()
        self.config = merged
        log.info("reloaded %s with model %s", new.source, model.path)
        return True

    def stop(self, quiet: bool = False) -> None:
        """The one shutdown path: inputs off, silence, flush the log (``quiet``: a failed start)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if not quiet:
            self.notifier.stopping()
        for source in self.sources:
            try:
                source.stop()
            except Exception:  # a broken device must not block shutdown
                log.exception("stopping %s", getattr(source, "name", source))
        for receiver in self.receivers:
            receiver.stop()
        self.engine.stop()
        self._stop_gpio()
        if self.board is not None:
            self.board.stop()
        if self.logwriter is not None:
            self.logwriter.close()
        self.voices.close()       # the sound engine's socket; MIDI: all notes off, ports closed

    def _stop_gpio(self) -> None:
        """LEDs off, pins released."""
        panel, self.panel = self.panel, None
        gpio, self.gpio = self.gpio, None
        try:
            if panel is not None:
                panel.stop()
        except Exception:
            log.exception("stopping the GPIO panel")
        try:
            if gpio is not None:
                gpio.close()
        except Exception:
            log.exception("closing GPIO")

    # ------------------------------------------------------------ status
    def status_line(self) -> str:
        return status_line(self)


def seconds_since_process_start() -> float | None:
    """Wall time since this process was started (Linux /proc; 10 ms resolution), None elsewhere."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime, in clock ticks since boot
        return time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError, AttributeError):
        return None
