"""What the monitor serves and polls: its record in the inventory, the command line, and the limits.

The monitor's own service is the inventory's service of kind ``monitor``; its port record says
where it listens (``bind`` and ``port``). It binds a loopback address only, unless both the
inventory's port record and ``--allow-non-loopback`` say otherwise: one of the two alone is
a mistake, and the monitor refuses to start with a message that says which.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from conformance.inventory.model import Inventory, Port, Service

DEFAULT_POLL_SECONDS = 30.0
DEFAULT_REFRESH_SECONDS = 5.0
# Failing polls in a row before the monitor's own polls open a bulletin entry: a restart that
# one poll happens to catch is not an outage. Three is Gatus's default failure-threshold
# (config/endpoint: DefaultFailureThreshold); at the 30 s default an outage is reported after
# one to one and a half minutes, as an alerting rule's ``for: 1m`` would.
DEFAULT_OPEN_AFTER_POLLS = 3
# The fold keeps the flap window's worth of polls (21): a longer streak could never be seen.
MAX_OPEN_AFTER_POLLS = 20
BULLETIN_ENV = "CONFORMANCE_BULLETIN"
REPORTS_ENV = "CONFORMANCE_REPORTS"


class MonitorConfigError(ValueError):
    """The monitor cannot start as configured; the message names the field and the fix."""


@dataclass(frozen=True)
class Limits:
    """Bounds on what one client can make the monitor do (see SECURITY.md)."""

    max_connections: int = 64  # served at once; the next one gets a 503 and is closed
    request_line_bytes: int = 8 * 1024  # longer: 414
    header_bytes: int = 16 * 1024  # all header lines together; more: 431
    header_count: int = 64  # more: 431
    # Each read of a request waits at most this long, and a whole request (line and headers)
    # must arrive within ``request_seconds``: a client trickling bytes is cut off.
    read_timeout_seconds: float = 5.0
    request_seconds: float = 10.0
    query_bytes: int = 1024  # a longer query string: 414


@dataclass(frozen=True)
class MonitorConfig:
    inventory: Inventory
    service: Service
    port: Port
    bind: str
    db_option: str | None
    bulletin_file: Path
    poll_seconds: float
    refresh_seconds: float
    open_after_polls: int = DEFAULT_OPEN_AFTER_POLLS
    model_health: bool = False
    poll: bool = True  # False: serve the database only (tests, a second read-only replica)
    limits: Limits = field(default_factory=Limits)
    # Runs older than this (hours) make the status page and /api/v1/status say so per runner.
    expected_run_hours: float = 1.0
    # How much history the status page's strips and the API's history cover.
    history_hours: float = 24.0

    @property
    def own_host(self) -> str:
        return self.service.host


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def monitor_service(inventory: Inventory) -> tuple[Service, Port]:
    """The inventory's monitor service and its one active port; an error names what is missing."""
    services = [service for service in inventory.services if service.kind == "monitor"]
    if not services:
        raise MonitorConfigError(f"{inventory.source_path}: no service of kind 'monitor' (the system monitor)")
    if len(services) > 1:
        names = ", ".join(service.name for service in services)
        raise MonitorConfigError(f"{inventory.source_path}: more than one service of kind 'monitor': {names}")
    service = services[0]
    if not service.is_live:
        raise MonitorConfigError(
            f"{inventory.source_path}: services/{service.name} has state {service.state!r}: "
            "the monitor serves only when it is enabled"
        )
    ports = [port for port in inventory.ports_of(service.name) if port.state == "active"]
    if len(ports) != 1:
        raise MonitorConfigError(
            f"{inventory.source_path}: services/{service.name} needs exactly one active port record, has {len(ports)}"
        )
    return service, ports[0]


def default_bulletin_file() -> Path:
    explicit = os.environ.get(BULLETIN_ENV)
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(REPORTS_ENV, "reports")) / "bulletin.jsonl"


def build_config(
    inventory: Inventory,
    *,
    bind: str | None = None,
    port: int | None = None,
    allow_non_loopback: bool = False,
    db_option: str | None = None,
    bulletin_file: Path | None = None,
    poll_seconds: float | None = None,
    refresh_seconds: float | None = None,
    open_after_polls: int | None = None,
    model_health: bool = False,
    poll: bool = True,
) -> MonitorConfig:
    service, record = monitor_service(inventory)
    address = bind or record.bind
    if not is_loopback(address):
        declared = not is_loopback(record.bind)
        if not (declared and allow_non_loopback):
            missing = "--allow-non-loopback" if declared else f"the inventory's port {record.port} bind"
            raise MonitorConfigError(
                f"refusing to bind {address}: the monitor is local only; a non-loopback bind needs both the "
                f"inventory (ports: {record.service}:{record.port} bind, now {record.bind}) and "
                f"--allow-non-loopback, and {missing} does not say so"
            )
    interval = poll_seconds or service.poll_interval or DEFAULT_POLL_SECONDS
    if interval < 1:
        raise MonitorConfigError(f"--poll-interval {interval:g}: at least 1 second")
    refresh = refresh_seconds or DEFAULT_REFRESH_SECONDS
    if refresh <= 0:
        raise MonitorConfigError(f"--refresh-interval {refresh:g}: must be positive")
    threshold = open_after_polls or service.open_after_polls or DEFAULT_OPEN_AFTER_POLLS
    if not 1 <= threshold <= MAX_OPEN_AFTER_POLLS:
        raise MonitorConfigError(f"--open-after-polls {threshold}: from 1 to {MAX_OPEN_AFTER_POLLS}")
    if port is not None:
        record = record.model_copy(update={"port": port})
    return MonitorConfig(
        inventory=inventory,
        service=service,
        port=record,
        bind=address,
        db_option=db_option,
        bulletin_file=bulletin_file or default_bulletin_file(),
        poll_seconds=float(interval),
        refresh_seconds=float(refresh),
        open_after_polls=threshold,
        model_health=model_health,
        poll=poll,
    )
