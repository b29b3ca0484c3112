"""The box beside IMPSY on IMPSY's own model: `imps-train bench-impsy` (make bench-impsy).

Three processes, each in its own environment, on the same IMPSY-converted
.tflite (built and converted by IMPSY's own code unless --model is given):

- IMPSY (`.venv/impsy`): ``TfliteMDRNN.generate`` per prediction (model step
  plus sampling), start-to-first-prediction, peak memory;
- the box (`.venv/device`), once per installed runtime: ``MDRNN.predict`` (model
  step plus sampling), the same start-up and memory figures;
- the box on the same model converted to its own unrolled format
  (`imps-train convert-impsy`, convert_impsy.py), once per runtime, the same figures.

Start-to-first-prediction is wall time from launching the interpreter to the
first prediction returned (imports included: IMPSY imports TensorFlow); peak
memory is the process's VmHWM. Per prediction, the processes of one round stay
up and are asked in turn for blocks of predictions (median per block), so a
busy machine weighs on both alike; the IMPSY/box ratio is the median of the
paired block ratios. Nothing here is a pass/fail test: it prints figures.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMPSY_SIDE = Path(__file__).resolve().parent / "impsy_side.py"
#: The target (docs/benchmarks.md, "The targets"): on IMPSY's own model a prediction costs at most a fifth of IMPSY's.
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


#: The box's side: the same protocol as impsy_side.bench (JSON lines; "N" on stdin times N predictions).
_BOX = """\
import json, sys, time
START = time.monotonic()
from imps.model.runtime import MDRNN
def peak_rss_mb():  # VmHWM: ru_maxrss would count the parent this was spawned from
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
def emit(result):
    print(json.dumps(result), flush=True)
m = MDRNN(sys.argv[1], runtime=sys.argv[2])
row = m.predict([0.01] + [0.5] * (m.dimension - 1))
emit({"first_prediction_s": time.monotonic() - START, "peak_rss_mb": peak_rss_mb(), "runtime": m.runtime})
for line in sys.stdin:
    times = []
    for _ in range(int(line)):
        t = time.perf_counter()
        row = m.predict(row)
        times.append(time.perf_counter() - t)
    emit({"predict_s": sorted(times)[len(times) // 2]})
emit({"peak_rss_mb": peak_rss_mb()})
"""


class Worker:
    """One process serving timed blocks of predictions (IMPSY's or the box's), started fresh per round."""

    def __init__(self, name: str, argv: list[str]):
        self.name = name
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        self.start = self._read()

    def _read(self) -> dict:
        for line in self.proc.stdout:       # skip anything the tool itself prints
            if line.startswith("{"):
                return json.loads(line)
        err = self.proc.stderr.read()
        raise RuntimeError(f"{self.name} stopped (exit {self.proc.wait()}):\n{err[-4000:]}")

    def block(self, n: int) -> float:
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()
        return self._read()["predict_s"]

    def close(self) -> dict:
        self.proc.stdin.close()
        end = self._read()
        self.proc.wait(60)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return {"first_prediction_s": self.start["first_prediction_s"], "peak_rss_mb": end["peak_rss_mb"]}


def _box_runtimes() -> list[str]:
    code = "from imps.model.runtime import available_runtimes; print(','.join(available_runtimes()))"
    done = subprocess.run([device_python(), "-c", code], capture_output=True, text=True, timeout=120)
    return [r for r in done.stdout.strip().split(",") if r]


def bench(model: Path | None, dimension: int, units: int, blocks: int, block: int, rounds: int,
          out=print) -> dict:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-impsy-") as tmp:
        if model is None:
            out(f"building IMPSY's {dimension}-D, {units}-unit model with IMPSY's own code ...")
            model = Path(impsy_side("models", tmp, dimension, "--units", units)["models"][0])
        versions = impsy_side("version")
        runtimes = _box_runtimes()
        converted = _converted(model, Path(tmp) / "converted.tflite", out)
        boxes = {r: (r, model) for r in runtimes}
        if converted:
            boxes.update({f"{CONVERTED}{r}": (r, converted) for r in runtimes})
        starts = {name: [] for name in ["impsy", *boxes]}
        times = {name: [] for name in ["impsy", *boxes]}
        ratios = {name: [] for name in boxes}
        for i in range(rounds):
            out(f"round {i + 1}/{rounds}: start IMPSY and the box ({', '.join(boxes)}), then "
                f"{blocks} alternating blocks of {block} predictions")
            workers = {"impsy": Worker("IMPSY", [impsy_python(), str(IMPSY_SIDE), "bench", str(model)])}
            for name, (r, path) in boxes.items():
                workers[name] = Worker(f"the box ({name})", [device_python(), "-c", _BOX, str(path), r])
            for w in workers.values():
                w.block(block)              # warm-up
            for _ in range(blocks):
                t = {name: w.block(block) for name, w in workers.items()}
                for name, value in t.items():
                    times[name].append(value)
                for name in boxes:
                    ratios[name].append(t["impsy"] / t[name])
            for name, w in workers.items():
                starts[name].append(w.close())
    result = {"model": str(model), "dimension": dimension, "units": units, "rounds": rounds, "blocks": blocks,
              "block": block, "versions": versions, "load_average": [load_before, os.getloadavg()[0]],
              "impsy": _summary(times["impsy"], starts["impsy"]),
              "box": {name: dict(_summary(times[name], starts[name]), ratio=statistics.median(ratios[name]),
                                 ratio_quartiles=statistics.quantiles(ratios[name], n=4)[::2]) for name in boxes}}
    out(report(result))
    return result


#: The rows of the model converted to the box's own format are named "converted <runtime>".
CONVERTED = "converted "


def _converted(model: Path, out_path: Path, out) -> Path | None:
    """IMPSY's model in the box's own unrolled format (convert_impsy.py), or None if it cannot be."""
    from imps.errors import ModelError
    from .convert_impsy import convert_impsy
    out("converting it to the box's own format (imps-train convert-impsy) ...")
    try:
        return Path(convert_impsy(model, out_path)["path"])
    except ModelError as exc:
        out(f"no converted rows: {exc}")
        return None


def _summary(times: list[float], starts: list[dict]) -> dict:
    return {"predict_s": statistics.median(times),
            "first_prediction_s": statistics.median(s["first_prediction_s"] for s in starts),
            "peak_rss_mb": statistics.median(s["peak_rss_mb"] for s in starts)}


def report(result: dict) -> str:
    i = result["impsy"]
    v = result["versions"]
    lines = [f"IMPSY {v['impsy']} (TensorFlow {v['tensorflow']}) beside the box on IMPSY's own "
             f"{result['dimension']}-D {result['units']}-unit model: {result['rounds']} fresh starts, "
             f"{result['blocks']} alternating blocks of {result['block']} predictions each (medians; "
             f"load average {result['load_average'][0]:.1f} before, {result['load_average'][1]:.1f} after)",
             f"{'':26}{'per prediction':>15}{'first prediction':>18}{'peak memory':>13}   IMPSY/box per prediction",
             f"{'IMPSY generate':26}{i['predict_s'] * 1e6:>12.0f} us{i['first_prediction_s']:>16.2f} s"
             f"{i['peak_rss_mb']:>10.0f} MB"]
    for name, b in result["box"].items():
        lo, hi = b["ratio_quartiles"]
        label = name.replace(CONVERTED, "converted, ") if name.startswith(CONVERTED) else "box " + name
        lines.append(f"{label:26}{b['predict_s'] * 1e6:>12.0f} us{b['first_prediction_s']:>16.2f} s"
                     f"{b['peak_rss_mb']:>10.0f} MB   {b['ratio']:.1f}x (quartiles {lo:.1f}-{hi:.1f}; target "
                     f"{TARGET_RATIO:g}x: {'met' if b['ratio'] >= TARGET_RATIO else 'missed'})")
    return "\n".join(lines)


def main_args(args) -> int:
    result = bench(Path(args.model) if args.model else None, args.dimension, args.units, args.blocks, args.block,
                   args.rounds, out=lambda s: print(s, flush=True))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.output}")
    return 0
