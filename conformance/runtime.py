"""Per-process state of a run: the inventory, one connection and one fact set per host,
and the LAN probes, each computed at most once and shared by every check.

Under xdist every worker has its own Runtime (session state is per process); tests are
grouped by host so that each host is gathered by one worker.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from conformance.facts.gather import gather
from conformance.facts.model import HostFacts
from conformance.inventory.model import Inventory
from conformance.probes import ProbeResult, http_get, tcp_connect
from conformance.redact import register_secret_env
from conformance.transport.audit import AuditLog
from conformance.transport.connection import ConnectionPool, HostUnavailable

RUN_ID_ENV = "CONFORMANCE_RUN_ID"


def new_run_id() -> str:
    return os.environ.get(RUN_ID_ENV) or uuid.uuid4().hex[:12]


@dataclass
class RunOptions:
    model_health: bool = False
    lan_timeout: float = 3.0


@dataclass
class Runtime:
    inventory: Inventory
    audit: AuditLog
    options: RunOptions = field(default_factory=RunOptions)
    pool: ConnectionPool = field(init=False)
    _facts: dict[str, HostFacts | HostUnavailable] = field(default_factory=dict, init=False)
    _probes: dict[str, ProbeResult] = field(default_factory=dict, init=False)
    _locks: dict[str, threading.Lock] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self.pool = ConnectionPool(self.audit)
        register_secret_env(secret.env for secret in self.inventory.secrets)

    def _host_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def facts(self, host: str) -> HostFacts:
        """The host's facts, gathered on first use; raises the host's one failure cause."""
        with self._host_lock(f"facts:{host}"):
            cached = self._facts.get(host)
            if cached is None:
                connection = self.pool.get(self.inventory.host(host))
                try:
                    cached = gather(connection, self.inventory)
                except HostUnavailable as exc:
                    cached = exc
                self._facts[host] = cached
        if isinstance(cached, HostUnavailable):
            raise cached
        return cached

    def prefetch(self, hosts: list[str], probes: list[Callable[[], object]]) -> None:
        """Gather hosts' facts and make the LAN probes at once, in threads (single-process runs).

        Under xdist each worker gathers only the hosts its tests need, on first use, so that
        a run's time grows with hosts divided by workers.
        """
        pending = [host for host in hosts if host not in self._facts]
        jobs: list[Callable[[], object]] = [partial(self._gather_quietly, host) for host in pending]
        jobs += probes
        if len(jobs) < 2:
            return
        with ThreadPoolExecutor(max_workers=min(16, len(jobs)), thread_name_prefix="prefetch") as pool:
            for future in [pool.submit(job) for job in jobs]:
                future.result()

    def _gather_quietly(self, host: str) -> None:
        # A failure is cached: every check of that host reports this one cause later.
        with contextlib.suppress(HostUnavailable):
            self.facts(host)

    def probe(self, key: str, make: Callable[[], ProbeResult]) -> ProbeResult:
        with self._host_lock(f"probe:{key}"):
            if key not in self._probes:
                self._probes[key] = make()
            return self._probes[key]

    def lan_get(self, url: str, headers: dict[str, str] | None = None, timeout: float | None = None) -> ProbeResult:
        auth = "auth" if headers else "anon"
        return self.probe(f"GET {auth} {url}", lambda: http_get(url, timeout or self.options.lan_timeout, headers))

    def lan_connect(self, address: str, port: int) -> ProbeResult:
        return self.probe(f"TCP {address}:{port}", lambda: tcp_connect(address, port, self.options.lan_timeout))

    def secret(self, name: str) -> str | None:
        record = self.inventory.secret_env(name)
        if record is None:
            return None
        if record.file:
            try:
                return Path(record.file).read_text(encoding="utf-8").strip() or None
            except OSError:
                return None
        return os.environ.get(record.env) or None

    def close(self) -> None:
        self.pool.close_all()
