"""What the box's page costs the music: frame-to-sound p99 with the page streaming vs not, and its memory.

    python -m imps.bench.web [--events 400] [--rounds 3] [--streams 2]

One real box (in this process, layered mode, logging, writing its status file
as ``imps run`` does) with a sensor board on a pseudo-terminal, and a real
``imps web`` process beside it. Rounds alternate: frames with no page client,
then the same frames while ``--streams`` logged-in clients read the live
picture (SSE at 10 updates/s, with the status). The p99s and their ratio come
from the same run, so the shared machine's load is in both. Then the page's
peak RSS (VmHWM, after streaming), and the peak RSS of the ``imps check-model``
child a model upload runs. Figures in docs/web.md.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..threads import join_or_complain
from .e2e import (_box_overrides, _CompanionWaits, _frames_to_osc, _make_box, _model_dimension, _OscWaiter, _pty,
                  _vm_hwm_mb)
from .stats import summary

PASSWORD = "bench-password-1"


class _Streams:
    """``n`` logged-in clients reading /api/events until stopped; counts the updates they got."""

    def __init__(self, port: int, cookie: str, n: int):
        self.updates = 0
        self._halt = threading.Event()
        self.threads = [threading.Thread(target=self._read, args=(port, cookie), daemon=True) for _ in range(n)]
        for t in self.threads:
            t.start()

    def _read(self, port: int, cookie: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/api/events", headers={"Cookie": cookie})
        response = conn.getresponse()
        while not self._halt.is_set():
            line = response.fp.readline()
            if not line:
                break
            if line.startswith(b"event: points"):
                self.updates += 1
        conn.close()

    def stop(self) -> None:
        self._halt.set()
        for t in self.threads:
            join_or_complain(t, 5, "page stream reader")


def _status_writer(box, path: str, halt: threading.Event) -> threading.Thread:
    from ..box.status import status_record, write_status_file

    def run():
        while not halt.wait(0.5):
            write_status_file(path, status_record(box, box.status_line()))
    t = threading.Thread(target=run, daemon=True, name="bench-status")
    t.start()
    return t


def _start_page(tmp: Path, status_file: str, log_dir: str, control_port: int):
    password = tmp / "password"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run([sys.executable, "-m", "imps", "web", "password", "--file", str(password)],
                   input=PASSWORD + "\n", text=True, check=True, capture_output=True, env=env)
    page = subprocess.Popen([sys.executable, "-m", "imps", "web", "--port", "0", "--control-port", str(control_port),
                             "--status-file", status_file, "--log-dir", log_dir, "--password-file", str(password),
                             "--models-dir", str(tmp / "models")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
                            env=env)
    line = page.stdout.readline()
    port = int(line.split("127.0.0.1:")[1].split("/")[0])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/login", json.dumps({"password": PASSWORD}), {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    cookie = response.getheader("Set-Cookie").split(";")[0]
    return page, port, cookie


def _vm_rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) / 1024.0 for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return None


def check_model_rss(model) -> float:
    """Peak RSS in MB of one ``imps check-model`` child, as the page runs it for an upload."""
    child = subprocess.Popen([sys.executable, "-m", "imps", "check-model", str(model)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(child.pid, 0)
    child.returncode = 0
    return usage.ru_maxrss / 1024


def run(model, runtime: str, events: int, rounds: int, streams: int, log=print) -> dict:
    from ..io.osc import MODEL_VOICE
    from ..io.serial_input import SerialInput
    waiter = _OscWaiter()
    master, slave, path = _pty()
    quiet, streaming = [], []
    updates = 0
    with tempfile.TemporaryDirectory(prefix="imps-bench-web-") as tmp:
        tmp = Path(tmp)
        dimension = _model_dimension(model)
        overrides = _box_overrides(model, runtime, dimension, "layered", waiter.port, str(tmp / "logs"))
        overrides["log"]["enabled"] = True
        box = _make_box(overrides)
        source = SerialInput(port=path, format="frames", hello_attempts=0)
        box.add_source(source)
        box.start()
        halt = threading.Event()
        writer = _status_writer(box, str(tmp / "status.json"), halt)
        page = None
        try:
            control = box.receiver("control").port
            page, port, cookie = _start_page(tmp, str(tmp / "status.json"), str(tmp / "logs"), control)
            waits = _CompanionWaits(box)
            if not source.wait_connected(5.0):
                raise RuntimeError(f"serial input did not open {path}: {source.last_error}")
            frames = lambda: _frames_to_osc(lambda b: os.write(master, b), waiter, MODEL_VOICE, events,
                                            dimension - 1, master=master, waits=waits)
            frames()                                   # warm up: the model, the log file, the page's first reads
            for r in range(rounds):
                quiet += frames()
                readers = _Streams(port, cookie, streams)
                time.sleep(0.5)                        # the streams running before the first frame
                started = time.monotonic()
                streaming += frames()
                seconds = time.monotonic() - started
                readers.stop()
                updates += readers.updates
                log(f"round {r + 1}/{rounds}: {readers.updates / streams / seconds:.1f} updates/s per stream")
            page_hwm = _vm_hwm_mb(page.pid)
            page_rss = _vm_rss_mb(page.pid)
        finally:
            halt.set()
            join_or_complain(writer, 2, "bench status writer")
            if page is not None:
                page.terminate()
                page.wait(10)
            box.stop()
            waiter.close()
            os.close(master)
            os.close(slave)
    q, s = summary([x * 1e3 for x in quiet]), summary([x * 1e3 for x in streaming])
    return {"quiet": q, "streaming": s, "p99_ratio": s["p99"] / q["p99"], "page_peak_rss_mb": page_hwm, "page_rss_mb": page_rss,
            "check_model_peak_rss_mb": check_model_rss(model), "streams": streams}


def main(argv=None) -> int:
    from ..box.config import DEFAULT_MODEL
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--events", type=int, default=400, help="frames per round and phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", type=int, default=2, help="page clients reading the live picture")
    args = parser.parse_args(argv)
    r = run(args.model, args.runtime, args.events, args.rounds, args.streams)
    for name in ("quiet", "streaming"):
        x = r[name]
        print(f"frame to sound, page {name:9}: median {x['median']:.3f} ms, p99 {x['p99']:.3f} ms (n {x['n']})")
    print(f"p99 streaming / quiet: {r['p99_ratio']:.2f} ({r['streams']} streams)")
    print(f"page RSS after streaming: {r['page_rss_mb']:.1f} MB, peak {r['page_peak_rss_mb']:.1f} MB (a login's "
          f"scrypt takes 16 MiB, one at a time); imps check-model child peak RSS: {r['check_model_peak_rss_mb']:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
