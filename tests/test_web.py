"""The box's page (imps/web): who gets in, what hostile requests get, and that the box plays on.

The pure parts (password hash, sessions, rate limit, multipart, names inside a
folder, the config edit for a model switch) are tested on plain data with an
injected clock; the rest against a real simulated box and a real ``imps web``
process (tests/web_box.py). The browser tests are in test_web_browser.py.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import socket
import ssl
import subprocess

import pytest

from imps.errors import ConfigError
from imps.web import auth, files, multipart
from imps.web.box_link import control_message, parse_line
from imps.web.routes import PUBLIC, ROUTES, set_model_path
from conftest import DEVICE_PYTHON
from web_box import DEFAULT_MODEL, PASSWORD, WebBox


# ---------------------------------------------------------------- the pure parts
def test_password_hash_is_salted_scrypt_and_verifies_only_the_password():
    a, b = auth.hash_password("open sesame"), auth.hash_password("open sesame")
    assert a.startswith("scrypt$") and a != b                    # a new salt each time
    assert auth.verify_password("open sesame", a)
    assert not auth.verify_password("open sesamE", a)
    assert not auth.verify_password("open sesame", "scrypt$1$2$3$zz$00")   # malformed: no, never an exception
    assert not auth.verify_password("x" * 5000, a)
    with pytest.raises(ConfigError, match="8 to 1024 characters"):
        auth.hash_password("short")


def test_password_file_holds_only_the_hash_readable_by_its_owner(tmp_path):
    path = tmp_path / "password"
    auth.write_password_file(path, "a good long one")
    text = path.read_text()
    assert "a good long one" not in text and auth.verify_password("a good long one", auth.read_password_file(path))
    assert path.stat().st_mode & 0o077 == 0
    path.write_text("hunter2\n")
    with pytest.raises(ConfigError, match="not a password hash"):
        auth.read_password_file(path)


def test_generated_passwords_differ_and_are_long():
    a, b = auth.generate_password(), auth.generate_password()
    assert a != b and len(a) == 24


def test_sessions_are_signed_expire_and_end():
    now = [1000.0]
    sessions = auth.Sessions(clock=lambda: now[0])
    session, cookie = sessions.create()
    assert sessions.get(cookie) is session
    sid, signature = cookie.split(".")
    assert sessions.get(f"{sid}.{'0' * len(signature)}") is None          # forged signature
    assert sessions.get(sid) is None and sessions.get(None) is None
    assert auth.csrf_ok(session, session.csrf)
    assert not auth.csrf_ok(session, "") and not auth.csrf_ok(session, session.csrf[:-1] + "x")
    now[0] += auth.SESSION_SECONDS + 1
    assert sessions.get(cookie) is None                                  # expired
    session, cookie = sessions.create()
    sessions.end(session)
    assert sessions.get(cookie) is None                                  # logged out


def test_one_time_token_works_once():
    sessions = auth.Sessions()
    token = sessions.new_one_time_token()
    assert not sessions.use_one_time_token("wrong")
    assert sessions.use_one_time_token(token)
    assert not sessions.use_one_time_token(token)


def test_login_limiter_refuses_after_five_failures_for_a_minute():
    now = [0.0]
    limiter = auth.LoginLimiter(clock=lambda: now[0])
    for _ in range(auth.LOGIN_FAILURES):
        assert limiter.retry_after() == 0
        limiter.failed()
    assert limiter.retry_after() == pytest.approx(auth.LOGIN_WINDOW)
    now[0] += auth.LOGIN_WINDOW / 2
    assert 0 < limiter.retry_after() <= auth.LOGIN_WINDOW / 2
    now[0] += auth.LOGIN_WINDOW / 2 + 0.01
    assert limiter.retry_after() == 0


BOUNDARY = "----imps1234"


def form(*parts: tuple[str, str | None, bytes]) -> bytes:
    out = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def test_multipart_reads_named_parts_and_refuses_anything_else():
    ctype = f"multipart/form-data; boundary={BOUNDARY}"
    body = form(("model", "m.tflite", b"\x00\r\n--x binary"), ("sidecar", None, b"{}"))
    assert multipart.parse(ctype, body) == {"model": ("m.tflite", b"\x00\r\n--x binary"), "sidecar": (None, b"{}")}
    bad = [("text/plain", body, "expected multipart"),
           ("multipart/form-data", body, "boundary"),
           (ctype, body[:-10], "never closes"),
           (ctype, b"garbage" + body, "does not start"),
           (ctype, form(("a", None, b"1"), ("a", None, b"2")), "twice"),
           (ctype, form(*[(f"p{i}", None, b"") for i in range(9)]), "at most 8"),
           (ctype, body.replace(b"form-data; ", b"attachment; ", 1), "not form-data"),
           (ctype, body.replace(b'name="model"; ', b"", 1), "without a form-data name")]
    for content_type, data, message in bad:
        with pytest.raises(multipart.MultipartError, match=message):
            multipart.parse(content_type, data)


def test_names_stay_inside_their_folder(tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "a-4d-mdrnn.log").write_text("x")
    (tmp_path / "secret-4d-mdrnn.log").write_text("secret")
    (folder / "link-4d-mdrnn.log").symlink_to(tmp_path / "secret-4d-mdrnn.log")
    (folder / "sub-4d-mdrnn.log").mkdir()
    assert files.inside(folder, "a-4d-mdrnn.log", (files.LOG_SUFFIX,)) == folder / "a-4d-mdrnn.log"
    for name in ("../secret-4d-mdrnn.log", "..", ".hidden", "a/b", "/etc/passwd", "link-4d-mdrnn.log",
                 "sub-4d-mdrnn.log", "missing-4d-mdrnn.log", "a-4d-mdrnn.log\x00", "x" * 300):
        with pytest.raises(files.OutsideFolder):
            files.inside(folder, name, (files.LOG_SUFFIX,))
    with pytest.raises(files.OutsideFolder, match="ending in"):
        files.inside(folder, "a-4d-mdrnn.log", (".tflite",))


def test_a_model_switch_edits_only_model_path():
    assert set_model_path('[model]\npath = "old.tflite"\nseed = 1\n[osc]\n', "/m/new.tflite") == \
        '[model]\npath = "/m/new.tflite"\nseed = 1\n[osc]\n'
    assert set_model_path('[model]\nseed = 1\n\n[osc]\ncontrol_port = 1\n', "/n.tflite") == \
        '[model]\nseed = 1\n\npath = "/n.tflite"\n[osc]\ncontrol_port = 1\n'
    assert set_model_path('[osc]\ncontrol_port = 1\n', "/n.tflite") == \
        '[osc]\ncontrol_port = 1\n\n[model]\npath = "/n.tflite"\n'
    assert set_model_path('[model]\nseed = 1', "/n.tflite") == '[model]\nseed = 1\npath = "/n.tflite"\n'


def test_controls_share_the_osc_ranges():
    assert control_message("mode", "Duet") == ("/mode", ["duet"])
    assert control_message("time_scale", 2) == ("/time_scale", [2.0])
    assert control_message("pause", False) == ("/pause", [0])
    for name, value, message in [("time_scale", 1e12, "out of range, expected 0.01 to 100"),
                                 ("threshold", "1", "wants a number"), ("mode", "solo", "unknown mode"),
                                 ("reset", 1, "true or false"), ("volume", 1, "unknown control")]:
        with pytest.raises(ConfigError, match=message):
            control_message(name, value)


def test_log_lines_become_points_and_anything_else_is_skipped():
    t, source, *x = parse_line(b"2026-01-02T03:04:05.250000,rnn,0.5,1.5,-1")
    assert source == "m" and x == [0.5, 1.0, 0.0]
    assert parse_line(b"2026-01-02T03:04:05,gap,3") is None
    assert parse_line(b"2026-01-02T03:04") is None
    assert parse_line(b"\xff\xfe") is None


# ---------------------------------------------------------------- a real box and page
@pytest.fixture(scope="module")
def web(tmp_path_factory):
    from osc_listener import SoundListener
    sound = SoundListener()
    box = WebBox(tmp_path_factory.mktemp("web"), DEVICE_PYTHON, sound.port)
    box.session = box.login()     # before any test spends the login budget
    box.sound = sound
    yield box
    box.stop()
    sound.close()


def example_path(path: str) -> str:
    return path.replace("{name}", "example.tflite")


def test_every_route_but_login_needs_a_session(web):
    public = {(m, p) for m, p, _, who in ROUTES if who == PUBLIC}
    assert public == {("GET", "/login"), ("GET", "/login.css"), ("GET", "/login.js"), ("POST", "/login")}
    forged = {"Cookie": "imps_session=abc.def"}
    for method, path, _, who in ROUTES:
        if who == PUBLIC:
            continue
        for headers in ({}, forged):
            status, answer, body = web.request(method, example_path(path), b"{}" if method == "POST" else None,
                                               {**headers, "Content-Type": "application/json"})
            expected = 303 if (method, path) == ("GET", "/") else 401
            assert status == expected, (method, path, status, body[:200])
            if status == 303:
                assert answer["Location"] == "/login"


def test_every_state_change_needs_the_sessions_csrf_token_and_this_origin(web):
    cookie, csrf = web.session
    for method, path, _, who in ROUTES:
        if method != "POST" or who == PUBLIC:
            continue
        for headers in ({}, {"X-CSRF-Token": "wrong"},
                        {"X-CSRF-Token": csrf, "Origin": "http://evil.example"}):
            status, _, body = web.request("POST", path, b"{}", {"Cookie": cookie, "Content-Type": "application/json",
                                                               **headers})
            assert status == 403, (path, headers, status, body[:200])
    mode = web.status()["engine"]["mode"]
    web.playing()
    assert web.status()["engine"]["mode"] == mode                       # nothing reached the box


def test_answers_carry_the_security_headers_and_the_cookie_is_strict(web):
    status, headers, _ = web.request("POST", "/login", json.dumps({"password": PASSWORD}).encode(),
                                     {"Content-Type": "application/json"})
    assert status == 200
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    _, headers, body = web.request("GET", "/login")
    assert b"<form" in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"


def test_the_printed_token_logs_in_once(web):
    status, headers, _ = web.request("GET", f"/login?token={web.token}")
    assert status == 303 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"].split(";")[0]
    assert web.request("GET", "/api/status", headers={"Cookie": cookie})[0] == 200
    assert web.request("GET", f"/login?token={web.token}")[0] == 403


def test_a_control_reaches_the_box_and_a_bad_one_is_refused_with_its_range(web):
    cookie, csrf = web.session
    headers = {"Cookie": cookie, "X-CSRF-Token": csrf, "Content-Type": "application/json"}
    status, _, body = web.request("POST", "/api/control", json.dumps({"name": "time_scale", "value": 1.5}).encode(),
                                  headers)
    assert status == 200, body
    web.wait(lambda: web.status()["settings"]["time_scale"] == 1.5, "time_scale 1.5 in the box's status")
    status, _, body = web.request("POST", "/api/control", json.dumps({"name": "time_scale", "value": 1e9}).encode(),
                                  headers)
    assert status == 422 and b"out of range, expected 0.01 to 100" in body
    web.request("POST", "/api/control", json.dumps({"name": "time_scale", "value": 1.0}).encode(), headers)


def test_path_traversal_and_symlinks_out_are_refused(web, tmp_path):
    cookie, csrf = web.session
    secret = tmp_path / "secret-4d-mdrnn.log"
    secret.write_text("2026-01-01T00:00:00,interface,0.1,0.2,0.3\n")
    (web.logs / "out-4d-mdrnn.log").symlink_to(secret)
    (web.models / "out.tflite").symlink_to(DEFAULT_MODEL)
    for path in ["/api/logs/..%2F..%2Fetc%2Fpasswd", "/api/logs/../../etc/passwd", "/api/logs/out-4d-mdrnn.log",
                 "/api/models/out.tflite", "/api/models/..", "/static/..%2Froutes.py", "/static/../routes.py"]:
        status, _, body = web.request("GET", path, headers={"Cookie": cookie})
        assert status == 404, (path, status, body[:100])
    headers = {"Cookie": cookie, "X-CSRF-Token": csrf, "Content-Type": "application/json"}
    for path, name in [("/api/logs/delete", "out-4d-mdrnn.log"), ("/api/logs/delete", "../secret-4d-mdrnn.log"),
                       ("/api/models/delete", "out.tflite"), ("/api/models/delete", "default.tflite")]:
        status, _, _ = web.request("POST", path, json.dumps({"name": name}).encode(), headers)
        assert status in (404, 409), (path, name, status)
    assert secret.exists() and DEFAULT_MODEL.exists()


def test_a_1_gb_upload_is_refused_before_it_is_read_and_the_box_plays_on(web):
    cookie, csrf = web.session
    before = web.status()["engine"]["performer_events"]
    with socket.create_connection(("127.0.0.1", web.port), timeout=10) as s:
        s.sendall(f"POST /api/models/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n"
                  f"X-CSRF-Token: {csrf}\r\nContent-Type: multipart/form-data; boundary=x\r\n"
                  f"Content-Length: {2**30}\r\n\r\n".encode() + b"x" * 65536)
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
    web.playing(before)
    assert not any(p.name.startswith(".upload") for p in web.models.iterdir())


def test_malformed_multipart_and_bad_models_are_refused_and_nothing_is_stored(web):
    cookie, csrf = web.session
    headers = {"Cookie": cookie, "X-CSRF-Token": csrf, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    good = form(("model", "bad.tflite", b"\x00" * 1000))
    for body, message in [(good[:-12], b"never closes"), (b"not multipart at all", b"does not start"),
                          (form(("model", "../x.tflite", b"1")), b"not a plain file name"),
                          (form(("model", "x.exe", b"1")), b"ending in .tflite")]:
        status, _, answer = web.request("POST", "/api/models/upload", body, headers)
        assert status == 400 and message in answer, (status, answer)
    status, _, answer = web.request("POST", "/api/models/upload", good, headers)
    assert status == 422 and b"bad.tflite refused" in answer, answer
    assert sorted(p.name for p in web.models.iterdir() if not p.is_symlink()) == []
    web.playing()


def test_no_chunked_bodies_and_no_unknown_methods(web):
    cookie, csrf = web.session
    status, _, _ = web.request("POST", "/api/control", b"", {"Cookie": cookie, "X-CSRF-Token": csrf,
                                                            "Transfer-Encoding": "chunked",
                                                            "Content-Type": "application/json"})
    assert status in (400, 411)
    assert web.request("PUT", "/api/config", b"{}", {"Cookie": cookie})[0] == 405
    assert web.request("GET", "/nothing", headers={"Cookie": cookie})[0] == 404


def test_a_flood_of_connections_is_bounded_and_the_box_plays_on(web):
    before = web.status()["engine"]["performer_events"]
    held = []
    for _ in range(60):                       # idle connections: each holds a slot until its read timeout
        try:
            held.append(socket.create_connection(("127.0.0.1", web.port), timeout=5))
        except OSError:
            break
    try:
        web.playing(before)
    finally:
        for s in held:
            s.close()
    cookie, _ = web.session
    web.wait(lambda: web.request("GET", "/api/status", headers={"Cookie": cookie}, timeout=3)[0] == 200,
             "the page to answer again", timeout=30)


def test_wrong_passwords_are_refused_then_rate_limited_and_sessions_live_on(web):
    statuses = []
    for _ in range(auth.LOGIN_FAILURES + 2):
        status, headers, body = web.request("POST", "/login", json.dumps({"password": "guess-guess"}).encode(),
                                            {"Content-Type": "application/json"})
        statuses.append(status)
    refused = statuses.count(403)         # the reused one-time token of an earlier test counted too
    assert 1 <= refused <= auth.LOGIN_FAILURES and statuses == [403] * refused + [429] * (len(statuses) - refused)
    assert "Retry-After" in headers
    status, _, _ = web.request("POST", "/login", json.dumps({"password": PASSWORD}).encode(),
                               {"Content-Type": "application/json"})
    assert status == 429                              # even the right one, for the rest of the minute
    cookie, _ = web.session
    assert web.request("GET", "/api/status", headers={"Cookie": cookie})[0] == 200


def test_the_page_refuses_the_network_without_a_password_and_certificate(tmp_path):
    python = DEVICE_PYTHON
    done = subprocess.run([python, "-m", "imps", "web", "--bind", "0.0.0.0", "--port", "0", "--control-port", "1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "needs --password-file and --cert/--key" in done.stderr


def test_https_with_a_self_signed_certificate_and_secure_cookies(tmp_path):
    """As provisioned: openssl's self-signed certificate, the page over TLS only, the cookie Secure."""
    python = DEVICE_PYTHON
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=test", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True)
    auth.write_password_file(tmp_path / "password", PASSWORD)
    page = subprocess.Popen([python, "-m", "imps", "web", "--port", "0", "--control-port", "1",
                             "--password-file", str(tmp_path / "password"), "--cert", str(tmp_path / "cert.pem"),
                             "--key", str(tmp_path / "key.pem"), "--models-dir", str(tmp_path / "models")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = page.stdout.readline()
        m = re.search(r"https://127\.0\.0\.1:(\d+)/login\?token=", line)
        assert m, (line, page.stderr.read() if page.poll() is not None else "")
        port = int(m.group(1))
        context = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        context.check_hostname = False
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
        conn.request("POST", "/login", json.dumps({"password": PASSWORD}), {"Content-Type": "application/json"})
        answer = conn.getresponse()
        answer.read()
        assert answer.status == 200 and "Secure" in answer.getheader("Set-Cookie")
        conn.close()
        plain = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
            plain.request("GET", "/login")
            plain.getresponse().read()
        plain.close()
        assert page.poll() is None                       # a plain-HTTP client costs the page nothing
    finally:
        page.terminate()
        page.wait(10)
