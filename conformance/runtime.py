"""Per-process state of a run: the inventory, one connection and one fact set per host,
and the LAN probes, each computed at most once and shared by every check.

The process that starts the run gathers every host concurrently, in threads, from
configure time on (``start_prefetch``). Under xdist it also publishes what it gathered in
a private snapshot (``conformance.snapshot``) that the workers' Runtimes read instead of
connecting: one SSH connection and one gathering per host per run, whatever the workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from conformance.errors import HostUnavailable, ParseError
from conformance.facts.gather import gather
from conformance.facts.model import HostFacts
from conformance.inventory.model import Inventory
from conformance.probes import LanRequest, ProbeResult, close_client, http_get, http_post_json, tcp_connect
from conformance.redact import Secret, redact, register_secret, register_secret_env
from conformance.secrets import SecretSources
from conformance.snapshot import Snapshot
from conformance.transport.audit import AuditLog

if TYPE_CHECKING:
    from conformance.transport.connection import ConnectionPool

RUN_ID_ENV = "CONFORMANCE_RUN_ID"
# Hosts gathered (and probes made) at once; SSH handshakes are partly CPU-bound.
PREFETCH_THREADS = 32
# A worker waits this long, at most, for the controller's plan (written when the first
# worker has collected, before any test is scheduled; normally already there).
SNAPSHOT_PLAN_WAIT = 30.0


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
    _pool: ConnectionPool | None = field(default=None, init=False)
    _facts: dict[str, HostFacts | HostUnavailable] = field(default_factory=dict, init=False)
    _probes: dict[str, ProbeResult] = field(default_factory=dict, init=False)
    # Addresses known to be down (SSH timed out or had no route, or a probe had no route):
    # later probes fail at once with that cause, so a dead host costs one timeout, not one
    # per probe. Those checks are then errors blocked by the host, never violations.
    _unreachable: dict[str, str] = field(default_factory=dict, init=False)
    _related_started: set[str] = field(default_factory=set, init=False)
    _locks: dict[str, threading.Lock] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    # A worker's view of the controller's snapshot: its plan (the hosts, and whether the LAN
    # probes are published there) is read once, on first need; what it names is read, never
    # gathered again, unless it fails to appear in time.
    snapshot: Snapshot | None = field(default=None, init=False)
    snapshot_hosts: frozenset[str] = field(default=frozenset(), init=False)
    snapshot_probes: bool = field(default=False, init=False)
    _snapshot_plan_read: bool = field(default=False, init=False)
    _snapshot_probes_read: bool = field(default=False, init=False)
    secret_sources: SecretSources = field(init=False)

    def __post_init__(self) -> None:
        register_secret_env(secret.env for secret in self.inventory.secrets)
        self.secret_sources = SecretSources.of(self.inventory)
        # Every value any source holds is masked in every output, used or not.
        for value in self.secret_sources.all_values(self.inventory.secrets):
            register_secret(value)

    @property
    def pool(self) -> ConnectionPool:
        """The SSH connections, made on first need (paramiko is imported then, not before)."""
        with self._lock:
            if self._pool is None:
                from conformance.transport.connection import ConnectionPool

                self._pool = ConnectionPool(self.audit)
            return self._pool

    def _host_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def facts(self, host: str) -> HostFacts:
        """The host's facts, gathered on first use; raises the host's one failure cause."""
        self._start_related(host)
        with self._host_lock(f"facts:{host}"):
            cached = self._facts.get(host)
            if cached is None and self.snapshot is not None and host in self._snapshot_plan()[0]:
                assert self.snapshot is not None  # narrowed again: reading the plan may drop it
                cached = self.snapshot.read_facts(host, self._snapshot_wait(host))
                if isinstance(cached, HostUnavailable):
                    self._note_unavailable(host, cached)
            if cached is None:
                connection = self.pool.get(self.inventory.host(host))
                try:
                    cached = gather(connection, self.inventory)
                except HostUnavailable as exc:
                    cached = exc
                    self._note_unavailable(host, exc)
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

    def _note_unavailable(self, host: str, exc: HostUnavailable) -> None:
        address = self.inventory.host(host).address
        if exc.kind in {"timeout", "unreachable"} and address:
            self._mark_unreachable(address, exc.cause)

    def _snapshot_wait(self, host: str) -> float:
        """How long a worker waits for the controller's gathering of ``host``: its bounds, and a margin."""
        ssh = self.inventory.host(host).ssh
        return ssh.connect_timeout + 2 * ssh.command_timeout + 10.0

    def read_snapshot(self, snapshot: Snapshot) -> None:
        """Workers: take facts and LAN probes from the controller's snapshot (see ``snapshot``)."""
        self.snapshot = snapshot

    def _snapshot_plan(self) -> tuple[frozenset[str], bool]:
        """The snapshot's plan; the controller writes it before any test is scheduled."""
        with self._host_lock("snapshot:plan"):
            if not self._snapshot_plan_read and self.snapshot is not None:
                self._snapshot_plan_read = True
                plan = self.snapshot.read_plan(SNAPSHOT_PLAN_WAIT)
                if plan is None:
                    self.snapshot = None  # nothing will be published: gather here
                else:
                    self.snapshot_hosts, self.snapshot_probes = frozenset(plan[0]), plan[1]
            return self.snapshot_hosts, self.snapshot_probes

    def _load_snapshot_probes(self) -> None:
        with self._host_lock("snapshot:probes"):
            if self._snapshot_probes_read or self.snapshot is None:
                return
            self._snapshot_probes_read = True
            wait = self.options.lan_timeout + 10.0
            loaded = self.snapshot.read_probes(wait)
            if loaded is None:
                return
            probes, unreachable = loaded
            with self._lock:
                for key, result in probes.items():
                    self._probes.setdefault(key, result)
                for address, cause in unreachable.items():
                    self._unreachable.setdefault(address, cause)

    def start_prefetch(
        self, hosts: list[str], requests: list[LanRequest], publish: Snapshot | None = None
    ) -> list[threading.Thread]:
        """Start gathering ``hosts`` and making the LAN probes, each in its own thread, now.

        Facts and probes are I/O: started at configure time they overlap with collection
        (and with xdist spawning its workers). Checks that need a host before its thread is
        done wait on that host's lock; nothing is gathered twice. With ``publish``, each
        host's facts, then the probes, are written to the snapshot for the workers. The
        threads are daemons: a run never waits at exit for a host it did not check.
        """
        gate = threading.BoundedSemaphore(PREFETCH_THREADS)
        if publish is not None:
            with contextlib.suppress(OSError):
                publish.write_plan(hosts, bool(requests))

        def gather_host(host: str) -> None:
            with gate:
                self._gather_quietly(host)
            gathered = self._facts.get(host)
            if publish is not None and gathered is not None:
                # A snapshot that cannot be written only costs the workers their own gathering.
                with contextlib.suppress(OSError):
                    publish.write_facts(host, gathered)

        def probe(request: LanRequest) -> None:
            with gate:
                self._lan_quietly(request)

        threads = [
            threading.Thread(target=gather_host, args=(host,), name=f"gather-{host}", daemon=True) for host in hosts
        ]
        probe_threads = [
            threading.Thread(target=probe, args=(request,), name="lan-probe", daemon=True)
            for request in dict.fromkeys(requests)
        ]
        for thread in threads + probe_threads:
            thread.start()
        if publish is not None:

            def publish_probes() -> None:
                for thread in probe_threads:
                    thread.join()
                with self._lock:
                    probes, unreachable = dict(self._probes), dict(self._unreachable)
                with contextlib.suppress(OSError):
                    publish.write_probes(probes, unreachable)

            threads.append(threading.Thread(target=publish_probes, name="publish-probes", daemon=True))
            threads[-1].start()
        return threads + probe_threads

    def use_facts(self, host: str, facts: HostFacts | HostUnavailable) -> None:
        """Facts gathered elsewhere (a snapshot, canned facts in tests): no connection is made."""
        with self._lock:
            self._facts[host] = facts
            self._related_started.add(host)

    def hosts_to_gather(self, hosts: list[str]) -> list[str]:
        """``hosts`` and the hosts their checks also read, each once, in a stable order."""
        wanted = dict.fromkeys(hosts)
        for host in hosts:
            wanted.update(dict.fromkeys(related_hosts(self.inventory, host)))
        return list(wanted)

    def _gather_quietly(self, host: str) -> None:
        # A host's failure is cached: every check of that host reports this one cause later.
        # Anything else (an import cut short as the process ends) is not cached: the check
        # that needs the facts gathers them again, where the outcome policy reports it. A
        # background thread must never raise.
        with contextlib.suppress(Exception):
            self.facts(host)

    def _lan_quietly(self, request: LanRequest) -> None:
        # A probe that cannot be made (its secret's file refused, or anything unforeseen) is
        # not cached: the check that needs it makes it again, in the test, where the outcome
        # policy turns the failure into a result. A background thread must never raise.
        with contextlib.suppress(Exception):
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
        if self.snapshot is not None and not self._snapshot_probes_read and self._snapshot_plan()[1]:
            self._load_snapshot_probes()
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
        if self._pool is not None:
            self._pool.close_all()
        close_client()
