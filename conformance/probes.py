"""Probes from the harness's own vantage (the LAN): TCP connects and HTTP GETs.

GET only, except the opt-in live route probe (``--probe-routes``: one bounded POST of a
one-token chat completion per LiteLLM handle, ``http_post_json``). Explicit connect/read
timeouts on every call, latency recorded. The outcome of a probe is data (answered / refused /
timed out), never an exception: whether "refused" is good news depends on the contract, and
the check decides.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conformance.redact import redact

if TYPE_CHECKING:
    import httpx

BODY_LIMIT = 2048  # kept for evidence
BODY_READ_LIMIT = 512 * 1024  # health answers and model lists are a few KB; more is not an answer
# Response headers kept on a ProbeResult (everything else is dropped, so nothing unexpected
# reaches evidence). The x-litellm-model-* and fallback headers name the deployment that served
# a completion: LiteLLM 1.108.7, litellm/proxy/common_request_processing.py
# ProxyBaseLLMRequestProcessing.get_custom_headers (x-litellm-model-id, x-litellm-model-name,
# x-litellm-model-api-base, the api_base without its query) and litellm/router.py
# set_response_headers / router_utils/add_retry_fallback_headers.py (x-litellm-model-group,
# x-litellm-attempted-fallbacks).
KEPT_HEADERS = frozenset(
    {
        "content-type",
        "x-litellm-version",
        "x-litellm-model-id",
        "x-litellm-model-name",
        "x-litellm-model-api-base",
        "x-litellm-model-group",
        "x-litellm-attempted-fallbacks",
    }
)


@dataclass(frozen=True)
class ProbeResult:
    target: str
    answered: bool  # TCP connected (and for HTTP: a response came back)
    status: int | None = None
    body: str = ""
    json: object = None
    error: str | None = None
    error_kind: str | None = None  # refused | timeout | unreachable | http
    milliseconds: float = 0.0
    headers: dict[str, str] | None = None
    truncated: bool = False  # the body was cut at the size or time bound

    def describe(self) -> str:
        if self.answered and self.status is not None:
            cut = f" ({self.error})" if self.truncated else ""
            return f"HTTP {self.status} in {self.milliseconds:.0f} ms{cut}: {redact(self.body[:200])}"
        if self.answered:
            return f"connected in {self.milliseconds:.0f} ms"
        return f"{self.error_kind}: {self.error}"


def _classify(exc: BaseException) -> str:
    text = str(exc).lower()
    if isinstance(exc, ConnectionRefusedError) or "refused" in text:
        return "refused"
    # httpx is imported only by a process that makes HTTP probes; otherwise none of its
    # exceptions can reach here.
    httpx_module = sys.modules.get("httpx")
    http_timeout = (httpx_module.TimeoutException,) if httpx_module is not None else ()
    if isinstance(exc, (TimeoutError, socket.timeout, *http_timeout)) or "timed out" in text:
        return "timeout"
    return "unreachable"


def tcp_connect(address: str, port: int, timeout: float) -> ProbeResult:
    target = f"{address}:{port}"
    started = time.monotonic()
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return ProbeResult(target, True, milliseconds=(time.monotonic() - started) * 1000)
    except OSError as exc:
        return ProbeResult(
            target,
            False,
            error=exc.strerror or str(exc),
            error_kind=_classify(exc),
            milliseconds=(time.monotonic() - started) * 1000,
        )


_CLIENT: httpx.Client | None = None
_CLIENT_LOCK = threading.Lock()


def _client() -> httpx.Client:
    """One HTTP client per process, shared by every probe (thread-safe), so that probes of
    one server reuse its connection. Imported on first use: a worker that reads the run's
    probes from the controller's snapshot never pays for httpx."""
    global _CLIENT
    with _CLIENT_LOCK:
        if _CLIENT is None:
            import httpx

            _CLIENT = httpx.Client(trust_env=False, follow_redirects=False)
        return _CLIENT


def close_client() -> None:
    global _CLIENT
    with _CLIENT_LOCK:
        if _CLIENT is not None:
            _CLIENT.close()
            _CLIENT = None


def http_get(url: str, timeout: float, headers: dict[str, str] | None = None) -> ProbeResult:
    """One GET, bounded in every dimension: connect, each read, the whole call, the body size."""
    return _http_request("GET", url, timeout, headers, None)


def http_post_json(url: str, payload: object, timeout: float, headers: dict[str, str] | None = None) -> ProbeResult:
    """One POST of a JSON body, bounded exactly as ``http_get`` (the live route probe's request)."""
    return _http_request("POST", url, timeout, headers, json.dumps(payload).encode())


def _http_request(
    method: str, url: str, timeout: float, headers: dict[str, str] | None, body: bytes | None
) -> ProbeResult:
    """One request, bounded in every dimension: connect, each read, the whole call, the body size.

    httpx's timeouts bound each read only, so a server trickling a byte a second would hold
    the probe for ever; the body is therefore streamed and the probe stops at the overall
    deadline (``timeout``) or at ``BODY_READ_LIMIT`` bytes, whichever comes first.
    """
    client = _client()
    import httpx

    started = time.monotonic()
    deadline = started + timeout
    sent = dict(headers or {})
    if body is not None:
        sent["Content-Type"] = "application/json"
    try:
        with client.stream(
            method, url, headers=sent, content=body, timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0))
        ) as response:
            chunks: list[bytes] = []
            size = 0
            cut_short: str | None = None
            for chunk in response.iter_raw():
                chunks.append(chunk)
                size += len(chunk)
                if size > BODY_READ_LIMIT:
                    cut_short = f"body larger than {BODY_READ_LIMIT // 1024} KiB: stopped reading"
                    break
                if time.monotonic() > deadline:
                    cut_short = f"body not complete after {timeout:g} s: stopped reading"
                    break
    except httpx.HTTPError as exc:
        cause = exc.__cause__ or exc.__context__ or exc
        return ProbeResult(
            url,
            False,
            error=redact(str(cause) or type(exc).__name__),
            error_kind=_classify(cause) if not isinstance(exc, httpx.TimeoutException) else "timeout",
            milliseconds=(time.monotonic() - started) * 1000,
        )
    elapsed = (time.monotonic() - started) * 1000
    raw = b"".join(chunks)[:BODY_READ_LIMIT]
    text = raw.decode(response.encoding or "utf-8", "replace")
    parsed: object = None
    if cut_short is None:
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
    # A response did come back (an exposed port stays exposed however big its answer is);
    # ``truncated`` says the body is not the whole answer.
    return ProbeResult(
        url,
        True,
        response.status_code,
        text[:BODY_LIMIT],
        parsed,
        error=cut_short,
        milliseconds=elapsed,
        truncated=cut_short is not None,
        headers={key.lower(): value for key, value in response.headers.items() if key.lower() in KEPT_HEADERS},
    )


def url_for(address: str, port: int, path: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}{path}"


@dataclass(frozen=True)
class LanRequest:
    """One probe from the harness's LAN vantage, declared by a contract.

    A contract declares the requests it will make (the prefetch plan runs exactly these
    ahead of time, in parallel) and then reads their answers by the same request, so no
    URL is ever built twice. ``secret`` names an inventory secret sent as a bearer token:
    the value is looked up only when the request is made and is never part of the key.
    ``payload`` (JSON text) makes the request a POST of that body: only the opt-in live route
    probe sends one.
    """

    address: str
    port: int
    path: str | None = None  # None: a TCP connect; else an HTTP GET (or POST) of this path
    secret: str | None = None
    timeout: float | None = None
    payload: str | None = None

    @property
    def url(self) -> str:
        return url_for(self.address, self.port, self.path or "/")

    @property
    def key(self) -> str:
        if self.path is None:
            return f"TCP {self.address}:{self.port}"
        auth = "auth" if self.secret else "anon"
        if self.payload is not None:
            return f"POST {auth} {self.url} {self.payload}"
        return f"GET {auth} {self.url}"
