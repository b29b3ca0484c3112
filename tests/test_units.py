"""The systemd units: rendered from their templates, verified, and hardened enough.

systemd-analyze works on unit files without a running systemd, so this runs
in CI: `verify` checks syntax, dependencies and that ExecStart exists (the
units are rendered with a prefix whose bin/imps and sound patch exist), and
`security --offline=true` scores their exposure (target: 3.0 or lower).
"""
from __future__ import annotations

import configparser
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy" / "deploy.sh"
UNITS = ["imps.service", "imps-sound.service", "imps-web.service"]
MAX_EXPOSURE = 3.0


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("units")
    prefix, state = root / "opt-imps", root / "var-lib-imps"
    (prefix / "current" / "bin").mkdir(parents=True)
    imps = prefix / "current" / "bin" / "imps"
    imps.write_text("#!/bin/sh\n")
    imps.chmod(0o755)
    (prefix / "current" / "deploy" / "sound").mkdir(parents=True)
    (prefix / "current" / "deploy" / "sound" / "imps.pd").touch()
    for d in ("logs", "models"):
        (state / d).mkdir(parents=True)
    env = dict(os.environ, IMPS_PREFIX=str(prefix), IMPS_STATE=str(state), IMPS_USER="imps",
               IMPS_CONFIG="/etc/imps/box.toml")
    subprocess.run(["bash", str(DEPLOY), "render-units", str(root / "out")], check=True, env=env)
    return root / "out", prefix, state


def read_unit(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    # systemd allows repeated keys; keep the last like configparser, enough for these checks.
    parser.read_string(path.read_text())
    return parser


@pytest.mark.parametrize("unit", UNITS)
def test_unit_verifies(rendered, unit):
    out, _, _ = rendered
    r = subprocess.run(["systemd-analyze", "verify", str(out / unit)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "is not executable" not in r.stderr and "Unknown" not in r.stderr, r.stderr


@pytest.mark.parametrize("unit", UNITS)
def test_unit_exposure_is_low(rendered, unit):
    out, _, _ = rendered
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(out / unit)],
                       capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
    assert m, f"no exposure figure in:\n{r.stdout[-1000:]}\n{r.stderr}"
    assert float(m.group(1)) <= MAX_EXPOSURE, r.stdout


def test_verify_catches_a_missing_executable(tmp_path):
    """The verify test above can fail: a unit whose ExecStart does not exist is refused."""
    env = dict(os.environ, IMPS_PREFIX=str(tmp_path / "nowhere"), IMPS_STATE=str(tmp_path))
    subprocess.run(["bash", str(DEPLOY), "render-units", str(tmp_path / "out")], check=True, env=env)
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "out" / "imps.service")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "nowhere/current/bin/imps" in r.stderr


def test_box_service_contract(rendered):
    out, prefix, state = rendered
    text = (out / "imps.service").read_text()
    unit = read_unit(out / "imps.service")
    service = unit["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert service["ExecStart"] == f"{prefix}/current/bin/imps run --config /etc/imps/box.toml"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert int(service["WatchdogSec"]) > 0 and service["Restart"] == "on-failure"
    assert unit["Unit"]["StartLimitBurst"] and unit["Unit"]["StartLimitIntervalSec"]
    assert "imps-sound.service" in unit["Unit"]["Wants"] and "imps-sound.service" in unit["Unit"]["After"]
    assert service["User"] == "imps" and service["SupplementaryGroups"] == "gpio dialout audio"
    assert service["ReadWritePaths"] == f"{state}/logs {state}/models"
    for setting in ("ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectHome=yes",
                    "DevicePolicy=closed", "DeviceAllow=char-gpiochip rw", "DeviceAllow=char-ttyACM rw",
                    "SystemCallFilter=@system-service",
                    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"):
        assert f"\n{setting}\n" in text, f"imps.service lost {setting}"
    # Real time below the kernel's IRQ threads (50), and not passed on to what the box runs.
    assert service["CPUSchedulingPolicy"] == "fifo" and 1 <= int(service["CPUSchedulingPriority"]) < 50
    # Not reset on fork: that resets new threads too, and only the main thread stays real-time.
    assert "CPUSchedulingResetOnFork" not in service or service["CPUSchedulingResetOnFork"] == "no"
    assert service["RestrictRealtime"] == "no"      # yes would stop systemd applying the policy
    # Other processes hidden, but not /proc/cpuinfo: the runtimes' XNNPACK needs it
    # (tests/test_runtime_cpu.py shows what hiding it costs).
    assert service["ProtectProc"] == "invisible" and service.get("ProcSubset", "all") == "all"
    from imps.bench.e2e import UNIT_PRIORITY           # what `imps bench` measures as the unit's
    assert int(service["CPUSchedulingPriority"]) == UNIT_PRIORITY


def test_sound_service_contract(rendered):
    out, prefix, _ = rendered
    unit = read_unit(out / "imps-sound.service")
    assert "imps.service" in unit["Unit"]["Before"]
    service = unit["Service"]
    assert service["ExecStart"].startswith("/usr/bin/pd -nogui ")
    assert "-open ${PD_PATCH}" in service["ExecStart"]
    assert f"PD_PATCH={prefix}/current/deploy/sound/imps.pd" in (out / "imps-sound.service").read_text()
    assert service["EnvironmentFile"] == "-/etc/imps/sound.env"


def test_web_service_contract(rendered):
    """The page: its own unit, only when provisioned, HTTPS with the per-box password, below the box."""
    out, prefix, state = rendered
    text = (out / "imps-web.service").read_text()
    unit = read_unit(out / "imps-web.service")
    service = unit["Service"]
    command = " ".join(service["ExecStart"].replace("\\\n", " ").split())
    assert command.startswith(f"{prefix}/current/bin/imps web --box-config /etc/imps/box.toml ")
    for part in (f"--password-file {state}/web/password", f"--cert {state}/web/cert.pem",
                 f"--key {state}/web/key.pem", f"--models-dir {state}/models"):
        assert part in command, part
    assert f"ConditionPathExists={state}/web/password" in text      # no password, no page
    assert service["User"] == "imps" and int(service["Nice"]) > 0 and service["MemoryMax"]
    assert service["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    for setting in ("ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes", "PrivateDevices=yes",
                    "ProtectProc=invisible", "SystemCallFilter=@system-service", "RestrictRealtime=yes",
                    "MemoryDenyWriteExecute=yes", "IPAddressDeny=any"):
        assert f"\n{setting}\n" in text, f"imps-web.service lost {setting}"
    assert "imps.service" in unit["Unit"]["After"]


def test_make_prints_the_exposure():
    r = subprocess.run(["make", "-s", "-C", str(REPO), "unit-security"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    figures = dict(re.findall(r"^(\S+\.service)\s+exposure (\d+\.\d+)", r.stdout, re.M))
    assert set(figures) == set(UNITS), r.stdout
    assert all(float(v) <= MAX_EXPOSURE for v in figures.values()), r.stdout
