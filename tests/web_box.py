"""A running simulated box with its page beside it, for the page's tests (two real processes).

``WebBox`` starts ``imps run --simulate --config box.toml`` (OSC on free ports,
the status file, logs and models in a temporary folder) and ``imps web`` on a
free port with a password, waits for both, and fails at once with a child's
stderr when it dies.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from support import ROOT

PASSWORD = "correct-horse-battery"
DEFAULT_MODEL = ROOT / "device" / "imps" / "models" / "default.tflite"


class WebBox:
    def __init__(self, folder: Path, python: str, sound_port: int):
        self.folder = folder
        self.python = python
        self.models = folder / "models"
        self.logs = folder / "logs"
        self.models.mkdir(parents=True, exist_ok=True)
        self.status_file = folder / "status.json"
        self.config = folder / "box.toml"
        self.config.write_text(
            f'[model]\npath = "{DEFAULT_MODEL}"\nseed = 1\n\n'
            f'[osc]\ninterface_port = 0\ncontrol_port = 0\nsound_port = {sound_port}\n\n'
            f'[log]\ndirectory = "{self.logs}"\n\n'
            f'[status]\ninterval = 0.2\nterminal = false\nfile = "{self.status_file}"\n')
        self.password_file = folder / "password"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        subprocess.run([python, "-m", "imps", "web", "password", "--file", str(self.password_file)],
                       input=PASSWORD + "\n", text=True, check=True, capture_output=True, env=env)
        self.box_err = open(folder / "box.stderr", "w+")
        self.box = subprocess.Popen([python, "-m", "imps", "run", "--simulate", "--config", str(self.config), "-q"],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.box_err,
                                    env=env, cwd=folder)
        self.wait(lambda: self.status().get("engine", {}).get("performer_events", 0) > 0, "the box to play")
        self.page_err = open(folder / "page.stderr", "w+")
        self.page = subprocess.Popen([python, "-m", "imps", "web", "--box-config", str(self.config), "--port", "0",
                                      "--password-file", str(self.password_file),
                                      "--models-dir", str(self.models)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.page_err,
                                     text=True, env=env, cwd=folder)
        line = self.page.stdout.readline()
        m = re.search(r"(http://127\.0\.0\.1:(\d+))/login\?token=(\S+)", line)
        if not m:
            self.check_alive()
            raise AssertionError(f"the page printed {line!r}, not its URL")
        self.url, self.port, self.token = m.group(1), int(m.group(2)), m.group(3)

    # ------------------------------------------------------------ the children
    def check_alive(self) -> None:
        for name, proc, err in (("box", self.box, self.box_err), ("page", getattr(self, "page", None),
                                                                    getattr(self, "page_err", None))):
            if proc is not None and proc.poll() is not None:
                err.seek(0)
                raise AssertionError(f"the {name} died (exit {proc.returncode}): {err.read()[-3000:]}")

    def wait(self, condition, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if condition():
                    return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def status(self) -> dict:
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}

    def playing(self, since: int | None = None) -> int:
        """Wait until the box's performer count moves past ``since`` (it plays on); the count."""
        start = self.status()["engine"]["performer_events"] if since is None else since
        self.wait(lambda: self.status()["engine"]["performer_events"] > start, "the box to play on")
        return self.status()["engine"]["performer_events"]

    def stop(self) -> None:
        for proc in (getattr(self, "page", None), self.box):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if getattr(self, "page", None) is not None:
            self.page.stdout.close()
            self.page_err.close()
        self.box_err.close()

    # ------------------------------------------------------------ plain HTTP, for hostile requests
    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 10.0) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def login(self) -> tuple[str, str]:
        """(cookie header, CSRF token) of a fresh session by the password."""
        status, headers, _ = self.request("POST", "/login", json.dumps({"password": PASSWORD}).encode(),
                                          {"Content-Type": "application/json"})
        assert status == 200, status
        cookie = headers["Set-Cookie"].split(";")[0]
        _, _, body = self.request("GET", "/api/state", headers={"Cookie": cookie})
        return cookie, json.loads(body)["csrf"]


def copy_model(source: Path, folder: Path, name: str) -> Path:
    """A model and its sidecar under a new name (an upload of a real, good model)."""
    target = folder / name
    shutil.copy(source, target)
    shutil.copy(source.with_suffix(".json"), target.with_suffix(".json"))
    return target
