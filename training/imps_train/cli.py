"""The `imps-train` command: logs -> dataset -> model -> .tflite for the box."""
from __future__ import annotations

import argparse
from pathlib import Path

from imps.cli import dispatch
from imps.model.rows import DEFAULT_MAX_DT


def _dataset(args) -> int:
    from . import collate, midi_files
    if args.import_npz:
        dataset, report = collate.from_published_npz(args.import_npz, args.max_dt)
    elif any(midi_files.is_midi(p) for p in args.logs):
        rules, dimension = midi_files.rules_from_config(args.midi_map) if args.midi_map else (None, None)
        dataset, report = midi_files.from_midi_files(args.logs, args.dimension or dimension, rules, args.max_dt)
    else:
        paths = []
        for p in args.logs:
            p = Path(p)
            paths += sorted(p.glob("*.log")) if p.is_dir() else [p]
        dataset, report = collate.from_logs(paths, args.dimension, args.max_dt, args.source)
    print(report.text())
    path = dataset.save(args.output)
    print(f"wrote {path}: {len(dataset)} performances, {len(dataset.rows)} rows, D={dataset.dimension}")
    return 0


def _train(args) -> int:
    from imps.model.dataset import load_dataset
    from .train import TrainConfig, train
    config = TrainConfig(size=args.size, seq_len=args.seq_len, batch_size=args.batch_size, epochs=args.epochs,
                         patience=args.patience, learning_rate=args.learning_rate, val_fraction=args.val_fraction,
                         windows_per_epoch=args.windows_per_epoch, val_windows=args.val_windows,
                         input_scale=args.scale, seed=args.seed, layers=args.layers, mixtures=args.mixtures,
                         max_minutes=args.max_minutes, split_seed=args.split_seed)
    dataset = load_dataset(args.dataset)
    result = train(dataset, args.out, config, progress=not args.quiet, resume=args.resume)
    print(f"{args.out}: {result['epochs_run']} epochs in {result['seconds']:.0f} s "
          f"({result['seconds_per_epoch']:.1f} s/epoch), best validation loss "
          f"{result['best_val_loss']} at epoch {result['best_epoch']}; history.csv and loss.png written")
    return 0


def _export(args) -> int:
    from .export import export
    result = export(args.run, args.output, args.runtime, args.pi_temperature, args.sigma_temperature)
    print(result["verification"])
    print(f"wrote {result['path']} ({result['bytes']} bytes) and its sidecar")
    return 0


def _convert_impsy(args) -> int:
    from .convert_impsy import convert_impsy
    result = convert_impsy(args.model, args.output, [args.runtime] if args.runtime else None)
    w = result["weights"]
    for line in result["verification"]:
        print(line)
    print(f"wrote {result['path']} ({result['bytes']} bytes) and its sidecar: IMPSY's D={w.dimension} "
          f"units={w.units} layers={w.layers} mixtures={w.mixtures} model, unrolled for the box")
    return 0


def _bench_models(args) -> int:
    from .bench_models import make_all
    make_all(args.output, seed=args.seed, runtime=args.runtime, force=args.force)
    return 0


def _plot_bench(args) -> int:
    from .plot_bench import plot_bench
    for path in plot_bench(args.results, args.output, paper=not args.no_paper):
        print(f"wrote {path}")
    return 0


def _bench_keras(args) -> int:
    from .bench_keras import bench_keras
    bench_keras(args.output, args.units, args.dimension, args.iterations)
    return 0


def _bench_impsy(args) -> int:
    from .bench_impsy import main_args
    return main_args(args)


def _experiment(args) -> int:
    from imps.model.dataset import load_dataset
    from .experiment import run_experiment
    from .train import TrainConfig
    patience = args.epochs if args.patience is None else args.patience
    config = TrainConfig(seq_len=args.seq_len, batch_size=args.batch_size, epochs=args.epochs, patience=patience,
                         learning_rate=args.learning_rate, val_fraction=args.val_fraction,
                         windows_per_epoch=args.windows_per_epoch, val_windows=args.val_windows,
                         input_scale=args.scale, seed=args.seed, layers=args.layers, mixtures=args.mixtures,
                         max_minutes=args.max_minutes, split_seed=args.split_seed)
    dataset = load_dataset(args.dataset)
    summary = run_experiment(dataset, args.sizes.split(","), args.out, config, label=args.label or Path(args.dataset).stem,
                             progress=not args.quiet, resume=args.resume)
    for row in summary["sizes"]:
        best = row["best_val_loss"]
        print(f"{row['units']:>5} units: best validation loss {best if best is None else f'{best:.3f}'} "
              f"at epoch {row['best_epoch']} of {row['epochs_run']}, {row['seconds_per_epoch']:.1f} s/epoch")
    print(f"wrote {args.out}/summary.csv, summary.json and loss-by-size.png")
    return 0


def _seeds(args) -> int:
    from .seeds import load_summaries, write
    rows = write(load_summaries(args.summaries), args.out, args.label)
    for r in rows:
        print(f"{r['units']:>5} units, {r['seeds']} seed{'s' if r['seeds'] > 1 else ''}: best validation loss {r['best_val_mean']:.3f} "
              f"± {r['best_val_sd']:.3f} (range {r['best_val_min']:.3f} to {r['best_val_max']:.3f}), "
              f"climbing {r['climb_after_best_mean']:+.2f} after it on average")
    print(f"wrote {args.out}/seeds.csv, seeds.json and seeds.png")
    return 0


def _temperatures(args) -> int:
    from imps.model.dataset import load_dataset
    from .temperatures import explore, parse_floats, parse_seeds
    summary = explore(args.model, load_dataset(args.dataset), args.out,
                      parse_floats(args.pi, "--pi"), parse_floats(args.sigma, "--sigma"), steps=args.steps,
                      prime_rows=args.prime_rows, val_fraction=args.val_fraction, split_seed=args.split_seed,
                      seeds=parse_seeds(args.seeds), per_performance=args.primings_per_performance,
                      nll_rows=args.nll_rows, runtime=args.runtime, progress=not args.quiet,
                      choose_by=args.choose_by)
    for f in summary["folds"]:
        o = f["on_other_set"]
        print(f"fold {f['fold']}: chose pi {f['pi_temperature']:g}, sigma {f['sigma_temperature']:g}; on the other "
              f"set's performances: mean W1 {o['w1_mean']:.4f}, structure {o['structure']:.3f}, "
              f"rank {f['rank_on_other_set']} of {len(summary['cells'])}")
    b = summary["best"]
    p = b["pooled"]
    print(f"chosen on both sets: pi {b['pi_temperature']:g}, sigma {b['sigma_temperature']:g} (mean W1 "
          f"{p['w1_mean']:.4f}, structure {p['structure']:.3f}, axis-aligned {100 * p['axis_generated']:.0f}% vs real "
          f"{100 * p['axis_real']:.0f}%)")
    print(f"wrote {args.out}/temperatures.csv, temperatures.json and temperature-grid.png")
    return 0


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of minutes, got {text!r}") from None
    if not (value > 0 and value < 1e6):
        raise argparse.ArgumentTypeError(f"must be between 0 and 1e6 minutes, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imps-train", description="Train MDRNN models for the IMPS box.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("dataset", help="collate logs (or import a published .npz) into a dataset",
                       description="Collate interaction logs of one dimension into a dataset in the project's "
                                   "pickle-free format, cleaning them and reporting what was kept and dropped.")
    d.add_argument("logs", nargs="*", help="log files or directories of *.log, or standard MIDI files (.mid)")
    d.add_argument("-o", "--output", required=True, help="dataset file to write (.npz)")
    d.add_argument("--import-npz", metavar="FILE",
                   help="TRUSTED import of a published pickled dataset (np.load(..)['perfs']); unpickles the file")
    d.add_argument("--dimension", type=int, help="collate only logs of this dimension (default: the first log's)")
    d.add_argument("--max-dt", type=float, default=DEFAULT_MAX_DT,
                   help=f"cap pauses at this many seconds (default {DEFAULT_MAX_DT:g})")
    d.add_argument("--source", default="interface", choices=["interface", "rnn"],
                   help="whose events to learn from (default: the performer's)")
    d.add_argument("--midi-map", metavar="BOX_TOML",
                   help="for .mid files: map them with this box config's first [[midi.input]] device (and its "
                        "dimension); default: notes and the busiest controllers of the first file")
    d.set_defaults(func=_dataset)

    t = sub.add_parser("train", help="train an MDRNN on a dataset",
                       description="Train with a whole-performance validation split, early stopping and the "
                                   "best checkpoint kept; writes history.csv, loss.png and run.json.")
    t.add_argument("dataset", help="dataset .npz (from `imps-train dataset`)")
    t.add_argument("-o", "--out", required=True, help="run directory to write")
    t.add_argument("--size", default="m", help="xxs/xs/s/m/l/xl = 16/32/64/128/256/512 units (default m: "
                                                "128, the best size from 15 minutes to 2 hours of playing, "
                                                "docs/results.md; s for less)")
    t.add_argument("--layers", type=int, default=2)
    t.add_argument("--mixtures", type=int, default=5)
    t.add_argument("--seq-len", type=int, default=50)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--epochs", type=int, default=100, help="at most this many (default 100)")
    t.add_argument("--patience", type=int, default=10, help="early-stopping patience in epochs (default 10)")
    t.add_argument("--learning-rate", type=float, default=1e-3)
    t.add_argument("--val-fraction", type=float, default=0.1)
    t.add_argument("--windows-per-epoch", type=int, help="cap training windows per epoch (default: all)")
    t.add_argument("--val-windows", type=int, help="cap validation windows, evenly spread (default: all)")
    t.add_argument("--scale", type=float, default=10.0, help="input scale (default 10, the published convention)")
    t.add_argument("--seed", type=int, default=0, help="initialisation and sampling seed (default 0)")
    t.add_argument("--split-seed", type=int,
                   help="seed of the held-out split (default: --seed); fix it to vary only the initialisation")
    t.add_argument("--max-minutes", type=_positive_float,
                   help="wall-time budget: stop after the first epoch that ends past it (best weights kept)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last epoch (same settings; --epochs and "
                        "--max-minutes may change); a finished run is skipped")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)

    e = sub.add_parser("export", help="export a trained run as the box's .tflite + sidecar, verified",
                       description="Convert to a single-step .tflite (builtin ops only) and verify it in the "
                                   "device runtime against Keras over 100 steps before writing success.")
    e.add_argument("run", help="run directory (from `imps-train train`)")
    e.add_argument("-o", "--output", required=True, help=".tflite file to write (sidecar .json beside it)")
    e.add_argument("--runtime", default="auto", choices=["auto", "tflite-runtime", "ai-edge-litert"],
                   help="device runtime to verify with (default: tflite-runtime, else ai-edge-litert)")
    e.add_argument("--pi-temperature", type=float, default=1.0,
                   help="recommended, stored in the sidecar (default 1.0: the grid's choice on the bundled "
                        "model, docs/results.md; measure yours with `imps-train temperatures`)")
    e.add_argument("--sigma-temperature", type=float, default=2.0,
                   help="recommended, stored in the sidecar (default 2.0: the grid's choice on the bundled "
                        "model, docs/results.md)")
    e.set_defaults(func=_export)

    ci = sub.add_parser("convert-impsy", help="an IMPSY model in the box's own faster format, verified",
                        description="Read the weights of an IMPSY .tflite (from `impsy convert-tflite`, IMPSY 1.x) "
                                    "or .keras, build the box's unrolled single-step model with them and write it "
                                    "with a sidecar (IMPSY's sampling defaults, where it came from), after checking "
                                    "it against IMPSY's model over 200 steps in every TFLite runtime installed "
                                    "(docs/impsy.md).")
    ci.add_argument("model", help="IMPSY's .tflite or .keras")
    ci.add_argument("-o", "--output", required=True, help=".tflite file to write (sidecar .json beside it)")
    ci.add_argument("--runtime", choices=["tflite-runtime", "ai-edge-litert"],
                    help="verify with this runtime only (default: every one installed)")
    ci.set_defaults(func=_convert_impsy)

    b = sub.add_parser("bench-models", help="random-weight models of every size the benchmark sweeps",
                       description="Make (and verify in the device runtime) untrained models u<units>-d<D>.tflite "
                                   "for the benchmark sweeps: units 16..512 at D=9, D 2..16 at 64 units.")
    b.add_argument("-o", "--output", default="device/imps/models/bench", help="directory (default %(default)s)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--runtime", default="auto", choices=["auto", "tflite-runtime", "ai-edge-litert"])
    b.add_argument("--force", action="store_true", help="remake models that already exist")
    b.set_defaults(func=_bench_models)

    p = sub.add_parser("plot-bench", help="draw the paper's two figures from `imps bench` results",
                       description="Time per prediction against LSTM units and against MDN dimension, "
                                   "log-scaled, one line per machine and runtime, IQR error bars; overlays "
                                   "every result file given, with the paper's published points.")
    p.add_argument("results", nargs="+", help="bench.json files (or directories holding one)")
    p.add_argument("-o", "--output", help="directory for the PNGs (default: beside the first result)")
    p.add_argument("--no-paper", action="store_true", help="leave out the paper's published points")
    p.set_defaults(func=_plot_bench)

    k = sub.add_parser("bench-keras", help="time Keras predict() and model(x) beside the TFLite step",
                       description="Workstation only (needs TensorFlow): time one step of the same model "
                                   "through Keras predict(), the direct model(x) call and the TFLite runtime.")
    k.add_argument("-o", "--output", help="bench.json to add the Keras rows to (else print only)")
    k.add_argument("--units", type=int, nargs="+", default=[64, 512])
    k.add_argument("--dimension", type=int, default=9)
    k.add_argument("--iterations", type=int, default=200)
    k.set_defaults(func=_bench_keras)

    bi = sub.add_parser("bench-impsy", help="the box beside IMPSY on IMPSY's own model (docs/impsy.md)",
                        description="Per-prediction time, start-to-first-prediction and peak memory of IMPSY's "
                                    "TfliteMDRNN.generate (in IMPSY's environment, `make impsy-env`) and of the "
                                    "box (device environment, each runtime), on the same IMPSY .tflite.")
    bi.add_argument("--model", help="an IMPSY .tflite (default: build one with IMPSY's own code)")
    bi.add_argument("--dimension", type=int, default=9, help="of the built model (default 9, IMPSY's template)")
    bi.add_argument("--units", type=int, default=64, help="of the built model (default 64: IMPSY's size s)")
    bi.add_argument("--blocks", type=int, default=20, help="alternating timed blocks per round (default 20)")
    bi.add_argument("--block", type=int, default=100, help="predictions per block (default 100)")
    bi.add_argument("--rounds", type=int, default=3, help="fresh starts of every process (default 3)")
    bi.add_argument("-o", "--output", help="write the figures as JSON here")
    bi.set_defaults(func=_bench_impsy)
    _add_experiment_commands(sub)
    return parser


def _add_experiment_commands(sub) -> None:
    """`imps-train experiment` and `imps-train temperatures` (docs/results.md)."""
    x = sub.add_parser("experiment", help="train several model sizes under identical settings and compare them",
                       description="Train every size in --sizes on one dataset with the same split, seed, window "
                                   "caps, epoch cap and patience (the IMPS paper's size experiment). Writes one "
                                   "run directory per size (<units>u/, exportable), summary.csv, summary.json and "
                                   "loss-by-size.png (training solid, validation dashed, one colour per size).")
    x.add_argument("dataset", help="dataset .npz (from `imps-train dataset`)")
    x.add_argument("-o", "--out", required=True, help="experiment directory to write")
    x.add_argument("--sizes", default="64,128,256,512",
                   help="comma-separated units or size names (default 64,128,256,512, the paper's)")
    x.add_argument("--label", help="dataset name for the figure (default: the file name)")
    x.add_argument("--layers", type=int, default=2)
    x.add_argument("--mixtures", type=int, default=5)
    x.add_argument("--seq-len", type=int, default=50)
    x.add_argument("--batch-size", type=int, default=64)
    x.add_argument("--epochs", type=int, default=100, help="epoch cap, the same for every size (default 100)")
    x.add_argument("--patience", type=int,
                   help="early-stopping patience (default: none, so every curve runs the full --epochs; "
                        "the paper used 10)")
    x.add_argument("--learning-rate", type=float, default=1e-3)
    x.add_argument("--val-fraction", type=float, default=0.1)
    x.add_argument("--windows-per-epoch", type=int, help="training windows per epoch, the same for every size "
                                                         "(default: all)")
    x.add_argument("--val-windows", type=int, help="cap validation windows, evenly spread (default: all)")
    x.add_argument("--scale", type=float, default=10.0, help="input scale (default 10, the published convention)")
    x.add_argument("--seed", type=int, default=0, help="initialisation and sampling seed (default 0)")
    x.add_argument("--split-seed", type=int,
                   help="seed of the held-out split (default: --seed); fix it to vary only the initialisation")
    x.add_argument("--max-minutes", type=_positive_float,
                   help="wall-time budget per size: stop after the first epoch past it (a stated cap)")
    x.add_argument("--resume", action="store_true",
                   help="continue each size's run in --out from its last epoch (a killed or capped run); "
                        "finished runs are skipped, runs with other settings refused")
    x.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    x.set_defaults(func=_experiment)

    c = sub.add_parser("seeds", help="pool several seeds of one size experiment: mean and spread per size",
                       description="Read the summary.json of several `imps-train experiment` runs that differ only "
                                   "in --seed and write seeds.csv, seeds.json (mean, sd, range of the best and "
                                   "last-five validation loss per size) and seeds.png (every seed's curves).")
    c.add_argument("summaries", nargs="+", help="experiment directories or their summary.json files")
    c.add_argument("-o", "--out", required=True, help="directory to write")
    c.add_argument("--label", help="dataset name for the figure")
    c.set_defaults(func=_seeds)

    m = sub.add_parser("temperatures", help="generate over a grid of pi/sigma temperatures, draw and score it",
                       description="Prime an exported model with a held-out performance and let it play over a "
                                   "grid of pi (mixture choice) and sigma (Gaussian spread) temperatures, with the "
                                   "device runtime and sampler. Draws x/y paths with pressure as width and colour "
                                   "(temperature-grid.png) and scores each cell against the held-out playing: 1-D "
                                   "Wasserstein distances of dt, control values and move size, and the held-out "
                                   "negative log-likelihood under the tempered mixture (temperatures.csv/.json).")
    m.add_argument("model", help="exported .tflite (sidecar beside it)")
    m.add_argument("dataset", help="the dataset .npz the model was trained on; its held-out split is used")
    m.add_argument("-o", "--out", required=True, help="directory to write")
    m.add_argument("--pi", default="0.5,1,1.5,2", help="pi temperatures (default 0.5,1,1.5,2)")
    m.add_argument("--sigma", default="0.001,0.01,0.1,0.5", help="sigma temperatures (default 0.001,0.01,0.1,0.5)")
    m.add_argument("--steps", type=int, default=500, help="events generated per cell (default 500)")
    m.add_argument("--prime-rows", type=int, default=50, help="held-out rows fed before generating (default 50)")
    m.add_argument("--primings-per-performance", type=int, default=3,
                   help="primings from non-overlapping stretches of each held-out performance (default 3)")
    m.add_argument("--seeds", default="0,1,2", help="sampling seeds, comma-separated (default 0,1,2)")
    m.add_argument("--choose-by", default="both", choices=["both", "w1_mean", "structure"],
                   help="what picks the best cell on the choosing set: mean W1, structure, or both (the lowest "
                        "sum of the two ranks; default)")
    m.add_argument("--nll-rows", type=int, default=2000, help="held-out rows scored for the NLL (default 2000)")
    m.add_argument("--val-fraction", type=float, default=0.1, help="the training split's (default 0.1)")
    m.add_argument("--split-seed", type=int, default=0, help="the training split's seed (default 0)")
    m.add_argument("--runtime", default="ai-edge-litert", choices=["ai-edge-litert"],
                   help="device runtime (ai-edge-litert: the only one that shares a process with TensorFlow)")
    m.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    m.set_defaults(func=_temperatures)


def main(argv=None) -> int:
    return dispatch(build_parser(), argv)
