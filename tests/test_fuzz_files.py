"""Hypothesis on the files a box reads: config files and model sidecars (issue #27), bounded in time.

The properties: a file is either taken, with every number inside its range, or
refused with one ModelError or ConfigError of one short line; never another
exception, a traceback or a hang. The generators are hostile on purpose: deep
nesting, NUL bytes, long values, dotted keys, numbers at and past every range,
JSON's non-standard Infinity and NaN. (The OSC grammar's fuzz is in
test_osc_pattern.py and, against a running box, test_fuzz_control.py.)
"""
from __future__ import annotations

import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imps.box.config import load_config, settings_of
from imps.errors import ConfigError, ModelError, MAX_ERROR_LINE
from imps.model.model_file import Sidecar, read_sidecar
from imps.ranges import RANGES, SIDECAR
from support import toml_value

BUDGET = 6.0     # seconds any one file may take to be read or refused (a 100k-part key took 11.7 s; a busy
                 # machine, load 12, took 3.6 s for an ordinary one)

NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**70, 2**70),
                    st.sampled_from([0, 1, -1, 1e-308, 1e308, 5e-324, 2**63, 0.001, 1000.0, 4096, 65]))
TEXT = st.one_of(st.text(max_size=20), st.sampled_from(["\0", "a\0b", "x" * 5000, "Infinity", "NaN"]))


def nested(depth: int, inner: str, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + inner + close * depth


SECTIONS = sorted({s for s, _ in RANGES}) + ["log", "engine"]
KEYS = sorted({k for _, k in RANGES} | {"directory", "path", "mode", "dataset", "port", "shutdown_command"})
HOSTILE = st.one_of(
    st.integers(1, 200).map(lambda n: nested(n, "1")),                              # arrays, deep
    st.integers(1, 200).map(lambda n: "{a = " * n + "1" + "}" * n),                  # inline tables, deep
    st.integers(1, 5000).map(lambda n: "[" * n),                                     # never closed
    st.just('"' + "x" * 300_000 + '"'),                                              # past the size limit
)
LINE = st.one_of(
    st.tuples(st.sampled_from(KEYS), st.one_of(NUMBERS, TEXT).map(toml_value)).map(lambda kv: f"{kv[0]} = {kv[1]}"),
    st.tuples(st.sampled_from(KEYS), HOSTILE).map(lambda kv: f"{kv[0]} = {kv[1]}"),
    st.integers(1, 6000).map(lambda n: "[" + ".".join(["a"] * n) + "]"),             # dotted headers
    st.integers(1, 6000).map(lambda n: ".".join(["a"] * n) + " = 1"),                # dotted keys
)
CONFIG = st.lists(st.tuples(st.sampled_from(SECTIONS), st.lists(LINE, max_size=3)), max_size=3).map(
    lambda sections: "".join(f"[{s}]\n" + "".join(line + "\n" for line in lines) for s, lines in sections))


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(text=CONFIG)
def test_a_hostile_config_is_loaded_in_range_or_refused_in_one_short_line(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "box.toml"
    path.write_text(text, errors="surrogatepass")
    started = time.monotonic()
    try:
        config = load_config(path)
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message.strip()
        assert time.monotonic() - started < BUDGET
        return
    assert time.monotonic() - started < BUDGET
    for (section, key), value in settings_of(config).items():
        if (section, key) in RANGES:
            RANGES[(section, key)].check(f"[{section}] {key}", value)
        for v in value if isinstance(value, (list, tuple)) else (value,):
            assert not (isinstance(v, str) and "\0" in v), (section, key)


FIELDS = list(Sidecar.__struct_fields__)
GOOD = {"dimension": 4, "units": 128, "layers": 2, "mixtures": 5, "input_scale": 10.0}
JSON_VALUE = st.recursive(st.one_of(st.none(), st.booleans(), NUMBERS, TEXT),
                          lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                  st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                          max_leaves=8)


def as_json(value) -> str:
    """JSON as a careless or hostile writer would: Infinity and NaN (Python's json writes them) included."""
    return json.dumps(value, allow_nan=True, default=str)


SIDECAR_TEXT = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS + ["head", "bogus"]), JSON_VALUE, max_size=8).map(
        lambda d: as_json({**GOOD, **d})),
    st.tuples(st.sampled_from(FIELDS), NUMBERS).map(lambda kv: as_json({**GOOD, kv[0]: kv[1]})),
    st.integers(1, 100_000).map(lambda n: '{"training": ' + nested(n, "1") + "}"),
    st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(text=SIDECAR_TEXT)
def test_a_hostile_sidecar_is_read_in_range_or_refused_in_one_short_line(tmp_path_factory, text):
    model = tmp_path_factory.mktemp("sc") / "m.tflite"
    model.with_suffix(".json").write_text(text, errors="surrogatepass")
    try:
        sidecar = read_sidecar(model)
    except ModelError as exc:
        message = str(exc)
        assert "\n" not in message and len(message) <= MAX_ERROR_LINE + 200, message[:300]
        return
    for key, r in SIDECAR.items():
        r.check(key, getattr(sidecar, key))      # never raises for a sidecar that was taken
