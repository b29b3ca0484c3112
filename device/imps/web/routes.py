"""What the page can do: the route table and one small function per route.

``ROUTES`` is the one list of (method, path, function, who): ``PUBLIC`` routes
are the login page and its stylesheet; every other route needs a session
(``App.handle`` checks it before the function runs, and a POST also needs the
session's CSRF token in ``X-CSRF-Token`` and, when the browser sends one, an
Origin of this page). tests/test_web.py walks the table.

Heavy checks run in child processes, so the page never loads a model or the
box's config machinery itself (numpy alone would double its memory): a model
upload or switch runs ``imps check-model``, a config edit ``python -m
imps.web.check_config`` (the box's own ``load_config``, so ``settings.decode``'s
one-line error).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..errors import ConfigError
from . import files, multipart
from .auth import LoginLimiter, Sessions, csrf_ok, verify_password
from .box_link import BoxLink, LogTail, control_ranges
from .server import HttpError, Request, Response

COOKIE = "imps_session"
PUBLIC = "public"
SESSION = "session"
MAX_UPLOAD = 16 * 1024 * 1024          # the largest bundled benchmark model (512 units) is 12.3 MB
MAX_CONFIG = 256 * 1024
EVENTS_PER_SECOND = 10
MAX_STREAMS = 4                        # open live pictures at once
CHILD_TIMEOUT = 60.0
RELOAD_WAIT = 6.0                      # seconds to wait for the box to say what a reload did
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
                ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}


@dataclass
class PageSettings:
    models: Path                       # where uploaded models go (the box's models folder)
    logs: Path | None                  # the box's log folder
    config: Path | None                # the box's config file (None: the box runs on defaults)
    bundled: Path | None = None        # the models shipped with the box (listed, never deleted)
    tls: bool = False
    python: str = sys.executable
    max_upload: int = MAX_UPLOAD


@dataclass
class App:
    settings: PageSettings
    link: BoxLink
    tail: LogTail
    password_hash: str | None
    sessions: Sessions = field(default_factory=Sessions)
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    clock: object = time.time
    streams: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(MAX_STREAMS))
    routes: list = field(default_factory=list)

    def __post_init__(self):
        self.routes = [(method, _pattern(path), fn, who) for method, path, fn, who in ROUTES]

    # ------------------------------------------------------------ dispatch
    def handle(self, request: Request) -> Response:
        allowed = []
        for method, pattern, fn, who in self.routes:
            m = pattern.match(request.path)
            if not m:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            request.params = m.groupdict()
            if who != PUBLIC:
                self.authorize(request)
            return fn(self, request)
        if allowed:
            raise HttpError(405, f"{request.method} is not served here", {"Allow": ", ".join(allowed)})
        raise HttpError(404, "no such page")

    def authorize(self, request: Request) -> None:
        request.session = self.sessions.get(request.cookie(COOKIE))
        if request.session is None:
            if request.method == "GET" and request.path == "/":
                raise HttpError(303, "log in first", {"Location": "/login"})
            raise HttpError(401, "log in first")
        if request.method == "POST":
            if not csrf_ok(request.session, request.headers.get("X-CSRF-Token")):
                raise HttpError(403, "missing or wrong CSRF token (reload the page)")
            self.check_origin(request)

    def check_origin(self, request: Request) -> None:
        origin = request.headers.get("Origin")
        if origin is not None and origin.split("://", 1)[-1] != request.headers.get("Host"):
            raise HttpError(403, "a request from another site")

    def cookie(self, value: str, max_age: int | None = None) -> str:
        parts = [f"{COOKIE}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
        if self.settings.tls:
            parts.append("Secure")
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        return "; ".join(parts)

    # ------------------------------------------------------------ helpers
    def child(self, *args: str) -> tuple[bool, str]:
        """Run ``python -m imps ...`` (or a module) in its own process: (ok, its last line of output)."""
        try:
            done = subprocess.run([self.settings.python, *args], capture_output=True, text=True,
                                  timeout=CHILD_TIMEOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        except subprocess.TimeoutExpired:
            return False, f"the check took over {CHILD_TIMEOUT:.0f} s"
        text = (done.stdout + done.stderr).strip().splitlines()
        message = text[-1] if text else f"exit code {done.returncode}"
        return done.returncode == 0, message.removeprefix("imps: error: ")

    def check_model(self, path: Path) -> tuple[bool, str]:
        status = self.link.status()
        args = ["-m", "imps", "check-model", str(path)]
        if status.get("dimension"):
            args += ["--dimension", str(status["dimension"])]
        return self.child(*args)

    def config_text(self) -> str:
        if self.settings.config is None:
            raise HttpError(409, "the box runs on built-in defaults, not a config file "
                                 "(start it with --config to edit it here)")
        try:
            return self.settings.config.read_text()
        except OSError as exc:
            raise HttpError(500, f"cannot read {self.settings.config}: {exc.strerror or exc}") from None

    def save_config(self, text: str) -> dict:
        """Validate ``text`` with the box's own loader (a child), keep the previous file, write, reload."""
        config = self.settings.config
        fd, tmp = tempfile.mkstemp(prefix=".box-", suffix=".toml", dir=config.parent)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        try:
            ok, message = self.child("-m", "imps.web.check_config", tmp)
            if not ok:
                raise HttpError(422, message.replace(tmp, config.name))
            shutil.copy2(config, config.with_name(config.name + ".previous"))
            os.replace(tmp, config)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return self.reload_and_wait()

    def reload_and_wait(self) -> dict:
        before = self.link.status().get("last_reload")
        try:
            sent = self.link.reload()
        except ConfigError as exc:
            return {"saved": True, "reload": str(exc)}
        deadline = time.monotonic() + RELOAD_WAIT
        while time.monotonic() < deadline:
            status = self.link.status()
            if status.get("last_reload") != before and status.get("last_reload"):
                return {"saved": True, "reload": status["last_reload"][1], "model": status.get("model"),
                        "restart_needed": status.get("restart_needed", [])}
            time.sleep(0.1)
        return {"saved": True, "reload": f"{sent}; the box has not answered yet"}


def _pattern(path: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$")


def static_file(name: str) -> Response:
    suffix = Path(name).suffix
    try:
        data = resources.files("imps.web").joinpath("static", files.check_name(name)).read_bytes()
    except (OSError, ConfigError):
        raise HttpError(404, "no such file") from None
    cache = {} if suffix == ".html" else {"Cache-Control": "private, max-age=300"}   # a page is never cached:
    return Response(200, data, STATIC_TYPES.get(suffix, "application/octet-stream"), cache)  # logout must show


def download(path: Path, content_type: str = "application/octet-stream") -> Response:
    return Response(200, path.read_bytes(), content_type,
                    {"Content-Disposition": f'attachment; filename="{path.name}"'})


# ---------------------------------------------------------------- login
def login_page(app: App, request: Request) -> Response:
    token = (request.query.get("token") or [""])[0]
    if token:
        if app.sessions.use_one_time_token(token):
            _, cookie = app.sessions.create()
            return Response(303, b"", headers={"Location": "/", "Set-Cookie": app.cookie(cookie)})
        app.limiter.failed()
        raise HttpError(403, "that login link was used already or is wrong: log in with the password")
    return static_file("login.html")


def login_css(app: App, request: Request) -> Response:
    return static_file("login.css")


def login_js(app: App, request: Request) -> Response:
    return static_file("login.js")


def login(app: App, request: Request) -> Response:
    app.check_origin(request)
    wait = app.limiter.retry_after()
    if wait > 0:
        raise HttpError(429, f"too many wrong passwords: try again in {wait:.0f} s",
                        {"Retry-After": str(int(wait) + 1)})
    password = str(request.json(4096).get("password", ""))
    if app.password_hash is None or not verify_password(password, app.password_hash):
        app.limiter.failed()
        raise HttpError(403, "wrong password" if app.password_hash else
                        "this page has no password set: log in with the link it printed")
    _, cookie = app.sessions.create()
    return Response.json({"ok": True}, headers={"Set-Cookie": app.cookie(cookie)})


def logout(app: App, request: Request) -> Response:
    app.sessions.end(request.session)
    return Response.json({"ok": True}, headers={"Set-Cookie": app.cookie("", max_age=0)})


# ---------------------------------------------------------------- the page and Play
def index(app: App, request: Request) -> Response:
    return static_file("index.html")


def static(app: App, request: Request) -> Response:
    return static_file(request.params["name"])


def state(app: App, request: Request) -> Response:
    return Response.json({"csrf": request.session.csrf, "controls": control_ranges(),
                          "status": app.link.status(), "config": app.settings.config is not None})


def status(app: App, request: Request) -> Response:
    return Response.json(app.link.status())


def control(app: App, request: Request) -> Response:
    data = request.json()
    try:
        sent = app.link.send(str(data.get("name")), data.get("value"))
    except ConfigError as exc:
        raise HttpError(422, str(exc)) from None
    return Response.json({"sent": sent})


def events(app: App, request: Request) -> Response:
    """Server-sent events: ``points`` (new gestures) EVENTS_PER_SECOND times a second, ``status`` twice."""
    if not app.streams.acquire(blocking=False):
        raise HttpError(429, f"at most {MAX_STREAMS} live pictures at once")
    return Response(200, content_type="text/event-stream", headers={"X-Accel-Buffering": "no"},
                    stream=EventStream(app, request.session.id))


class EventStream:
    """The chunks of one live picture; ``close()`` (always called by the server) frees its slot."""

    def __init__(self, app: App, sid: str):
        self.app, self.sid, self.closed = app, sid, False

    def __iter__(self):
        app = self.app
        since = app.clock() - 30.0
        tick = 0
        yield b"retry: 2000\n\n"
        while not self.closed and app.sessions.alive(self.sid):     # logged out: the stream ends
            app.tail.poll()
            points = app.tail.since(since)
            if points:
                since = points[-1][0]
            yield b"event: points\ndata: " + json.dumps(points).encode() + b"\n\n"
            if tick % (EVENTS_PER_SECOND // 2) == 0:
                yield b"event: status\ndata: " + json.dumps(app.link.status()).encode() + b"\n\n"
            tick += 1
            time.sleep(1.0 / EVENTS_PER_SECOND)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.app.streams.release()


# ---------------------------------------------------------------- models
def models(app: App, request: Request) -> Response:
    playing = app.link.status().get("model")
    return Response.json({"models": files.list_models(app.settings.models, playing, app.settings.bundled),
                          "playing": playing, "max_upload": app.settings.max_upload})


def _model_path(app: App, name: str) -> Path:
    for folder in (app.settings.models, app.settings.bundled):
        if folder is None:
            continue
        try:
            return files.inside(folder, name, files.MODEL_SUFFIXES)
        except files.OutsideFolder:
            continue
    raise HttpError(404, f"no model {name!r:.60}")


def model_download(app: App, request: Request) -> Response:
    return download(_model_path(app, request.params["name"]))


def model_loss_plot(app: App, request: Request) -> Response:
    model = _model_path(app, request.params["name"])
    try:
        plot = files.inside(model.parent, model.stem + "-loss.png")
    except files.OutsideFolder:
        raise HttpError(404, "this model has no loss plot") from None
    return Response(200, plot.read_bytes(), "image/png")


def model_upload(app: App, request: Request) -> Response:
    body = request.body(app.settings.max_upload)
    try:
        parts = multipart.parse(request.headers.get("Content-Type"), body)
        model_name, model_bytes = parts.get("model", (None, b""))
        files.check_name(model_name or "", files.MODEL_SUFFIXES)
        sidecar = parts.get("sidecar")
        if sidecar is not None and sidecar[1]:
            json.loads(sidecar[1])        # at least JSON; check-model reads it properly
    except (ConfigError, ValueError) as exc:
        raise HttpError(400, f"upload refused: {exc}") from None
    folder = app.settings.models
    target = folder / model_name
    if target.exists() or target.is_symlink():
        raise HttpError(409, f"{model_name} is already there: delete it first or rename the upload")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".upload-", dir=folder) as tmp:
        staged = Path(tmp) / model_name
        staged.write_bytes(model_bytes)
        if sidecar is not None and sidecar[1]:
            staged.with_suffix(".json").write_bytes(sidecar[1])
        ok, message = app.check_model(staged)
        if not ok:
            raise HttpError(422, f"{model_name} refused: {message.replace(str(staged), model_name)}")
        if staged.with_suffix(".json").exists():
            os.replace(staged.with_suffix(".json"), target.with_suffix(".json"))
        os.replace(staged, target)
    return Response.json({"stored": model_name, "check": message.replace(str(staged), model_name)})


def model_switch(app: App, request: Request) -> Response:
    name = str(request.json().get("name", ""))
    path = _model_path(app, name)
    ok, message = app.check_model(path)
    if not ok:
        raise HttpError(422, f"{name} refused, the box plays on with its model: {message}")
    text = set_model_path(app.config_text(), str(path.resolve()))
    result = app.save_config(text)
    return Response.json({**result, "check": message})


def set_model_path(text: str, path: str) -> str:
    """The config text with ``[model] path`` set (the line replaced, or added to the table, or the table added)."""
    line = f"path = {json.dumps(path)}"
    lines = text.splitlines()
    section = None
    for i, raw in enumerate(lines):
        stripped = raw.strip()
        if stripped.startswith("["):
            if section == "model":
                lines.insert(i, line)
                return "\n".join(lines) + "\n"
            section = stripped.strip("[]").strip()
        elif section == "model" and re.match(r"^path\s*=", stripped):
            lines[i] = line
            return "\n".join(lines) + "\n"
    if section == "model":
        return "\n".join(lines + [line]) + "\n"
    return "\n".join(lines + ["", "[model]", line]) + "\n"


def model_delete(app: App, request: Request) -> Response:
    name = str(request.json().get("name", ""))
    try:
        path = files.inside(app.settings.models, name, files.MODEL_SUFFIXES)
    except files.OutsideFolder as exc:
        raise HttpError(404, str(exc)) from None
    if app.settings.bundled is not None and path.resolve().parent == app.settings.bundled.resolve():
        raise HttpError(409, f"{name} is bundled with the box: it stays")
    playing = app.link.status().get("model")
    if playing and Path(playing).resolve() == path.resolve():
        raise HttpError(409, f"{name} is playing: switch to another model first")
    path.unlink()
    sidecar = path.with_suffix(".json")
    if sidecar.is_file() and not sidecar.is_symlink():
        sidecar.unlink()
    return Response.json({"deleted": name})


# ---------------------------------------------------------------- logs
def _logs_folder(app: App) -> Path:
    if app.settings.logs is None:
        raise HttpError(409, "the box writes no log")
    return app.settings.logs


def logs(app: App, request: Request) -> Response:
    return Response.json({"logs": files.list_logs(_logs_folder(app), app.link.status().get("log"))})


def log_download(app: App, request: Request) -> Response:
    try:
        path = files.inside(_logs_folder(app), request.params["name"], (files.LOG_SUFFIX,))
    except files.OutsideFolder as exc:
        raise HttpError(404, str(exc)) from None
    return download(path, "text/csv; charset=utf-8")


def log_delete(app: App, request: Request) -> Response:
    name = str(request.json().get("name", ""))
    try:
        path = files.inside(_logs_folder(app), name, (files.LOG_SUFFIX,))
    except files.OutsideFolder as exc:
        raise HttpError(404, str(exc)) from None
    writing = app.link.status().get("log")
    if writing and Path(writing).resolve() == path.resolve():
        raise HttpError(409, f"{name} is being written: it can go when the box has stopped")
    path.unlink()
    return Response.json({"deleted": name})


# ---------------------------------------------------------------- config
def config_get(app: App, request: Request) -> Response:
    return Response.json({"text": app.config_text(), "file": str(app.settings.config)})


def config_put(app: App, request: Request) -> Response:
    app.config_text()                       # 409 when there is no file
    text = request.json(MAX_CONFIG).get("text")
    if not isinstance(text, str):
        raise HttpError(400, "expected {\"text\": the whole box.toml}")
    return Response.json(app.save_config(text))


# ---------------------------------------------------------------- presets
PRESET_SUFFIX = ".preset.toml"


def _presets_folder(app: App) -> Path:
    return app.settings.models / "presets"


def presets(app: App, request: Request) -> Response:
    folder = _presets_folder(app)
    names = sorted(p.name[:-len(PRESET_SUFFIX)] for p in folder.glob("*" + PRESET_SUFFIX)
                   if p.is_file() and not p.is_symlink()) if folder.is_dir() else []
    return Response.json({"presets": names})


def _preset_name(data: dict) -> str:
    name = str(data.get("name", ""))
    try:
        files.check_name(name)
    except files.OutsideFolder as exc:
        raise HttpError(400, f"a preset's name: {exc}") from None
    return name


def preset_save(app: App, request: Request) -> Response:
    """A named snapshot of the box's config as it is: the model it names and the MIDI mapping with it."""
    name = _preset_name(request.json())
    text = app.config_text()
    folder = _presets_folder(app)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (name + PRESET_SUFFIX)
    if target.is_symlink():
        raise HttpError(409, f"preset {name} is a symlink: not touched")
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, target)
    return Response.json({"saved": name})


def preset_recall(app: App, request: Request) -> Response:
    """The preset's config checked, saved (the previous kept) and applied, as a Config edit is."""
    name = _preset_name(request.json())
    try:
        path = files.inside(_presets_folder(app), name + PRESET_SUFFIX)
    except files.OutsideFolder:
        raise HttpError(404, f"no preset {name!r:.60}") from None
    app.config_text()
    return Response.json({"recalled": name, **app.save_config(path.read_text())})


def preset_delete(app: App, request: Request) -> Response:
    name = _preset_name(request.json())
    try:
        files.inside(_presets_folder(app), name + PRESET_SUFFIX).unlink()
    except files.OutsideFolder:
        raise HttpError(404, f"no preset {name!r:.60}") from None
    return Response.json({"deleted": name})


ROUTES = [
    ("GET", "/login", login_page, PUBLIC),
    ("GET", "/login.css", login_css, PUBLIC),
    ("GET", "/login.js", login_js, PUBLIC),
    ("POST", "/login", login, PUBLIC),
    ("POST", "/logout", logout, SESSION),
    ("GET", "/", index, SESSION),
    ("GET", "/static/{name}", static, SESSION),
    ("GET", "/api/state", state, SESSION),
    ("GET", "/api/status", status, SESSION),
    ("GET", "/api/events", events, SESSION),
    ("POST", "/api/control", control, SESSION),
    ("GET", "/api/models", models, SESSION),
    ("GET", "/api/models/{name}", model_download, SESSION),
    ("GET", "/api/models/{name}/loss.png", model_loss_plot, SESSION),
    ("POST", "/api/models/upload", model_upload, SESSION),
    ("POST", "/api/models/switch", model_switch, SESSION),
    ("POST", "/api/models/delete", model_delete, SESSION),
    ("GET", "/api/logs", logs, SESSION),
    ("GET", "/api/logs/{name}", log_download, SESSION),
    ("POST", "/api/logs/delete", log_delete, SESSION),
    ("GET", "/api/config", config_get, SESSION),
    ("POST", "/api/config", config_put, SESSION),
    ("GET", "/api/presets", presets, SESSION),
    ("POST", "/api/presets/save", preset_save, SESSION),
    ("POST", "/api/presets/recall", preset_recall, SESSION),
    ("POST", "/api/presets/delete", preset_delete, SESSION),
]
