"""A real HTTP server on 127.0.0.1 for download tests: in-memory files with configurable faults.

Each path is a :class:`Route`: Range support on or off, a cut connection after N bytes (once or
always), a stall, a slow drip, wrong bytes, an HTML page, an error status, a redirect. The
server records every request (path and Range header), so tests can assert what went over the
wire, including that nothing did.

Use the ``http_server`` fixture (import it into a test module) or :class:`FileServer` directly.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

__all__ = ["FileServer", "Route", "RequestLog", "http_server", "sha256"]

HTML_PAGE = b"<!doctype html><html><head><title>Oops</title></head><body><h1>Something went wrong</h1></body></html>"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Route:
    """How one path answers. Fault counters (``cut_times``, ``stall_times``) count down per response."""

    body: bytes = b""
    status: int = 200
    content_type: str = "application/octet-stream"
    ranges: bool = True  # honour `Range: bytes=N-`; False answers 200 with the whole body
    cut_after: int | None = None  # close the connection after this many body bytes of a response
    cut_times: int | None = 1  # how many responses are cut; None: every one
    stall_after: int | None = None  # stop sending after this many body bytes ...
    stall_seconds: float = 0.0  # ... for this long (or until the server stops)
    stall_times: int | None = 1  # None: every response
    delay_per_chunk: float = 0.0  # a slow server: sleep between chunks
    chunk_size: int = 8192
    wrong_bytes: bool = False  # flip one byte in the middle of the body
    redirect: str | None = None  # answer 302 with this Location (a path on this server or a URL)
    declared_length: int | None = None  # lie in Content-Length (a short body)
    etag: str | None = None
    busy_status: int | None = None  # answer this status (429, 503...) to the first ``busy_times`` requests
    busy_times: int | None = 1
    retry_after: str | None = None  # ... with this Retry-After header
    auth: str | None = None  # "user:password" a request must send as Basic authentication, else 401


@dataclass
class RequestLog:
    method: str
    path: str
    range: str | None
    headers: dict[str, str] = field(default_factory=dict)


class FileServer:
    """A threaded HTTP server on 127.0.0.1 with a random port. Stop it with :meth:`stop`."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.log: list[RequestLog] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"files": self})
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        self.running = True

    def add(self, path: str, body: bytes = b"", **options) -> Route:
        """Serve ``body`` at ``path`` (which starts with '/'); options are :class:`Route` fields."""
        route = Route(body=body, **options)
        self.routes[path] = route
        return route

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def requests(self, path: str | None = None) -> list[RequestLog]:
        with self._lock:
            return [r for r in self.log if path is None or r.path == path]

    def count(self, path: str | None = None) -> int:
        return len(self.requests(path))

    def record(self, entry: RequestLog) -> None:
        with self._lock:
            self.log.append(entry)

    def stop(self) -> None:
        if not self.running:
            return
        self.running = False
        self.stopping.set()  # wakes stalled handlers
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request, client_address):  # noqa: ANN001
        pass  # clients hanging up mid-body (timeouts, kill -9) are expected here


class _Handler(BaseHTTPRequestHandler):
    files: FileServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002, ANN001
        pass

    def do_GET(self) -> None:  # noqa: N802
        files = self.files
        path = self.path.split("?", 1)[0]
        files.record(RequestLog("GET", path, self.headers.get("Range"), dict(self.headers.items())))
        route = files.routes.get(path)
        if route is None:
            return self._page(404, "Not Found")
        if route.auth is not None and self.headers.get("Authorization") != _basic(route.auth):
            return self._page(401, "Unauthorized", headers={"WWW-Authenticate": 'Basic realm="zoo-test"'})
        if route.redirect:
            location = route.redirect if "://" in route.redirect else files.url(route.redirect)
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if route.busy_status is not None and _take(route, "busy_times", route.busy_status):
            return self._page(route.busy_status, "Busy", headers={"Retry-After": route.retry_after}
                              if route.retry_after is not None else None)
        if route.status >= 400 or route.content_type == "text/html":
            return self._page(route.status, "Error" if route.status >= 400 else "OK", route.body or HTML_PAGE)
        body = route.body
        if route.wrong_bytes and body:
            middle = len(body) // 2
            body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]
        start = 0
        wanted = self.headers.get("Range")
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted or "")
        if route.ranges and match:
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else len(body) - 1
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(body)}")
            body = body[start : end + 1]
        else:
            self.send_response(200)
        self.send_header("Content-Type", route.content_type)
        self.send_header("Content-Length", str(route.declared_length or len(body)))
        self.send_header("Accept-Ranges", "bytes" if route.ranges else "none")
        if route.etag:
            self.send_header("ETag", route.etag)
        self.end_headers()
        self._send_body(route, body)

    def _send_body(self, route: Route, body: bytes) -> None:
        cut = route.cut_after if _take(route, "cut_times", route.cut_after) else None
        stall = route.stall_after if _take(route, "stall_times", route.stall_after) else None
        sent = 0
        try:
            while sent < len(body):
                if stall is not None and sent >= stall:
                    self.files.stopping.wait(route.stall_seconds)
                    stall = None
                    if self.files.stopping.is_set():
                        break
                limit = len(body)
                for mark in (cut, stall):
                    if mark is not None and mark > sent:
                        limit = min(limit, mark)
                piece = body[sent : min(sent + route.chunk_size, limit)]
                self.wfile.write(piece)
                self.wfile.flush()
                sent += len(piece)
                if cut is not None and sent >= cut:
                    break
                if route.delay_per_chunk:
                    time.sleep(route.delay_per_chunk)
        except OSError:
            pass  # the client went away
        if sent < len(body) or route.declared_length:
            self._hang_up()

    def _hang_up(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _page(self, status: int, reason: str, page: bytes = HTML_PAGE, headers: dict[str, str] | None = None) -> None:
        self.send_response(status, reason)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)


def _basic(credentials: str) -> str:
    import base64

    return "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")


_take_lock = threading.Lock()


def _take(route: Route, counter: str, mark: int | None) -> bool:
    """Whether this response gets the fault; counts down ``route.<counter>`` (None: always)."""
    if mark is None:
        return False
    with _take_lock:
        left = getattr(route, counter)
        if left is None:
            return True
        if left <= 0:
            return False
        setattr(route, counter, left - 1)
        return True


@pytest.fixture
def http_server():
    """A running :class:`FileServer`, stopped after the test."""
    server = FileServer()
    try:
        yield server
    finally:
        server.stop()
