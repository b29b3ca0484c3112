"""What a web framework costs the box's page: import time and resident memory, each in a fresh process.

    python -m imps.bench.web_frameworks [--site DIR] [--repeat 5]

Each candidate is imported in its own child process (``-X importtime`` off, plain
``time.perf_counter`` around the import of what a minimal page with a streamed
route needs), and the child reports its import CPU time, wall time and peak RSS
(ru_maxrss) next to the bare interpreter's. ``--site`` adds a folder of installed
packages (``pip install --target DIR bottle flask ...``) so the candidates need
not be in the box's environment. The figures are in docs/web.md.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

#: name -> the imports a page with one streamed (SSE) route needs.
CANDIDATES = {
    "bare interpreter": "",
    "http.server (stdlib)": "import http.server, socketserver, hashlib, hmac, email.parser, json",
    "bottle": "import bottle",
    "flask": "import flask",
    "starlette + uvicorn": "import starlette.applications, starlette.responses, uvicorn",
    "aiohttp": "import aiohttp.web",
}

CHILD = """
import resource, sys, time
sys.path[:0] = {site!r}
t0, c0 = time.perf_counter(), time.process_time()
{imports}
t1, c1 = time.perf_counter(), time.process_time()
print((t1 - t0) * 1e3, (c1 - c0) * 1e3, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def measure(imports: str, site: list[str], repeat: int) -> dict:
    walls, cpus, rss = [], [], []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", CHILD.format(site=site, imports=imports)],
                             capture_output=True, text=True, check=True).stdout.split()
        walls.append(float(out[0]))
        cpus.append(float(out[1]))
        rss.append(float(out[2]))
    return {"import_ms": statistics.median(walls), "import_cpu_ms": statistics.median(cpus),
            "peak_rss_mb": statistics.median(rss)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--site", action="append", default=[], help="a folder of installed candidates")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = {}
    for name, imports in CANDIDATES.items():
        try:
            rows[name] = measure(imports, args.site, args.repeat)
        except subprocess.CalledProcessError as exc:
            rows[name] = {"error": (exc.stderr or "").strip().splitlines()[-1:]}
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    base = rows["bare interpreter"]["peak_rss_mb"]
    print(f"{'candidate':24} {'import ms':>10} {'import CPU ms':>14} {'peak RSS MB':>12} {'over bare':>10}")
    for name, r in rows.items():
        if "error" in r:
            print(f"{name:24} not importable: {r['error']}")
            continue
        print(f"{name:24} {r['import_ms']:10.1f} {r['import_cpu_ms']:14.1f} {r['peak_rss_mb']:12.1f} "
              f"{r['peak_rss_mb'] - base:10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
