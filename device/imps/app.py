"""The box: wires config -> inputs -> engine -> scheduler -> sound, log, LEDs.

``Box`` owns every part and the one shutdown path. ``imps run`` builds a Box
from the config file (or defaults), starts it, says READY to systemd, then
the main thread shows a one-line status and handles signals:

- SIGINT / SIGTERM: stop inputs, silence the sound engine, flush the log, exit 0.
- SIGHUP: re-read the config and the model; a bad new model is refused with
  one clear log line and the running one keeps playing.

A model that cannot be used never stops the box: it logs the reason and
keeps logging the performer in user-only mode, rather than crash-looping.

Hardware comes from the config: ``[serial]`` the sensor board (an input
source, and ``[actuators]`` model events back to it), ``[gpio]`` the backend,
``[panel]`` the mode/shutdown buttons and mode LEDs (the engine is the panel's
controller), ``[pads]`` GPIO switches as gesture channels. A missing board or
GPIO never stops the box either: the panel LEDs blink the error.

``imps run --simulate`` is the same box with no hardware: a SimulatedBoard
replays the bundled performance as real serial frames on a pseudo-terminal,
the serial input reads it by its path, and the panel runs on the fake GPIO
backend, pressed from the terminal keyboard (keys in KEYS_HELP); the LEDs are
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

from .buttons import NO_MODEL, NO_SENSOR_BOARD, DigitalInputs, Panel
from .config import DEFAULT_PERFORMANCE, Config, load_config
from .engine import Engine
from .errors import ConfigError, DeviceError, ImpsError, ModelError
from .gpio import get_backend
from .gpio.fake import FakeBackend
from .gpio.keyboard import KeyboardPanel, render_leds
from .interaction_log import LogWriter
from .modes import Mode
from .notify import Notifier
from .osc_io import INTERFACE, OscReceiver, SoundOut
from .performer import ReplayPerformer, load_performance
from .runtime import MDRNN
from .serial_input import ActuatorOutput, SerialInput
from .simulated_board import SimulatedBoard

log = logging.getLogger("imps")

#: The sensor board must be away this long before the LEDs say so (not at every start-up).
NO_BOARD_GRACE = 1.0


def load_model(config: Config) -> MDRNN:
    m = config.model
    return MDRNN(m.resolved_path(), dimension=config.engine.dimension, runtime=m.runtime, threads=m.threads,
                 seed=m.seed, pi_temperature=m.pi_temperature, sigma_temperature=m.sigma_temperature)


class Box:
    def __init__(self, config: Config, notifier: Notifier | None = None,
                 board: SimulatedBoard | None = None):
        self.config = config
        self.notifier = notifier or Notifier()
        self.board = board              # a simulated sensor board (--simulate) the box stops with itself
        self.sources = []
        self.serial: SerialInput | None = None
        self.actuator: ActuatorOutput | None = None
        self.gpio = None
        self.panel: Panel | None = None
        self.pads: DigitalInputs | None = None
        self.gpio_error: str | None = None
        self.note = ("", 0.0)           # a short message for the status line (key presses), and when
        self._board_down_since: float | None = None
        self.receivers: list[OscReceiver] = []
        self.started_at = time.monotonic()
        self.ready_at: float | None = None
        self._stopped = threading.Event()
        e = config.engine

        model, error = None, None
        try:
            model = load_model(config)
        except ImpsError as exc:  # ModelError, RuntimeMissingError
            error = str(exc)
            log.error("%s; playing on in user-only mode (the performer is still logged)", exc)
        self.logwriter = LogWriter(config.log.directory, e.dimension) if config.log.enabled else None
        self.sound = SoundOut(config.osc.sound_host, config.osc.sound_port) if config.osc.enabled else None
        self.engine = Engine(model, e.dimension, self.sound, self.logwriter, self.notifier, Mode.parse(e.mode),
                             e.response_threshold, e.time_scale, e.queue_size, e.max_dt)
        if error:
            self.engine.error = error

    # ------------------------------------------------------------ parts
    def _control_handlers(self) -> dict:
        engine = self.engine
        return {
            "/mode": lambda a: engine.set_mode(str(a[0])),
            "/reset": lambda a: engine.reset_state(),
            "/pause": lambda a: engine.set_paused(bool(a[0]) if a else True),
            "/pi_temperature": lambda a: engine.set_temperatures(pi=_positive(a[0])),
            "/sigma_temperature": lambda a: engine.set_temperatures(sigma=_non_negative(a[0])),
            "/time_scale": lambda a: engine.set_time_scale(float(a[0])),
            "/threshold": lambda a: engine.set_threshold(float(a[0])),
        }

    def _interface_handler(self, args) -> None:
        if len(args) != self.config.engine.dimension - 1:
            raise ValueError(f"/interface wants {self.config.engine.dimension - 1} floats, got {len(args)}")
        self.engine.performer_event(args, None)

    def add_source(self, source) -> None:
        self.sources.append(source)

    def _start_hardware(self) -> None:
        """Serial board, actuators, GPIO panel and pads, as configured (before the engine starts)."""
        c = self.config
        if c.serial.enabled:
            self.serial = SerialInput(c.serial.settings)
            self.sources.append(self.serial)
            if c.actuators.enabled:
                self.actuator = ActuatorOutput(self.serial, c.actuators.controls)
                self.engine.actuators.append(self.actuator)
        if c.gpio.backend == "none":
            return
        try:
            self.gpio = get_backend(c.gpio.backend)
            if c.panel.enabled:
                panel = Panel(self.gpio, self.engine, c.panel.settings)
                panel.start()
                self.panel = panel
                self.engine.on_mode_change(self._show_mode)
            if c.pads.pins:
                self.pads = DigitalInputs(self.gpio, c.pads.pins, c.pads.controls,
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
        c = self.config
        self._start_hardware()
        self.engine.start()
        if c.osc.enabled:
            self.receivers.append(OscReceiver(c.osc.interface_host, c.osc.interface_port,
                                              {INTERFACE: self._interface_handler}, "interface").start())
            self.receivers.append(OscReceiver(c.osc.control_host, c.osc.control_port,
                                              self._control_handlers(), "control").start())
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
                 f"sound -> {self.config.osc.sound_host}:{self.config.osc.sound_port}" if self.receivers else "OSC off")
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
        return f"{model}; {ports}; log {logs}" + (f"; {', '.join(hardware)}" if hardware else "")

    def reload(self) -> bool:
        """SIGHUP: re-read config and model; keep the running model if the new one is bad."""
        self.notifier.reloading()
        try:
            config = load_config(None if self.config.source == "defaults" else self.config.source)
            if config.engine.dimension != self.config.engine.dimension:
                raise ModelError(f"{config.source}: changing the dimension needs a restart "
                                 f"({self.config.engine.dimension} -> {config.engine.dimension})")
            model = load_model(config)
        except ImpsError as exc:
            log.error("reload refused, still playing the previous model: %s", exc)
            self.notifier.ready(self.status_line())
            return False
        e = self.engine
        e.swap_model(model)
        e.set_mode(config.engine.mode)
        e.set_time_scale(config.engine.time_scale)
        e.set_threshold(config.engine.response_threshold)
        self.config = config
        log.info("reloaded %s with model %s", config.source, model.path)
        self.notifier.ready(self.status_line())
        return True

    def stop(self) -> None:
        """The one shutdown path: inputs off, silence, flush the log."""
        if self._stopped.is_set():
            return
        self._stopped.set()
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
        if self.sound is not None:
            self.sound.close()

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
        parts = [f"mode {s['mode']}",
                 f"in {s['performer_events']} ({s['performer_events'] / up:.1f}/s)",
                 f"out {s['model_events']} ({s['model_events'] / up:.1f}/s)"]
        if s["predict_us"] is not None:
            parts.append(f"predict {s['predict_us']:.0f} us")
        parts.append(f"drops {s['dropped']}")
        if s["bad_inputs"]:
            parts.append(f"bad {s['bad_inputs']}")
        if self.serial is not None:
            st = self.serial.status()
            board = "board ok" if st["connected"] else "NO BOARD"
            bad = st.get("crc_errors", 0) + st.get("bad_frames", 0) + st.get("bad_lines", 0)
            if bad:
                board += f" bad {bad}"
            if st["reconnects"]:
                board += f" reconnects {st['reconnects']}"
            parts.append(board)
        if self.actuator is not None:
            parts.append(f"act {self.actuator.sent}")
        if isinstance(self.gpio, FakeBackend) and self.panel is not None:
            parts.append("LEDs " + render_leds(self.gpio, self.panel.config.mode_leds))
        if self.gpio_error:
            parts.append("GPIO OFF")
        note, when = self.note
        if note and time.monotonic() - when < 3.0:
            parts.append(note)
        if self.logwriter is not None and self.logwriter.failed:
            parts.append("LOG OFF")
        if s["error"]:
            parts.append(f"ERROR {s['error'][:60]}")
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


def _positive(value) -> float:
    value = float(value)
    if not value > 0:
        raise ValueError(f"must be > 0, got {value}")
    return value


def _non_negative(value) -> float:
    value = float(value)
    if not value >= 0:
        raise ValueError(f"must be >= 0, got {value}")
    return value


# ---------------------------------------------------------------- --simulate
SIMULATED_BOARD = "sensor-board"     # the pty's stable link, in a temporary directory
KEYS_HELP = "keys: m mode, M/r reset, S shutdown, u unplug/replug board, g garbage, 1-9 pads, q quit"


def simulation_overrides(link: Path) -> dict:
    """Config for --simulate: the serial input reads the simulated board, GPIO is the fake,
    and the shutdown button powers nothing off."""
    return {"serial": {"enabled": True, "port": str(link), "format": "frames"},
            "gpio": {"backend": "fake"},
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
    panel = KeyboardPanel(box.gpio, box.config.panel.settings, pads=pads) if isinstance(box.gpio, FakeBackend) else None

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
    simulate = getattr(args, "simulate", False)
    simdir = Path(tempfile.mkdtemp(prefix="imps-simulate-")) if simulate else None
    box = board = keys = keys_panel = None
    live = False
    try:
        if simulate:
            link = simdir / SIMULATED_BOARD
            config = config_from_args(args, simulation_overrides(link))
            board = start_simulated_board(config, link)
        else:
            config = config_from_args(args)
        box = Box(config, board=board)
        stop = threading.Event()
        reload_requested = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGHUP, lambda *_: reload_requested.set())
        box.start()
        live = config.status.terminal and sys.stdout.isatty()
        if simulate:
            log.info("simulated box: sensor board at %s; %s", link, KEYS_HELP)
            if sys.stdin.isatty():
                on_key, keys_panel = simulation_keys(box, stop)
                keys = TerminalKeys(on_key).start()
                box.note = (KEYS_HELP, time.monotonic())
        return _status_loop(box, config, args, stop, reload_requested, live)
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
        if simdir is not None:
            shutil.rmtree(simdir, ignore_errors=True)


def _status_loop(box: Box, config: Config, args, stop, reload_requested, live: bool) -> int:
    deadline = time.monotonic() + args.duration if args.duration else None
    last = ""
    while not stop.wait(config.status.interval):
        if reload_requested.is_set():
            reload_requested.clear()
            box.reload()
        box.check_health()
        line = box.status_line()
        if line != last:
            box.notifier.status(line)
            last = line
        if live:
            width = shutil.get_terminal_size().columns - 1
            print("\r" + line[:width].ljust(min(79, width)), end="", flush=True)
        if not box.engine.alive():
            log.error("prediction loop died; exiting so systemd restarts the box")
            return 1
        if deadline and time.monotonic() >= deadline:
            break
    return 0
