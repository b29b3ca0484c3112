"""`imps bench`: how fast is this box? Time per prediction, start-up, memory.

Runs on the device with only its own dependencies (no TensorFlow). For each
TFLite runtime present and each thread count it times, on the random-weight
models made by ``make bench-models`` (``models/bench/u<units>-d<D>.tflite``):

- ``predict``: one prediction as the box makes it, ``MDRNN.predict`` (write
  the row, invoke, carry the state, sample the next row), fed back its own
  output as in a performance;
- ``invoke``: the bare interpreter invoke of the same model;

against LSTM units 16..512 at D = 9 and against dimension 2..16 at 64 units
(the two figures of the IMPS paper). The two are timed in interleaved blocks
so a shared machine's load falls on both alike; the ratio of their medians is
the cost of everything the box adds to the network itself.

Then ``cold_start``: a fresh Python process that imports the runtime, loads
the s model, makes one prediction and says READY; the time from spawning it
to that line, and its peak resident memory (ru_maxrss and VmHWM). And, when
the engine is present, the end-to-end parts in ``imps.bench.e2e``.

Every figure is a row: median, quartiles and 99th percentile of many timed
calls after a warm-up. Rows go to ``bench.csv``; ``bench.json`` holds the same
rows and a record of the machine (CPU, cores, Pi model, governor, temperature
and throttling, versions, load) taken before and after the run.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..errors import ImpsError
from .e2e import UNIT_PRIORITY
from .stats import COLUMNS, row, summary

MODELS_DIR = Path(__file__).resolve().parents[1] / "models" / "bench"
UNITS_SWEEP = (16, 32, 64, 128, 256, 512)
UNITS_SWEEP_DIMENSION = 9
DIMENSION_SWEEP = (2, 3, 4, 6, 9, 12, 16)
DIMENSION_SWEEP_UNITS = 64
SCHEMA = "imps-bench/1"

#: What each benchmark measures (written into the JSON for the reader).
BENCHMARKS = {
    "predict": "MDRNN.predict: one step of the model plus sampling, ms per call",
    "invoke": "bare interpreter invoke of the same model, ms per call",
    "cold_start": "spawn a Python process, import the runtime, load the s model, one prediction, READY; ms",
    "cold_start_rss": "ru_maxrss of that process, MB; on Linux this keeps the high-water mark of the "
                      "forking parent's image across exec, so it overstates a child of a big parent: use VmHWM",
    "cold_start_hwm": "peak resident memory of that process (/proc/self/status VmHWM), MB",
    "ready": "`imps run` from spawn to READY=1 on its notify socket, ms",
    "ready_rss": "peak resident memory (VmHWM) of `imps run` after its run, MB",
    "schedule_error": "how late each model event left after its due time, ms",
    "input_to_output": "sensor frame written to a pseudo-terminal -> the model's companion /model received "
                       "(layered mode), less the companion's predicted wait, ms",
    "input_to_echo": "the same frames -> their /performer echo, sent before the model steps (same run), ms",
    "midi_in_to_out": "a MIDI CC in (virtual device, or DIN bytes on a pty) -> the companion's first MIDI "
                      "message out (layered mode), less the companion's predicted wait, ms",
    "midi_in_to_echo": "the same CCs -> their MIDI thru message, sent before the model steps (same run), ms",
    "keras_predict": "workstation only: Keras model.predict() of one step, ms",
    "keras_call": "workstation only: Keras model(x) of one step, ms",
}


@dataclass
class Plan:
    """How much to measure: --quick (here, minutes) or --full (a real device, longer)."""
    iterations: int
    warmup: int
    block: int
    threads: tuple
    cold_starts: int
    e2e_seconds: float

    @classmethod
    def quick(cls) -> "Plan":
        return cls(iterations=400, warmup=50, block=50, threads=(1,), cold_starts=3, e2e_seconds=6.0)

    @classmethod
    def full(cls) -> "Plan":
        cores = os.cpu_count() or 1
        return cls(iterations=5000, warmup=500, block=100, threads=tuple(range(1, cores + 1)),
                   cold_starts=10, e2e_seconds=60.0)


# -- the machine ----------------------------------------------------------------

def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip().replace("\x00", "")
    except OSError:
        return None


def _cpu_model() -> str:
    text = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Model", "Hardware", "cpu model", "Processor"):
        for line in text.splitlines():
            if line.split(":")[0].strip() == key and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _vcgencmd(*args) -> str | None:
    exe = shutil.which("vcgencmd")
    if not exe:
        return None
    try:
        done = subprocess.run([exe, *args], capture_output=True, text=True, timeout=5)
        return done.stdout.strip() or done.stderr.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"error: {exc}"


def _package_version(name: str) -> str | None:
    try:
        from importlib.metadata import PackageNotFoundError, version
        try:
            return version(name)
        except PackageNotFoundError:
            return None
    except ImportError:
        return None


def thermal_state() -> dict:
    """Temperature, throttling and clock now (vcgencmd on a Pi, sysfs elsewhere)."""
    state = {"time": _dt.datetime.now().astimezone().isoformat(timespec="seconds")}
    temp = _vcgencmd("measure_temp")
    if temp is not None:
        state["vcgencmd_measure_temp"] = temp
        state["vcgencmd_get_throttled"] = _vcgencmd("get_throttled")
        state["vcgencmd_measure_clock_arm"] = _vcgencmd("measure_clock", "arm")
    zone = _read("/sys/class/thermal/thermal_zone0/temp")
    if zone and zone.lstrip("-").isdigit():
        state["thermal_zone0_celsius"] = int(zone) / 1000.0
    freq = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
    if freq and freq.isdigit():
        state["cpu0_mhz"] = int(freq) / 1000.0
    try:
        state["loadavg"] = list(os.getloadavg())
    except OSError:
        pass
    return state


def machine_record() -> dict:
    """Everything about this machine a reader needs to compare results fairly."""
    mem = _read("/proc/meminfo") or ""
    mem_total = next((int(l.split()[1]) / 1024 for l in mem.splitlines() if l.startswith("MemTotal:")), None)
    from ..model.runtime import available_runtimes
    return {
        "hostname": socket.gethostname(),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "pi_model": _read("/proc/device-tree/model"),
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "max_mhz": (lambda f: int(f) / 1000.0 if f and f.isdigit() else None)(
            _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")),
        "mem_total_mb": mem_total,
        "vcgencmd": shutil.which("vcgencmd") is not None,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "numpy": _package_version("numpy"),
        "runtimes": {name: _package_version(name) for name in available_runtimes()},
        "imps": __version__,
        "executable": sys.executable,
    }


# -- timing one model -------------------------------------------------------------

def model_path(models_dir: Path, units: int, dimension: int) -> Path:
    return Path(models_dir) / f"u{units}-d{dimension}.tflite"


def sweep_models(models_dir: Path, units=UNITS_SWEEP, dimensions=DIMENSION_SWEEP) -> list[tuple[int, int, Path]]:
    """(units, dimension, path) for both sweeps, each model once, smallest first."""
    pairs = {(u, UNITS_SWEEP_DIMENSION) for u in units} | {(DIMENSION_SWEEP_UNITS, d) for d in dimensions}
    found = [(u, d, model_path(models_dir, u, d)) for u, d in sorted(pairs)]
    missing = [p.name for _, _, p in found if not p.exists()]
    if missing:
        raise ImpsError(f"benchmark models missing in {models_dir}: {', '.join(missing)} "
                        f"(make them on the workstation with `make bench-models`)")
    return found


def time_model(path, runtime: str, threads: int, iterations: int, warmup: int, block: int = 50,
               seed: int = 0) -> dict:
    """Per-call times (seconds) of MDRNN.predict and of the bare invoke, interleaved in blocks."""
    from ..model.runtime import MDRNN
    model = MDRNN(path, runtime=runtime, threads=threads, seed=seed)
    clock = time.perf_counter
    invoke = model.invoke_only
    predict = model.predict
    r = [0.05] + [0.5] * (model.dimension - 1)
    for _ in range(warmup):
        invoke()
        r = predict(r)
    t_invoke, t_predict = [], []
    done = 0
    while done < iterations:
        n = min(block, iterations - done)
        for _ in range(n):
            t0 = clock()
            invoke()
            t_invoke.append(clock() - t0)
        for _ in range(n):
            t0 = clock()
            r = predict(r)
            t_predict.append(clock() - t0)
        done += n
    return {"model": model, "invoke": t_invoke, "predict": t_predict}


def bench_models(models, runtimes, plan: Plan, progress=None) -> list[dict]:
    """predict and invoke rows for every (runtime, threads, model)."""
    rows = []
    total = len(runtimes) * len(plan.threads) * len(models)
    i = 0
    for runtime in runtimes:
        for threads in plan.threads:
            for units, dimension, path in models:
                i += 1
                if progress:
                    progress(i, total, f"{runtime} threads={threads} units={units} D={dimension}")
                t = time_model(path, runtime, threads, plan.iterations, plan.warmup, plan.block)
                shape = t["model"].shape
                common = dict(runtime=runtime, threads=threads, units=shape.units, dimension=shape.dimension,
                              layers=shape.layers, mixtures=shape.mixtures, model=path.name)
                inv = summary([s * 1e3 for s in t["invoke"]])
                pred = summary([s * 1e3 for s in t["predict"]])
                rows.append(row("invoke", inv, **common))
                rows.append(row("predict", pred, ratio=pred["median"] / inv["median"], **common))
                del t
    return rows


# -- cold start -------------------------------------------------------------------

#: The child: import, load, one prediction, READY, then report its own peak memory.
PROBE = r"""
import sys, resource
from imps.model.runtime import MDRNN
m = MDRNN(sys.argv[1], runtime=sys.argv[2], threads=int(sys.argv[3]), seed=0)
m.predict([0.05] + [0.5] * (m.dimension - 1))
sys.stdout.write("READY\n"); sys.stdout.flush()
hwm = 0
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        hwm = int(line.split()[1])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, hwm, flush=True)
"""


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])


def cold_start_once(model, runtime: str, threads: int = 1, python: str | None = None) -> dict:
    """One fresh process to READY: seconds, and its peak RSS in MB (ru_maxrss and VmHWM)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = _package_root() + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    t0 = time.perf_counter()
    proc = subprocess.Popen([python or sys.executable, "-c", PROBE, str(model), runtime, str(threads)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    first = proc.stdout.readline()
    t_ready = time.perf_counter() - t0
    rest = proc.stdout.read()   # not communicate(): it would bypass what readline() buffered
    err = proc.stderr.read()
    proc.wait(60)
    if first.strip() != "READY" or proc.returncode != 0:
        raise ImpsError(f"cold-start probe for {model} with {runtime} failed (exit {proc.returncode}): "
                        f"{(first + rest + err).strip()[-500:]}")
    maxrss_kb, hwm_kb = (int(v) for v in rest.split())
    return {"seconds": t_ready, "maxrss_mb": maxrss_kb / 1024.0, "hwm_mb": hwm_kb / 1024.0}


def bench_cold_start(model, runtimes, repeats: int, progress=None) -> list[dict]:
    rows = []
    for i, runtime in enumerate(runtimes):
        if progress:
            progress(i, len(runtimes), f"cold start {runtime}")
        runs = [cold_start_once(model, runtime) for _ in range(repeats)]
        common = dict(runtime=runtime, threads=1, model=Path(model).name)
        rows.append(row("cold_start", summary([r["seconds"] * 1e3 for r in runs]), **common))
        rows.append(row("cold_start_rss", summary([r["maxrss_mb"] for r in runs], "MB"), **common))
        rows.append(row("cold_start_hwm", summary([r["hwm_mb"] for r in runs], "MB"), **common))
    return rows


# -- output -----------------------------------------------------------------------

def _fmt(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def write_results(out_dir, machine: dict, rows: list[dict], extra: dict | None = None) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out_dir / "bench.csv", out_dir / "bench.json"
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: _fmt(r.get(k, "")) for k in COLUMNS})
    doc = {"format": SCHEMA, "machine": machine, "benchmarks": BENCHMARKS,
           "rows": [{k: r.get(k, "") for k in COLUMNS} for r in rows]}
    doc.update(extra or {})
    json_path.write_text(json.dumps(doc, indent=1) + "\n")
    return csv_path, json_path


def default_out_dir(machine: dict) -> Path:
    day = machine["date"][:10]
    return Path("bench-results") / f"{machine['hostname']}-{day}"


class Progress:
    """A one-line progress bar on stderr when it is a terminal; silent otherwise."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.monotonic()

    def __call__(self, i: int, total: int, what: str) -> None:
        if not self.live:
            return
        width = 24
        fill = int(width * i / max(total, 1))
        self.stream.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {i}/{total} {what[:50]:<50} "
                          f"{time.monotonic() - self.start:5.0f}s")
        self.stream.flush()

    def done(self) -> None:
        if self.live:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.flush()


# -- the command ------------------------------------------------------------------

def headline(rows: list[dict]) -> list[str]:
    """The figures issue #3 asks for, one line each."""
    lines = []
    key = {(64, 4), (64, 9), (512, 9)}
    if not any(r["benchmark"] == "predict" and (r["units"], r["dimension"]) in key for r in rows):
        key = {(r["units"], r["dimension"]) for r in rows if r["benchmark"] == "predict"}
    for r in rows:
        b = r["benchmark"]
        if b == "predict" and r["threads"] == 1 and (r["units"], r["dimension"]) in key:
            lines.append(f"predict {r['runtime']:<14} u{r['units']:<3} D={r['dimension']:<2} "
                         f"median {r['median']:.3f} ms (IQR {r['iqr']:.3f}, p99 {r['p99']:.3f}); "
                         f"predict/invoke {r['ratio']:.2f}x")
        elif b in ("cold_start", "ready"):
            lines.append(f"{b:<14} {r['runtime']:<14} median {r['median']:.0f} ms (max {r['max']:.0f})")
        elif b in ("cold_start_hwm", "ready_rss"):
            lines.append(f"{b:<14} {r['runtime']:<14} peak RSS {r['max']:.1f} MB")
        elif b in ("schedule_error", "input_to_output", "input_to_echo", "midi_in_to_out", "midi_in_to_echo"):
            lines.append(f"{b:<15} {r.get('note') or '':<20} p50 {r['median']:.3f} ms, p99 {r['p99']:.3f} ms "
                         f"(n={r['n']})")
    return lines


def run_bench(out_dir=None, plan: Plan | None = None, models_dir=None, runtimes=None, units=UNITS_SWEEP,
              dimensions=DIMENSION_SWEEP, e2e: bool = True, cold: bool = True, progress=None,
              log=print, realtime: int = UNIT_PRIORITY) -> dict:
    plan = plan or Plan.quick()
    models_dir = Path(models_dir or MODELS_DIR)
    from ..model.runtime import available_runtimes
    present = available_runtimes()
    runtimes = list(runtimes or present)
    unknown = [r for r in runtimes if r not in present]
    if unknown:
        raise ImpsError(f"runtime {', '.join(unknown)} not installed here (present: {', '.join(present) or 'none'})")
    models = sweep_models(models_dir, units, dimensions)
    machine = machine_record()
    machine["before"] = thermal_state()
    machine["plan"] = plan.__dict__.copy()
    started = time.monotonic()
    rows = bench_models(models, runtimes, plan, progress)
    s_model = model_path(models_dir, DIMENSION_SWEEP_UNITS, UNITS_SWEEP_DIMENSION)
    if not s_model.exists():
        s_model = models[0][2]
    if cold:
        rows += bench_cold_start(s_model, runtimes, plan.cold_starts, progress)
    notes = {}
    if e2e:
        from .e2e import run_all as run_e2e
        e2e_rows, notes = run_e2e(s_model, runtimes[0], plan.e2e_seconds, log=log, realtime=realtime)
        rows += e2e_rows
    machine["after"] = thermal_state()
    machine["seconds"] = round(time.monotonic() - started, 1)
    out_dir = Path(out_dir) if out_dir else default_out_dir(machine)
    csv_path, json_path = write_results(out_dir, machine, rows, {"notes": notes} if notes else None)
    return {"machine": machine, "rows": rows, "csv": csv_path, "json": json_path, "notes": notes}


def add_bench_arguments(parser) -> None:
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="full", action="store_false",
                      help="few iterations, 1 thread, short end-to-end runs (the default; ~1-2 minutes)")
    mode.add_argument("--full", dest="full", action="store_true",
                      help="many iterations, every thread count 1..cores, 60 s end-to-end runs (for a real box)")
    parser.add_argument("-o", "--out", help="output directory (default bench-results/<hostname>-<date>/)")
    parser.add_argument("--models", help=f"benchmark models directory (default {MODELS_DIR})")
    parser.add_argument("--runtime", action="append", choices=["tflite-runtime", "ai-edge-litert"],
                        help="only this runtime (repeatable; default every runtime installed)")
    parser.add_argument("--threads", type=int, nargs="+", help="thread counts (default 1, or 1..cores with --full)")
    parser.add_argument("--iterations", type=int, help="timed calls per model and kind")
    parser.add_argument("--warmup", type=int, help="untimed calls first")
    parser.add_argument("--units", type=int, nargs="+", default=list(UNITS_SWEEP),
                        help=f"LSTM units sweep at D={UNITS_SWEEP_DIMENSION} (default %(default)s)")
    parser.add_argument("--dimensions", type=int, nargs="+", default=list(DIMENSION_SWEEP),
                        help=f"dimension sweep at {DIMENSION_SWEEP_UNITS} units (default %(default)s)")
    parser.add_argument("--cold-starts", type=int, help="fresh processes timed to READY per runtime")
    parser.add_argument("--e2e-seconds", type=float, help="length of each end-to-end run")
    parser.add_argument("--no-e2e", action="store_true", help="skip the end-to-end (engine) parts")
    parser.add_argument("--no-cold-start", action="store_true", help="skip the cold-start processes")
    parser.add_argument("--realtime", type=int, default=UNIT_PRIORITY, metavar="PRIORITY",
                        help="also measure the serial and MIDI paths on SCHED_FIFO at this priority, as "
                             "imps.service runs the box (default %(default)s; 0: not; needs root or LimitRTPRIO)")
    parser.set_defaults(full=False)


def bench_command(args) -> int:
    plan = Plan.full() if args.full else Plan.quick()
    for name in ("threads", "iterations", "warmup", "cold_starts", "e2e_seconds"):
        value = getattr(args, name, None)
        if value is not None:
            setattr(plan, name, tuple(value) if name == "threads" else value)
    plan.warmup = min(plan.warmup, max(plan.iterations, 1))
    if not 0 <= args.realtime <= 49:
        raise ImpsError(f"--realtime {args.realtime}: out of range, expected 0 (off) to 49 (below the kernel's IRQ threads)")
    progress = Progress()
    print(f"imps bench ({'full' if args.full else 'quick'}): {plan.iterations} calls per model, "
          f"threads {', '.join(map(str, plan.threads))}", file=sys.stderr)
    result = run_bench(args.out, plan, args.models, args.runtime, args.units, args.dimensions,
                       e2e=not args.no_e2e, cold=not args.no_cold_start, progress=progress,
                       log=lambda text: print(text, file=sys.stderr), realtime=args.realtime)
    progress.done()
    m = result["machine"]
    print(f"{m['hostname']}: {m['cpu_model']}, {m['cores']} cores"
          + (f", {m['pi_model']}" if m.get("pi_model") else "") + f"; {m['seconds']} s")
    for line in headline(result["rows"]):
        print("  " + line)
    for key, text in result["notes"].items():
        print(f"  note ({key}): {text}")
    print(f"wrote {result['csv']} and {result['json']}")
    return 0
