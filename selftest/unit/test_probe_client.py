"""LAN probes share one HTTP client: probes of one server reuse its connection."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conformance.probes import close_client, http_get


class _Counting(ThreadingHTTPServer):
    connections = 0

    def process_request(self, request, client_address):  # type: ignore[no-untyped-def]
        type(self).connections += 1
        super().process_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def do_GET(self) -> None:
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def server() -> Iterator[_Counting]:
    close_client()
    _Counting.connections = 0
    httpd = _Counting(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    close_client()


def test_probes_of_one_server_reuse_one_connection(server):
    port = server.server_address[1]
    answers = [http_get(f"http://127.0.0.1:{port}/health/{name}", 3.0) for name in ("liveliness", "readiness", "x")]
    assert [answer.status for answer in answers] == [200, 200, 200]
    assert answers[0].json == {"status": "ok"}
    assert server.connections == 1


def test_a_closed_client_is_made_again(server):
    port = server.server_address[1]
    assert http_get(f"http://127.0.0.1:{port}/", 3.0).status == 200
    close_client()
    assert http_get(f"http://127.0.0.1:{port}/", 3.0).status == 200
    assert server.connections == 2
