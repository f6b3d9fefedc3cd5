"""The monitor's HTTP server: GET and HEAD on loopback, bounded in every dimension.

Built on the standard library's ``ThreadingHTTPServer`` (the same server as the floor the
benchmark compares it with), with what a loopback service reachable from every browser on
the machine needs on top:

- the ``Host`` header must name the monitor itself (``127.0.0.1``, ``localhost``, ``[::1]``,
  with or without its port, or the bound address): a page on another site that resolves its
  own name to 127.0.0.1 (DNS rebinding) gets 421 and no data;
- GET and HEAD only: any other method is 405 with ``Allow``; a request with a body is 400;
- a request line over 8 KiB is 414, more than 64 header lines or 16 KiB of them 431, and a
  request that has not fully arrived 10 s after its first byte (or 5 s between reads) is cut
  off; at most 64 connections are served at once, the next one gets a canned 503;
- responses are served from bytes rendered once per database refresh (``Rendered``), so a
  response costs a dictionary look-up and a write, whatever the layer's size.

The handler never raises past itself: an unexpected error is a 500 with a fixed text (the
log line says what, redacted); no traceback reaches a client.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from conformance.monitor.config import Limits
from conformance.redact import redact

SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; frame-ancestors 'none'",
    ),
)


_BUSY_BODY = b"too many connections\n"
BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    + f"Content-Length: {len(_BUSY_BODY)}\r\n".encode()
    + b"Retry-After: 1\r\nConnection: close\r\n\r\n"
    + _BUSY_BODY
)


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


# A route: (query parameters) -> Response. Raising ValueError is a 400 with its message.
Route = Callable[[Mapping[str, list[str]], Mapping[str, str]], Response]


class _Budget(http.client.HTTPException):
    """The request's line and headers outgrew their byte budget or their time."""


class _BoundedReader:
    """The connection's reader, with a byte budget and a deadline for one request's head."""

    def __init__(self, raw: Any, sock: socket.socket, limits: Limits, reaper: HeadReaper) -> None:
        self._raw = raw
        self._sock = sock
        self._limits = limits
        self._reaper = reaper
        self._left = 0
        self._deadline = 0.0

    def start_request(self) -> None:
        self._left = self._limits.request_line_bytes + 1
        self._deadline = time.monotonic() + self._limits.request_seconds
        # A read returns as soon as any byte arrives, so a client trickling one byte at a
        # time would never time out: the reaper cuts the connection at the deadline.
        self._reaper.watch(self._sock, self._deadline)

    def head_done(self) -> None:
        self._reaper.forget(self._sock)

    def start_headers(self) -> None:
        self._left = self._limits.header_bytes

    def _arm(self) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request did not arrive in time")
        self._sock.settimeout(min(self._limits.read_timeout_seconds, remaining))

    def readline(self, limit: int = -1) -> bytes:
        self._arm()
        cap = self._left + 1 if limit < 0 else min(limit, self._left + 1)
        line: bytes = self._raw.readline(cap)
        self._left -= len(line)
        if self._left < 0:
            raise _Budget(f"request head larger than {self._limits.header_bytes} bytes")
        return line

    def read(self, size: int = -1) -> bytes:
        self._arm()
        data: bytes = self._raw.read(size)
        return data

    def close(self) -> None:
        self._raw.close()


class HeadReaper:
    """Shuts down connections whose request head is late: one thread for the whole server."""

    def __init__(self, period: float = 0.25) -> None:
        self._late: dict[socket.socket, float] = {}
        self._lock = threading.Lock()
        self._period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monitor-reaper", daemon=True)
        self._thread.start()

    def watch(self, sock: socket.socket, deadline: float) -> None:
        with self._lock:
            self._late[sock] = deadline

    def forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._late.pop(sock, None)

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            now = time.monotonic()
            with self._lock:
                late = [sock for sock, deadline in self._late.items() if deadline <= now]
                for sock in late:
                    del self._late[sock]
            for sock in late:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._stop.set()


class MonitorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # socketserver's default backlog is 5: a burst of connects beyond it waits for SYN
    # retransmission (a second), which is most of a p99. Connections are bounded by the slots.
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        routes: Mapping[str, Route],
        limits: Limits,
        allowed_hosts: frozenset[str],
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.routes = dict(routes)
        self.limits = limits
        self.allowed_hosts = allowed_hosts
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self._slots = threading.BoundedSemaphore(limits.max_connections)
        self.reaper = HeadReaper()
        self.refused_busy = 0
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, MonitorHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused_busy += 1
            with contextlib.suppress(OSError):
                request.sendall(BUSY_RESPONSE)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def allowed_host_names(bind: str, port: int) -> frozenset[str]:
    """The ``Host`` values that name this monitor: its loopback names (and its bound address)."""
    names = {"127.0.0.1", "localhost", "[::1]"}
    if bind not in ("0.0.0.0", "::"):
        names.add(f"[{bind}]" if ":" in bind else bind)
    return frozenset({*names, *(f"{name}:{port}" for name in names)})


class MonitorHandler(BaseHTTPRequestHandler):
    server: MonitorHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "gateway-conformance-monitor"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self._reader = _BoundedReader(self.rfile, self.connection, self.server.limits, self.server.reaper)
        self.rfile = self._reader  # type: ignore[assignment]

    def handle_one_request(self) -> None:
        limits = self.server.limits
        self._started = time.monotonic()
        self._status = 0
        self.command, self.path, self.request_version = "", "", "HTTP/1.1"
        try:
            self._reader.start_request()
            self.raw_requestline = self.rfile.readline(limits.request_line_bytes + 1)
            if not self.raw_requestline:
                self.close_connection = True
                return
            if len(self.raw_requestline) > limits.request_line_bytes:
                self.requestline = ""
                self._plain(HTTPStatus.REQUEST_URI_TOO_LONG, "request line too long", close=True)
                return
            self._reader.start_headers()
            parsed = self.parse_request()  # sends its own 400/431/505 when it fails
            self._reader.head_done()
            if not parsed:
                return
            self._dispatch()
            self.wfile.flush()
        except (TimeoutError, _Budget) as exc:
            self._reader.head_done()
            self.close_connection = True
            if isinstance(exc, _Budget):
                self._plain(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, str(exc), close=True)
        except (ConnectionError, OSError):
            self._reader.head_done()
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 - never a traceback: log it, close the connection
            self.close_connection = True
            self.server.log(redact(f"monitor: internal error serving a request: {type(exc).__name__}: {exc}"))

    def _dispatch(self) -> None:
        limits = self.server.limits
        if len(self.headers) > limits.header_count:
            self._plain(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, f"more than {limits.header_count} headers", True)
            return
        if self.command not in ("GET", "HEAD"):
            self._plain(HTTPStatus.METHOD_NOT_ALLOWED, "read-only: GET and HEAD only", True, (("Allow", "GET, HEAD"),))
            return
        host = (self.headers.get("Host") or "").strip().lower()
        if host not in self.server.allowed_hosts:
            # 421 Misdirected Request: this server is not the one the name belongs to.
            self._plain(
                HTTPStatus.MISDIRECTED_REQUEST, "unknown Host: this monitor answers to its loopback names", True
            )
            return
        if self.headers.get("Content-Length", "0").strip() not in ("", "0") or self.headers.get("Transfer-Encoding"):
            self._plain(HTTPStatus.BAD_REQUEST, "a request body is not accepted", True)
            return
        parts = urlsplit(self.path)
        if len(parts.query) > limits.query_bytes:
            self._plain(HTTPStatus.REQUEST_URI_TOO_LONG, "query too long", True)
            return
        route = self.server.routes.get(parts.path)
        if route is None:
            self._plain(HTTPStatus.NOT_FOUND, "not found")
            return
        try:
            query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False, max_num_fields=16)
            response = route(query, {key.lower(): value for key, value in self.headers.items()})
        except ValueError as exc:
            self._plain(HTTPStatus.BAD_REQUEST, str(exc)[:300])
            return
        except Exception as exc:  # noqa: BLE001 - a client gets a fixed text, the log says what
            self.server.log(f"monitor: internal error on {self.path[:200]}: {type(exc).__name__}: {exc}")
            self._plain(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error (see the monitor's log)")
            return
        self._send(response)

    def _plain(self, status: int, text: str, close: bool = False, extra: tuple[tuple[str, str], ...] = ()) -> None:
        headers = extra + ((("Connection", "close"),) if close else ())
        if status >= 400:
            self.server.log(
                redact(f"monitor: {self.address_string()} {self.command} {self.path[:200]!r}: {status} {text}")
            )
        if close:
            self.close_connection = True
        self._send(Response(int(status), "text/plain; charset=utf-8", (redact(text) + "\n").encode(), headers))

    def _send(self, response: Response) -> None:
        self._status = response.status
        self.send_response_only(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in (*SECURITY_HEADERS, *response.headers):
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return  # one line per request is written by log_message below, at the end

    def log_message(self, format: str, *args: Any) -> None:
        self.server.log(redact(f"monitor: {self.address_string()} {format % args}"))

    def finish(self) -> None:
        self._reader.head_done()
        with contextlib.suppress(OSError):
            super().finish()


@dataclass
class ServerHandle:
    server: MonitorHTTPServer
    thread: threading.Thread = field(init=False)

    def start(self) -> None:
        self.thread = threading.Thread(target=self.server.serve_forever, name="monitor-http", daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.reaper.stop()
        self.server.server_close()
