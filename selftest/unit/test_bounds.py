"""Bounded everything: HTTP probes (body size, total time), in-host probes, the inventory.

The servers here are real local sockets: a huge body, a 1 byte/s trickle, a redirect.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from conformance.probes import BODY_READ_LIMIT, LanRequest, http_get, http_post_json
from conformance.runtime import RunOptions, Runtime
from conformance.transport import scripts
from conformance.transport.audit import AuditLog


@contextmanager
def _server(handle: Callable[[socket.socket, bytes], None]) -> Iterator[int]:
    """A loopback TCP server that hands each connection to ``handle`` in a daemon thread."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=_guarded, args=(handle, connection), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()


def _guarded(handle: Callable[[socket.socket, bytes], None], connection: socket.socket) -> None:
    try:
        handle(connection, connection.recv(65536))
    except OSError:
        pass
    finally:
        connection.close()


def huge_body(connection: socket.socket, request: bytes) -> None:
    """Announces 1 GiB and sends it as fast as the client reads."""
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n")
    block = b"A" * 65536
    for _ in range(16384):
        connection.sendall(block)


def trickle(connection: socket.socket, request: bytes) -> None:
    """A byte a second, for a minute: every read finishes within any read timeout."""
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 60\r\n\r\n")
    for _ in range(60):
        connection.sendall(b"{")
        time.sleep(1)


def redirect(connection: socket.socket, request: bytes) -> None:
    """/health redirects to /elsewhere, which answers 200: following it would hide the 302."""
    if request.startswith(b"GET /health "):
        connection.sendall(b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n")
    else:
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def test_http_probe_stops_reading_a_huge_body():
    with _server(huge_body) as port:
        started = time.monotonic()
        probe = http_get(f"http://127.0.0.1:{port}/health", timeout=10)
    assert time.monotonic() - started < 3
    assert probe.answered and probe.status == 200 and probe.truncated
    assert "larger than 512 KiB" in (probe.error or "") and probe.json is None
    assert len(probe.body) <= BODY_READ_LIMIT


def test_http_probe_has_a_total_deadline_not_only_a_read_timeout():
    with _server(trickle) as port:
        started = time.monotonic()
        probe = http_get(f"http://127.0.0.1:{port}/health", timeout=3)
    assert time.monotonic() - started < 5, "a 1 byte/s trickle held the probe past its deadline"
    assert probe.truncated and "not complete after 3 s" in (probe.error or "")


def test_http_post_is_bounded_like_a_get():
    with _server(huge_body) as big, _server(trickle) as slow:
        started = time.monotonic()
        cut = http_post_json(f"http://127.0.0.1:{big}/v1/chat/completions", {"max_tokens": 1}, timeout=10)
        late = http_post_json(f"http://127.0.0.1:{slow}/v1/chat/completions", {"max_tokens": 1}, timeout=2)
    assert time.monotonic() - started < 8
    assert cut.truncated and "larger than 512 KiB" in (cut.error or "") and len(cut.body) <= BODY_READ_LIMIT
    assert late.truncated and "not complete after 2 s" in (late.error or "")


def litellm_like(connection: socket.socket, request: bytes) -> None:
    """Echoes what it received in its body, with LiteLLM's route headers and one header not kept."""
    head, _, body = request.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    # The client may send the body in a write of its own: read it up to its announced length.
    length = next((int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")), 0)
    while len(body) < length and (more := connection.recv(65536)):
        body += more
    answer = json.dumps({"request_line": lines[0], "headers": lines[1:], "body": body.decode()}).encode()
    connection.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"x-litellm-model-api-base: http://198.51.100.11:4040/v1\r\n"
        b"x-litellm-model-name: openai/labtiny/tiny-chat-high\r\nx-litellm-model-group: studio-high\r\n"
        b"Set-Cookie: session=abc\r\nContent-Length: " + str(len(answer)).encode() + b"\r\n\r\n" + answer
    )


def test_a_post_lan_request_sends_its_json_with_the_secret_and_keeps_only_route_headers(tmp_path, monkeypatch):
    from conformance.inventory.loader import load_inventory
    from selftest.conftest import INVENTORY_DIR

    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-test-route-probe")
    inventory = load_inventory(INVENTORY_DIR / "lab.yaml", environ={})
    runtime = Runtime(inventory, AuditLog(tmp_path / "audit.jsonl", "run"), RunOptions())
    with _server(litellm_like) as port:
        payload = json.dumps({"model": "studio-high", "max_tokens": 1})
        probe = runtime.lan(LanRequest("127.0.0.1", port, "/v1/chat/completions", "litellm-master-key", 5, payload))
    echoed = probe.json
    assert isinstance(echoed, dict), probe.describe()
    assert echoed["request_line"] == "POST /v1/chat/completions HTTP/1.1"
    assert json.loads(echoed["body"]) == {"model": "studio-high", "max_tokens": 1}
    headers = {line.split(": ", 1)[0].lower(): line.split(": ", 1)[1] for line in echoed["headers"]}
    assert headers["authorization"] == "Bearer sk-test-route-probe"
    assert headers["content-type"] == "application/json"
    assert probe.headers == {
        "content-type": "application/json",
        "x-litellm-model-api-base": "http://198.51.100.11:4040/v1",
        "x-litellm-model-name": "openai/labtiny/tiny-chat-high",
        "x-litellm-model-group": "studio-high",
    }


def _in_host_probe(timeout: float, *targets: str) -> tuple[dict[str, dict[str, object]], float]:
    argv = [sys.executable, "-c", scripts.IN_HOST_PROBE.text, str(timeout), *targets]
    assert scripts.IN_HOST_PROBE.arguments_valid(argv[3:])
    started = time.monotonic()
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout), time.monotonic() - started


def test_in_host_probe_does_not_outlive_its_deadline():
    """One slow endpoint must not hold the batch until the command timeout."""
    with _server(trickle) as slow, _server(huge_body) as big:
        out, elapsed = _in_host_probe(2, f"http://127.0.0.1:{slow}/health", f"http://127.0.0.1:{big}/health")
    assert elapsed < 6, f"the in-host probe ran {elapsed:.1f} s for a 2 s deadline"
    slow_result = out[f"http://127.0.0.1:{slow}/health"]
    assert slow_result["ok"] is False and "deadline" in str(slow_result["error"])
    big_result = out[f"http://127.0.0.1:{big}/health"]
    assert big_result["status"] == 200 and len(str(big_result["body"])) <= 2048


def test_in_host_probe_does_not_follow_redirects():
    with _server(redirect) as port:
        out, _ = _in_host_probe(3, f"http://127.0.0.1:{port}/health")
    result = out[f"http://127.0.0.1:{port}/health"]
    assert result["status"] == 302, result


@pytest.mark.parametrize("size", [1, 4096])
def test_in_host_probe_answers_normally(size):
    def small(connection: socket.socket, request: bytes) -> None:
        body = b"x" * size
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    with _server(small) as port:
        out, _ = _in_host_probe(3, f"http://127.0.0.1:{port}/health", f"127.0.0.1:{port}")
    assert out[f"http://127.0.0.1:{port}/health"]["status"] == 200
    assert out[f"127.0.0.1:{port}"]["ok"] is True
