"""The box: wires config -> inputs -> engine -> scheduler -> sound, log, LEDs.

``Box`` owns every part and the one shutdown path. ``imps run`` builds a Box
from the config file (or defaults), starts it, says READY to systemd, then
the main thread shows a one-line status and handles signals:

- SIGINT / SIGTERM: stop inputs, silence the sound engine, flush the log, exit 0.
- SIGHUP: re-read the config and the model; a bad new model is refused with
  one clear log line and the running one keeps playing.

A model that cannot be used never stops the box: it logs the reason and
keeps logging the performer in user-only mode, rather than crash-looping.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from .config import DEFAULT_PERFORMANCE, Config, load_config
from .engine import Engine
from .errors import ImpsError, ModelError
from .interaction_log import LogWriter
from .modes import Mode
from .notify import Notifier
from .osc_io import INTERFACE, OscReceiver, SoundOut
from .performer import ReplayPerformer, load_performance
from .runtime import MDRNN

log = logging.getLogger("imps")


def load_model(config: Config) -> MDRNN:
    m = config.model
    return MDRNN(m.resolved_path(), dimension=config.engine.dimension, runtime=m.runtime, threads=m.threads,
                 seed=m.seed, pi_temperature=m.pi_temperature, sigma_temperature=m.sigma_temperature)


class Box:
    def __init__(self, config: Config, notifier: Notifier | None = None):
        self.config = config
        self.notifier = notifier or Notifier()
        self.sources = []
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

    def start(self) -> "Box":
        c = self.config
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
            source.start(self.engine.performer_event)
        self.ready_at = time.monotonic()
        self.notifier.ready(self.status_line())
        log.info("ready in %.0f ms: %s", (self.ready_at - self.started_at) * 1e3, self.describe())
        return self

    def describe(self) -> str:
        m = self.engine.model
        model = f"{m.path.name} ({m.runtime}, {m.shape.units} units)" if m else f"no model ({self.engine.error})"
        ports = (f"OSC in :{self.receivers[0].port} control :{self.receivers[1].port} "
                 f"sound -> {self.config.osc.sound_host}:{self.config.osc.sound_port}" if self.receivers else "OSC off")
        logs = self.logwriter.path if self.logwriter else "off"
        return f"{model}; {ports}; log {logs}"

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
        if self.logwriter is not None:
            self.logwriter.close()
        if self.sound is not None:
            self.sound.close()

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
        if self.logwriter is not None and self.logwriter.failed:
            parts.append("LOG OFF")
        if s["error"]:
            parts.append(f"ERROR {s['error'][:60]}")
        return " | ".join(parts)


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


# ---------------------------------------------------------------- imps run
def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", help="TOML config file (default: built-in defaults)")
    parser.add_argument("--model", help="model .tflite (overrides [model] path)")
    parser.add_argument("--mode", help="user, call_response, layered or duet")
    parser.add_argument("--simulate-performer", action="store_true",
                        help="replay a recorded performance as the performer")
    parser.add_argument("--log-dir", help="where interaction logs go (overrides [log] directory)")
    parser.add_argument("--no-log", action="store_true", help="do not write an interaction log")
    parser.add_argument("--seed", type=int, help="seed the sampler for a reproducible run")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("-q", "--quiet", action="store_true", help="no live status line")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def config_from_args(args) -> Config:
    overrides = {
        "model": {"path": args.model, "seed": args.seed},
        "engine": {"mode": args.mode},
        "log": {"directory": args.log_dir, "enabled": False if args.no_log else None},
        "performer": {"simulate": True if args.simulate_performer else None},
        "status": {"terminal": False if args.quiet else None},
    }
    return load_config(args.config, overrides)


def run_command(args) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    config = config_from_args(args)
    box = Box(config)
    stop = threading.Event()
    reload_requested = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: reload_requested.set())
    box.start()
    live = config.status.terminal and sys.stdout.isatty()
    deadline = time.monotonic() + args.duration if args.duration else None
    last = ""
    try:
        while not stop.wait(config.status.interval):
            if reload_requested.is_set():
                reload_requested.clear()
                box.reload()
            line = box.status_line()
            if line != last:
                box.notifier.status(line)
                last = line
            if live:
                print("\r" + line[:os.get_terminal_size().columns - 1].ljust(79), end="", flush=True)
            if not box.engine.alive():
                log.error("prediction loop died; exiting so systemd restarts the box")
                return 1
            if deadline and time.monotonic() >= deadline:
                break
    finally:
        box.stop()
        if live:
            print()
        print(box.status_line(), file=sys.stderr)
    return 0
