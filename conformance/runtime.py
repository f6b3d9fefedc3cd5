"""Per-process state of a run: the inventory, one connection and one fact set per host,
and the LAN probes, each computed at most once and shared by every check.

Under xdist every worker has its own Runtime (session state is per process); tests are
grouped by host so that each host is gathered by one worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

from conformance.errors import CannotCheck, HostUnavailable, ParseError
from conformance.facts.gather import gather
from conformance.facts.model import HostFacts
from conformance.inventory.model import Inventory
from conformance.probes import LanRequest, ProbeResult, http_get, http_post_json, tcp_connect
from conformance.redact import Secret, redact, register_secret
from conformance.secrets import SecretSources
from conformance.transport.audit import AuditLog
from conformance.transport.connection import ConnectionPool

RUN_ID_ENV = "CONFORMANCE_RUN_ID"


def related_hosts(inventory: Inventory, host: str) -> list[str]:
    """Other hosts whose facts the checks of ``host`` read (showroom: the inference hosts)."""
    related: list[str] = []
    if any(service.kind == "litellm" and service.is_live for service in inventory.services_on(host)):
        related += [
            service.host
            for service in inventory.services
            if service.kind == "optillm-local" and service.is_live and service.host != host
        ]
    return sorted(set(related))


def new_run_id() -> str:
    return os.environ.get(RUN_ID_ENV) or uuid.uuid4().hex[:12]


@dataclass
class RunOptions:
    model_health: bool = False
    lan_timeout: float = 3.0
    # --probe-routes: one one-token completion per LiteLLM handle, each bounded by route_timeout.
    probe_routes: bool = False
    route_timeout: float = 20.0


@dataclass
class Runtime:
    inventory: Inventory
    audit: AuditLog
    options: RunOptions = field(default_factory=RunOptions)
    pool: ConnectionPool = field(init=False)
    _facts: dict[str, HostFacts | HostUnavailable] = field(default_factory=dict, init=False)
    _probes: dict[str, ProbeResult] = field(default_factory=dict, init=False)
    # Addresses known to be down (SSH timed out or had no route, or a probe had no route):
    # later probes fail at once with that cause, so a dead host costs one timeout, not one
    # per probe. Those checks are then errors blocked by the host, never violations.
    _unreachable: dict[str, str] = field(default_factory=dict, init=False)
    _related_started: set[str] = field(default_factory=set, init=False)
    _locks: dict[str, threading.Lock] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    secret_sources: SecretSources = field(init=False)

    def __post_init__(self) -> None:
        self.pool = ConnectionPool(self.audit)
        self.secret_sources = SecretSources.of(self.inventory)
        # Every value any source holds is masked in every output, used or not.
        for value in self.secret_sources.all_values(self.inventory.secrets):
            register_secret(value)

    def _host_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def facts(self, host: str) -> HostFacts:
        """The host's facts, gathered on first use; raises the host's one failure cause."""
        self._start_related(host)
        with self._host_lock(f"facts:{host}"):
            cached = self._facts.get(host)
            if cached is None:
                connection = self.pool.get(self.inventory.host(host))
                try:
                    cached = gather(connection, self.inventory)
                except HostUnavailable as exc:
                    cached = exc
                    address = self.inventory.host(host).address
                    if exc.kind in {"timeout", "unreachable"} and address:
                        self._mark_unreachable(address, exc.cause)
                except ParseError as exc:
                    cached = HostUnavailable(host, "facts", f"its facts cannot be read: {exc.safe_text()}")
                except Exception as exc:  # noqa: BLE001 - one host's odd output must not end the run
                    # Whatever the host printed, the run goes on: the host's checks are then all
                    # blocked by this one cause, reported under its host-identity check.
                    cause = f"gathering its facts failed: {type(exc).__name__}: {redact(str(exc))[:300]}"
                    cached = HostUnavailable(host, "facts", cause)
                self._facts[host] = cached
        if isinstance(cached, HostUnavailable):
            raise cached
        return cached

    def use_facts(self, host: str, facts: HostFacts | HostUnavailable) -> None:
        """Facts gathered elsewhere (a snapshot, canned facts in tests): no connection is made."""
        with self._lock:
            self._facts[host] = facts
            self._related_started.add(host)

    def prefetch(self, hosts: list[str], requests: list[LanRequest]) -> None:
        """Gather hosts' facts and make the LAN probes at once, in threads (single-process runs).

        Under xdist each worker gathers only the hosts its tests need, on first use, so that
        a run's time grows with hosts divided by workers.
        """
        pending = [host for host in hosts if host not in self._facts]
        jobs: list[Callable[[], object]] = [partial(self._gather_quietly, host) for host in pending]
        jobs += [partial(self._lan_quietly, request) for request in dict.fromkeys(requests)]
        if len(jobs) < 2:
            return
        with ThreadPoolExecutor(max_workers=min(16, len(jobs)), thread_name_prefix="prefetch") as pool:
            for future in [pool.submit(job) for job in jobs]:
                future.result()

    def _gather_quietly(self, host: str) -> None:
        # A failure is cached: every check of that host reports this one cause later.
        with contextlib.suppress(HostUnavailable):
            self.facts(host)

    def _lan_quietly(self, request: LanRequest) -> None:
        # A probe that cannot be made (its secret's file refused) is not cached: the check
        # that needs it makes it again and reports the cause.
        with contextlib.suppress(CannotCheck):
            self.lan(request)

    def _start_related(self, host: str) -> None:
        """Start gathering, in the background, the hosts this host's checks will also read.

        The checks of a LiteLLM host read the inference hosts' facts too (which models are
        really there); gathering them alongside means a dead inference host costs its one
        timeout in parallel, not after this host's own gathering.
        """
        with self._lock:
            if host in self._related_started:
                return
            self._related_started.add(host)
            related = [
                name
                for name in related_hosts(self.inventory, host)
                if name not in self._facts and name not in self._related_started
            ]
            self._related_started.update(related)
        for name in related:
            threading.Thread(target=self._gather_quietly, args=(name,), name=f"gather-{name}", daemon=True).start()

    def _mark_unreachable(self, address: str, cause: str) -> None:
        with self._lock:
            self._unreachable.setdefault(address, cause)

    def probe(self, key: str, address: str, make: Callable[[], ProbeResult]) -> ProbeResult:
        """One probe per key per run; an address that timed out once is not waited on again."""
        with self._host_lock(f"probe:{key}"):
            if key not in self._probes:
                with self._lock:
                    known = self._unreachable.get(address)
                if known is not None:
                    result = ProbeResult(
                        key.split(" ")[-1], False, error=f"{address} is unreachable ({known})", error_kind="unreachable"
                    )
                else:
                    result = make()
                    # No route to the host: every port of it is gone. (A timeout on one port
                    # may be a firewall rule for that port alone, so it is not generalised.)
                    if not result.answered and result.error_kind == "unreachable":
                        self._mark_unreachable(address, f"{result.error_kind}: {result.error}")
                self._probes[key] = result
            return self._probes[key]

    def lan(self, request: LanRequest) -> ProbeResult:
        """One probe from the LAN vantage, made at most once per run (see ``probe``)."""
        headers: dict[str, str] | None = None
        if request.secret is not None:
            key = self.secret(request.secret)
            headers = {"Authorization": f"Bearer {key.reveal()}"} if key else None
        timeout = request.timeout or self.options.lan_timeout
        if request.path is None:
            return self.probe(request.key, request.address, lambda: tcp_connect(request.address, request.port, timeout))
        if request.payload is not None:
            payload = json.loads(request.payload)
            return self.probe(
                request.key, request.address, lambda: http_post_json(request.url, payload, timeout, headers)
            )
        return self.probe(request.key, request.address, lambda: http_get(request.url, timeout, headers))

    def secret(self, name: str) -> Secret | None:
        """A declared secret, as a Secret (renders as ***; ``reveal()`` only to send it).

        Looked up in the sources of ``conformance.secrets``; raises SecretsFileRefused (a
        CannotCheck: the check is broken, naming the file) when the site's secrets file is
        not the user's own 0600 file.
        """
        record = self.inventory.secret_env(name)
        if record is None:
            return None
        value = self.secret_sources.value(record)
        return Secret(value) if value else None

    def secret_hint(self, name: str) -> str:
        """Where the owner can put a secret that was not found."""
        record = self.inventory.secret_env(name)
        return self.secret_sources.where(record) if record is not None else f"declare the secret {name!r}"

    def close(self) -> None:
        self.pool.close_all()
