"""Fetch, on the workstation, every wheel a box needs, for the box's Python and CPU.

A box on stage has no internet, so `make deploy` carries its environment:

    python deploy/wheelhouse.py --python 3.13 --machine aarch64 --glibc 2.41 OUTDIR

writes OUTDIR/requirements.txt (device/requirements.txt plus the `pi` extra, with
their environment markers decided for the box, not for this machine) and the
files pip on the box installs from with ``--no-index --find-links OUTDIR``:
binary wheels, and pip itself (run from its wheel). A package with no wheel for
the box (RPi.GPIO and systemd-python have none at all; python-rtmidi none for
aarch64 on Python 3.13, lgpio none for cp313) travels as its source, with wheels of what builds it
(its pyproject.toml's build-system.requires) listed in OUTDIR/build-requirements.txt:
the box compiles it once into a wheel in OUTDIR, and deploy brings that wheel
back here, so every later deploy to a box of that kind installs it as it is.
The source is fetched from the index's simple API, not with ``pip download``,
which would have to build its metadata here (python-rtmidi's needs ALSA's headers).

pip matches platform tags literally, so it is given one ``manylinux_2_NN_<machine>``
tag for every NN from 17 up to the box's glibc (with only 2_17 and the newest,
pip silently picks an older ai-edge-litert).
An OUTDIR with a ``.complete`` marker from the same inputs is reused as it is.
"""
from __future__ import annotations

import argparse
import email.parser
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import urllib.request
import zipfile
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version
except ImportError:  # pip always carries it
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.specifiers import SpecifierSet
    from pip._vendor.packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
INDEX = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
# What builds a source package whose pyproject.toml does not say (PEP 517's default).
DEFAULT_BUILD = ["setuptools>=40.8.0", "wheel"]


def marker_env(python: str, machine: str) -> dict:
    return dict(python_version=python, python_full_version=python + ".0", platform_machine=machine,
                sys_platform="linux", platform_system="Linux", os_name="posix", extra="",
                implementation_name="cpython", platform_python_implementation="CPython")


def for_box(lines, env: dict) -> list:
    """Requirement lines with their markers decided for the box (and dropped)."""
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


def box_requirements(python: str, machine: str) -> list:
    """device/requirements.txt and the `pi` extra, markers evaluated for the box."""
    lines = (ROOT / "device" / "requirements.txt").read_text().splitlines()
    meta = tomllib.loads((ROOT / "device" / "pyproject.toml").read_text())
    lines += meta["project"]["optional-dependencies"]["pi"]
    return for_box(lines, marker_env(python, machine))


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


def newest_sdist(files: list, req: Requirement, python: str):
    """From an index's file list (PEP 691), the newest source archive that is not
    yanked, satisfies ``req`` and runs on ``python``; None if there is none."""
    best = None
    for f in files:
        name = f["filename"]
        stem = name[:-7] if name.endswith(".tar.gz") else name[:-4] if name.endswith(".zip") else None
        if stem is None or f.get("yanked"):
            continue
        try:
            version = Version(stem.rpartition("-")[2])
        except InvalidVersion:
            continue
        if not req.specifier.contains(version, prereleases=bool(req.specifier.prereleases)):
            continue
        needs = f.get("requires-python")
        if needs and not SpecifierSet(needs).contains(Version(python)):
            continue
        if best is None or version > best[0]:
            best = (version, f)
    return best[1] if best else None


def fetch_sdist(out: Path, req: Requirement, python: str) -> Path:
    """The source archive of ``req``, checked against the index's sha256."""
    name = re.sub(r"[-_.]+", "-", req.name).lower()
    ask = urllib.request.Request(f"{INDEX}/{name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(ask, timeout=60) as r:
        files = json.load(r)["files"]
    f = newest_sdist(files, req, python)
    if f is None:
        raise SystemExit(f"wheelhouse: {req} has neither a wheel for the box nor a source archive on {INDEX}")
    with urllib.request.urlopen(f["url"], timeout=300) as r:
        data = r.read()
    want = f.get("hashes", {}).get("sha256")
    if want and hashlib.sha256(data).hexdigest() != want:
        raise SystemExit(f"wheelhouse: {f['filename']}: sha256 does not match the index's")
    path = out / f["filename"]
    path.write_bytes(data)
    return path


def sdist_needs(path: Path, env: dict):
    """(runtime requirements, build requirements) of a source archive, from its
    PKG-INFO and pyproject.toml, without building anything."""
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as z:
            members = {n: n for n in z.namelist()}
            read = lambda n: z.read(n)  # noqa: E731
            pkg_info, pyproject = _top_level(members, "PKG-INFO"), _top_level(members, "pyproject.toml")
            info = read(pkg_info).decode() if pkg_info else ""
            project = read(pyproject).decode() if pyproject else ""
    else:
        with tarfile.open(path) as t:
            members = {m.name: m for m in t.getmembers()}
            pkg_info, pyproject = _top_level(members, "PKG-INFO"), _top_level(members, "pyproject.toml")
            info = t.extractfile(members[pkg_info]).read().decode() if pkg_info else ""
            project = t.extractfile(members[pyproject]).read().decode() if pyproject else ""
    runtime = email.parser.Parser().parsestr(info).get_all("Requires-Dist") or []
    build = tomllib.loads(project).get("build-system", {}).get("requires") if project else None
    return for_box(runtime, env), for_box(DEFAULT_BUILD if build is None else build, env)


def _top_level(members: dict, name: str):
    """``<project-version>/name`` among an archive's members, or None."""
    for m in members:
        parts = m.strip("/").split("/")
        if len(parts) == 2 and parts[1] == name:
            return m
    return None


def gather(out: Path, reqs: list, plat: list, python: str, env: dict) -> list:
    """Wheels for reqs (or their source where there is none); returns what builds the sources."""
    build, todo, seen = [], list(reqs), set()
    while todo:
        req = Requirement(todo.pop(0))
        key = re.sub(r"[-_.]+", "-", req.name).lower()
        if key in seen:
            continue
        seen.add(key)
        r = pip_download(out, plat + [str(req)])
        if r.returncode == 0:
            continue
        sdist = fetch_sdist(out, req, python)
        runtime, needs = sdist_needs(sdist, env)
        print(f"   {req}: no wheel for the box; {sdist.name} goes, the box builds it once "
              f"(with {', '.join(needs)})", flush=True)
        todo += runtime
        build += [n for n in needs if n not in build]
    return build


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
    build = gather(a.out, reqs + ["pip"], plat, a.python, marker_env(a.python, a.machine))
    for req in build:
        r = pip_download(a.out, plat + [req])
        if r.returncode != 0:
            sys.stderr.write(r.stderr[-3000:])
            raise SystemExit(f"wheelhouse: no wheel of {req!r} (needed to build on the box) for Python "
                             f"{a.python} on {a.machine} (glibc {a.glibc}); see pip's message above")
    (a.out / "requirements.txt").write_text("\n".join(reqs) + "\n")
    (a.out / "build-requirements.txt").write_text("".join(r + "\n" for r in build))
    done.write_text(key + "\n")
    n = sum(1 for f in a.out.iterdir() if f.suffix in (".whl", ".gz", ".zip"))
    print(f"   {n} files in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
