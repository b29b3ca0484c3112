"""The offline wheelhouse a deploy carries (deploy/wheelhouse.py) and the box side
that compiles, once, the packages with no wheel for the box (build_wheels in
deploy/deploy.sh). No network: the index's answers are given as data, and the
source package is a small project made here with an in-tree build backend.
The real thing (python-rtmidi, RPi.GPIO, systemd-python compiled on an arm64
Debian box with no internet) is tests/vm/."""
from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pip
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "deploy"))
import wheelhouse  # noqa: E402
from wheelhouse import Requirement  # noqa: E402


def index_file(name, yanked=False, requires_python=None):
    return {"filename": name, "url": f"https://files.example/{name}", "yanked": yanked,
            "requires-python": requires_python, "hashes": {"sha256": "0" * 64}}


def test_newest_sdist_honours_the_specifier_python_and_yanks():
    files = [index_file("demo-1.0.tar.gz"), index_file("demo-1.2.tar.gz"),
             index_file("demo-1.3-cp313-cp313-linux_aarch64.whl"),     # a wheel: not a source
             index_file("demo-1.4.tar.gz", yanked=True),
             index_file("demo-1.5.tar.gz", requires_python=">=3.14"),
             index_file("demo-2.0rc1.tar.gz"),                         # a pre-release
             index_file("demo-3.0.zip")]
    pick = lambda spec: wheelhouse.newest_sdist(files, Requirement("demo" + spec), "3.13")  # noqa: E731
    assert pick(">=1.0,<3")["filename"] == "demo-1.2.tar.gz"
    assert pick("")["filename"] == "demo-3.0.zip"
    assert pick("==1.0")["filename"] == "demo-1.0.tar.gz"
    assert pick(">=4") is None


def make_sdist(folder: Path, name="demo", version="1.0", pyproject=True, requires=()) -> Path:
    """A source archive whose in-tree backend writes a pure wheel (no compiler, no
    setuptools needed, as on a box with no index)."""
    files = {
        "PKG-INFO": "Metadata-Version: 2.1\nName: %s\nVersion: %s\n%s" % (
            name, version, "".join(f"Requires-Dist: {r}\n" for r in requires)),
        f"{name}.py": "ANSWER = 42\n",
    }
    if pyproject:
        files["pyproject.toml"] = textwrap.dedent("""\
            [build-system]
            requires = []
            build-backend = "backend"
            backend-path = ["."]
            """)
        files["backend.py"] = textwrap.dedent(f'''\
            import os, zipfile
            NAME, VERSION = {name!r}, {version!r}
            def get_requires_for_build_wheel(config_settings=None):
                return []
            def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
                wheel = f"{{NAME}}-{{VERSION}}-py3-none-any.whl"
                info = f"{{NAME}}-{{VERSION}}.dist-info"
                with zipfile.ZipFile(os.path.join(wheel_directory, wheel), "w") as z:
                    z.writestr(f"{{NAME}}.py", open(f"{{NAME}}.py").read())
                    z.writestr(f"{{info}}/METADATA", f"Metadata-Version: 2.1\\nName: {{NAME}}\\nVersion: {{VERSION}}\\n")
                    z.writestr(f"{{info}}/WHEEL", "Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n")
                    z.writestr(f"{{info}}/RECORD", "")
                return wheel
            ''')
    path = folder / f"{name}-{version}.tar.gz"
    with tarfile.open(path, "w:gz") as t:
        for rel, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-{version}/{rel}")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


def test_sdist_needs_reads_build_and_runtime_requirements_without_building(tmp_path):
    env = wheelhouse.marker_env("3.13", "aarch64")
    sdist = make_sdist(tmp_path, requires=["mido>=1.3", "colorama; sys_platform == 'win32'"])
    runtime, build = wheelhouse.sdist_needs(sdist, env)
    assert runtime == ["mido>=1.3"]          # the Windows-only one is decided away for the box
    assert build == []                       # the in-tree backend needs nothing
    legacy = make_sdist(tmp_path / "..", name="legacy", pyproject=False)
    assert wheelhouse.sdist_needs(legacy, env) == ([], wheelhouse.DEFAULT_BUILD)


def build_wheels(folder: Path) -> subprocess.CompletedProcess:
    """deploy.sh's build_wheels, run as the box runs it, with this interpreter's pip
    standing in for the pip wheel deploy carries."""
    pip_dir = Path(pip.__file__).parent
    script = f'source {REPO}/deploy/deploy.sh && IMPS_WHEELS={folder} build_wheels {pip_dir}'
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=300,
                          env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(folder)})


def test_box_compiles_a_source_once_and_keeps_the_wheel_beside_it(tmp_path):
    folder = tmp_path / "wheels"
    folder.mkdir()
    make_sdist(folder)
    (folder / "build-requirements.txt").write_text("")
    first = build_wheels(folder)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "compiling demo-1.0.tar.gz" in first.stdout
    wheel = folder / "demo-1.0-py3-none-any.whl"
    assert wheel.exists(), sorted(p.name for p in folder.iterdir())
    stamp = wheel.stat().st_mtime_ns
    again = build_wheels(folder)             # the wheel is there: nothing is compiled again
    assert again.returncode == 0 and "compiling" not in again.stdout, again.stdout
    assert wheel.stat().st_mtime_ns == stamp


def test_a_source_that_does_not_build_fails_the_install(tmp_path):
    folder = tmp_path / "wheels"
    folder.mkdir()
    sdist = make_sdist(folder)
    with tarfile.open(sdist, "w:gz") as t:   # overwritten: a pyproject naming no backend that exists
        data = b'[build-system]\nrequires = []\nbuild-backend = "missing"\nbackend-path = ["."]\n'
        info = tarfile.TarInfo("demo-1.0/pyproject.toml")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    (folder / "build-requirements.txt").write_text("")
    r = build_wheels(folder)
    assert r.returncode != 0
    assert not list(folder.glob("*.whl"))


@pytest.mark.parametrize("glibc, ok", [("2.41", True), ("2.17", True), ("2.5", False), ("3.1", False)])
def test_platform_tags_cover_every_glibc_up_to_the_box(glibc, ok):
    if not ok:
        with pytest.raises(SystemExit):
            wheelhouse.platform_args("3.13", "aarch64", glibc)
        return
    args = wheelhouse.platform_args("3.13", "aarch64", glibc)
    minor = int(glibc.split(".")[1])
    tags = [args[i + 1] for i, a in enumerate(args) if a == "--platform"]
    assert [f"manylinux_2_{n}_aarch64" for n in range(17, minor + 1)] == [t for t in tags if t.startswith("manylinux_2_")]
