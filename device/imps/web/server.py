"""The transport: the standard library's ThreadingHTTPServer, bounded, with the page's headers.

Chosen by measured cost (docs/web.md): no dependency on the box, 6 MB and
about 60 ms of import over the bare interpreter (bottle 8 MB, flask 17 MB,
starlette + uvicorn 14 MB, aiohttp 22 MB), and SSE is a response that is
never finished. What a framework would add is here in a few lines: at most
MAX_CONNECTIONS requests at once (the rest are closed at once, so a flood
queues nothing), a read timeout, bounded bodies, the same security headers
on every answer, and TLS when a certificate is given.
"""
from __future__ import annotations

import http.server
import json
import logging
import socket
import ssl
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("imps.web")

MAX_CONNECTIONS = 24
READ_TIMEOUT = 10.0
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


@dataclass
class Request:
    method: str
    path: str
    query: dict
    headers: object
    client: str
    handler: object                 # the BaseHTTPRequestHandler (its rfile, for a bounded body)
    params: dict = field(default_factory=dict)
    session: object = None

    def cookie(self, name: str) -> str | None:
        for part in (self.headers.get("Cookie") or "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
        return None

    def length(self) -> int | None:
        raw = self.headers.get("Content-Length")
        if raw is None or not raw.isdigit():
            return None
        return int(raw)

    def body(self, limit: int) -> bytes:
        """The whole body, at most ``limit`` bytes; TooLarge before reading a byte of a longer one."""
        if self.headers.get("Transfer-Encoding"):
            raise HttpError(411, "send a Content-Length, not a chunked body")
        n = self.length()
        if n is None:
            raise HttpError(411, "a Content-Length is needed")
        if n > limit:
            raise HttpError(413, f"the body is {n} bytes, at most {limit} here")
        data = self.handler.rfile.read(n)
        if len(data) != n:
            raise HttpError(400, "the body ended early")
        return data

    def json(self, limit: int = 64 * 1024):
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            raise HttpError(415, "expected application/json")
        try:
            data = json.loads(self.body(limit))
        except ValueError:
            raise HttpError(400, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise HttpError(400, "expected a JSON object")
        return data


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict = field(default_factory=dict)
    stream: object = None           # an iterator of bytes chunks (SSE), written until it ends or the client goes

    @classmethod
    def json(cls, data, status: int = 200, **kw) -> "Response":
        return cls(status, json.dumps(data).encode(), "application/json", **kw)


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "imps-web"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = READ_TIMEOUT
    app = None                      # set on the subclass the server makes

    def log_message(self, format, *args):   # one line per request at debug level, not stderr
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_HEAD(self):
        self._send(Response(405, b"HEAD is not served"), close=True)

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = lambda self: self._send(Response(405, b"method not allowed"),
                                                                        close=True)

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        request = Request(method, url.path, parse_qs(url.query, max_num_fields=8), self.headers,
                          self.client_address[0], self)
        try:
            response = self.app.handle(request)
        except HttpError as exc:
            response = Response.json({"error": exc.message}, exc.status, headers=exc.headers)
            self._send(response, close=exc.status in (400, 411, 413))   # an unread body: drop the connection
            return
        except Exception as exc:   # a bug in a route: the page says so, logs it, and serves on
            log.exception("%s %s", method, url.path)
            response = Response.json({"error": f"internal error: {type(exc).__name__}"}, 500)
        self._send(response)

    def _send(self, response: Response, close: bool = False) -> None:
        try:
            self.send_response(response.status)
            headers = {**SECURITY_HEADERS, "Content-Type": response.content_type, **response.headers}
            if response.stream is None:
                headers["Content-Length"] = str(len(response.body))
            else:
                close = True
            if close:
                headers["Connection"] = "close"
                self.close_connection = True
            for key, value in headers.items():
                if isinstance(value, list):
                    for v in value:
                        self.send_header(key, v)
                else:
                    self.send_header(key, value)
            self.end_headers()
            if response.stream is None:
                self.wfile.write(response.body)
                return
            for chunk in response.stream:
                self.wfile.write(chunk)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, socket.timeout, ssl.SSLError):
            self.close_connection = True
        finally:
            close_stream = getattr(response.stream, "close", None)
            if close_stream is not None:
                close_stream()


class PageServer(http.server.ThreadingHTTPServer):
    """At most MAX_CONNECTIONS handled at once; one more is closed unanswered."""
    daemon_threads = True
    request_queue_size = 16

    def __init__(self, address, app, tls: ssl.SSLContext | None = None):
        handler = type("PageHandler", (Handler,), {"app": app})
        if ":" in address[0]:
            self.address_family = socket.AF_INET6      # "::" also takes IPv4 (Linux's bindv6only=0)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.tls = tls
        super().__init__(address, handler)

    def get_request(self):
        sock, address = super().get_request()
        if self.tls is not None:
            sock.settimeout(READ_TIMEOUT)
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            if self.tls is not None:
                request.do_handshake()
            super().process_request_thread(request, client_address)
        except (OSError, ssl.SSLError):
            self.shutdown_request(request)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address):
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context
