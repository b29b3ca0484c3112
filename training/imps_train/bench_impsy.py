"""The box beside IMPSY on IMPSY's own model: `imps-train bench-impsy` (make bench-impsy).

Three processes, each in its own environment, on the same IMPSY-converted
.tflite (built and converted by IMPSY's own code unless --model is given):

- IMPSY (`.venv/impsy`): ``TfliteMDRNN.generate`` per prediction (model step
  plus sampling), start-to-first-prediction, peak memory;
- the box (`.venv/device`), once per installed runtime: ``MDRNN.predict`` (model
  step plus sampling), the same start-up and memory figures.

Start-to-first-prediction is wall time from launching the interpreter to the
first prediction returned (imports included: IMPSY imports TensorFlow). The
per-prediction figure is the median over --steps calls, and the rounds
alternate between the two tools so a busy machine weighs on both alike; the
ratio is taken within the run. Nothing here is a pass/fail test: it prints figures.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMPSY_SIDE = Path(__file__).resolve().parent / "impsy_side.py"
#: The design target (/work/shared/DESIGN.md): on IMPSY's own model a prediction costs at most a fifth of IMPSY's.
TARGET_RATIO = 5.0


def impsy_python() -> str:
    return os.environ.get("IMPS_IMPSY_PYTHON", str(ROOT / ".venv" / "impsy" / "bin" / "python"))


def device_python() -> str:
    return os.environ.get("IMPS_DEVICE_PYTHON", str(ROOT / ".venv" / "device" / "bin" / "python"))


def impsy_side(*args, timeout: float = 900) -> dict:
    """Run one impsy_side.py subcommand with IMPSY's own code in IMPSY's environment; its JSON result."""
    python = impsy_python()
    if not Path(python).exists():
        raise FileNotFoundError(f"IMPSY's environment is missing ({python}): run `make impsy-env`")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([python, str(IMPSY_SIDE), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"IMPSY's side ({' '.join(map(str, args))}) failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


#: The box's side of the benchmark: same measurements as impsy_side.bench.
_BOX = """\
import json, resource, sys, time
START = time.monotonic()
from imps.runtime import MDRNN
m = MDRNN(sys.argv[1], runtime=sys.argv[2])
row = m.predict([0.01] + [0.5] * (m.dimension - 1))
first = time.monotonic() - START
for _ in range(20):
    row = m.predict(row)
times = []
for _ in range(int(sys.argv[3])):
    t = time.perf_counter()
    row = m.predict(row)
    times.append(time.perf_counter() - t)
print(json.dumps({"first_prediction_s": first, "predict_s": sorted(times)[len(times) // 2],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "runtime": m.runtime}))
"""


def box_side(model: Path, runtime: str, steps: int) -> dict:
    done = subprocess.run([device_python(), "-c", _BOX, str(model), runtime, str(steps)],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"the box's side ({runtime}) failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def timed(fn, *args) -> dict:
    """fn's figures plus the wall time of its whole process (launch to exit)."""
    t = time.monotonic()
    result = fn(*args)
    result["process_s"] = time.monotonic() - t
    return result


def _box_runtimes() -> list[str]:
    code = "from imps.runtime import available_runtimes; print(','.join(available_runtimes()))"
    done = subprocess.run([device_python(), "-c", code], capture_output=True, text=True, timeout=120)
    return [r for r in done.stdout.strip().split(",") if r]


def bench(model: Path | None, dimension: int, units: int, steps: int, rounds: int, out=print) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-impsy-") as tmp:
        if model is None:
            out(f"building IMPSY's {dimension}-D, {units}-unit model with IMPSY's own code ...")
            model = Path(impsy_side("models", tmp, dimension, "--units", units)["models"][0])
        versions = impsy_side("version")
        runtimes = _box_runtimes()
        impsy_runs, box_runs = [], {r: [] for r in runtimes}
        for i in range(rounds):
            out(f"round {i + 1}/{rounds}: IMPSY, then the box ({', '.join(runtimes)})")
            impsy_runs.append(impsy_side("bench", model, "--steps", steps))
            for r in runtimes:
                box_runs[r].append(box_side(model, r, steps))
    result = {"model": str(model), "dimension": dimension, "units": units, "steps": steps, "rounds": rounds,
              "versions": versions, "impsy": _summary(impsy_runs), "box": {r: _summary(v) for r, v in box_runs.items()}}
    out(report(result))
    return result


def _summary(runs: list[dict]) -> dict:
    return {key: statistics.median(r[key] for r in runs) for key in ("predict_s", "first_prediction_s", "peak_rss_mb")}


def report(result: dict) -> str:
    i = result["impsy"]
    v = result["versions"]
    lines = [f"IMPSY {v['impsy']} (TensorFlow {v['tensorflow']}) beside the box, on IMPSY's own "
             f"{result['dimension']}-D {result['units']}-unit model (median of {result['rounds']} rounds "
             f"of {result['steps']} predictions)",
             f"{'':16}{'per prediction':>16}{'ratio':>8}{'first prediction':>18}{'peak memory':>13}",
             f"{'IMPSY generate':16}{i['predict_s'] * 1e6:>13.0f} us{'1.0':>8}{i['first_prediction_s']:>16.2f} s"
             f"{i['peak_rss_mb']:>10.0f} MB"]
    for runtime, b in result["box"].items():
        ratio = i["predict_s"] / b["predict_s"]
        lines.append(f"{'box ' + runtime:16}{b['predict_s'] * 1e6:>13.0f} us{1 / ratio:>8.3f}"
                     f"{b['first_prediction_s']:>16.2f} s{b['peak_rss_mb']:>10.0f} MB"
                     f"   IMPSY/box {ratio:.1f}x ({'meets' if ratio >= TARGET_RATIO else 'misses'} "
                     f"the {TARGET_RATIO:g}x target)")
    return "\n".join(lines)


def main_args(args) -> int:
    result = bench(Path(args.model) if args.model else None, args.dimension, args.units, args.steps, args.rounds,
                   out=lambda s: print(s, flush=True))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.output}")
    return 0
