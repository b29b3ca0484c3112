import pytest

from imps.box.config import load_config
from imps.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "box.toml"
    path.write_text(text)
    return path


def test_defaults_work_without_a_file():
    config = load_config(None)
    assert config.engine.mode == "call_response" and config.model.resolved_path().name == "default.tflite"
    assert config.osc.control_host == "127.0.0.1"


def test_file_values_and_overrides(tmp_path):
    path = write(tmp_path, '[engine]\nmode = "duet"\nresponse_threshold = 2\n[osc]\nsound_port = 4100\n')
    config = load_config(path, {"engine": {"mode": "layered"}, "model": {"seed": None}})
    assert config.engine.mode == "layered" and config.engine.response_threshold == 2.0
    assert config.osc.sound_port == 4100 and config.source == str(path)


@pytest.mark.parametrize("text, fragments", [
    ('[engine]\nmood = "duet"\n', ["[engine] mood", "unknown key", "response_threshold"]),
    ('[sound]\nport = 1\n', ["unknown section [sound]"]),
    ('[engine]\nresponse_threshold = "soon"\n', ["[engine] response_threshold = 'soon'", "expected float"]),
    ('[engine]\nresponse_threshold = -1\n', ["[engine] response_threshold = -1.0", "expected 0.05 to 600 s"]),
    ('[osc]\nsound_port = 70000\n', ["[osc] sound_port = 70000", "expected a UDP port 0 to 65535"]),
    ('[engine]\nmode = "karaoke"\n', ["[engine] mode", "karaoke", "call_response"]),
    ('[model]\nthreads = true\n', ["[model] threads = True", "expected int"]),
    ('[engine\n', ["not valid TOML"]),
])
def test_errors_name_the_key_the_value_and_what_was_expected(tmp_path, text, fragments):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    for fragment in fragments:
        assert fragment in str(err.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
