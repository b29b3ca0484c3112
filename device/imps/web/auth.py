"""Who may use the page: the password, sessions, CSRF tokens, the login rate limit, the one-time token.

No default password exists: ``imps web password`` (``make provision`` runs it)
writes a salted scrypt hash, and the page refuses to start on the network without
one. A session is a random id in a signed cookie (HMAC-SHA256 with a key made at
start, so a restart logs everyone out); each session has its own CSRF token,
which every state-changing request must carry. Time is injected (``clock=``).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

#: scrypt cost: 16 MiB of memory and about 50 ms on a Pi 4 per guess (RFC 7914's interactive figures).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES = 16
MIN_PASSWORD = 8
MAX_PASSWORD = 1024             # longer is a request to burn CPU, not a password
SESSION_SECONDS = 12 * 3600     # a gig and its sound check
MAX_SESSIONS = 64               # the oldest goes when a 65th logs in
LOGIN_FAILURES = 5              # wrong passwords per window before login is refused for a while
LOGIN_WINDOW = 60.0             # seconds


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (hex), for the password file."""
    check_password_text(password)
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_password_text(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ConfigError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters, got {len(password)}")


#: One scrypt at a time: each takes 16 MiB, and a burst of logins must not multiply that.
_SCRYPT = threading.Lock()


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches the stored hash (constant time; False for a malformed hash)."""
    if len(password) > MAX_PASSWORD:
        return False
    with _SCRYPT:
        return _verify(password, stored)


def _verify(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.strip().split("$")
        n, r, p = int(n), int(r), int(p)
        if kind != "scrypt" or n > 2**20 or r > 16 or p > 4:
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=n, r=r, p=p,
                             dklen=len(bytes.fromhex(digest)), maxmem=64 * 2**20)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


def write_password_file(path: Path, password: str) -> None:
    """The hash only, readable by its owner (the page's user) alone; replaced atomically."""
    line = hash_password(password) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(line)
    os.replace(tmp, path)


def read_password_file(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the page's password file {path}: {exc.strerror or exc} "
                          f"(set one with `imps web password --file {path}`)") from None
    if not text.startswith("scrypt$") or text.count("$") != 5:
        raise ConfigError(f"{path} is not a password hash from `imps web password`")
    return text


def generate_password() -> str:
    """Five groups of four letters and digits (about 100 bits), easy to read out and type on a phone."""
    alphabet = "abcdefghijkmnpqrstuvwxyz23456789"    # no l, 1, o, 0
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(5))


@dataclass
class Session:
    id: str
    csrf: str
    expires: float


@dataclass
class Sessions:
    """Signed session cookies with their CSRF tokens, and the one-time login token."""
    clock: object = time.monotonic
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    one_time_token: str | None = None
    _sessions: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _sign(self, sid: str) -> str:
        return hmac.new(self.key, sid.encode(), hashlib.sha256).hexdigest()

    def create(self) -> tuple[Session, str]:
        """A new session and its cookie value."""
        now = self.clock()
        session = Session(secrets.token_urlsafe(24), secrets.token_urlsafe(24), now + SESSION_SECONDS)
        with self._lock:
            self._expire(now)
            while len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions.values(), key=lambda s: s.expires)
                del self._sessions[oldest.id]
            self._sessions[session.id] = session
        return session, f"{session.id}.{self._sign(session.id)}"

    def get(self, cookie: str | None) -> Session | None:
        """The live session a cookie value names, or None (unsigned, forged, expired, logged out)."""
        if not cookie or cookie.count(".") != 1:
            return None
        sid, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self._sign(sid)):
            return None
        with self._lock:
            session = self._sessions.get(sid)
            if session is None or session.expires <= self.clock():
                self._sessions.pop(sid, None)
                return None
            return session

    def alive(self, sid: str) -> bool:
        with self._lock:
            session = self._sessions.get(sid)
            return session is not None and session.expires > self.clock()

    def end(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)

    def _expire(self, now: float) -> None:
        for sid in [s.id for s in self._sessions.values() if s.expires <= now]:
            del self._sessions[sid]

    def new_one_time_token(self) -> str:
        self.one_time_token = secrets.token_urlsafe(24)
        return self.one_time_token

    def use_one_time_token(self, token: str) -> bool:
        """True once for the printed token; then it is gone."""
        with self._lock:
            expected, ok = self.one_time_token, False
            if expected is not None and token and hmac.compare_digest(token.encode(), expected.encode()):
                self.one_time_token, ok = None, True
            return ok


def csrf_ok(session: Session, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(token.encode(), session.csrf.encode())


@dataclass
class LoginLimiter:
    """At most LOGIN_FAILURES wrong passwords per LOGIN_WINDOW, for everyone together.

    One shared budget, not one per address: on the box's own hotspot every phone
    may share an address, and an attacker can change theirs. A locked page costs
    the performer a minute; the box plays on.
    """
    clock: object = time.monotonic
    failures: int = LOGIN_FAILURES
    window: float = LOGIN_WINDOW
    _times: list = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def retry_after(self) -> float:
        """Seconds until a login may be tried again (0: now)."""
        with self._lock:
            now = self.clock()
            self._times = [t for t in self._times if now - t < self.window]
            if len(self._times) < self.failures:
                return 0.0
            return self.window - (now - self._times[0])

    def failed(self) -> None:
        with self._lock:
            self._times.append(self.clock())
