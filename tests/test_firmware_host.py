"""The firmware's C protocol code, built with gcc and run against the shared vectors."""
import json
import signal
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_c_host_tests_pass_on_the_shared_vectors():
    assert shutil.which("gcc"), "gcc is missing: run `make system-deps` (Debian package gcc)"
    result = subprocess.run(["make", "--no-print-directory", "firmware-test"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"make firmware-test failed:\n{output}"
    m = re.search(r"(\d+) checks, (\d+) failures \((\d+) frame vectors, (\d+) stream vectors\)", output)
    assert m, f"no test summary in:\n{output}"
    checks, failures, n_frames, n_streams = map(int, m.groups())
    assert failures == 0 and checks > 50
    vectors = json.loads((ROOT / "firmware" / "vectors.json").read_text())
    assert n_frames == len(vectors["frames"]) and n_streams == len(vectors["streams"])


# -- the joint: the shipped sketch and config.h against the provisioned box.toml ---------------

from test_deploy import PROVISION, dry_run_file, provision_env  # noqa: E402  (one home for provisioning helpers)


def firmware_setting(name: str) -> int:
    text = (ROOT / "firmware" / "imps_sensor_board" / "config.h").read_text()
    m = re.search(rf"^#define {name}\s+(\d+)", text, re.M)
    assert m, f"config.h has no #define {name}"
    return int(m.group(1))


def provisioned_box_toml(root: Path) -> str:
    """The box.toml provision.sh writes on a fresh box (from its dry run, which prints it)."""
    r = subprocess.run(["bash", str(PROVISION), "--dry-run"], capture_output=True, text=True,
                       env=provision_env(root), timeout=60)
    assert r.returncode == 0, r.stderr
    return dry_run_file(r.stdout, root / "etc" / "imps" / "box.toml")


def is_adc10_fixed(value: float) -> bool:
    """True if value is u16 / 65535 for the u16 the sketch makes from a 10-bit reading."""
    u16 = round(value * 65535)
    adc = u16 >> 6
    return abs(value * 65535 - u16) < 1e-3 and u16 == ((adc << 6) | (adc >> 4))


def test_the_shipped_sketch_plays_through_the_provisioned_box(tmp_path, pty_pair, device_python, sound):
    """The sketch (unchanged, with the shipped config.h) on a pty, the box with the box.toml
    provision.sh writes: every sensor frame the sketch sends must become a performer event."""
    build = subprocess.run(["make", "--no-print-directory", "firmware-host"], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    sensor_count = firmware_setting("SENSOR_COUNT")
    text = provisioned_box_toml(tmp_path)
    # Only the seams of this machine change: the model link and state paths (provision.sh makes
    # the link at deploy time), the board's port (a pty), and free UDP ports.
    state = tmp_path / "var-lib-imps"
    (state / "models").mkdir(parents=True)
    for ext in ("tflite", "json"):
        (state / "models" / f"current.{ext}").symlink_to(ROOT / "device" / "imps" / "models" / f"default.{ext}")
    master, slave = pty_pair
    assert text.count("[serial]\n") == 1
    text = text.replace("[serial]\n", f'[serial]\nport = "{slave}"\n')
    text += f"\n[osc]\ninterface_port = 0\ncontrol_port = 0\nsound_port = {sound.port}\n"
    config = tmp_path / "box.toml"
    config.write_text(text)

    box = subprocess.Popen([device_python, "-m", "imps", "run", "--config", str(config), "-q"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    board = subprocess.Popen([str(ROOT / "build" / "firmware" / "host" / "host_board"), "60"],
                             stdin=master, stdout=master, stderr=subprocess.PIPE, text=True)
    try:
        # Performer events reach the sound engine once the box is up and has the board.
        sound.wait_for("/performer", 40, timeout=60)
    finally:
        box.send_signal(signal.SIGTERM)
        _, err = box.communicate(timeout=30)
        board.kill()
        board.wait(timeout=10)
    assert box.returncode == 0, err
    assert f"{sensor_count} sensor channels" in err, f"the box never heard the board's HELLO_REPLY:\n{err}"
    assert "CHANNELS MISMATCH" not in err and "but the box has" not in err, err
    final = err.strip().splitlines()[-1]
    assert "board ok" in final and " bad " not in f" {final} ", final
    logs = list((state / "logs").glob("*-mdrnn.log"))
    assert len(logs) == 1, logs
    lines = [line.split(",") for line in logs[0].read_text().splitlines()]
    performer = [line for line in lines if line[1] == "interface"]
    assert len(performer) >= 40
    # Each value is exactly the sketch's encoding of a 10-bit reading, one per sensor channel.
    for line in performer:
        values = [float(v) for v in line[2:]]
        assert len(values) == sensor_count, line
        assert all(is_adc10_fixed(v) for v in values), line
