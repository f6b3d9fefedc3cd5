"""The monitor's own health polls: the inventory's read-only health checks, on a short interval.

Each poll probes every applicable health check once (GET only, bounded by the check's timeout
and the probes' size limit, all at once in a small thread pool), judges each answer with the
health contract's own rule (``health_endpoint.judge_answer``) under the same subject, so the
fingerprints are the suites' own, and records the poll in one transaction: each check's last
status, latency and time of last change in ``health_checks``, and the bulletin folded through
the suites' correlation and flap rules (``plan_update``, as a run scoped to these checks).

Which checks, and from where: a check of a service on the monitor's own host is asked on
127.0.0.1 (the monitor runs there; the seed's health checks are ``curl http://127.0.0.1:4000``);
a LAN check of another host is asked at that host's address; a loopback check of another
host cannot be asked from here (the suites ask it over SSH) and is left out, as are the
monitor's own endpoint, services that are not live, and checks that make model calls unless
``--model-health`` is given (LiteLLM's billed ``/health``).

A host none of whose checks got any answer, with at least one of them timing out or finding
no route, is down as a whole: its checks are broken, blocked by the host's one root cause
(the host-identity fingerprint the suites use for an unreachable host), so the Studio down is
one bulletin entry, whoever sees it first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from conformance.contracts.health_endpoint import CONTRACT as HEALTH_CONTRACT
from conformance.contracts.health_endpoint import judge_answer, secret_of
from conformance.inventory.model import HealthCheck, Inventory, Port
from conformance.monitor.config import MonitorConfig
from conformance.outcomes import host_root_subject
from conformance.probes import ProbeResult, http_get, url_for
from conformance.redact import redact, register_secret
from conformance.results import Outcome, Result, Subject, broken
from conformance.secrets import SecretSources

MAX_PARALLEL = 8


@dataclass(frozen=True)
class PlannedCheck:
    check: HealthCheck
    port: Port
    host: str
    url: str
    subject: Subject
    secret: str | None  # the inventory secret sent as a bearer token


@dataclass(frozen=True)
class Skipped:
    check: HealthCheck
    reason: str


@dataclass(frozen=True)
class Poll:
    """One poll: when, how long, and a Result per planned check."""

    poll_id: str
    started: datetime
    seconds: float
    results: tuple[Result, ...]


def health_subject(inventory: Inventory, check: HealthCheck) -> Subject:
    """The subject the health contract's case of ``check`` has (``contracts.base.Case.subject``)."""
    service = inventory.service(check.service)
    return Subject(
        check=HEALTH_CONTRACT.id,
        host=service.host,
        service=service.name,
        port=check.port,
        item=check.id,
        owner=inventory.owner_of(service),
        severity="major",
        layer=inventory.layer.name,
    )


def plan(config: MonitorConfig) -> tuple[list[PlannedCheck], list[Skipped]]:
    """The checks this monitor polls, and every other one with the reason (no I/O)."""
    inventory = config.inventory
    planned: list[PlannedCheck] = []
    skipped: list[Skipped] = []
    for check in inventory.health_checks:
        service = inventory.service(check.service)
        port = next((p for p in inventory.ports_of(service.name) if p.port == check.port), None)
        if service.name == config.service.name:
            skipped.append(Skipped(check, "the monitor's own endpoint: the suites check it"))
            continue
        if not service.is_live or port is None or port.state != "active":
            skipped.append(Skipped(check, f"{service.name} is {service.state}: {service.state_reason or 'not live'}"))
            continue
        if check.calls_models and not config.model_health:
            skipped.append(Skipped(check, f"{check.path} makes real model calls; start with --model-health"))
            continue
        if check.per_model:
            skipped.append(Skipped(check, f"{check.path} per model is a suites check (one call per handle)"))
            continue
        if service.host == config.own_host:
            address = "127.0.0.1"
        elif check.vantage == "loopback":
            skipped.append(Skipped(check, f"loopback check of {service.host}: only the suites reach it (over SSH)"))
            continue
        else:
            host = inventory.host(service.host)
            if not host.address:
                skipped.append(Skipped(check, f"no address for {host.name} at this site"))
                continue
            address = host.address
        planned.append(
            PlannedCheck(
                check,
                port,
                service.host,
                url_for(address, check.port, check.path),
                health_subject(inventory, check),
                secret_of(check),
            )
        )
    return planned, skipped


Probe = Callable[[str, float, dict[str, str] | None], ProbeResult]


class HealthPoller:
    """Polls the planned checks; secrets are looked up per poll (a rotated key is picked up)."""

    def __init__(self, config: MonitorConfig, probe: Probe = http_get) -> None:
        self.config = config
        self.planned, self.skipped = plan(config)
        self.sources = SecretSources.of(config.inventory)
        self._probe = probe
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL, len(self.planned))))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _headers(self, item: PlannedCheck) -> tuple[dict[str, str] | None, str | None]:
        if item.secret is None:
            return None, None
        record = self.config.inventory.secret_env(item.secret)
        value = self.sources.value(record) if record is not None else None
        if not value:
            where = self.sources.where(record) if record is not None else f"declare the secret {item.secret!r}"
            return None, f"{item.check.path} needs the {item.secret} secret: {where}"
        register_secret(value)
        return {"Authorization": f"Bearer {value}"}, None

    def _one(self, item: PlannedCheck) -> tuple[PlannedCheck, Result, ProbeResult | None]:
        try:
            headers, missing = self._headers(item)
            if missing is not None:
                return item, broken(missing).about(item.subject), None
            probe = self._probe(item.url, item.check.timeout, headers)
            return item, judge_answer(item.check, item.port, probe).about(item.subject), probe
        except Exception as exc:  # noqa: BLE001 - every failure becomes a result
            text = f"internal error in the monitor's poll of {item.check.id}: {type(exc).__name__}: {redact(str(exc))}"
            return item, broken(text[:500]).about(item.subject), None

    def poll(self, now: datetime | None = None) -> Poll:
        started = now or datetime.now(UTC)
        clock = time.monotonic()
        answers = list(self._pool.map(self._one, self.planned))
        results = [result for _, result, _ in answers]
        results = one_cause_per_listener(answers, results)
        results = block_down_hosts(self.config.inventory, answers, results)
        poll_id = f"monitor-{started.strftime('%Y%m%dT%H%M%S%fZ')}"
        return Poll(poll_id, started, time.monotonic() - clock, tuple(results))


def one_cause_per_listener(
    answers: Sequence[tuple[PlannedCheck, Result, ProbeResult | None]], results: list[Result]
) -> list[Result]:
    """Several checks refused on one port are one cause (nothing listens there): the first check's
    entry leads, the others are listed as blocked by it (LiteLLM down is one entry, not two)."""
    refused: dict[tuple[str, int], list[int]] = {}
    for index, (item, result, probe) in enumerate(answers):
        if result.outcome is Outcome.BROKEN and probe is not None and probe.error_kind == "refused":
            refused.setdefault((item.host, item.port.port), []).append(index)
    out = list(results)
    for indexes in refused.values():
        if len(indexes) < 2:
            continue
        ordered = sorted(indexes, key=lambda index: answers[index][0].subject.fingerprint)
        lead = answers[ordered[0]][0].subject.fingerprint
        for index in ordered[1:]:
            out[index] = replace(out[index], blocked_by=lead)
    return out


def block_down_hosts(
    inventory: Inventory,
    answers: Sequence[tuple[PlannedCheck, Result, ProbeResult | None]],
    results: list[Result],
) -> list[Result]:
    """Checks of a host that answered nothing at all, timing out or unroutable: one root cause."""
    by_host: dict[str, list[ProbeResult | None]] = {}
    for item, _, probe in answers:
        by_host.setdefault(item.host, []).append(probe)
    down = {
        host
        for host, probes in by_host.items()
        if probes
        and all(probe is not None and not probe.answered for probe in probes)
        and any(probe is not None and probe.error_kind in ("timeout", "unreachable") for probe in probes)
    }
    if not down:
        return results
    out = []
    for host in sorted(down):
        first = next(probe for item, _, probe in answers if item.host == host and probe is not None)
        out.append(
            broken(
                f"{host} could not be checked: none of its health endpoints answers ({first.describe()})",
                host=host,
                seen_by="the system monitor's health polls",
            ).about(host_root_subject(inventory, host))
        )
    for (item, _, probe), result in zip(answers, results, strict=True):
        if item.host in down and result.outcome is Outcome.BROKEN:
            root = host_root_subject(inventory, item.host)
            cause = probe.describe() if probe is not None else result.summary
            result = replace(
                broken(
                    f"{item.host} could not be checked: none of its health endpoints answers ({cause})",
                    blocked_by=root.fingerprint,
                    **result.evidence,
                ),
                latency_ms=result.latency_ms,
            ).about(item.subject)
        out.append(result)
    return out
