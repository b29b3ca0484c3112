"""What the config on msgspec costs the box: ``python -m imps.bench.config_cost``.

- import: fresh processes that first import the libraries the rest of the box
  loads (numpy, pyserial, python-osc, mido and the standard modules they
  bring), then ``import msgspec``: its CPU time (process_time: a busy machine
  inflates wall time, not this much), and what it adds to peak RSS; the
  modules it adds are listed (msgspec's own, typing_extensions, decimal, uuid).
- reading: ``load_config(box.example.toml)`` per call, beside tomllib's parse
  of the same file alone.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from ..box.config import PACKAGE_DIR, load_config
from ..tomlfile import tomllib

EXAMPLE = PACKAGE_DIR / "box.example.toml"
CHILD = r'''
import resource, sys, time
import numpy, serial, serial.tools.list_ports, pythonosc.udp_client, pythonosc.osc_message_builder, mido
import typing, dataclasses, datetime, ipaddress, tomllib, json, inspect, logging, threading, subprocess
import importlib.metadata, email.parser
before, rss, cpu = set(sys.modules), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.process_time()
import msgspec
cpu = (time.process_time() - cpu) * 1e3
rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
print(cpu, rss, " ".join(sorted(m for m in set(sys.modules) - before if not m.startswith("msgspec."))))
'''


def import_cost(runs: int) -> tuple[list, list, str]:
    """CPU ms and peak-RSS MB that ``import msgspec`` adds, per fresh process, and the modules it adds."""
    cpu, rss, added = [], [], ""
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True).stdout.split()
        cpu.append(float(out[0]))
        rss.append(float(out[1]))
        added = " ".join(out[2:])
    return cpu, rss, added


def per_call_ms(fn, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) * 1e3 / n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=9, help="fresh processes per measurement (default 9)")
    a = p.parse_args(argv)
    cpu, rss, added = import_cost(a.runs)
    print(f"import msgspec after the box's other libraries: {statistics.median(cpu):.1f} ms CPU "
          f"(min {min(cpu):.1f}), peak RSS +{statistics.median(rss):.1f} MB (median of {a.runs} fresh processes)")
    print(f"  modules it adds besides msgspec.*: {added}")
    text = EXAMPLE.read_text()
    parse = min(per_call_ms(lambda: tomllib.loads(text), 50) for _ in range(5))
    load = min(per_call_ms(lambda: load_config(EXAMPLE), 50) for _ in range(5))
    print(f"load_config(box.example.toml): {load:.2f} ms per call, of which the TOML parse {parse:.2f} ms "
          f"(best of 5 x 50 calls)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
