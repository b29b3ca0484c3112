"""imps.settings: the one home of refusing a bad config, against hostile files.

Every refusal is a ConfigError of one line that names the file, the table, the
key, the value and what was expected; nothing else escapes (no OverflowError,
no traceback), and the ranges come from ranges.RANGES only.
"""
import math
import random
import re
from pathlib import Path

import msgspec
import pytest

from imps.box.config import PACKAGE_DIR, SECTIONS, EngineConfig, load_config, settings_of
from imps.errors import ConfigError
from imps.io.midi.settings import MidiSettings, OutputRule, Rule
from imps.io.serial_input import SerialSettings
from imps.panel.settings import PanelConfig
from imps.ranges import RANGES
from imps.settings import Section, decode, describe, keys

EXAMPLE = PACKAGE_DIR / "box.example.toml"
DEVICE = Path(__file__).resolve().parent.parent / "device" / "imps"


def refused(tmp_path, text) -> str:
    path = tmp_path / "box.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path)) or message.startswith(f"config file {path}")
    return message


@pytest.mark.parametrize("text, expected", [
    # numbers: NaN, infinities, huge, whole-number keys given fractions
    ("[engine]\ntime_scale = nan\n", "[engine] time_scale = nan: out of range, expected 0.01 to 100"),
    ("[engine]\ntime_scale = -inf\n", "[engine] time_scale = -inf: out of range, expected 0.01 to 100"),
    ("[engine]\nresponse_threshold = 1e400\n", "[engine] response_threshold = inf: out of range"),
    ("[engine]\nqueue_size = 1e308\n", "[engine] queue_size = 1e+308: out of range, expected a whole number 1 to 100000"),
    ("[engine]\nqueue_size = 18446744073709551616\n", "[engine] queue_size = 18446744073709551616: out of range"),
    ("[engine]\ntime_scale = " + "9" * 400 + "\n", "[engine] time_scale = 9999999999"),
    ("[model]\nseed = " + "9" * 400 + "\n", "...(400 characters): out of range, expected a whole number 0 to 4294967295"),
    ("[model]\nthreads = 2.5\n", "[model] threads = 2.5: out of range, expected a whole number 1 to 64"),
    ("[model]\nthreads = 2.0\n", "[model] threads = 2.0: expected int"),
    # wrong types, nested garbage
    ("[engine]\nmax_dt = \"5\"\n", "[engine] max_dt = '5': expected float"),
    ("[engine]\nmax_dt = [5]\n", "[engine] max_dt = [5]: expected float"),
    ("[engine]\nmax_dt = {a = {b = [1]}}\n", "[engine] max_dt = {'a': {'b': [1]}}: expected float"),
    ("[osc]\nsound_port = true\n", "[osc] sound_port = True: expected int"),
    ("[engine]\nmode = 3\n", "[engine] mode = 3: expected str"),
    ("engine = 3\n", "engine = 3: expected a [engine] table"),
    ("[[engine]]\nmode = \"duet\"\n", "engine = [{'mode': 'duet'}]: expected a [engine] table"),
    ("[serial]\nchannels = [[[[1]]]]\n", "[serial] channels = [[[[1]]]]: expected a list of (int or false (none))"),
    ("[serial]\ncalibration = [[0, 1, 2]]\n", "[serial] calibration = [[0, 1, 2]]: expected a list of [float, float]"),
    ("[serial]\ncalibration = [[0, inf]]\n", "[serial] calibration = [(0.0, inf)] (inf): out of range, expected -1000000 to 1000000"),
    ("[panel]\nshutdown_command = \"poweroff\"\n", "[panel] shutdown_command = 'poweroff': expected a list of str"),
    ("[panel]\nshutdown_command = []\n", "[panel] shutdown_command = []: expected a command as a list"),
    ("[model]\nruntime = \"tflite\"\n", "[model] runtime = 'tflite': expected auto, tflite-runtime or ai-edge-litert"),
    ("[model]\npath = \"m.tflite\"\nthreads = \"" + "y" * 300 + "\"\n", "[model] threads = 'yyyy"),
    # unknown keys, in every kind of table
    ("[status]\ninterval = 1\nintervall = 2\n", "[status] intervall: unknown key, expected one of: interval, terminal"),
    ("[midi]\n[[midi.input]]\ndevice = \"x\"\nmap = [{type = \"note\", control = 0, colour = 1}]\n",
     "[[midi.input]] 0 ('x') map[0]: colour: unknown key, expected one of: type, control, channel, number, range"),
    ("[[midi.output]]\ndevice = \"synth\"\nmap = [{type = \"note\", control = 0, channel = {}}]\n",
     "[[midi.output]] 0 ('synth') map[0]: channel = {}: expected int"),
    ("[[midi.output]]\ndevice = \"synth\"\nmap = [{type = \"note\", control = 0, channel = 0}]\n",
     "[[midi.output]] 0 ('synth') map[0]: channel = 0: out of range, expected a MIDI channel 1 to 16"),
    ("[[midi.input]]\nmap = [{type = \"note\", control = 0}]\n", "[[midi.input]] 0: device is missing"),
    ("[midi]\ninput = {device = \"x\"}\n", "[midi] input = {'device': 'x'}: expected a list of tables"),
    ("[sound]\nport = 1\n", "unknown section [sound], expected one of: model, engine"),
    ("source = \"x\"\n", "unknown section [source]"),
])
def test_hostile_values_are_refused_naming_key_value_and_expectation(tmp_path, text, expected):
    assert expected in refused(tmp_path, text)


@pytest.mark.parametrize("data, expected", [
    (b"\x00\x01\xff\xfe garbage \x89PNG\r\n", "is not valid TOML"),
    (b"[engine]\nmode = \"duet\"\nmode = \"user\"\n", "is not valid TOML: Cannot overwrite a value"),
    (b"[engine]\n[engine]\n", "is not valid TOML: Cannot declare ('engine',) twice"),
    (b"[engine]\ntime_scale = " + b"9" * 5000 + b"\n", "is not valid TOML"),    # beyond int() itself
])
def test_files_that_are_not_toml_are_refused(tmp_path, data, expected):
    assert expected in refused(tmp_path, data)


def test_every_truncation_of_the_example_loads_or_says_why(tmp_path):
    """A file cut anywhere (a full disk, a copy cut short) either loads in range or is one clear line."""
    text = EXAMPLE.read_bytes()
    path = tmp_path / "box.toml"
    cuts = sorted(random.Random(1).sample(range(len(text)), 150))
    outcomes = {"loaded": 0, "refused": 0}
    for cut in cuts:
        path.write_bytes(text[:cut])
        try:
            config = load_config(path)
        except ConfigError as exc:
            assert "\n" not in str(exc)
            outcomes["refused"] += 1
            continue
        outcomes["loaded"] += 1
        for (section, key), value in settings_of(config).items():
            if (section, key) in RANGES:
                RANGES[(section, key)].check(f"[{section}] {key}", value)
    assert outcomes["loaded"] and outcomes["refused"], outcomes   # the cuts hit both


def test_structs_built_in_code_are_range_checked_too():
    with pytest.raises(ConfigError, match=r"time_scale = 1000000000000.0: out of range, expected 0.01 to 100"):
        EngineConfig(time_scale=1e12)
    with pytest.raises(ConfigError, match="shutdown_hold = 1000000000.0: out of range"):
        PanelConfig(shutdown_hold=1e9)
    with pytest.raises(ConfigError, match="hello_attempts = -1: out of range"):
        SerialSettings(hello_attempts=-1)
    with pytest.raises(ConfigError, match="max_sysex = 1: out of range"):
        MidiSettings(max_sysex=1)
    with pytest.raises(ConfigError, match="velocity = 90 applies only to output note and gate rules"):
        Rule("gate", 0, 10, 36, velocity=90)
    assert OutputRule("gate", 0, 10, 36, velocity=90).velocity == 90


def test_every_section_checks_its_ranges_from_ranges_py():
    """Each section is a Section whose name is its key into ranges.RANGES; every range is used."""
    used = set()
    for name, cls in SECTIONS.items():
        assert issubclass(cls, Section) and cls.section == name
        used |= {(name, key) for key in keys(cls) if (name, key) in RANGES}
    assert used == set(RANGES)


def test_a_value_at_the_edge_of_its_range_is_taken(tmp_path):
    lines = {}
    for (section, key), r in RANGES.items():
        cls = SECTIONS[section]
        if key in ("channels", "controls", "pins", "mode_leds", "calibration", "mode_button", "shutdown_button"):
            continue   # lists and pins: rules between keys too (tested in test_box_hardware)
        value = r.hi if key not in ("debounce", "dimension", "control_port") else r.lo   # two ports must differ
        lines.setdefault(section, []).append(f"{key} = {int(value) if r.integer else float(value)!r}")
    text = "".join(f"[{s}]\n" + "\n".join(v) + "\n" for s, v in lines.items())
    path = tmp_path / "box.toml"
    path.write_text(text)
    config = load_config(path)
    assert config.engine.time_scale == 100.0 and config.status.interval == 60.0


def test_false_stands_for_none_only_where_none_is_allowed(tmp_path):
    assert decode(PanelConfig, {"shutdown_button": False}).shutdown_button is None
    assert decode(SerialSettings, {"channels": [1, False]}).channels == [1, None]
    with pytest.raises(ConfigError, match=r"\[panel\] pull_up = 3: expected bool"):
        decode(PanelConfig, {"pull_up": 3})
    with pytest.raises(ConfigError, match=r"\[panel\] debounce = False: expected float"):
        decode(PanelConfig, {"debounce": False})


def test_describe_says_types_in_words():
    from typing import List, Optional, Tuple, Union
    assert describe(float) == "float"
    assert describe(Union[str, Tuple[str, ...]]) == "str or a list of str"
    assert describe(Optional[int]) == "int or false (none)"
    assert describe(Optional[List[Tuple[float, float]]]) == "a list of [float, float] or false (none)"


def test_unknown_keys_have_one_home():
    """Issue 14: no settings class checks its own keys any more; settings.decode (msgspec) does."""
    offenders = []
    for path in DEVICE.rglob("*.py"):
        text = path.read_text()
        if re.search(r"def from_dict\b|ConfigError\(f?[\"'][^\"']*unknown (key|[\w ]*settings)", text) \
                and path != DEVICE / "settings.py":
            offenders.append(str(path.relative_to(DEVICE)))
    assert offenders == []
    for cls in [*SECTIONS.values(), Rule, OutputRule]:
        assert cls.__struct_config__.forbid_unknown_fields, cls


def test_the_example_round_trips_through_the_structs():
    """What the structs hold is what the file said: encode the loaded example and decode it again."""
    config = load_config(EXAMPLE)
    data = msgspec.to_builtins(config)
    data.pop("source")
    assert load_config(None, {}) != config
    again = decode(type(config), {**data, "source": config.source})
    assert again == config
    assert math.isclose(again.engine.time_scale, config.engine.time_scale)


def test_the_config_benchmark_prints_its_figures():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "imps.bench.config_cost", "--runs", "1"], capture_output=True,
                         text=True, timeout=300, check=True).stdout
    figures = [float(x) for x in re.findall(r"(\d+\.\d+) (?:ms|MB)", out)]
    assert len(figures) == 4 and all(f >= 0 for f in figures), out
    assert "typing_extensions" in out and "load_config(box.example.toml)" in out
