"""`imps soak`: the numbering of performer events, and a short soak of the real box under every fault."""
import subprocess

import pytest

from imps.bench.soak import FAULTS, SERIAL_BASE, decode_number, encode_number, format_report, passed


@pytest.mark.parametrize("n", [0, 1, 65535, 65536, 123456789, SERIAL_BASE + 77, 2**32 - 1])
def test_event_numbers_survive_u16_frames_and_float32_osc(n):
    import numpy as np
    values = encode_number(n)
    assert all(0.0 <= v <= 1.0 for v in values)
    assert decode_number(values) == n
    assert decode_number([float(np.float32(v)) for v in values]) == n            # OSC carries float32
    assert decode_number([round(v * 65535) / 65535 for v in values]) == n         # a frame carries u16
    assert decode_number([float(repr(v)) for v in values]) == n                   # the log's text
    assert decode_number([values[0], values[1], (values[2] + 1 / 65535) % 1]) is None   # the check catches a bad value


def test_a_short_soak_of_the_real_box_under_every_fault(device_python, tmp_path):
    """40 s of `imps soak`: every kind of fault, every event accounted for, nothing lost for good."""
    report = tmp_path / "soak.md"
    r = subprocess.run([device_python, "-m", "imps", "soak", "--seconds", "40", "--seed", "7", "--interval", "1",
                        "--report", str(report)], capture_output=True, text=True, timeout=600)
    table = report.read_text() if report.exists() else r.stdout
    assert r.returncode == 0, f"{table}\n{r.stderr[-3000:]}"
    assert table.rstrip().endswith("PASS")
    assert "| unaccounted | 0 |" in table and "threads lost: 0" in table
    injected = {line.split("|")[1].strip(): int(line.split("|")[2]) for line in table.splitlines()
                if line.startswith("| ") and line.split("|")[1].strip() in FAULTS}
    assert set(injected) == set(FAULTS) and min(injected.values()) >= 1, table


def test_the_report_fails_on_an_unaccounted_event_or_a_lost_thread():
    good = dict(seconds=60, faults={"kill -9": dict(injected=1, recovered=1, max_recover=0.5, failures=[])},
                sent=10, sent_osc=5, sent_serial=5, categories={"logged": 10}, box_lost_counted=0,
                gap_markers=0, gap_lost=0, threads_lost=[], runs=2, exit_code=0, checks={"x": True},
                disk="tmpfs", model_events_heard=3, unaccounted=[], windows=[])
    assert passed(good) and format_report(good).endswith("PASS")
    assert not passed({**good, "categories": {"logged": 9, "unaccounted": 1}})
    assert not passed({**good, "threads_lost": ["imps-scheduler: OverflowError"]})
    assert not passed({**good, "faults": {"kill -9": dict(injected=2, recovered=1, max_recover=0.5,
                                                           failures=["no READY"])}})
    assert "not recovered: kill -9: no READY" in format_report(
        {**good, "faults": {"kill -9": dict(injected=2, recovered=1, max_recover=0.5, failures=["no READY"])}})
