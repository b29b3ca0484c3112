"""``imps web``: the page as its own process; ``imps web password``: set its password.

    imps web --box-config /etc/imps/box.toml --bind 0.0.0.0 --port 8443 \\
             --password-file /var/lib/imps-web/password --cert web.crt --key web.key
    imps web password --file /var/lib/imps-web/password [--generate]

On loopback (the default, and ``make run``) the page prints a URL with a
one-time token, as Jupyter does, and a password is optional. On any other
address it refuses to start without a password file and a certificate: no
default credentials, no password over plain HTTP.
"""
from __future__ import annotations

import argparse
import getpass
import ipaddress
import json
import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from ..errors import ConfigError

log = logging.getLogger("imps.web")
DEFAULT_PORT = 8080


def add_web_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--box-config", help="the box's config file: its control port, status file, log "
                                             "folder and model, and the file the Config page edits")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free)")
    parser.add_argument("--password-file", help="the scrypt hash from `imps web password`")
    parser.add_argument("--cert", help="TLS certificate (PEM); with --key, the page speaks HTTPS")
    parser.add_argument("--key", help="TLS private key (PEM)")
    parser.add_argument("--control-port", type=int, help="the box's OSC control port (overrides the config)")
    parser.add_argument("--status-file", help="the box's [status] file (overrides the config)")
    parser.add_argument("--log-dir", help="the box's log folder (overrides the config)")
    parser.add_argument("--models-dir", default="models", help="where uploaded models go (default ./models)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    sub = parser.add_subparsers(dest="web_command", metavar="ACTION")
    pw = sub.add_parser("password", help="set the page's password (kept only as a salted scrypt hash)")
    pw.add_argument("--file", required=True, help="where the hash goes (readable by its owner only)")
    pw.add_argument("--generate", action="store_true", help="make a random password and print it once")


def web_command(args) -> int:
    if args.web_command == "password":
        return password_command(args)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from .auth import read_password_file
    from .box_link import BoxLink, LogTail
    from .routes import App, PageSettings
    from .server import PageServer, tls_context
    facts = box_facts(args.box_config) if args.box_config else {}
    loopback = _is_loopback(args.bind)
    if bool(args.cert) != bool(args.key):
        raise ConfigError("--cert and --key go together")
    if not loopback and not (args.password_file and args.cert):
        raise ConfigError(f"--bind {args.bind} is not loopback: the page needs --password-file and "
                          f"--cert/--key there (make provision makes both)")
    password_hash = read_password_file(Path(args.password_file)) if args.password_file else None
    control_port = args.control_port or facts.get("control_port")     # 0 or None: the one the status file names
    if not control_port and not (args.status_file or facts.get("status_file")):
        raise ConfigError("the page needs the box's control port or status file: --control-port, "
                          "--status-file or --box-config")
    host = facts.get("control_host") or "127.0.0.1"
    link = BoxLink(control_port, args.status_file or facts.get("status_file"),
                   "127.0.0.1" if host in ("0.0.0.0", "") else host)
    logs = args.log_dir or facts.get("log_dir")
    bundled = Path(__file__).resolve().parents[1] / "models"     # imps/models: shipped with the box
    settings = PageSettings(models=Path(args.models_dir).resolve(), logs=Path(logs).resolve() if logs else None,
                            config=Path(args.box_config).resolve() if args.box_config else None,
                            bundled=bundled, tls=bool(args.cert))
    app = App(settings, link, LogTail(str(settings.logs) if settings.logs else None), password_hash)
    tls = tls_context(args.cert, args.key) if args.cert else None
    try:
        server = PageServer((args.bind, args.port), app, tls)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.bind}:{args.port}: {exc.strerror or exc} "
                          f"(another page running? choose --port)") from None
    port = server.server_address[1]
    scheme = "https" if tls else "http"
    shown = f"[{args.bind}]" if ":" in args.bind else args.bind
    if loopback:
        token = app.sessions.new_one_time_token()
        print(f"the box's page: {scheme}://{shown}:{port}/login?token={token}", flush=True)
    else:
        print(f"the box's page: {scheme}://{shown}:{port}/ (log in with the box's password)", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="imps-web",
                              daemon=True)
    thread.start()
    try:
        while not stop.wait(1.0):
            if not thread.is_alive():
                log.error("the page's server thread died; exiting so systemd restarts the page")
                return 1
    finally:
        server.shutdown()
        server.server_close()
        link.close()
    return 0


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def box_facts(config: str) -> dict:
    """What the page needs of the box's config, read by the box's own loader in a child process."""
    done = subprocess.run([sys.executable, "-m", "imps.web.check_config", "--facts", config],
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise ConfigError((done.stdout + done.stderr).strip().splitlines()[-1] if (done.stdout + done.stderr).strip()
                          else f"cannot read {config}")
    return json.loads(done.stdout)


def password_command(args) -> int:
    from .auth import check_password_text, generate_password, write_password_file
    path = Path(args.file)
    if args.generate:
        password = generate_password()
    elif sys.stdin.isatty():
        password = getpass.getpass("the page's new password: ")
        check_password_text(password)
        if getpass.getpass("again: ") != password:
            raise ConfigError("the two passwords differ; nothing changed")
    else:
        password = sys.stdin.readline().rstrip("\n")
    write_password_file(path, password)
    if args.generate:
        print(f"the page's password (shown once, kept only as a hash in {path}): {password}")
    else:
        print(f"password set (a salted scrypt hash in {path})")
    return 0


def start_beside(box, config_path: str | None, status_file: str, models_dir: str = "models",
                 port: int = DEFAULT_PORT) -> subprocess.Popen | None:
    """``imps run --web``: the page as a child process on 127.0.0.1, pointed at this box; its URL printed."""
    from ..box.status import control_port
    control = control_port(box)
    if control is None:
        log.error("the page needs the box's OSC control port, and [osc] is off: no page")
        return None
    argv = [sys.executable, "-m", "imps", "web", "--port", str(port), "--control-port", str(control),
            "--status-file", status_file, "--models-dir", models_dir]
    if box.logwriter is not None:
        argv += ["--log-dir", str(box.logwriter.path.parent)]
    if config_path:
        argv += ["--box-config", config_path]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)


STATUS_FOLDER_PREFIX = "imps-status-"


def status_file_for_page() -> str:
    return str(Path(tempfile.mkdtemp(prefix=STATUS_FOLDER_PREFIX)) / "status.json")


def stop_beside(page: subprocess.Popen, status_file: str) -> None:
    """The page stopped with the box, and the status folder made for it (never one the config named) removed."""
    page.terminate()
    try:
        page.wait(5)
    except subprocess.TimeoutExpired:
        page.kill()
        page.wait()
    folder = Path(status_file).parent
    if folder.name.startswith(STATUS_FOLDER_PREFIX) and folder.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(folder, ignore_errors=True)
