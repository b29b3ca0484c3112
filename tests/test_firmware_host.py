"""The firmware's C protocol code, built with gcc and run against the shared vectors."""
import json
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
