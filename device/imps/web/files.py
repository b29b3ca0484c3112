"""The box's folders as the page may touch them: a plain name inside its folder, nothing else.

``inside(folder, name)`` is the one check every download and delete goes
through: a name is one path component of ordinary characters (no ``/``, no
``..``, no leading dot), and the file it names must be a regular file, not a
symlink, whose real path is in the folder. The lists read only what the page
shows: a model's sidecar facts (plain JSON; the page never loads a model:
``imps check-model`` does, in its own process) and a log's span and events per voice.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
import stat
from pathlib import Path

from ..errors import ConfigError

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$")
MODEL_SUFFIXES = (".tflite",)
LOG_SUFFIX = "-mdrnn.log"
SIDECAR_FACTS = ("dimension", "units", "layers", "mixtures", "head", "validation_loss",
                 "pi_temperature", "sigma_temperature")
MAX_SIDECAR_BYTES = 1 << 20


class OutsideFolder(ConfigError):
    """A name that would reach outside its folder, or no such file."""


def check_name(name: str, suffixes: tuple = ()) -> str:
    if not isinstance(name, str) or not NAME.match(name) or ".." in name:
        raise OutsideFolder(f"{name!r:.60} is not a plain file name (letters, digits, _ . + -, no ..)")
    if suffixes and not name.endswith(suffixes):
        raise OutsideFolder(f"{name!r:.60}: expected a name ending in {' or '.join(suffixes)}")
    return name


def inside(folder: Path, name: str, suffixes: tuple = ()) -> Path:
    """The regular file ``folder/name``, or OutsideFolder (bad name, a symlink, not there, not a file)."""
    path = folder / check_name(name, suffixes)
    try:
        st = os.lstat(path)
    except OSError:
        raise OutsideFolder(f"no file {name!r:.60} in {folder.name}/") from None
    if not stat.S_ISREG(st.st_mode):
        raise OutsideFolder(f"{name!r:.60} in {folder.name}/ is not a plain file (a symlink or a folder)")
    if path.resolve().parent != folder.resolve():
        raise OutsideFolder(f"{name!r:.60} resolves outside {folder.name}/")
    return path


def sidecar_facts(model: Path) -> dict:
    """The sidecar's facts a person chooses a model by, or {"sidecar": why not}."""
    sidecar = model.with_suffix(".json")
    try:
        if sidecar.is_symlink() or sidecar.stat().st_size > MAX_SIDECAR_BYTES:
            return {"sidecar": "not a plain file of under 1 MiB"}
        data = json.loads(sidecar.read_text())
    except FileNotFoundError:
        return {"sidecar": "none (sizes read from the model when it loads)"}
    except (OSError, ValueError) as exc:
        return {"sidecar": f"unreadable: {exc}"}
    if not isinstance(data, dict):
        return {"sidecar": "not a JSON object"}
    facts = {k: data[k] for k in SIDECAR_FACTS if k in data}
    dataset = (data.get("training") or {}).get("dataset") or {}
    if isinstance(dataset, dict) and dataset.get("rows"):
        facts["training_rows"] = dataset["rows"]
    return facts


def list_models(folder: Path, playing: str | None, bundled: Path | None) -> list[dict]:
    """Every model in ``folder`` (and the bundled ones), with its facts; which plays, which may be deleted."""
    rows = []
    places = [(folder, False)] + ([(bundled, True)] if bundled and bundled.resolve() != folder.resolve() else [])
    for where, is_bundled in places:
        if not where.is_dir():
            continue
        for path in sorted(where.iterdir()):
            if not path.name.endswith(MODEL_SUFFIXES) or path.is_symlink() or not path.is_file():
                continue
            is_playing = playing is not None and Path(playing).resolve() == path.resolve()
            loss = path.with_name(path.stem + "-loss.png")
            rows.append({"name": path.name, "bundled": is_bundled, "playing": is_playing,
                         "bytes": path.stat().st_size, "loss_plot": loss.is_file(),
                         "deletable": not is_bundled and not is_playing, **sidecar_facts(path)})
    return rows


def log_facts(path: Path) -> dict:
    """Start, length (first to last event), and events per voice, from one pass over the file."""
    first = last = None
    counts = {"interface": 0, "rnn": 0}
    with open(path, "rb") as f:
        for line in f:
            parts = line.split(b",", 2)
            if len(parts) < 3:
                continue
            source = parts[1].decode(errors="replace")
            if source in counts:
                counts[source] += 1
                last = parts[0]
                first = first or parts[0]
    span = None
    if first and last:
        try:
            span = (_dt.datetime.fromisoformat(last.decode()) - _dt.datetime.fromisoformat(first.decode())).total_seconds()
        except ValueError:
            span = None
    return {"start": first.decode(errors="replace") if first else None, "seconds": span,
            "performer_events": counts["interface"], "model_events": counts["rnn"]}


def list_logs(folder: Path, writing: str | None) -> list[dict]:
    rows = []
    if not folder.is_dir():
        return rows
    for path in sorted(folder.iterdir(), reverse=True):
        if not path.name.endswith(LOG_SUFFIX) or path.is_symlink() or not path.is_file():
            continue
        is_writing = writing is not None and Path(writing).resolve() == path.resolve()
        rows.append({"name": path.name, "bytes": path.stat().st_size, "writing": is_writing,
                     "deletable": not is_writing, **log_facts(path)})
    return rows
