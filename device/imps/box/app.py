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

Hardware comes from the config as parts (box/parts.py), one list in
``Box.parts``: the OSC receivers, ``[serial]`` the sensor board (and
``[actuators]`` model events back to it), ``[midi]`` MIDI in and out,
``[gpio]`` with ``[panel]`` (buttons, mode LEDs; the engine is the panel's
controller) and ``[pads]``. Each has the same face (start, stop, summary,
describe, threads), so start, the READY line, supervision, the status line
and stop are loops. A missing board or GPIO never stops the box: the panel
LEDs blink the error. ``imps run`` (imps.cli) adds the simulation's parts
(imps.sim.simulate.Simulation) for ``--simulate``.
"""
from __future__ import annotations

import logging
import os
import threading
import time

from ..errors import DeviceError, ImpsError, one_line
from ..io.inputs import InputSource
from ..io.interaction_log import LogWriter
from ..io.midi.voice import MidiOutput
from ..io.notify import Notifier
from ..io.osc import OscReceiver, SoundOut
from ..io.voices import Voices
from ..modes import Mode
from ..threads import Supervisor
from .config import RELOADABLE, Config, load_config
from .engine import Engine
from .health import Health
from .loading import load_model, load_or_explain
from .parts import GpioPart, MidiPart, OscPart, Part, SerialPart, SourcePart, build_parts
from .reload import plan_reload
from .status import status_line

log = logging.getLogger(__name__)

#: How a running box takes each reloadable ``[engine]`` key (config.RELOADABLE); ``[model]`` is a new
#: model (swap_model), and the status loop reads ``[status] interval`` from the running config.
ENGINE_SETTERS = {"mode": Engine.set_mode, "time_scale": Engine.set_time_scale,
                  "response_threshold": Engine.set_threshold}


def _view(kind: type, attribute: str, what: str) -> property:
    """A read-only attribute of the box's part of ``kind`` (None without one)."""
    return property(lambda box: getattr(box.part(kind), attribute, None), doc=what)


class Box:
    """Every part of one box, built from a config; ``start``, ``reload``, ``stop``."""

    def __init__(self, config: Config, notifier: Notifier | None = None):
        self.config = config
        self.notifier = notifier or Notifier()
        self.status_parts = []          # more status-line texts: callables returning a string or None
        self.note = ("", 0.0)           # a short message for the status line (key presses), and when
        self.health = Health()
        self.supervisor = Supervisor()
        self.restart_needed: list[str] = []   # "[osc] control_port" keys changed on disk, not yet running
        self.started_at = time.monotonic()
        self.ready_at: float | None = None
        self._stopped = threading.Event()
        e = config.engine

        model, error = load_or_explain(config)
        if error:
            log.error("%s; playing on in user-only mode (the performer is still logged)", one_line(error))
        self.logwriter = LogWriter(config.log.directory, e.dimension) if config.log.enabled else None
        self.sound = SoundOut(config.osc.sound_host, config.osc.sound_port) if config.osc.enabled else None
        midi = config.midi
        midi_out = MidiOutput(midi) if midi.enabled and midi.output else None
        self.voices = Voices([self.sound, midi_out])   # the engine plays to all of them
        self.engine = Engine(model, e.dimension, voices=self.voices or None, logwriter=self.logwriter,
                             notifier=self.notifier, mode=Mode.parse(e.mode),
                             response_threshold=e.response_threshold, time_scale=e.time_scale,
                             queue_size=e.queue_size, max_dt=e.max_dt)
        if error:
            self.engine.error = error
        self.engine.healthy = self.supervisor.healthy
        self.supervisor.watch("prediction loop", self.engine.thread)
        self.supervisor.watch("scheduler", self.engine.scheduler.thread)
        if self.logwriter is not None:
            self.supervisor.watch("log writer", lambda: self.logwriter.thread)
        #: Everything the box starts beside the engine, in start order (box/parts.py).
        self.parts: list[Part] = []
        for part in build_parts(config, self.engine, midi_out):
            self.add_part(part)

    # ------------------------------------------------------------ parts
    def add_part(self, part: Part) -> None:
        """One more part (before ``start``): started, supervised, reported and stopped with the others."""
        self.parts.append(part)
        for label, thread in part.threads:
            self.supervisor.watch(label, thread)

    def add_source(self, source: InputSource) -> None:
        """A performer input (io/inputs.py) as one more part."""
        self.add_part(SourcePart(source, self.engine.performer_event))

    def part(self, kind: type) -> Part | None:
        """The part of this kind, if the config has one."""
        return next((p for p in self.parts if isinstance(p, kind)), None)

    # Named views of the parts (None when the config has no such part), for health, keys and tests.
    serial = _view(SerialPart, "serial", "the sensor board's SerialInput")
    actuator = _view(SerialPart, "actuator", "its ActuatorOutput")
    gpio = _view(GpioPart, "gpio", "the open gpiozero pin factory (Pins)")
    gpio_error = _view(GpioPart, "error", "why GPIO is off")
    panel = _view(GpioPart, "panel", "the Panel")
    pads = _view(GpioPart, "pads", "the Pads")
    midi_in = _view(MidiPart, "midi_in", "the MidiInput")
    midi_out = _view(MidiPart, "midi_out", "the MidiOutput")

    def receiver(self, name: str) -> OscReceiver:
        """The running OSC receiver by name: "interface" or "control"."""
        return self.part(OscPart).receivers[name]

    def check_health(self, now: float | None = None) -> str | None:
        """Show what is wrong on the panel LEDs (called from the status loop); returns the error kind."""
        now = time.monotonic() if now is None else now
        serial = self.serial
        error = self.health.check(serial.connected if serial is not None else None, self.engine.error, now)
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
        # The parts first: outputs are open before the first note, and inputs queue for the engine.
        for part in self.parts:
            try:
                part.start()
            except DeviceError as exc:
                if not part.optional:
                    raise
                log.error("%s: %s; playing on without it", part.name, exc)
        self.engine.start()
        self.check_health()
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
        osc = self.part(OscPart)
        logs = self.logwriter.path if self.logwriter else "off"
        hardware = [text for part in self.parts if part is not osc and (text := part.describe())]
        return (f"{model}; {osc.describe() if osc else 'OSC off'}; log {logs}"
                + (f"; {', '.join(hardware)}" if hardware else ""))

    def reload(self) -> bool:
        """SIGHUP: re-read config and model. A bad config or model is refused and the running
        configuration plays on; keys that need a restart are named and not applied."""
        self.notifier.reloading()
        try:
            ok = self._reload()
        except ImpsError as exc:   # ConfigError, ModelError: one clear line
            log.error("reload refused, still playing the previous configuration and model: %s", one_line(exc))
            ok = False
        except Exception as exc:   # not foreseen: refused all the same, with the traceback for the bug report
            log.exception("reload refused, still playing the previous configuration and model: %s", one_line(exc))
            ok = False
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
        for key in RELOADABLE["engine"]:
            ENGINE_SETTERS[key](e, getattr(merged.engine, key))
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
        for part in reversed(self.parts):
            try:
                part.stop()
            except Exception:  # a broken device must not block shutdown
                log.exception("stopping %s", part.name)
        self.engine.stop()
        if self.logwriter is not None:
            self.logwriter.close()
        self.voices.close()       # the sound engine's socket; MIDI: all notes off, ports closed

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
