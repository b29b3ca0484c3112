"""What the front panel on gpiozero costs the box: ``python -m imps.bench.panel_cost``.

- import: fresh processes that first import the rest of the box
  (imps.box.app), then the panel (imps.panel.panel, imps.panel.inputs and
  gpiozero's mock pins): milliseconds, and what that adds to peak RSS. A box
  with ``[gpio] backend = "none"`` never imports gpiozero.
- ready: ``imps run`` from spawn to READY=1, and its peak RSS (VmHWM), with
  ``[gpio] backend = "none"`` and ``"mock"`` (panel up: buttons, LEDs, their
  threads), alternated in one run; the ratios are the figures that survive
  a shared, noisy machine.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

from ..box.config import DEFAULT_MODEL
from .e2e import ready_once

IMPORT_CHILD = r'''
import resource, time
import imps.box.app
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
import imps.panel.panel, imps.panel.inputs, gpiozero.pins.mock
ms = (time.perf_counter() - t) * 1e3
print(ms, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
'''
GPIO = {"none": "", "mock": '[gpio]\nbackend = "mock"\n'}


def import_cost(runs: int) -> tuple[float, float]:
    """Median ms and MB the panel's import adds to a process that has the rest of the box."""
    got = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", IMPORT_CHILD], capture_output=True, text=True, check=True)
        got.append([float(v) for v in out.stdout.split()])
    return statistics.median(g[0] for g in got), statistics.median(g[1] for g in got)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=7, help="fresh processes per measurement (default 7)")
    a = p.parse_args(argv)
    ms, mb = import_cost(a.runs)
    print(f"panel import after the rest of the box: {ms:.1f} ms, peak RSS +{mb:.1f} MB "
          f"(median of {a.runs} fresh processes)")
    ready = {name: [] for name in GPIO}
    for i in range(a.runs):
        for name, extra in GPIO.items():
            print(f"\r  imps run to READY: run {i + 1}/{a.runs}, gpio {name}   ", end="", file=sys.stderr, flush=True)
            ready[name].append(ready_once(DEFAULT_MODEL, "auto", play_seconds=1.0, extra_config=extra))
    print(file=sys.stderr)
    for name, runs in ready.items():
        print(f"imps run, [gpio] backend = {name!r}: READY {statistics.median(r['seconds'] for r in runs) * 1e3:.0f} ms, "
              f"peak RSS {statistics.median(r['hwm_mb'] for r in runs):.1f} MB (median of {a.runs})")
    t = statistics.median(m["seconds"] / n["seconds"] for m, n in zip(ready["mock"], ready["none"]))
    r = statistics.median(m["hwm_mb"] / n["hwm_mb"] for m, n in zip(ready["mock"], ready["none"]))
    print(f"panel on / off: READY time {t:.2f}x, peak RSS {r:.2f}x (median of paired runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
