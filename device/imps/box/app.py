"""The box: wires config -> inputs -> engine -> scheduler -> sound, log, LEDs.

``Box`` owns every part and the one shutdown path. ``imps run`` builds a Box
from the config file (or defaults), starts it, says READY to systemd, then
the main thread shows a one-line status and handles signals:

- SIGINT / SIGTERM: stop inputs, silence the sound engine, flush the log, exit 0.
- SIGHUP: re-read the config and the model. A bad new config or model is
  refused with one clear log line ("reload refused: ...") and the running one
  keeps playing. Keys that cannot change while running (OSC, serial, GPIO,
  log... see config.RELOADABLE) are named in a warning and in the status line
  ("restart to apply ..."), and the box reports what really runs.

Supervision: every essential thread (engine, scheduler, OSC receivers, serial
reader, log writer) is watched by one Supervisor (threads.py). The engine
feeds the watchdog only while all are alive; when one dies, the status line
says which and why, and the box exits 1 so systemd restarts it.

A model that cannot be used never stops the box: it logs the reason and
keeps logging the performer in user-only mode, rather than crash-looping.

Hardware comes from the config: ``[serial]`` the sensor board (an input
source, and ``[actuators]`` model events back to it), ``[gpio]`` the backend,
``[panel]`` the mode/shutdown buttons and mode LEDs (the engine is the panel's
controller), ``[pads]`` GPIO switches as gesture channels. A missing board or
GPIO never stops the box either: the panel LEDs blink the error.

``imps run --simulate`` is the same box with no hardware: a SimulatedBoard
replays the bundled performance as real serial frames on a pseudo-terminal,
the serial input reads it by its path, and the panel runs on gpiozero's mock
pins, pressed from the terminal keyboard (keys in KEYS_HELP); the LEDs are
drawn in the status line.
"""
from __future__ import annotations

import argparse
import logging
import os
import select
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .. import ranges
from ..errors import ConfigError, DeviceError, ImpsError, ModelError
from ..io.log import LogWriter
from ..io.midi import virtual as midi_virtual
from ..io.midi.midifile import MidiFilePlayer
from ..io.midi.source import MidiInput
from ..io.midi.status import status_text as midi_status
from ..io.midi.voice import MidiOutput
from ..io.notify import Notifier
from ..io.osc import INTERFACE, OscReceiver, SoundOut
from ..io.serial_input import ActuatorOutput, SerialInput
from ..io.voices import Voices
from ..journal import rate_limit_handlers
from ..model.runtime import MDRNN
from ..modes import Mode
from ..panel.mock import render_leds
from ..panel.patterns import NO_MODEL, NO_SENSOR_BOARD
from ..sim import midi as midi_simulation
from ..sim.board import SimulatedBoard
from ..sim.keys import KeyboardPanel
from ..sim.performer import ReplayPerformer, load_performance
from ..threads import Supervisor
from .config import DEFAULT_PERFORMANCE, Config, apply_reloadable, changes, load_config, reloadable
from .controls import control_handlers, interface_handler
from .engine import Engine

if TYPE_CHECKING:              # imported when GPIO is on (see _start_hardware)
    from ..panel.inputs import Pads
    from ..panel.panel import Panel
    from ..panel.pins import Pins

log = logging.getLogger("imps")

#: The sensor board must be away this long before the LEDs say so (not at every start-up).
NO_BOARD_GRACE = 1.0


def load_model(config: Config) -> MDRNN:
    m = config.model
    model = MDRNN(m.resolved_path(), dimension=config.engine.dimension, runtime=m.runtime, threads=m.threads,
                  seed=m.seed, pi_temperature=m.pi_temperature, sigma_temperature=m.sigma_temperature)
    for key in ("pi_temperature", "sigma_temperature"):  # a sidecar may recommend anything: same ranges
        try:
            ranges.check("model", key, getattr(model, key), f"{model.path.name}: {key}")
        except ConfigError as exc:
            raise ModelError(f"{exc} (set [model] {key} to override the sidecar)") from None
    return model


class Box:
    def __init__(self, config: Config, notifier: Notifier | None = None,
                 board: SimulatedBoard | None = None):
        self.config = config
        self.notifier = notifier or Notifier()
        self.board = board              # a simulated sensor board (--simulate) the box stops with itself
        self.sources = []
        self.serial: SerialInput | None = None
        self.actuator: ActuatorOutput | None = None
        self.gpio: Pins | None = None   # the open gpiozero pin factory
        self.panel: Panel | None = None
        self.pads: Pads | None = None
        self.gpio_error: str | None = None
        self.note = ("", 0.0)           # a short message for the status line (key presses), and when
        self._board_down_since: float | None = None
        self.receivers: list[OscReceiver] = []
        self.supervisor = Supervisor()
        self.restart_needed: list[str] = []   # "[osc] control_port" keys changed on disk, not yet running
        self.midi_in: MidiInput | None = None
        self.started_at = time.monotonic()
        self.ready_at: float | None = None
        self._stopped = threading.Event()
        e = config.engine

        model, error = None, None
        try:
            model = load_model(config)
        except Exception as exc:  # ModelError, RuntimeMissingError; anything else is a bug, but not a dead box
            error = str(exc) if isinstance(exc, ImpsError) else f"model {config.model.resolved_path()}: {exc!r}"
            log.error("%s; playing on in user-only mode (the performer is still logged)", error)
        self.logwriter = LogWriter(config.log.directory, e.dimension) if config.log.enabled else None
        self.sound = SoundOut(config.osc.sound_host, config.osc.sound_port) if config.osc.enabled else None
        midi = config.midi
        self.midi_out = MidiOutput(midi.settings) if midi.enabled and midi.settings.output else None
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
    def add_source(self, source) -> None:
        self.sources.append(source)

    def _start_hardware(self) -> None:
        """Serial board, actuators, GPIO panel and pads, as configured (before the engine starts)."""
        c = self.config
        if c.midi.enabled and c.midi.settings.input:
            self.midi_in = MidiInput(c.midi.settings)
            self.sources.append(self.midi_in)
            self.supervisor.watch("MIDI input", lambda: self.midi_in.thread if self.midi_in else None)
        if self.midi_out is not None:
            self.midi_out.start()
            self.supervisor.watch("MIDI output", lambda: self.midi_out.thread)
        if c.serial.enabled:
            self.serial = SerialInput(c.serial.settings, controls=c.engine.dimension - 1)
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
                self.panel = Panel(self.gpio.factory, self.engine, c.panel.settings).start()
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
        error = None
        if self.serial is not None and not self.serial.connected:
            if self._board_down_since is None:
                self._board_down_since = now
            if now - self._board_down_since >= NO_BOARD_GRACE:
                error = NO_SENSOR_BOARD
        else:
            self._board_down_since = None
        if error is None and self.engine.error:
            error = NO_MODEL
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
            routes = [("interface", c.osc.interface_host, c.osc.interface_port,
                       {INTERFACE: interface_handler(self.engine, c.engine.dimension)}),
                      ("control", c.osc.control_host, c.osc.control_port, control_handlers(self.engine))]
            for name, host, port, handlers in routes:
                receiver = OscReceiver(host, port, handlers, name, receive_buffer=c.osc.receive_buffer)
                self.receivers.append(receiver)
                self.supervisor.watch(f"OSC {name} receiver", receiver.thread)
                receiver.start()
        if c.performer.simulate:
            p = c.performer
            rows = load_performance(p.dataset or DEFAULT_PERFORMANCE, p.performance)
            self.sources.append(ReplayPerformer(rows, p.phrase_seconds, p.rest_seconds, p.time_scale, p.loop))
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
            m = self.config.midi.settings
            hardware.append("MIDI " + ", ".join([f"in {d.device!r} ({d.transport})" for d in m.input]
                                                + [f"out {d.device!r} ({d.transport})" for d in m.output]))
        return f"{model}; {ports}; log {logs}" + (f"; {', '.join(hardware)}" if hardware else "")

    def reload(self) -> bool:
        """SIGHUP: re-read config and model. A bad config or model is refused and the running
        configuration plays on; keys that need a restart are named and not applied."""
        self.notifier.reloading()
        try:
            ok = self._reload()
        except ImpsError as exc:   # ConfigError, ModelError: one clear line
            log.error("reload refused, still playing the previous configuration and model: %s", exc)
            ok = False
        except Exception as exc:   # not foreseen: refused all the same, with the traceback for the bug report
            log.exception("reload refused, still playing the previous configuration and model: %s", exc)
            ok = False
        self.notifier.ready(self.status_line())
        return ok

    def _reload(self) -> bool:
        running = self.config
        new = load_config(None if running.source == "defaults" else running.source)
        if new.engine.dimension != running.engine.dimension:
            raise ConfigError(f"{new.source}: [engine] dimension {running.engine.dimension} -> "
                              f"{new.engine.dimension} needs a restart (the model and the log depend on it)")
        merged = apply_reloadable(running, new)
        model = load_model(merged)
        e = self.engine
        e.swap_model(model)
        # The file's live settings, changed or not: a reload puts the box in the state the file says
        # (after a missing model, the configured mode comes back with the good one).
        e.set_mode(merged.engine.mode)
        e.set_time_scale(merged.engine.time_scale)
        e.set_threshold(merged.engine.response_threshold)
        self.restart_needed = [f"[{section}] {key}" for section, key, _, _ in changes(merged, new)
                               if not reloadable(section, key)]
        for section, key, old, value in changes(merged, new):
            log.warning("reload: [%s] %s %r -> %r needs a restart (systemctl restart imps); running with %r",
                        section, key, old, value, old)
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
        s = self.engine.status()
        up = max(time.monotonic() - self.started_at, 1e-9)
        parts = []
        dead = self.supervisor.dead()
        if dead:
            parts.append("THREAD DIED " + "; ".join(d[:80] for d in dead))
        parts += [f"mode {s['mode']}",
                  f"in {s['performer_events']} ({s['performer_events'] / up:.1f}/s)",
                  f"out {s['model_events']} ({s['model_events'] / up:.1f}/s)"]
        if s["predict_us"] is not None:
            parts.append(f"predict {s['predict_us']:.0f} us")
        kernel = sum(r.kernel_drops() or 0 for r in self.receivers)
        parts.append(f"lost {s['lost_inputs'] + kernel}" + (f" ({kernel} in the kernel)" if kernel else ""))
        if s["dropped_notes"]:
            parts.append(f"notes dropped {s['dropped_notes']}")
        if s["bad_inputs"]:
            parts.append(f"bad {s['bad_inputs']}")
        if s["errors"]:
            parts.append(f"engine errors {s['errors']}")
        if self.sound is not None and self.sound.unreachable():
            parts.append("NO SOUND ENGINE")
        for receiver in self.receivers:
            summary = receiver.summary()
            if summary:
                parts.append(f"osc {receiver.name} {summary}")
        if self.serial is not None:
            st = self.serial.status()
            board = "board ok" if st["connected"] else "NO BOARD"
            bad = st.get("crc_errors", 0) + st.get("bad_frames", 0) + st.get("bad_lines", 0)
            if bad:
                board += f" bad {bad}"
            if st["reconnects"]:
                board += f" reconnects {st['reconnects']}"
            if st["mismatch"]:
                board += " CHANNELS MISMATCH"
            parts.append(board)
        if self.actuator is not None:
            parts.append(f"act {self.actuator.sent}")
        if self.midi_in is not None or self.midi_out is not None:
            parts.append(midi_status(self.midi_in, self.midi_out))
        if self.gpio is not None and self.gpio.mock and self.panel is not None:
            parts.append("LEDs " + render_leds(self.gpio.factory, self.panel.config.mode_leds))
        if self.gpio_error:
            parts.append("GPIO OFF")
        if self.panel is not None and self.panel.shutdown_failed:
            parts.append("SHUTDOWN FAILED")
        note, when = self.note
        if note and time.monotonic() - when < 3.0:
            parts.append(note)
        if self.logwriter is not None and self.logwriter.failed:
            parts.append("LOG OFF")
        if s["error"]:
            parts.append(f"ERROR {s['error'][:60]}")
        if self.restart_needed:
            parts.append("restart to apply " + ", ".join(self.restart_needed[:3])
                         + (f" (+{len(self.restart_needed) - 3})" if len(self.restart_needed) > 3 else ""))
        return " | ".join(parts)


def seconds_since_process_start() -> float | None:
    """Wall time since this process was started (Linux /proc; 10 ms resolution), None elsewhere."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime, in clock ticks since boot
        return time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError, AttributeError):
        return None


# ---------------------------------------------------------------- --simulate
SIMULATED_BOARD = "sensor-board"     # the pty's stable link, in a temporary directory
KEYS_HELP = "keys: m mode, M/r reset, S shutdown, u unplug/replug board, g garbage, 1-9 pads, q quit"


def simulation_overrides(link: Path) -> dict:
    """Config for --simulate: the serial input reads the simulated board, GPIO is gpiozero's mock,
    and the shutdown button powers nothing off."""
    return {"serial": {"enabled": True, "port": str(link), "format": "frames"},
            "gpio": {"backend": "mock"},
            "panel": {"enabled": True, "shutdown_command": ["true"]},
            "actuators": {"enabled": True}}


def start_simulated_board(config: Config, link: Path) -> SimulatedBoard:
    """A SimulatedBoard replaying the configured (default: bundled) performance at ``link``."""
    p = config.performer
    path = p.dataset or DEFAULT_PERFORMANCE
    rows = load_performance(path, p.performance)
    if rows.shape[1] != config.engine.dimension:
        raise ConfigError(f"--simulate: {path} performance {p.performance} has dimension {rows.shape[1]}, "
                          f"but [engine] dimension = {config.engine.dimension}")
    board = SimulatedBoard(rows, link, time_scale=p.time_scale, loop=p.loop, max_dt=2.0,
                           phrase_seconds=p.phrase_seconds, rest_seconds=p.rest_seconds)
    return board.start()


class TerminalKeys:
    """Reads single keys from a terminal in cbreak mode on a thread; restores the terminal on stop."""

    def __init__(self, on_key, stream=None):
        self.on_key = on_key
        self.fd = (stream or sys.stdin).fileno()
        self._saved = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "TerminalKeys":
        import termios
        import tty
        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)       # keys arrive one by one, unechoed; Ctrl-C still signals
        self._thread = threading.Thread(target=self._run, name="imps-keys", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if not ready:
                continue
            data = os.read(self.fd, 32)
            if not data:
                return
            for ch in data.decode(errors="ignore"):
                try:
                    self.on_key(ch)
                except Exception:
                    log.exception("key %r", ch)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
        if self._saved is not None:
            import termios
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None


def simulation_keys(box: Box, quit_event: threading.Event):
    """The key handler for --simulate: panel buttons and pads (KeyboardPanel), board unplug, garbage."""
    pads = box.config.pads.pins if box.pads is not None else ()
    mock = box.gpio is not None and box.gpio.mock
    panel = KeyboardPanel(box.gpio.factory, box.config.panel.settings, pads=pads) if mock else None

    def on_key(ch: str) -> None:
        board = box.board
        if ch == "q":
            quit_event.set()
            return
        if ch == "u" and board is not None:
            if board.plugged:
                board.unplug()
                what = "board unplugged (u plugs it back)"
            else:
                board.plug()
                what = "board plugged in"
        elif ch == "g" and board is not None:
            board.inject(os.urandom(200) + b"\x00")
            what = "200 garbage bytes sent"
        elif panel is not None:
            what = panel.handle_key(ch)
        else:
            what = None
        if what:
            box.note = (what, time.monotonic())
    return on_key, panel


# ---------------------------------------------------------------- imps run
def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", help="TOML config file (default: built-in defaults)")
    parser.add_argument("--model", help="model .tflite (overrides [model] path)")
    parser.add_argument("--mode", help="user, call_response, layered or duet")
    parser.add_argument("--simulate", action="store_true",
                        help="a simulated box: a virtual sensor board replaying a recorded performance over "
                             "a pseudo-terminal, and the panel's buttons on the keyboard (" + KEYS_HELP + ")")
    parser.add_argument("--simulate-performer", action="store_true",
                        help="replay a recorded performance as the performer (directly, no serial)")
    parser.add_argument("--midi-file", metavar="FILE.mid",
                        help="a MIDI file as the performer (played from a virtual MIDI device), the model to a "
                             "virtual synth shown in the status line; with --simulate, instead of the sensor board")
    parser.add_argument("--log-dir", help="where interaction logs go (overrides [log] directory)")
    parser.add_argument("--no-log", action="store_true", help="do not write an interaction log")
    parser.add_argument("--seed", type=int, help="seed the sampler for a reproducible run")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("-q", "--quiet", action="store_true", help="no live status line")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def config_from_args(args, extra: dict | None = None) -> Config:
    overrides = {
        "model": {"path": args.model, "seed": args.seed},
        "engine": {"mode": args.mode},
        "log": {"directory": args.log_dir, "enabled": False if args.no_log else None},
        "performer": {"simulate": True if args.simulate_performer else None},
        "status": {"terminal": False if args.quiet else None},
    }
    for section, values in (extra or {}).items():
        overrides.setdefault(section, {}).update(values)
    return load_config(args.config, overrides)


def run_command(args) -> int:
    # On a terminal a log line first clears the live status line (redrawn on the next tick).
    clear = "\r\x1b[K" if sys.stderr.isatty() else ""
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format=clear + "%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    rate_limit_handlers()   # a flood of anything (bad input, a bug per event) is a few journal lines
    simulate = getattr(args, "simulate", False)
    midi_file = getattr(args, "midi_file", None)
    simdir = Path(tempfile.mkdtemp(prefix="imps-simulate-")) if simulate else None
    box = board = keys = keys_panel = player = None
    live = False
    try:
        extra = {}
        if simulate:
            link = simdir / SIMULATED_BOARD
            extra = simulation_overrides(link)
        if midi_file:                # the MIDI file plays the performer, not the sensor board
            extra.update(midi_simulation.overrides(midi_file, config_from_args(args).engine.dimension))
        config = config_from_args(args, extra)
        if simulate and not midi_file:
            board = start_simulated_board(config, link)
        if midi_file:
            midi_virtual.SYSTEM.plug(midi_simulation.SYNTH)
            player = MidiFilePlayer(midi_file, loop=config.performer.loop,
                                    time_scale=config.performer.time_scale).start()
        box = Box(config, board=board)
        stop = threading.Event()
        reload_requested = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGHUP, lambda *_: reload_requested.set())
        box.start()
        live = config.status.terminal and sys.stdout.isatty()
        if simulate:
            log.info("simulated box: %s; %s", f"MIDI file {midi_file}" if midi_file else f"sensor board at {link}",
                     KEYS_HELP)
            if sys.stdin.isatty():
                on_key, keys_panel = simulation_keys(box, stop)
                keys = TerminalKeys(on_key).start()
                box.note = (KEYS_HELP, time.monotonic())
        return _status_loop(box, args, stop, reload_requested, live)
    finally:
        if keys is not None:
            keys.stop()              # the terminal back as it was
        if keys_panel is not None:
            keys_panel.close()       # release buttons still held, before GPIO closes
        if box is not None and box.ready_at is not None:
            final = box.status_line()
            box.stop()
            if live:
                print()
            print(final, file=sys.stderr)
        else:                        # failed while starting: release what did start
            if box is not None:
                box._stop_gpio()
            if board is not None:
                board.stop()
        if player is not None:
            player.stop()
            midi_virtual.SYSTEM.unplug(midi_simulation.SYNTH)
        if simdir is not None:
            shutil.rmtree(simdir, ignore_errors=True)


#: The main loop looks at signals and threads this often, whatever the status interval (up to 60 s) is.
TICK = 0.2


def _status_loop(box: Box, args, stop, reload_requested, live: bool) -> int:
    deadline = time.monotonic() + args.duration if args.duration else None
    last = ""
    next_status = time.monotonic() + box.config.status.interval
    while not stop.wait(min(box.config.status.interval, TICK)):
        if reload_requested.is_set():
            reload_requested.clear()
            box.reload()
        dead = box.supervisor.dead()
        now = time.monotonic()
        if now >= next_status or dead:
            next_status = now + box.config.status.interval   # the running interval (SIGHUP may change it)
            box.check_health()
            line = box.status_line()
            if line != last:
                box.notifier.status(line)
                last = line
            if live:
                width = shutil.get_terminal_size().columns - 1
                print("\r" + line[:width].ljust(min(79, width)), end="", flush=True)
        if dead:
            log.error("thread died: %s; the watchdog pings stopped; exiting so systemd restarts the box",
                      "; ".join(dead))
            return 1
        if deadline and now >= deadline:
            break
    return 0
