"""The `imps` command: run the box, check a model, import a config, benchmark, soak.

The top of the import graph: each command imports what it needs when it runs,
so ``imps --help`` and the box's start-up load nothing they do not use.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time

from . import __version__
from .errors import ImpsError, one_line

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- imps run
def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    from .sim.keys import KEYS_HELP
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
    parser.add_argument("--interface-port", type=int, metavar="PORT",
                        help="UDP port for /interface (overrides [osc] interface_port; 0: any free port)")
    parser.add_argument("--control-port", type=int, metavar="PORT",
                        help="UDP port for /mode, /reset, ... (overrides [osc] control_port; 0: any free port), "
                             "e.g. to run a second box beside one on the defaults")
    parser.add_argument("--log-dir", help="where interaction logs go (overrides [log] directory)")
    parser.add_argument("--no-log", action="store_true", help="do not write an interaction log")
    parser.add_argument("--seed", type=int, help="seed the sampler for a reproducible run")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("-q", "--quiet", action="store_true", help="no live status line")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def run_overrides(args, extra: dict | None = None) -> dict:
    """The config keys ``imps run``'s options set (None: not given), plus ``extra``."""
    overrides = {
        "model": {"path": args.model, "seed": args.seed},
        "engine": {"mode": args.mode},
        "osc": {"interface_port": args.interface_port, "control_port": args.control_port},
        "log": {"directory": args.log_dir, "enabled": False if args.no_log else None},
        "performer": {"simulate": True if args.simulate_performer else None},
        "status": {"terminal": False if args.quiet else None},
    }
    for section, values in (extra or {}).items():
        overrides.setdefault(section, {}).update(values)
    return overrides


#: Signals whose default action ends the process: each one goes through the one shutdown path instead
#: (SIGUSR1 and SIGALRM ended the box with no STOPPING and no flushed log). SIGHUP is the reload;
#: SIGPIPE and SIGXFSZ Python already ignores; faults (SIGSEGV, SIGBUS, ...) cannot be handled in Python.
STOP_SIGNALS = [getattr(signal, name) for name in (
    "SIGINT", "SIGTERM", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGVTALRM", "SIGPROF", "SIGIO",
    "SIGPWR", "SIGSTKFLT", "SIGXCPU") if hasattr(signal, name)]
if hasattr(signal, "SIGRTMIN"):
    STOP_SIGNALS += list(range(signal.SIGRTMIN, signal.SIGRTMAX + 1))


def install_signal_handlers(stop: threading.Event, reload_requested: threading.Event) -> None:
    """Every catchable signal: stop or reload, set as an event the main loop reads. Called first
    thing, before the config and the model load (a SIGHUP in the first 200 ms killed the box)."""
    def on_stop(signum, frame):
        if not stop.is_set():
            try:
                name = signal.Signals(signum).name
            except ValueError:      # a real-time signal
                name = f"signal {signum}"
            log.info("%s: stopping", name)
        stop.set()

    for signum in STOP_SIGNALS:
        try:
            signal.signal(signum, on_stop)
        except (OSError, ValueError):   # reserved by the C library (some real-time signals)
            pass
    signal.signal(signal.SIGHUP, lambda *_: reload_requested.set())


def run_command(args) -> int:
    """``imps run``: a Box from the config, with the simulation's parts when asked; the status loop."""
    stop = threading.Event()
    reload_requested = threading.Event()
    install_signal_handlers(stop, reload_requested)
    from .box.app import Box
    from .box.config import read_config, with_overrides
    from .journal import rate_limit_handlers
    from .sim.simulate import Simulation
    # On a terminal a log line first clears the live status line (redrawn on the next tick).
    clear = "\r\x1b[K" if sys.stderr.isatty() else ""
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format=clear + "%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    rate_limit_handlers()   # a flood of anything (bad input, a bug per event) is a few journal lines
    logging.captureWarnings(True)   # Python warnings too: through the same rate limit, never straight to stderr
    data, source = read_config(args.config)       # read once: an IMPSY file's notes are logged once
    with Simulation(getattr(args, "simulate", False), getattr(args, "midi_file", None)) as sim:
        config = with_overrides(data, source, run_overrides(args, sim.overrides()))
        if sim.needs_dimension:
            config = with_overrides(data, source, run_overrides(args, sim.overrides(config.engine.dimension)))
        sim.start(config)
        box = sim.attach(Box(config))
        if stop.is_set():            # a stop signal while loading: the box never starts
            return 0
        return _run_box(box, sim, args, stop, reload_requested)


def _run_box(box, sim, args, stop: threading.Event, reload_requested: threading.Event) -> int:
    """Start the box, run the status loop until a signal (or --duration), stop it once."""
    from .box.status import status_loop
    keys = keys_panel = None
    live = False
    try:
        box.start()                  # a failed start releases what started, then raises
        live = box.config.status.terminal and sys.stdout.isatty()
        if sim.simulate or sim.midi_file:
            from .sim.keys import KEYS_HELP
            log.info("simulated box: %s; %s", sim.describe(), KEYS_HELP)
            if sys.stdin.isatty():
                from .sim.keys import simulation_keys
                from .sim.terminal import TerminalKeys
                on_key, keys_panel = simulation_keys(box, stop, sim.board)
                keys = TerminalKeys(on_key).start()
                box.note = (KEYS_HELP, time.monotonic())
        return status_loop(box, stop, reload_requested, live, args.duration)
    finally:
        if keys is not None:
            keys.stop()              # the terminal back as it was
        if keys_panel is not None:
            keys_panel.close()       # release buttons still held, before GPIO closes
        if box.ready_at is not None:
            final = box.status_line()
            box.stop()
            if live:
                print()
            print(final, file=sys.stderr)


# ---------------------------------------------------------------- the other commands


def _check_model(args) -> int:
    from .model.check import check_model
    print(check_model(args.model, args.reference, args.tolerance, args.runtime, args.dimension))
    return 0


def _config_import(args) -> int:
    from .box.config import build_config
    from .box.impsy_config import box_toml, read
    box, notes = read(args.file)
    build_config({k: v for k, v in box.items() if not k.startswith("_")}, args.file)  # it must load as it is
    text = box_toml(box, notes, args.file)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    lost = [n for n in notes if not n.honoured]
    for note in lost:
        print(f"not honoured: {note.line()}", file=sys.stderr)
    print(f"{args.file}: {len(lost)} IMPSY keys or sections not honoured (listed at the top of the box config)",
          file=sys.stderr)
    return 0


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Every command; with ``only`` (the command about to run), the tools' arguments are added
    only for that command, so `imps run` starts without importing the benchmarks and the soak."""
    def wanted(name: str) -> bool:
        return only is None or only == name

    parser = argparse.ArgumentParser(prog="imps", description="IMPS box: the device side.")
    parser.add_argument("--version", action="version", version=f"imps {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the box (default: bundled model, simulated performer)",
                         description="Run the box: inputs -> model -> scheduled playback -> sound engine and log.")
    add_run_arguments(run)
    run.set_defaults(func=run_command)

    check = sub.add_parser("check-model", help="check a .tflite against the model contract",
                           description="Load a model with the device runtime and check it; optionally "
                                       "compare it step by step with a reference trace (.npz of rows, params).")
    check.add_argument("model", help="the .tflite file")
    check.add_argument("--reference", help="reference trace .npz with arrays rows and params")
    check.add_argument("--tolerance", type=float, default=1e-4, help="max abs difference (default 1e-4)")
    check.add_argument("--runtime", default="auto", choices=["auto", "tflite-runtime", "ai-edge-litert"])
    check.add_argument("--dimension", type=int, help="fail unless the model has this dimension")
    check.set_defaults(func=_check_model)

    config = sub.add_parser("config", help="config files: import IMPSY's config.toml",
                            description="Config files. `imps config import impsy.toml > box.toml` translates an "
                                        "IMPSY config.toml into the box's config and names every key the box "
                                        "cannot honour (`imps run --config impsy.toml` also runs it directly).")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    imp = config_sub.add_parser("import", help="translate an IMPSY config.toml into a box config (stdout)")
    imp.add_argument("file", help="IMPSY's config.toml")
    imp.add_argument("-o", "--output", help="write the box config here instead of stdout")
    imp.set_defaults(func=_config_import)

    bench = sub.add_parser("bench", help="time predictions, start-up, memory and latency on this machine",
                           description="Benchmark the model runtime (the IMPS paper's sweeps), cold start, "
                                       "peak memory and the engine's timing; writes bench.csv and bench.json.")
    if wanted("bench"):
        from .bench.bench import add_bench_arguments, bench_command
        add_bench_arguments(bench)
        bench.set_defaults(func=bench_command)

    soak = sub.add_parser("soak", help="run the real box for minutes, inject faults at random, check it recovers",
                          description="A soak test: `imps run` with a simulated board on a pty and a performer on "
                                      "UDP, with random faults (kill -9, unplug, garbage, floods, bad models and "
                                      "configs by SIGHUP, disk full, control-port fuzz); prints what was injected, "
                                      "what recovered, and where every numbered performer event went.")
    if wanted("soak"):
        from .bench.soak import add_soak_arguments, soak_command
        add_soak_arguments(soak)
        soak.set_defaults(func=soak_command)

    return parser


def dispatch(parser: argparse.ArgumentParser, argv=None) -> int:
    """Run the chosen subcommand; an ImpsError is one line on stderr and exit code 2."""
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except ImpsError as exc:
        print(f"{parser.prog}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in args if not a.startswith("-")), None)   # `imps [--version|-h] COMMAND ...`
    return dispatch(build_parser(command), argv)
