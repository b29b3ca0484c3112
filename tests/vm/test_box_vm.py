"""The assembled box on a real Linux system: Debian arm64 under QEMU, real systemd,
a real USB serial device, ALSA, ssh. Each test drives the box from outside.

They share one booted box (conftest.py) and run in this file's order: the last
ones reboot it, cut its power and press its shutdown button.
`make test-vm` runs them; docs/appliance.md says what they prove.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import time
import wave

import numpy as np
import pytest

from imps.io.interaction_log import read_log

from conftest import BY_ID_GLOB, REPO, firmware_settings, log_sources, make, newest_log, service, \
    timed, wait_for

pytestmark = pytest.mark.vm

# A deliberate restart, as deploy.sh makes one: the unit's crash-loop guard
# (StartLimitBurst=5 in 300 s) counts every start, so the tests' own restarts
# after the deploys would trip it; reset-failed clears the count first.
RESTART = "sudo systemctl reset-failed imps.service; sudo systemctl restart imps.service"


def test_provision_says_what_it_skips_on_a_vm(box):
    out = box["provision"]
    assert "serial: SKIPPED" in out and "not Raspberry Pi OS" in out
    assert "packages: all present" in out          # nothing fetched: the box has no internet
    assert "== provisioned" in out


def test_deploy_installed_the_environment_offline(vm, box):
    # The guest has no route out (QEMU restrict=on): pip could not have used an index.
    r = vm.ssh("timeout 5 python3 -c \"import socket; socket.create_connection(('151.101.0.223', 443), 3)\"",
               check=False)
    assert r.returncode != 0
    assert "== imps is up" in box["deploy"] or "imps is up" in box["deploy"]
    pkgs = vm.out("/opt/imps/current/venv/bin/python -c 'import importlib.metadata as m; "
                  "print(sorted(d.metadata[\"Name\"].lower() for d in m.distributions()))'")
    # lgpio has no cp313 wheel: it is built (swig, PYPI=1) by deploy's build_wheels, as on a
    # trixie Pi; here once under qemu-user in the image's root (vm/wheels.sh), so the box compiled nothing.
    assert "compiling" not in box["deploy"], box["deploy"][-2000:]
    for name in ("numpy", "python-osc", "pyserial", "systemd-python", "gpiozero", "lgpio", "rpi.gpio",
                 "python-rtmidi", "mido"):
        assert name in pkgs, pkgs
    assert "ai-edge-litert" in pkgs or "tflite-runtime" in pkgs, pkgs
    # python-rtmidi really loads ALSA on the box (compiled against the image's libasound2).
    alsa = vm.out("/opt/imps/current/venv/bin/python -c 'import rtmidi; "
                  "print(rtmidi.API_LINUX_ALSA in rtmidi.get_compiled_api())'")
    assert alsa.strip() == "True", alsa
    # The compiled wheels are in deploy's cache on this side: no deploy to such a box compiles them.
    facts = vm.out("python3 -c 'import platform, sys; print(\"%d%d\" % sys.version_info[:2], platform.machine())'").split()
    back = sorted(p.name for p in (REPO / "build" / "wheels").glob(f"cp{facts[0]}-{facts[1]}-*/*.whl"))
    for name in ("python_rtmidi", "systemd_python", "lgpio"):
        assert any(w.lower().startswith(name) for w in back), back


def test_ready_under_real_systemd_with_its_hardening(vm, box):
    assert service(vm, "ActiveState") == "active"
    assert service(vm, "Type") == "notify"
    pid = service(vm, "MainPID")
    assert vm.out(f"ps -o user= -p {pid}").strip() == "imps"
    groups = vm.out(f"grep ^Groups: /proc/{pid}/status").split()[1:]
    assert len(groups) >= 3                       # gpio dialout audio, from SupplementaryGroups
    assert service(vm, "StatusText")              # STATUS= lines arrive
    report = vm.out("sudo systemd-analyze security --no-pager imps.service")
    exposure = float(re.search(r"Overall exposure level for imps.service: ([\d.]+)", report).group(1))
    print(f"systemd-analyze security imps.service (running): {exposure}")
    timed("figure: security exposure on the running box", exposure)
    assert exposure <= 3.0, report[-2000:]
    # Hardening really holds: the service cannot write outside its state.
    r = vm.ssh(f"sudo nsenter -t {pid} -m sh -c 'touch /opt/imps/x' 2>&1", check=False)
    assert r.returncode != 0
    # Real-time scheduling from the unit: every thread of the box (engine, scheduler, readers)
    # on SCHED_FIFO 10, applied by systemd despite the rest of the hardening.
    classes = vm.out(f"ps -L -o cls=,rtprio=,comm= -p {pid}").splitlines()
    assert classes and all(line.split()[:2] == ["FF", "10"] for line in classes), classes
    # The runtime saw the CPU through the unit's /proc and took its fast kernels (no ProcSubset=pid).
    journal = vm.out("sudo journalctl -u imps.service -b --no-pager -o cat")
    assert "XNNPACK delegate" in journal and "Error in cpuinfo" not in journal, journal[-2000:]


def test_plays_from_the_usb_serial_board(vm, box, board):
    link = wait_for(lambda: vm.out(f"ls {BY_ID_GLOB} 2>/dev/null || true").strip(), 120, "the by-id link")
    pid = service(vm, "MainPID")
    dev = vm.out(f"readlink -f {link}").strip()
    wait_for(lambda: dev in vm.out(f"sudo ls -l /proc/{pid}/fd"), 120, f"imps to open {dev}")
    log = newest_log(vm)
    before = log_sources(vm, log)
    sent = len(board.actuator_log)
    counts = wait_for(lambda: (lambda c: c if c.get("interface", 0) > before.get("interface", 0) + 20
                               and c.get("rnn", 0) > before.get("rnn", 0) else None)(log_sources(vm, log)),
                      180, "performer and model events in the log")
    print(f"log {log}: {counts}")
    # Model events go back to the board as ACTUATOR frames over the same cable.
    wait_for(lambda: len(board.actuator_log) > sent, 60, "ACTUATOR frames at the board")
    assert board.counters["hellos"] >= 1
    # Every frame the shipped sketch's layout sends is taken: the box counts none as bad.
    journal = vm.out("sudo journalctl -u imps.service -b --no-pager -o cat")
    assert not re.search(r"expected \d+ channels|channel count", journal), journal[-2000:]
    assert firmware_settings()["sensors"] == board.rows.shape[1] - 1


def test_unplug_and_replug_through_the_qemu_monitor(vm, box, board):
    pid = service(vm, "MainPID")
    log = newest_log(vm)
    vm.monitor("device_del board0")
    wait_for(lambda: not vm.out(f"ls {BY_ID_GLOB} 2>/dev/null || true").strip(), 60, "the by-id link to go")
    time.sleep(2)   # let the box notice; the count is taken after
    during = log_sources(vm, log).get("interface", 0)
    vm.monitor(f"device_add {vm.usb_serial_device()}")
    wait_for(lambda: vm.out(f"ls {BY_ID_GLOB} 2>/dev/null || true").strip(), 60, "the by-id link to come back")
    wait_for(lambda: log_sources(vm, log).get("interface", 0) > during + 20, 180,
             "performer events again after the replug")
    assert service(vm, "MainPID") == pid           # recovered by itself, not restarted
    journal = vm.out("sudo journalctl -u imps.service -b --no-pager -o cat")
    print("\n".join(line for line in journal.splitlines() if "serial" in line.lower())[-1500:])


def _record(vm, seconds: float, during: str = "", keep: str = "") -> np.ndarray:
    """Record the loopback's capture side on the box while `during` runs there; mono float.
    `keep`: also save the recording as that file in the VM's work folder, to listen to."""
    vm.ssh(f"sudo rm -f /tmp/rec.wav; (sudo timeout {seconds + 5:.0f} arecord -q -D plughw:Loopback,1,0 "
           f"-f S16_LE -c 1 -r 48000 -d {seconds:.0f} /tmp/rec.wav &) ; sleep 0.5; {during or 'true'}; "
           f"while pgrep -x arecord >/dev/null; do sleep 0.2; done", timeout=seconds + 60)
    raw = vm.ssh("sudo cat /tmp/rec.wav").stdout
    if keep:
        (vm.workdir / keep).write_bytes(raw)
    return _mono(raw)


def _mono(raw: bytes) -> np.ndarray:
    """A 16-bit mono WAV's samples as floats."""
    with wave.open(io.BytesIO(raw)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768


def _onsets(x: np.ndarray, rate: int = 48000) -> tuple[np.ndarray, list[int]]:
    """10 ms rms frames, and the notes in them: a rise through a tenth of the loudest frame
    (a quiet tail wobbling around a fixed floor is not a note: it was, once, 0.0003 "ringing"
    after a false onset)."""
    n = rate // 100
    env = np.array([_rms(x[i:i + n]) for i in range(0, len(x) - n, n)])
    loud = env.max() / 10
    return env, [i for i in range(1, len(env)) if env[i] > loud and env[i - 1] <= loud]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x ** 2))) if len(x) else 0.0


OSC_SEND = ("/opt/imps/current/venv/bin/python -c \"import sys, time; from pythonosc.udp_client import "
            "SimpleUDPClient as C; c = C('127.0.0.1', 4000); [(c.send_message(a, [0.5, 0.6, 1.0] if a != "
            "'/silence' else []), time.sleep(float(d))) for a, d in (x.split('@') for x in sys.argv[1:])]\"")


def test_sound_engine_plays_notes_and_silence_silences(vm, box):
    assert service(vm, "ActiveState", "imps-sound.service") == "active"
    assert vm.out("cat /proc/asound/cards").count("Loopback") >= 1
    # The box's own notes, from the board's performance, make sound.
    playing = _record(vm, 4)
    print(f"rms with the box playing: {_rms(playing):.4f}")
    assert _rms(playing) > 1e-3
    # Alone with Pd: one note left to ring, one cut by /silence 50 ms in.
    vm.ssh("sudo systemctl stop imps.service")
    try:
        vm.ssh(OSC_SEND + " /silence@0.5")     # whatever the box left ringing
        quiet = _record(vm, 15, OSC_SEND + " /model@2.0 /model@0.05 /silence@2", keep="sound-two-notes.wav")
    finally:
        vm.ssh("sudo systemctl start imps.service")
    env, onsets = _onsets(quiet)
    print(f"peak rms {env.max():.4f}; onsets (10 ms frames) {onsets}")
    # The free note and the cut one: the last onset, and the one about 2 s (200 frames) before it.
    assert len(onsets) >= 2 and env.max() > 3e-3, f"two notes expected, onsets at {onsets} (10 ms frames)"
    cut = onsets[-1]
    rung = min(onsets[:-1], key=lambda i: abs(cut - i - 200))
    assert 150 <= cut - rung <= 400, f"the two notes were sent 2 s apart, onsets at {onsets}"
    ringing = env[rung + 10: rung + 25].mean()       # 100-250 ms after the free note
    silenced = env[cut + 10: cut + 25].mean()        # the same after the cut one
    print(f"100-250 ms after a note: rms {ringing:.4f} left alone, {silenced:.5f} after /silence")
    assert ringing > 1e-3 and silenced < ringing / 10


RECORDING = "/var/lib/imps/recordings/vm-take.wav"


def test_the_recording_setting_writes_a_wav_of_what_the_box_played(vm, box):
    """[recording] path in the provisioned box's config: the box asks imps-sound's Pd for the
    file, the status line shows it growing, and stopping the box finishes it."""
    vm.ssh(f"sudo rm -f {RECORDING}; sudo cp /etc/imps/box.toml /tmp/box.toml.before-recording; "
           f"printf '\\n[recording]\\npath = \"{RECORDING}\"\\n' | sudo tee -a /etc/imps/box.toml >/dev/null; "
           f"{RESTART}")
    try:
        wait_for(lambda: int(vm.out(f"sudo stat -c %s {RECORDING} 2>/dev/null || echo 0")) > 6 * 96000, 180,
                 "6 s in the recording")
        status = service(vm, "StatusText")
        vm.ssh("sudo systemctl stop imps.service")             # SIGTERM: the box finishes the file
        raw = vm.ssh(f"sudo cat {RECORDING}").stdout
        (vm.workdir / "recording-setting.wav").write_bytes(raw)
    finally:
        vm.ssh("sudo cp /tmp/box.toml.before-recording /etc/imps/box.toml; sudo systemctl start imps.service")
    print(f"status while recording: {status}")
    assert "REC vm-take.wav 0:" in status
    with wave.open(io.BytesIO(raw)) as w:                     # finished: the header counts every frame
        assert w.getnframes() * 2 + 44 == len(raw)
    env, onsets = _onsets(_mono(raw))
    print(f"recording {len(raw) / 96000:.1f} s, peak rms {env.max():.4f}, onsets (10 ms frames) {onsets[:20]}")
    assert env.max() > 3e-3 and onsets, "the board's performance, recorded, is not silence"


MIDI_TOML = """
# The VM's MIDI test (tests/vm): snd-seq-dummy's two through ports, the board unplugged from the config.
[midi]
enabled = true

[[midi.input]]
device = "Midi Through Port-0"
transport = "alsa"
map = [
  {type = "control_change", channel = 1, number = 1, control = 0},
  {type = "control_change", channel = 1, number = 2, control = 1},
  {type = "control_change", channel = 1, number = 3, control = 2},
]

[[midi.output]]
device = "Midi Through Port-1"
transport = "alsa"
voices = ["model"]
map = [
  {type = "note", channel = 2, control = 0},
  {type = "control_change", channel = 2, number = 1, control = 1},
  {type = "control_change", channel = 2, number = 2, control = 2},
]
"""

# On the box, as a second ALSA sequencer client (the box's own venv: mido over python-rtmidi):
# CC 1-3 on channel 1 into through port 0 at 20 a second for SECONDS, while listening to
# through port 1, where the box plays; then listen until a note and a CC on channel 2 came.
MIDI_PROBE = r"""
import json, random, sys, time
import mido
seconds = float(sys.argv[1])
backend = mido.Backend("mido.backends.rtmidi")
def port(names, tag):
    hits = [n for n in names if tag in n]
    if not hits:
        sys.exit(f"no port {tag!r} among {names}")
    return hits[0]
listen = backend.open_input(port(backend.get_input_names(), "Midi Through Port-1"))
send = backend.open_output(port(backend.get_output_names(), "Midi Through Port-0"))
got, sent = [], 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    send.send(mido.Message("control_change", channel=0, control=1 + sent % 3, value=random.randrange(128)))
    sent += 1
    got += list(listen.iter_pending())
    time.sleep(0.05)
def counts():
    notes = sum(1 for m in got if m.type == "note_on" and m.channel == 1)
    ccs = sum(1 for m in got if m.type == "control_change" and m.channel == 1)
    return notes, ccs
end = time.monotonic() + 60
while min(counts()) == 0 and time.monotonic() < end:
    got += list(listen.iter_pending())
    time.sleep(0.05)
notes, ccs = counts()
print(json.dumps(dict(sent=sent, received=len(got), notes=notes, ccs=ccs)))
"""


def test_midi_in_and_out_through_real_alsa_sequencer_ports(vm, box):
    """Issue #13's ALSA path on a real kernel: python-rtmidi (compiled on the box) opens
    sequencer ports inside the hardened unit. The kernel's snd-seq-dummy gives two
    through ports (Debian's arm64 kernel has no snd-virmidi): what a second client
    sends into port 0 reaches the box as MIDI input, and the model's notes and
    controls, which the box sends to port 1, come out to that client."""
    vm.ssh("sudo modprobe -r snd-seq-dummy 2>/dev/null; sudo modprobe snd-seq-dummy ports=2")
    wait_for(lambda: "Midi Through Port-1" in vm.out("cat /proc/asound/seq/clients"), 60,
             "snd-seq-dummy's second through port")
    provisioned = vm.out("cat /etc/imps/box.toml")
    config = provisioned.replace("[serial]\nenabled = true", "[serial]\nenabled = false") \
        .replace("[actuators]\nenabled = true", "[actuators]\nenabled = false")
    assert config != provisioned
    config += MIDI_TOML
    vm.ssh("sudo cp /etc/imps/box.toml /etc/imps/box.toml.vm-saved && sudo tee /etc/imps/box.toml >/dev/null",
           input=config.encode())
    try:
        vm.ssh(RESTART)
        wait_for(lambda: service(vm, "ActiveState") == "active", 180, "the box with MIDI to be READY")
        log = newest_log(vm)
        before = log_sources(vm, log)
        vm.ssh("cat > /tmp/midi-probe.py", input=MIDI_PROBE.encode())
        probe = json.loads(vm.out("sudo /opt/imps/current/venv/bin/python /tmp/midi-probe.py 10",
                                  timeout=240).strip().splitlines()[-1])
        after = log_sources(vm, log)
        performer = after.get("interface", 0) - before.get("interface", 0)
        print(f"{probe['sent']} CCs in -> {performer} performer events, "
              f"{after.get('rnn', 0) - before.get('rnn', 0)} model events; out: {probe['received']} messages, "
              f"{probe['notes']} note-ons, {probe['ccs']} CCs on channel 2")
        assert performer >= probe["sent"] // 2
        assert probe["notes"] >= 1 and probe["ccs"] >= 1
        journal = vm.out("sudo journalctl -u imps.service -b --no-pager -o cat -n 200")
        assert "Operation not permitted" not in journal and "Permission denied" not in journal, journal[-2000:]
    finally:
        vm.ssh(f"sudo mv /etc/imps/box.toml.vm-saved /etc/imps/box.toml && {RESTART}")
        wait_for(lambda: service(vm, "ActiveState") == "active", 180, "the box back on its board")


def _put_model(vm, name: str, data: bytes) -> None:
    vm.ssh(f"sudo tee /var/lib/imps/models/{name} >/dev/null", input=data)
    vm.ssh(f"sudo chown imps:imps /var/lib/imps/models/{name}")


def test_reload_takes_a_good_model_and_refuses_a_bad_one(vm, box):
    pid = service(vm, "MainPID")
    good = (REPO / "device" / "imps" / "models" / "default.tflite").read_bytes()
    sidecar = (REPO / "device" / "imps" / "models" / "default.json").read_bytes()
    _put_model(vm, "good.tflite", good)
    _put_model(vm, "good.json", sidecar)
    _put_model(vm, "bad.tflite", b"this is not a model\n" * 50)
    models = "/var/lib/imps/models"
    try:
        since = vm.out("date +%s.%N").strip()
        vm.ssh(f"sudo ln -sfn good.tflite {models}/current.tflite && sudo ln -sfn good.json {models}/current.json"
               " && sudo systemctl reload imps.service")
        wait_for(lambda: "reloaded" in vm.out(f"sudo journalctl -u imps.service --since @{since} -o cat"),
                 120, "the good model to be taken")
        since = vm.out("date +%s.%N").strip()
        vm.ssh(f"sudo ln -sfn bad.tflite {models}/current.tflite && sudo rm -f {models}/current.json"
               " && sudo systemctl reload imps.service")
        refused = wait_for(lambda: [line for line in vm.out(f"sudo journalctl -u imps.service --since @{since} -o cat")
                                    .splitlines() if "reload refused" in line], 120, "the bad model to be refused")
        print(refused[0])
        assert "bad.tflite" in refused[0] or "current.tflite" in refused[0]
        assert service(vm, "ActiveState") == "active" and service(vm, "MainPID") == pid
    finally:
        vm.ssh(f"sudo ln -sfn /opt/imps/current/device/imps/models/default.tflite {models}/current.tflite; "
               f"sudo ln -sfn /opt/imps/current/device/imps/models/default.json {models}/current.json")


def test_watchdog_restarts_a_hung_box(vm, box):
    pid = service(vm, "MainPID")
    assert pid != "0", "the box is not running: " + vm.out("systemctl status imps.service --no-pager", check=False)
    restarts = int(service(vm, "NRestarts"))
    vm.ssh(f"sudo kill -STOP {pid}")
    t = time.monotonic()
    wait_for(lambda: service(vm, "MainPID") not in (pid, "0") and service(vm, "ActiveState") == "active",
             400, "systemd to restart the hung box")
    print(f"hung loop -> running again in {time.monotonic() - t:.1f} s (WatchdogSec=60 in the VM)")
    assert int(service(vm, "NRestarts")) == restarts + 1
    journal = vm.out("sudo journalctl -u imps.service -b --no-pager -o cat")
    assert "Watchdog timeout" in journal


def test_deploy_of_a_broken_release_is_rolled_back(vm, box, tmp_path):
    current = vm.out("readlink -e /opt/imps/current").strip()
    broken = tmp_path / "broken"
    broken.mkdir()
    for part in ("device", "deploy", "docs", "Makefile"):
        src = REPO / part
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, broken / part)
    (broken / "build").symlink_to(REPO / "build")      # the same cached wheels
    with open(broken / "device" / "imps" / "cli.py", "a") as f:
        f.write("\nraise SystemExit('a release that never comes up')\n")
    env = dict(os.environ, IMPS_SSH_OPTS=vm.ssh_opts, IMPS_READY_TIMEOUT="240")
    r = subprocess.run(["bash", str(broken / "deploy" / "deploy.sh"), "deploy", vm.host],
                       capture_output=True, text=True, env=env, timeout=1200)
    print(r.stdout[-2000:], r.stderr[-3000:])
    assert r.returncode != 0 and "ROLLED BACK to" in r.stderr
    assert vm.out("readlink -e /opt/imps/current").strip() == current
    assert service(vm, "ActiveState") == "active"      # the real service is READY on the old release


def test_reboot_plays_by_itself_boot_to_first_note(vm, box, board):
    vm.stop()
    vm.start()
    t0 = vm.started_at
    hellos, first_hello = board.counters["hellos"], None
    frames = len(board.actuator_log)
    deadline = t0 + 900
    while len(board.actuator_log) == frames:
        if first_hello is None and board.counters["hellos"] > hellos:
            first_hello = time.monotonic()
        if time.monotonic() > deadline:
            raise AssertionError("no model note at the board within 15 minutes of power-on\n"
                                 + _where_it_stopped(vm, board, hellos, frames))
        assert vm.alive(), vm.console_tail()
        time.sleep(0.02)
    first_note = board.actuator_log[frames][0] - t0
    ssh = vm.wait_ssh()
    chain = vm.out("systemd-analyze critical-chain --no-pager imps.service")
    blame = vm.out("systemd-analyze --no-pager")
    print(f"power-on -> board HELLO {first_hello - t0 if first_hello else float('nan'):.1f} s, "
          f"-> first model note {first_note:.1f} s\n{blame}\n{chain}")
    timed("figure: power-on to board HELLO (imps opened the port)", (first_hello or float("nan")) - t0)
    timed("figure: power-on to first model note", first_note)
    (REPO / "build" / "vm" / "critical-chain.txt").write_text(blame + "\n" + chain)
    assert ssh > 0
    assert "network" not in chain, chain
    deps = vm.out("systemctl list-dependencies --all --no-pager imps.service")
    assert "network-online" not in deps and "wait-online" not in deps


def _where_it_stopped(vm, board, hellos: int, frames: int) -> str:
    """What each link of board -> box -> board showed, for a failure message."""
    said = [f"board: {board.status()} (before the reboot: {hellos} HELLOs, {frames} ACTUATOR frames)"]
    for what, command in (("imps.service", "systemctl status --no-pager -n 0 imps.service"),
                          ("the box's journal this boot", "sudo journalctl -b -u imps.service --no-pager -o cat -n 40"),
                          ("serial devices", "ls -l /dev/serial/by-id/ /dev/ttyUSB* 2>&1"),
                          ("log lines by source", "sudo sh -c 'f=$(ls -1t /var/lib/imps/logs/*.log | head -1); "
                                                  "echo $f; cut -d, -f2 $f | sort | uniq -c'")):
        try:
            said.append(f"--- {what}\n" + vm.out(command, check=False, timeout=120))
        except Exception as exc:      # the box may not answer at all: say that instead
            said.append(f"--- {what}: {exc!r}")
    return "\n".join(said)


def test_power_cut_mid_performance(vm, box):
    log = newest_log(vm)
    wait_for(lambda: log_sources(vm, log).get("rnn", 0) > 5, 180, "model events before the cut")
    # The log as the box sees it, and the box's clock, just before the plug is pulled.
    before = vm.ssh(f"date +%s.%N; sudo cat {log}").stdout
    vm.kill()
    clock, _, text = before.partition(b"\n")
    cut = float(clock)
    vm.start()
    vm.wait_ssh()
    local = REPO / "build" / "vm" / os.path.basename(log)
    local.write_bytes(vm.ssh(f"sudo cat {log}").stdout)
    after = read_log(local)
    assert len(after.times) > 0
    assert all(reason == "torn last line" for _, reason in after.skipped), after.skipped
    seen = [line for line in text.split(b"\n")[:-1] if line]
    saved = set(local.read_bytes().split(b"\n"))
    stamps = read_log_lines(seen)
    lost = [line for line, ts in zip(seen, stamps) if line not in saved]
    older = [line for line, ts in zip(seen, stamps) if line not in saved and ts < cut - 1.0]
    print(f"power cut: {len(seen)} lines seen just before, {len(lost)} lost, "
          f"newest kept {cut - after.times.max():.2f} s before the cut")
    assert not older, f"lines older than a second before the cut were lost: {older[:3]}"
    state = vm.out("sudo dumpe2fs -h /dev/vda 2>/dev/null | grep -E 'Filesystem state|FS Error count' || true")
    assert "clean" in state and "Error count" not in state, state
    kernel = vm.out("sudo journalctl -k -b --no-pager -o cat | grep -i 'ext4' || true")
    assert "error" not in kernel.lower(), kernel
    wait_for(lambda: service(vm, "ActiveState") == "active", 300, "the box playing again after the cut")


def read_log_lines(lines):
    from datetime import datetime
    return [datetime.fromisoformat(line.split(b",")[0].decode()).timestamp() for line in lines]


def test_shutdown_button_powers_the_box_off(vm, box):
    """The panel's shutdown path for real: gpiozero's mock pins, driven from outside
    through its control file, holds the button; `systemctl poweroff` as the service
    user, allowed by the one polkit rule provisioning writes."""
    vm.ssh("sudo mkdir -p /etc/systemd/system/imps.service.d && printf '[Service]\\n"
           "Environment=IMPS_FAKE_GPIO_CONTROL=/run/imps/gpio\\n' | "
           "sudo tee /etc/systemd/system/imps.service.d/vm-gpio.conf >/dev/null && "
           "sudo sed -i 's/^backend = .*/backend = \"mock\"/' /etc/imps/box.toml && "
           f"sudo systemctl daemon-reload && {RESTART}")
    wait_for(lambda: vm.ssh("test -p /run/imps/gpio", check=False).returncode == 0, 120, "the GPIO control")
    vm.ssh("echo 'press 27' | sudo tee /run/imps/gpio >/dev/null; sleep 4; "
           "echo 'release 27' | sudo tee /run/imps/gpio >/dev/null", check=False, timeout=60)
    code = vm.wait_exit(300)
    assert code is not None, "the box is still on after the shutdown button: " + \
        vm.out("sudo journalctl -u imps.service -n 20 --no-pager -o cat", check=False)
