"""The end-to-end parts of `imps bench`: start-up of the real box, scheduling
error of played events, and input-to-output latency.

Kept apart from bench.py because they drive the whole box (imps.box.app.Box)
and its inputs; a part that fails becomes a note in the results, never a
crash of the bench.

- ``ready``: ``imps run`` spawned with its own ``$NOTIFY_SOCKET``: time from
  spawn to ``READY=1``, then its peak resident memory (VmHWM) after it has
  played for a while.
- ``schedule_error``: the box in duet mode (the model plays continuously);
  how late each model event left after its due time, taken once its OSC
  message was sent (``box.engine.scheduler.lateness``).
- ``input_to_output``: a sensor frame written to a pseudo-terminal, read by
  the serial input (added to the real box with ``Box.add_source``), through
  the engine in layered mode, where the model steps on the event and samples
  its companion, out as the companion's ``/model`` OSC message received on a
  UDP socket here, less the companion's predicted dt (the musical wait the
  model asked for, times the time scale). Also the OSC ``/interface`` ->
  ``/model`` path through the box.
- ``midi_in_to_out``: a controller's CC through MidiInput and the box (layered)
  to its companion's first MIDI message at a synth, less the predicted wait,
  as ``input_to_output``; ``midi_in_to_echo`` to the MIDI thru. On virtual
  devices (the path above python-rtmidi's ALSA ports) and over DIN MIDI on
  pseudo-terminals.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
import random
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tty
from pathlib import Path

from ..threads import join_or_complain
from .stats import row, summary


def _udp_listener():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


#: Layered companions wait their predicted dt times this; the wait is subtracted from the figure.
COMPANION_TIME_SCALE = 0.1


def _box_overrides(model, runtime: str, dimension: int, mode: str, sound_port: int, log_dir: str) -> dict:
    engine = {"mode": mode, "dimension": dimension}
    if mode == "layered":
        engine["time_scale"] = COMPANION_TIME_SCALE
    return {"model": {"path": str(model), "runtime": runtime, "seed": 0},
            "engine": engine,
            "osc": {"interface_port": 0, "control_port": 0, "sound_port": sound_port},
            "log": {"directory": log_dir, "enabled": False},
            "performer": {"simulate": False},
            "status": {"terminal": False}}


def _make_box(overrides: dict):
    from ..box.app import Box
    from ..box.config import load_config
    return Box(load_config(None, overrides))


def _model_dimension(model) -> int:
    from ..model.model_file import read_sidecar
    sc = read_sidecar(model)
    if sc is not None:
        return sc.dimension
    from ..model.runtime import MDRNN
    return MDRNN(model).dimension


# -- start-up of the real box ------------------------------------------------------

def _vm_hwm_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def ready_once(model, runtime: str, play_seconds: float = 2.0, timeout: float = 30.0,
               extra_config: str = "") -> dict:
    """Spawn `imps run` on model with a notify socket; seconds to READY=1 and peak RSS in MB.
    ``extra_config`` is appended to the box.toml (e.g. a [gpio] section)."""
    dimension = _model_dimension(model)
    with tempfile.TemporaryDirectory(prefix="imps-bench-") as tmp:
        notify_path = os.path.join(tmp, "notify")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        sink, sink_port = _udp_listener()
        config = Path(tmp) / "box.toml"
        config.write_text(
            f'[model]\npath = "{model}"\nruntime = "{runtime}"\nseed = 0\n'
            f'[engine]\nmode = "call_response"\ndimension = {dimension}\n'
            f'[osc]\ninterface_port = 0\ncontrol_port = 0\nsound_port = {sink_port}\n'
            f'[log]\ndirectory = "{tmp}/logs"\n'
            f'[performer]\nsimulate = false\n'
            f'[status]\nterminal = false\n' + extra_config)
        env = dict(os.environ, NOTIFY_SOCKET=notify_path)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "imps", "run", "--config", str(config)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        ready = None
        try:
            deadline = t0 + timeout
            while ready is None and time.perf_counter() < deadline and proc.poll() is None:
                r, _, _ = select.select([notify], [], [], 0.05)
                if r:
                    msg = notify.recv(4096).decode(errors="replace")
                    if "READY=1" in msg.split("\n"):
                        ready = time.perf_counter() - t0
            if ready is None:
                raise RuntimeError(f"`imps run` did not say READY=1 within {timeout:g} s "
                                   f"(exit {proc.poll()})")
            time.sleep(play_seconds)
            hwm = _vm_hwm_mb(proc.pid)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                _, err = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            notify.close()
            sink.close()
        if ready is None:
            raise RuntimeError((err or b"").decode(errors="replace")[-500:])
    return {"seconds": ready, "hwm_mb": hwm}


def bench_ready(model, runtime: str, repeats: int) -> list[dict]:
    runs = [ready_once(model, runtime) for _ in range(repeats)]
    common = dict(runtime=runtime, threads=1, model=Path(model).name, note="imps run")
    rows = [row("ready", summary([r["seconds"] * 1e3 for r in runs]), **common)]
    hwm = [r["hwm_mb"] for r in runs if r["hwm_mb"] is not None]
    if hwm:
        rows.append(row("ready_rss", summary(hwm, "MB"), **common))
    return rows


# -- scheduling error ----------------------------------------------------------------

def schedule_error_box(model, runtime: str, seconds: float) -> list[float]:
    """Seconds late per played model event, the real box playing in duet mode."""
    sink, port = _udp_listener()
    with tempfile.TemporaryDirectory(prefix="imps-bench-") as tmp:
        box = _make_box(_box_overrides(model, runtime, _model_dimension(model), "duet", port, tmp))
        drain = _Drain(sink)
        box.start()
        try:
            time.sleep(seconds)
        finally:
            box.stop()
            drain.stop()
        return list(box.engine.scheduler.lateness)


class _Drain(threading.Thread):
    """Reads and discards a UDP socket (the box's sound output) until stopped."""

    def __init__(self, sock):
        super().__init__(daemon=True)
        self.sock = sock
        self._halt = threading.Event()
        self.start()

    def run(self):
        self.sock.settimeout(0.1)
        while not self._halt.is_set():
            try:
                self.sock.recv(65536)
            except OSError:
                continue

    def stop(self):
        self._halt.set()
        join_or_complain(self, 1, "UDP sink")
        self.sock.close()


# -- input to output --------------------------------------------------------------------

class _OscWaiter:
    """Receives OSC on a UDP socket; ``wait(address)`` returns the arrival time of the next match."""

    def __init__(self):
        self.sock, self.port = _udp_listener()

    def wait(self, address: str, timeout: float = 0.5) -> float | None:
        want = address.encode()
        deadline = time.perf_counter() + timeout
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                return None
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                return None
            data = self.sock.recv(65536)
            t = time.perf_counter()
            if data.startswith(want + b"\0"):
                return t

    def wait_all(self, addresses, timeout: float) -> dict:
        """Arrival times of the next message to each address (those that came within timeout)."""
        wants = {a: a.encode() + b"\0" for a in addresses}
        got: dict = {}
        deadline = time.perf_counter() + timeout
        while len(got) < len(wants):
            left = deadline - time.perf_counter()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                break
            data = self.sock.recv(65536)
            t = time.perf_counter()
            for address, prefix in wants.items():
                if address not in got and data.startswith(prefix):
                    got[address] = t
        return got

    def flush(self):
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recv(65536)
        except OSError:
            pass
        self.sock.setblocking(True)

    def close(self):
        self.sock.close()


def _pty():
    master, slave = os.openpty()
    tty.setraw(slave)
    return master, slave, os.ttyname(slave)


def _drain_fd(fd):
    while select.select([fd], [], [], 0)[0]:
        try:
            if not os.read(fd, 4096):
                return
        except OSError:
            return


class _CompanionWaits:
    """The predicted wait of each companion the box's model samples (dt times the time scale),
    recorded by wrapping the model's ``sample`` in the engine's own thread."""

    def __init__(self, box):
        self.waits: list[float] = []
        engine = box.engine
        installed = threading.Event()

        def install():
            sample = engine.model.sample

            def recording():
                row = sample()
                self.waits.append(row[0] * engine.time_scale)
                return row
            engine.model.sample = recording
            installed.set()
        engine.submit(install)
        if not installed.wait(5.0):
            raise RuntimeError("the engine did not take the companion recorder")

    def take(self) -> float | None:
        return self.waits.pop(0) if self.waits else None


def _frames_to_osc(write_frame, waiter: _OscWaiter, address: str, events: int, channels: int,
                   gap: tuple = (0.004, 0.012), master=None, waits: _CompanionWaits | None = None,
                   echoes: list | None = None) -> list[float]:
    """Write ``events`` sensor frames with changing values; seconds from write to OSC arrival
    (less the companion's predicted wait, when ``waits`` records them). With ``echoes``, the
    seconds to the /performer echo of the same frames are appended there (same run)."""
    from ..io.osc import PERFORMER_VOICE
    from ..io.serial_frames import sensor_frame
    rng = random.Random(0)
    out = []
    for seq in range(events):
        values = [rng.random() for _ in range(channels)]
        frame = sensor_frame(seq & 0xFF, values)
        waiter.flush()
        if master is not None:
            _drain_fd(master)
        t0 = time.perf_counter()
        write_frame(frame)
        if echoes is None:
            t1 = waiter.wait(address, timeout=0.5 if waits is None else 5.0)
        else:
            arrived = waiter.wait_all((address, PERFORMER_VOICE), timeout=5.0)
            t1 = arrived.get(address)
            if PERFORMER_VOICE in arrived:
                echoes.append(arrived[PERFORMER_VOICE] - t0)
        wait = waits.take() if waits is not None else 0.0
        if t1 is not None and wait is not None:
            out.append(t1 - t0 - wait)
        time.sleep(rng.uniform(*gap))
    return out


def input_to_output_box_serial(model, runtime: str, events: int, echoes: list | None = None) -> list[float]:
    """Sensor frame on a pty -> SerialInput added to the real box (layered mode: the model
    steps on every event and samples its companion) -> engine -> scheduler -> the companion's
    /model OSC received here, less the companion's predicted wait."""
    from ..io.osc import MODEL_VOICE
    from ..io.serial_input import SerialInput
    waiter = _OscWaiter()
    master, slave, path = _pty()
    with tempfile.TemporaryDirectory(prefix="imps-bench-") as tmp:
        dimension = _model_dimension(model)
        box = _make_box(_box_overrides(model, runtime, dimension, "layered", waiter.port, tmp))
        source = SerialInput(port=path, format="frames", hello_attempts=0)
        box.add_source(source)
        box.start()
        try:
            waits = _CompanionWaits(box)
            if not source.wait_connected(5.0):
                raise RuntimeError(f"serial input did not open {path}: {source.last_error}")
            time.sleep(0.05)
            return _frames_to_osc(lambda b: os.write(master, b), waiter, MODEL_VOICE, events,
                                  dimension - 1, master=master, waits=waits, echoes=echoes)
        finally:
            box.stop()
            waiter.close()
            os.close(master)
            os.close(slave)


def input_to_output_box_osc(model, runtime: str, events: int) -> list[float]:
    """/interface OSC in -> the real box (layered mode: the model steps on every event and samples
    its companion) -> the companion's /model out, less its predicted wait."""
    from ..io.osc import INTERFACE, MODEL_VOICE, encode_floats
    waiter = _OscWaiter()
    with tempfile.TemporaryDirectory(prefix="imps-bench-") as tmp:
        dimension = _model_dimension(model)
        overrides = _box_overrides(model, runtime, dimension, "layered", waiter.port, tmp)
        box = _make_box(overrides)
        box.start()
        try:
            waits = _CompanionWaits(box)
            port = _box_interface_port(box)
            send = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            rng = random.Random(0)
            out = []
            for _ in range(events):
                msg = encode_floats(INTERFACE, [rng.random() for _ in range(dimension - 1)])
                waiter.flush()
                t0 = time.perf_counter()
                send.sendto(msg, ("127.0.0.1", port))
                t1 = waiter.wait(MODEL_VOICE, timeout=5.0)
                wait = waits.take()
                if t1 is not None and wait is not None:
                    out.append(t1 - t0 - wait)
                time.sleep(rng.uniform(0.004, 0.012))
            send.close()
            return out
        finally:
            box.stop()
            waiter.close()


def _midi_overrides(model, runtime: str, dimension: int, tmp: str, keys: str, synth: str, thru: str,
                    transport: str) -> dict:
    """The box in layered mode (companions wait dt times COMPANION_TIME_SCALE) with MIDI in (CC 20.. ->
    controls) and two synths out: ``synth`` plays the model (the companions), ``thru`` the performer."""
    n = dimension - 1
    o = _box_overrides(model, runtime, dimension, "layered", 0, tmp)
    o["osc"] = {"enabled": False}
    out_map = [{"type": "note", "channel": 1, "control": 0}] + [
        {"type": "control_change", "channel": 1, "number": 20 + i, "control": i} for i in range(1, n)]
    o["midi"] = {"enabled": True, "scan_interval": 0.1,
                 "input": [{"device": keys, "transport": transport, "map": [
                     {"type": "control_change", "channel": 1, "number": 20 + i, "control": i} for i in range(n)]}],
                 "output": [{"device": synth, "transport": transport, "voices": ["model"], "map": out_map},
                            {"device": thru, "transport": transport, "voices": ["performer"], "map": out_map}]}
    return o


def _midi_events(send, arrivals, waits: "_CompanionWaits", events: int, flush=lambda: None):
    """CC 20 with a new value each time (the performer's control 0): seconds to the companion's first
    MIDI message less its predicted wait, and to the thru (echo) message; both lists.
    ``arrivals(timeout)`` gives the monotonic arrival times (companion, thru), None if none came."""
    import mido
    rng = random.Random(0)
    out, echoes = [], []
    for i in range(events):
        msg = mido.Message("control_change", channel=0, control=20, value=(i * 37) % 128)
        flush()
        t0 = time.monotonic()
        send(msg)
        t_model, t_thru = arrivals(5.0)
        wait = waits.take()
        if t_model is not None and wait is not None:
            out.append(t_model - t0 - wait)
        if t_thru is not None:
            echoes.append(t_thru - t0)
        time.sleep(rng.uniform(0.004, 0.012))
    return out, echoes


def _midi_box(model, runtime: str, events: int, echoes, devices, transport: str, send, arrivals, clear):
    """The box with MIDI in from ``devices[0]`` and synths out on ``devices[1:]`` (model, thru):
    CCs sent with ``send``, timed by ``arrivals``; ``clear()`` empties the synths before each event."""
    keys, synth, thru = devices
    with tempfile.TemporaryDirectory(prefix="imps-bench-") as tmp:
        box = _make_box(_midi_overrides(model, runtime, _model_dimension(model), tmp, keys, synth, thru, transport))
        box.start()
        try:
            if not _wait(lambda: box.midi_in.status()["devices"] and len(box.midi_out.status()["devices"]) == 2):
                raise RuntimeError(f"the box did not open the {transport} MIDI devices")

            def flush():
                box.engine.scheduler.clear()      # nothing left over from the previous event
                clear()
            out, echo = _midi_events(send, arrivals, _CompanionWaits(box), events, flush)
            if echoes is not None:
                echoes.extend(echo)
            return out
        finally:
            box.stop()


def input_to_output_box_midi(model, runtime: str, events: int, echoes: list | None = None) -> list[float]:
    """A MIDI controller's CC -> MidiInput -> the real box (layered: the model steps on the event and
    samples its companion) -> scheduler -> MidiOutput -> the synth, less the companion's predicted
    wait: virtual devices, the path an ALSA port takes above python-rtmidi."""
    from ..io.midi import virtual
    tag = os.getpid()
    names = (f"bench keys {tag}", f"bench synth {tag}", f"bench thru {tag}")
    kdev, sdev, tdev = (virtual.SYSTEM.plug(name) for name in names)

    def arrivals(timeout):           # the devices record their own arrival times
        sdev.wait_for(lambda ms: len(ms) > 0, timeout)
        tdev.wait_for(lambda ms: len(ms) > 0, 0.5)
        return (sdev.received[0][0] if sdev.received else None,
                tdev.received[0][0] if tdev.received else None)

    def clear():
        sdev.clear()
        tdev.clear()
    try:
        return _midi_box(model, runtime, events, echoes, names, "virtual", kdev.send, arrivals, clear)
    finally:
        for name in names:
            virtual.SYSTEM.unplug(name)


def input_to_output_box_din(model, runtime: str, events: int, echoes: list | None = None) -> list[float]:
    """The same over DIN MIDI: bytes written to one pseudo-terminal (the UART's RX), read from two
    others (TX to the synth, and the thru). Ptys do not pace bytes: a real 31,250 baud line adds
    0.96 ms per 3-byte message each way."""
    ptys = [_pty() for _ in range(3)]          # keys, synth, thru: (master, slave, path)
    (keys_m, _, _), (synth_m, _, _), (thru_m, _, _) = ptys

    def arrivals(timeout):           # first bytes on each pty, whichever comes first
        seen = {}
        end = time.monotonic() + timeout
        while len(seen) < 2:
            left = end - time.monotonic()
            ready = select.select([fd for fd in (synth_m, thru_m) if fd not in seen], [], [],
                                  max(0.0, left))[0] if left > 0 else []
            if not ready:
                break
            now = time.monotonic()
            for fd in ready:
                seen[fd] = now
        return seen.get(synth_m), seen.get(thru_m)

    def clear():
        time.sleep(0.002)
        _drain_fd(synth_m)
        _drain_fd(thru_m)
    try:
        return _midi_box(model, runtime, events, echoes, [path for _, _, path in ptys], "din",
                         lambda m: os.write(keys_m, m.bin()), arrivals, clear)
    finally:
        for master, slave, _ in ptys:
            os.close(master)
            os.close(slave)


def _wait(predicate, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def _box_interface_port(box) -> int:
    """The UDP port the box's /interface receiver is bound to (asked for port 0)."""
    return box.receiver("interface").port


# -- all of it --------------------------------------------------------------------

#: The real-time priority imps.service gives the box (CPUSchedulingPriority in
#: deploy/systemd/imps.service; a test keeps the two the same).
UNIT_PRIORITY = 10


@contextmanager
def fifo(priority: int):
    """The calling thread, and every thread it starts meanwhile, on ``SCHED_FIFO`` at
    ``priority``: the box as imps.service runs it. PermissionError without root,
    CAP_SYS_NICE or an RLIMIT_RTPRIO (LimitRTPRIO=) of at least ``priority``."""
    if not 1 <= priority <= 49:
        raise ValueError(f"real-time priority {priority}: out of range, expected 1 to 49")
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    try:
        yield
    finally:
        os.sched_setscheduler(0, policy, param)


def run_all(model, runtime: str, seconds: float, log=print,
            realtime: int = UNIT_PRIORITY) -> tuple[list[dict], dict]:
    """Every end-to-end row that can be measured here, and notes on what could not.
    With ``realtime`` (a priority, 0 for none), the serial and MIDI paths are measured again
    on SCHED_FIFO in the same run, as imps.service runs the box: the pair shows what real-time
    scheduling buys on this machine as it is loaded now."""
    rows, notes = [], {}
    common = dict(runtime=runtime, threads=1, model=Path(model).name)
    events = max(50, int(seconds * 60))

    def attempt(key, fn):
        try:
            fn()
        except Exception as exc:  # a broken part is reported, the rest still runs
            notes[key] = f"not measured: {type(exc).__name__}: {exc}"
            log(f"bench: {key}: {notes[key]}")

    attempt("ready", lambda: rows.extend(bench_ready(model, runtime, 3)))

    def box_schedule():
        lateness = schedule_error_box(model, runtime, seconds)
        rows.append(row("schedule_error", summary([s * 1e3 for s in lateness]), note="box duet", **common))
    attempt("schedule_error", box_schedule)

    def box_serial():
        echoes = []
        lat = input_to_output_box_serial(model, runtime, events, echoes)
        rows.append(row("input_to_output", summary([s * 1e3 for s in lat]), note="serial box layered",
                        **common))
        if echoes:
            rows.append(row("input_to_echo", summary([s * 1e3 for s in echoes]), note="serial box layered",
                            **common))
    attempt("input_to_output_serial", box_serial)

    def box_osc():
        lat = input_to_output_box_osc(model, runtime, events)
        rows.append(row("input_to_output", summary([s * 1e3 for s in lat]), note="osc box layered",
                        **common))
    attempt("input_to_output_osc", box_osc)

    def box_midi():
        for note, fn in (("midi box layered", input_to_output_box_midi),
                         ("midi din box layered", input_to_output_box_din)):
            echoes = []
            lat = fn(model, runtime, events, echoes)
            rows.append(row("midi_in_to_out", summary([s * 1e3 for s in lat]), note=note, **common))
            if echoes:
                rows.append(row("midi_in_to_echo", summary([s * 1e3 for s in echoes]), note=note, **common))
    attempt("midi_in_to_out", box_midi)

    def box_realtime():
        rt = f"SCHED_FIFO {realtime}"
        try:
            with fifo(realtime):
                serial = input_to_output_box_serial(model, runtime, events)
                midi = input_to_output_box_midi(model, runtime, events)
        except PermissionError:
            raise PermissionError(f"{rt} refused: needs root, CAP_SYS_NICE or LimitRTPRIO={realtime}") from None
        rows.append(row("input_to_output", summary([s * 1e3 for s in serial]),
                        note=f"serial box layered, {rt}", **common))
        rows.append(row("midi_in_to_out", summary([s * 1e3 for s in midi]),
                        note=f"midi box layered, {rt}", **common))
    if realtime:
        attempt("realtime", box_realtime)
    return rows, notes
