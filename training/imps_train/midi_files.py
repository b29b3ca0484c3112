"""Standard MIDI files (.mid) -> a dataset: start a model from recordings people already have.

Each file is one performance. A file becomes rows exactly as the box would
have logged the same playing through a live MIDI device
(``imps.io.midi.midifile.performance_rows``), with the same input rules: those
of a box config's first ``[[midi.input]]`` device when one is given, so the
model learns the controls the box will feed it; otherwise rules suggested
from the first file (notes first, then the busiest controllers), used for
every file and printed in the report. Then the same cleaning as logs.
"""
from __future__ import annotations

from pathlib import Path

from imps.errors import DatasetError
from imps.io.midi.midifile import performance_rows, suggest_rules
from imps.model.rows import DEFAULT_MAX_DT

from .collate import Report, _finish, clean

SUFFIXES = (".mid", ".midi")


def is_midi(path) -> bool:
    return Path(path).suffix.lower() in SUFFIXES


def rules_from_config(config_path):
    """The first [[midi.input]] device's rules and the dimension of a box config."""
    from imps.box.config import load_config
    config = load_config(config_path)
    devices = config.midi.input
    if not devices:
        raise DatasetError(f"{config_path}: no [[midi.input]] device to take the mapping from")
    return list(devices[0].map), config.engine.dimension


def from_midi_files(paths, dimension: int | None = None, rules=None, max_dt: float = DEFAULT_MAX_DT):
    """A dataset (one performance per file) and the report; ``rules`` None: suggested from the first file."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise DatasetError("no MIDI files given")
    how = "the given mapping"
    if rules is None:
        rules = suggest_rules(paths[0], (dimension - 1) if dimension else 64)
        how = f"suggested from {paths[0].name}: " + "; ".join(_describe(r) for r in rules)
    if dimension is None:
        dimension = max(r.control for r in rules) + 2
    if dimension < 2:
        raise DatasetError(f"dimension {dimension}: need dt plus at least one control")
    report = Report()
    perfs, names = [], []
    for path in paths:
        try:
            perfs.append(performance_rows(path, rules, dimension - 1))
            names.append(path.name)
        except DatasetError as exc:
            report.performances_in += 1
            report.skipped.append((path.name, str(exc)))
    perfs, report = clean(perfs, names, max_dt, report)
    print(f"mapping: {how}")
    return _finish(perfs, report, {"source": "midi-files", "files": [p.name for p in paths],
                                   "max_dt": max_dt, "mapping": [_describe(r) for r in rules]}), report


def _describe(rule) -> str:
    what = rule.type + (f" {rule.number}" if rule.number is not None else "")
    where = f" ch {rule.channel}" if rule.channel else ""
    return f"{what}{where} -> control {rule.control}"
