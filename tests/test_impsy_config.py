"""IMPSY's config.toml files, read by the box: IMPSY's own examples and the template its package ships."""
from pathlib import Path

import pytest

from imps.cli import main
from imps.box.config import load_config
from imps.errors import ConfigError
from imps.box.impsy_config import MODES, read

CONFIGS = Path(__file__).parent / "fixtures" / "impsy"


@pytest.fixture(scope="session")
def impsy_template(impsy) -> Path:
    """The config.toml `impsy init` writes, from the installed impsy package."""
    return Path(impsy("version")["config_template"])


def imported(tmp_path, source: Path, capsys):
    """`imps config import source > box.toml`: the box config, and what was said on stderr."""
    assert main(["config", "import", str(source)]) == 0
    out, err = capsys.readouterr()
    box = tmp_path / "box.toml"
    box.write_text(out)
    return load_config(box), out, err


def test_the_template_impsy_ships(tmp_path, impsy_template, capsys):
    config, text, err = imported(tmp_path, impsy_template, capsys)
    assert config.engine.mode == "call_response" and config.engine.response_threshold == 0.1
    assert config.engine.dimension == 9 and config.engine.time_scale == 1.0
    assert (config.model.pi_temperature, config.model.sigma_temperature) == (1.0, 0.01)
    # Its model is IMPSY's .h5: the box points at the .tflite IMPSY's converter writes beside it, and says so.
    assert config.model.path.endswith("models/musicMDRNN-dim9-layers2-units64-mixtures5-scale10.tflite")
    assert "not honoured: [model] file: models/musicMDRNN-dim9-layers2-units64-mixtures5-scale10.h5" in err
    assert (config.osc.interface_host, config.osc.interface_port) == ("0.0.0.0", 6000)
    assert (config.osc.sound_host, config.osc.sound_port) == ("127.0.0.1", 6001)   # "localhost" in IMPSY's file
    assert config.serial.enabled and config.serial.port == ("/dev/ttyAMA0",)
    assert config.serial.format == "text" and config.serial.baudrate == 115200
    for key in ("[websocket]", "[serialmidi]", "[webui]", "log_predictions", "verbose"):
        assert f"not honoured: {key}" in err, key
    assert "# Not honoured:\n" in text and "#   [serialmidi]: port /dev/ttyAMA0 is also [serial]'s port" in text
    # [midi]: X-Touch Mini in, Volca FM (through the Studio 1824c) out, the performer through (input_thru)
    assert config.midi.enabled and [d.device for d in config.midi.input] == ["X-TOUCH"]
    out = config.midi.output[0]
    assert out.device == "Studio 1824c" and out.voices == ("model", "performer") and len(out.map) == 8


@pytest.mark.parametrize("name, mode", [("serial-example.toml", "call_response"),
                                        ("pd-workshop-example.toml", "call_response"),
                                        ("user-only-example.toml", "user"),
                                        ("roland-s-1.toml", "call_response")])
def test_impsys_example_configs(tmp_path, capsys, name, mode):
    config, text, err = imported(tmp_path, CONFIGS / name, capsys)
    assert config.engine.mode == mode
    assert "not honoured: [interaction] input_thru" in err
    if name == "serial-example.toml":
        assert config.serial.port == ("/dev/tty.usbmodem1102",) and config.serial.format == "text"
        assert "not honoured: [serial]: IMPSY also writes every output back" in err
    if name == "pd-workshop-example.toml":
        assert (config.osc.sound_host, config.osc.sound_port) == ("127.0.0.1", 6001)
        assert "not honoured: [osc] client_ip: 'host.docker.internal' is a host name" in err
    if name == "user-only-example.toml":
        assert config.engine.dimension == 17 and config.osc.sound_host == "127.0.0.1"  # IMPSY coerces 0.0.0.0 too
        assert "not honoured: [model] file: no model file" in err
    if name == "roland-s-1.toml":  # a .tflite: taken as it is, resolved against IMPSY's workspace
        assert config.model.path == str(CONFIGS / "models" / "musicMDRNN-dim9-layers2-units64-mixtures5-scale10.tflite")
        assert "not honoured: [midi] feedback_protection" in err


def test_every_impsy_mode_has_a_box_mode():
    assert set(MODES) == {"callresponse", "polyphony", "battle", "useronly"}
    for impsy_mode, box_mode in MODES.items():
        box, notes = read(CONFIGS / "x.toml", {"interaction": {"mode": impsy_mode}})
        assert box["engine"]["mode"] == box_mode
    box, notes = read(CONFIGS / "x.toml", {"interaction": {"mode": "battle"}})
    assert any("battle plays as the box's duet" in n.text for n in notes)


@pytest.mark.parametrize("data, fragment", [
    ({"interaction": {"mode": "jam"}}, "[interaction] mode = 'jam': expected one of callresponse"),
    ({"interaction": {"threshold": -1}}, "[interaction] threshold = -1: expected a number > 0"),
    ({"model": {"pitemp": 0}}, "[model] pitemp = 0: expected a number > 0"),
    ({"model": {"dimension": 1}}, "[model] dimension = 1: expected an integer >= 2"),
])
def test_bad_values_are_clear_errors(data, fragment):
    with pytest.raises(ConfigError) as err:
        read(CONFIGS / "bad.toml", data)
    assert fragment in str(err.value) and "bad.toml" in str(err.value)


def test_imps_run_reads_an_impsy_config_directly(tmp_path, caplog):
    """load_config recognises IMPSY's file and logs every key it cannot honour."""
    source = CONFIGS / "serial-example.toml"
    with caplog.at_level("WARNING", logger="imps.box.impsy_config"):
        config = load_config(source)
    assert config.engine.mode == "call_response" and config.serial.format == "text"
    warned = caplog.text
    assert "not honoured: [interaction] input_thru" in warned and "not honoured: verbose" in warned


@pytest.mark.parametrize("source", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_every_impsy_config_here_imports_to_a_box_config_that_loads(tmp_path, capsys, source):
    config, text, err = imported(tmp_path, source, capsys)
    assert config.engine.dimension >= 2
    assert err.strip().splitlines()[-1].endswith("not honoured (listed at the top of the box config)")


def test_the_written_box_toml_reads_back_whatever_the_strings_and_keys_hold():
    """A path with a newline, a quote or a control character, a key with a space, a note over
    two lines: the written file is valid TOML and reads back to the same values (the hand-written
    writer produced invalid TOML for each)."""
    import tomllib
    from imps.box.impsy_config import Note, box_toml
    box = {"_comments": ["title: two\nlines"], "model": {"path": '/models/a "b"\nc\x01d\te.tflite'},
           "midi": {"enabled": True, "output": [],
                    "input": [{"device": "Launch Key\x7f", "transport": "alsa",
                               "map": [{"type": "note", "channel": 1, "control": 0}]}]},
           "odd": {"a key": 1.5}}
    text = box_toml(box, [Note("[x] y", False, "first\nsecond")], "impsy.toml")
    back = tomllib.loads(text)
    assert back == {k: v for k, v in box.items() if not k.startswith("_")}
    assert "# second" in text and "# lines" in text      # a note's newline stays inside the comment
