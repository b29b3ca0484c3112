"""Fetch, on the workstation, every wheel a box needs, for the box's Python and CPU.

A box on stage has no internet, so `make deploy` carries its environment:

    python deploy/wheelhouse.py --python 3.13 --machine aarch64 --glibc 2.41 OUTDIR

writes OUTDIR/requirements.txt (device/requirements.txt plus the `pi` extra, with
their environment markers decided for the box, not for this machine) and the
files pip on the box installs from with ``--no-index --find-links OUTDIR``:
binary wheels, and the source of the two PyPI has no wheels for (RPi.GPIO,
systemd-python), which the box builds with its own compiler, plus
setuptools and wheel to build them with, and pip itself (run from its wheel).
lgpio has wheels for some Pythons only (aarch64 cp39 to cp312, none for the
cp313 of trixie): where there is none, its source goes, and the box builds it
statically (deploy.sh sets lgpio's PYPI=1; provisioning installs swig).

pip matches platform tags literally, so it is given one ``manylinux_2_NN_<machine>``
tag for every NN from 17 up to the box's glibc (with only 2_17 and the newest,
pip silently picks an older ai-edge-litert).
An OUTDIR with a ``.complete`` marker from the same inputs is reused as it is.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

try:
    from packaging.requirements import Requirement
except ImportError:  # pip always carries it
    from pip._vendor.packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
BUILD_TOOLS = ["setuptools", "wheel"]
# PyPI has only source packages of these: they travel as source and the box
# compiles them (provisioning installs gcc, python3-dev, libsystemd-dev).
SOURCE_ONLY = {"rpi.gpio", "systemd-python"}
# PyPI has wheels of these for some Pythons and CPUs only: elsewhere their source goes.
SOURCE_FALLBACK = {"lgpio"}


def box_requirements(python: str, machine: str) -> list:
    """device/requirements.txt and the `pi` extra, markers evaluated for the box."""
    lines = (ROOT / "device" / "requirements.txt").read_text().splitlines()
    meta = tomllib.loads((ROOT / "device" / "pyproject.toml").read_text())
    lines += meta["project"]["optional-dependencies"]["pi"]
    env = dict(python_version=python, python_full_version=python + ".0", platform_machine=machine,
               sys_platform="linux", platform_system="Linux", os_name="posix",
               implementation_name="cpython", platform_python_implementation="CPython")
    out = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(env):
            req.marker = None
            out.append(str(req))
    return out


def platform_args(python: str, machine: str, glibc: str) -> list:
    major, minor = (int(v) for v in glibc.split(".")[:2])
    if major != 2 or minor < 17:
        raise SystemExit(f"wheelhouse: glibc {glibc}: expected 2.17 or newer")
    args = ["--only-binary=:all:", "--python-version", python, "--implementation", "cp",
            "--abi", "cp" + python.replace(".", ""), "--abi", "abi3", "--abi", "none",
            "--platform", f"linux_{machine}"]
    for nn in range(17, minor + 1):
        args += ["--platform", f"manylinux_2_{nn}_{machine}"]
    if minor >= 17:
        args += ["--platform", f"manylinux2014_{machine}"]
    return args


def pip_download(out: Path, args: list) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                           "-d", str(out), *args], capture_output=True, text=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--python", required=True, help="the box's Python, X.Y")
    p.add_argument("--machine", required=True, help="the box's CPU (uname -m), e.g. aarch64")
    p.add_argument("--glibc", required=True, help="the box's glibc version, e.g. 2.36")
    p.add_argument("out", type=Path)
    a = p.parse_args(argv)
    reqs = box_requirements(a.python, a.machine)
    key = hashlib.sha256(repr((a.python, a.machine, a.glibc, reqs)).encode()).hexdigest()[:16]
    done = a.out / ".complete"
    if done.exists() and done.read_text().strip() == key:
        print(f"== wheels for Python {a.python} {a.machine}: {a.out} (cached)")
        return 0
    if a.out.exists():
        shutil.rmtree(a.out)   # made for other requirements: nothing stale goes to the box
    a.out.mkdir(parents=True)
    plat = platform_args(a.python, a.machine, a.glibc)
    print(f"== wheels for Python {a.python} {a.machine} glibc {a.glibc}: {', '.join(reqs)}", flush=True)
    for req in reqs + ["pip"] + BUILD_TOOLS:
        if Requirement(req).name.lower() in SOURCE_ONLY:
            r = pip_download(a.out, ["--no-binary=:all:", "--no-deps", req])
            print(f"   {req}: PyPI has no wheels; its source goes, the box builds it")
        else:
            r = pip_download(a.out, plat + [req])
            if r.returncode != 0 and Requirement(req).name.lower() in SOURCE_FALLBACK:
                r = pip_download(a.out, ["--no-binary=:all:", "--no-deps", req])
                print(f"   {req}: PyPI has no wheel for Python {a.python} on {a.machine}; "
                      f"its source goes, the box builds it")
        if r.returncode != 0:
            sys.stderr.write(r.stderr[-3000:])
            raise SystemExit(f"wheelhouse: no {req!r} for Python {a.python} on {a.machine} "
                             f"(glibc {a.glibc}) on the package index; see pip's message above")
    (a.out / "requirements.txt").write_text("\n".join(reqs) + "\n")
    done.write_text(key + "\n")
    n = sum(1 for f in a.out.iterdir() if f.suffix in (".whl", ".gz", ".zip"))
    print(f"   {n} files in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
