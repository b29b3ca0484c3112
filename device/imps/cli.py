"""The `imps` command: run the box, check a model, benchmark."""
from __future__ import annotations

import argparse
import sys

from . import __version__
from .errors import ImpsError


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imps", description="IMPS box: the device side.")
    parser.add_argument("--version", action="version", version=f"imps {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from .box.app import add_run_arguments, run_command
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

    from .bench.bench import add_bench_arguments, bench_command
    bench = sub.add_parser("bench", help="time predictions, start-up, memory and latency on this machine",
                           description="Benchmark the model runtime (the IMPS paper's sweeps), cold start, "
                                       "peak memory and the engine's timing; writes bench.csv and bench.json.")
    add_bench_arguments(bench)
    bench.set_defaults(func=bench_command)

    from .bench.soak import add_soak_arguments, soak_command
    soak = sub.add_parser("soak", help="run the real box for minutes, inject faults at random, check it recovers",
                          description="A soak test: `imps run` with a simulated board on a pty and a performer on "
                                      "UDP, with random faults (kill -9, unplug, garbage, floods, bad models and "
                                      "configs by SIGHUP, disk full, control-port fuzz); prints what was injected, "
                                      "what recovered, and where every numbered performer event went.")
    add_soak_arguments(soak)
    soak.set_defaults(func=soak_command)

    return parser


def dispatch(parser: argparse.ArgumentParser, argv=None) -> int:
    """Run the chosen subcommand; an ImpsError is one line on stderr and exit code 2."""
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except ImpsError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def main(argv=None) -> int:
    return dispatch(build_parser(), argv)
