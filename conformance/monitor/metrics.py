"""A snapshot as Prometheus / OpenMetrics text, written by ``prometheus_client`` (never by hand).

Metric names and labels (the README's "System monitor" lists them with examples):

- ``gateway_conformance_check_status{contract,host,fingerprint}``: each check's current outcome
  as a code, 0 passed, 1 violated, 2 broken, 3 skipped, 4 waived (``!= 0`` with ``< 3`` is "does
  not hold"); one series per check, so 200 hosts are about 5,000 series, not five times that;
- ``gateway_conformance_check_failing_since_timestamp_seconds{contract,host,fingerprint}``: only
  for the checks that do not hold;
- ``gateway_conformance_checks{contract,state}``: how many checks of each contract are in each state;
- ``gateway_conformance_bulletin_open_entries{owner,severity,state}``;
- ``gateway_conformance_health_up{check,service,host}``, ``..._health_latency_seconds``,
  ``..._health_last_change_timestamp_seconds``, ``..._health_last_checked_timestamp_seconds``;
- ``gateway_conformance_runner_last_run_timestamp_seconds{runner}``,
  ``..._runner_last_run_duration_seconds{runner}``;
- ``gateway_conformance_monitor_database_up``, ``..._monitor_snapshot_age_seconds``,
  ``..._monitor_refresh_seconds``, ``..._monitor_poll_seconds``, and the process's own
  ``process_*`` metrics (``ProcessCollector``).

Cardinality is bounded by the inventory, never by traffic or by time: one ``check_status``
series per check of the suites (a 2-host layer has about 60, 200 hosts about 5,000), plus
contracts x 5 states; bulletin series are owners x 3 severities x 3 states; health series one
per declared health check; runner series one per runner name. No label ever carries a
summary, a URL's query or any free text, so nothing a host says can grow the label set.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from conformance.inventory.model import Inventory
from conformance.monitor.state import Snapshot

STATES = ("passed", "violated", "broken", "skipped", "waived")
STATUS_CODES = {state: code for code, state in enumerate(STATES)}
SEVERITIES = ("critical", "major", "minor")
ENTRY_STATES = ("open", "acknowledged", "flapping")
PREFIX = "gateway_conformance"


@dataclass
class MonitorTimings:
    """The monitor's own figures, as of the last refresh and poll."""

    refresh_seconds: float = 0.0
    poll_seconds: float | None = None
    polls: int = 0
    poll_failures: int = 0


class SnapshotCollector:
    """Yields the snapshot's families; ``describe`` returns nothing, so registering it reads no state."""

    def __init__(self, inventory: Inventory, snapshot: Snapshot, timings: MonitorTimings) -> None:
        self.inventory = inventory
        self.snapshot = snapshot
        self.timings = timings

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        snapshot = self.snapshot
        labels = ["contract", "host", "fingerprint"]
        status = GaugeMetricFamily(
            f"{PREFIX}_check_status",
            "Each check's current outcome: 0 passed, 1 violated, 2 broken (could not check), 3 skipped, 4 waived.",
            labels=labels,
        )
        since = GaugeMetricFamily(
            f"{PREFIX}_check_failing_since_timestamp_seconds",
            "When each check that does not hold began to fail (Unix time).",
            labels=labels,
        )
        counts: dict[tuple[str, str], int] = {}
        for check in snapshot.checks:
            contract = check.contract or check.check
            values = [contract, check.host or "", check.fingerprint]
            status.add_metric(values, float(STATUS_CODES.get(check.outcome, 2)))
            if check.outcome in ("violated", "broken") and check.since is not None:
                since.add_metric(values, check.since.timestamp())
            counts[(contract, check.outcome)] = counts.get((contract, check.outcome), 0) + 1
        yield status
        yield since
        per_contract = GaugeMetricFamily(
            f"{PREFIX}_checks", "Checks per contract and outcome.", labels=["contract", "state"]
        )
        for contract in sorted({contract for contract, _ in counts}):
            for name in STATES:
                per_contract.add_metric([contract, name], float(counts.get((contract, name), 0)))
        yield per_contract

        entries = GaugeMetricFamily(
            f"{PREFIX}_bulletin_open_entries",
            "Open bulletin entries by owner, severity and state (open, acknowledged, flapping).",
            labels=["owner", "severity", "state"],
        )
        by_key: dict[tuple[str, str, str], int] = {}
        owners = {owner.id for owner in self.inventory.owners}
        for problem in snapshot.problems.values():
            owner = str(problem.opened.get("owner") or "")
            severity = str(problem.opened.get("severity") or "")
            kind = (
                "flapping" if problem.flapping else ("acknowledged" if problem.ack_active(snapshot.read_at) else "open")
            )
            key = (owner if owner in owners else "other", severity if severity in SEVERITIES else "other", kind)
            by_key[key] = by_key.get(key, 0) + 1
        for owner in sorted(owners):
            for severity in SEVERITIES:
                for entry_state in ENTRY_STATES:
                    entries.add_metric(
                        [owner, severity, entry_state], float(by_key.pop((owner, severity, entry_state), 0))
                    )
        for key, count in sorted(by_key.items()):
            entries.add_metric(list(key), float(count))
        yield entries

        health_labels = ["check", "service", "host"]
        up = GaugeMetricFamily(
            f"{PREFIX}_health_up", "1 when the health check's last answer passed.", labels=health_labels
        )
        latency = GaugeMetricFamily(
            f"{PREFIX}_health_latency_seconds", "The health check's last latency.", labels=health_labels
        )
        changed = GaugeMetricFamily(
            f"{PREFIX}_health_last_change_timestamp_seconds",
            "When the health check's status last changed (Unix time).",
            labels=health_labels,
        )
        checked = GaugeMetricFamily(
            f"{PREFIX}_health_last_checked_timestamp_seconds",
            "When the health check was last checked (Unix time).",
            labels=health_labels,
        )
        for item in snapshot.health:
            values = [item.id, item.service, item.host]
            if item.last_status is not None:
                up.add_metric(values, 1.0 if item.last_status == "passed" else 0.0)
            if item.latency_ms is not None:
                latency.add_metric(values, item.latency_ms / 1000)
            if item.last_changed is not None:
                changed.add_metric(values, item.last_changed.timestamp())
            if item.last_checked is not None:
                checked.add_metric(values, item.last_checked.timestamp())
        yield from (up, latency, changed, checked)

        last = GaugeMetricFamily(
            f"{PREFIX}_runner_last_run_timestamp_seconds", "When each runner's last run ended.", labels=["runner"]
        )
        took = GaugeMetricFamily(
            f"{PREFIX}_runner_last_run_duration_seconds", "How long each runner's last run took.", labels=["runner"]
        )
        for runner in snapshot.runners:
            last.add_metric([runner.runner], runner.finished_at.timestamp())
            if runner.seconds is not None:
                took.add_metric([runner.runner], runner.seconds)
        yield last
        yield took

        yield GaugeMetricFamily(
            f"{PREFIX}_monitor_database_up",
            "1 when the last read of the system database worked.",
            value=0.0 if snapshot.stale else 1.0,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_monitor_snapshot_timestamp_seconds",
            "When the state shown was read.",
            value=snapshot.read_at.timestamp(),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_monitor_refresh_seconds",
            "How long the last read of the database took.",
            value=self.timings.refresh_seconds,
        )
        if self.timings.poll_seconds is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_monitor_poll_seconds",
                "How long the last health poll took.",
                value=self.timings.poll_seconds,
            )
        yield GaugeMetricFamily(f"{PREFIX}_monitor_polls", "Health polls made since start.", value=self.timings.polls)
        yield GaugeMetricFamily(
            f"{PREFIX}_monitor_poll_failures",
            "Health polls that could not be recorded since start.",
            value=self.timings.poll_failures,
        )


def exposition(inventory: Inventory, snapshot: Snapshot, timings: MonitorTimings) -> tuple[bytes, bytes]:
    """(Prometheus text 0.0.4, OpenMetrics 1.0.0) of the snapshot and the process."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(inventory, snapshot, timings))
    ProcessCollector(registry=registry)
    openmetrics: bytes = generate_openmetrics(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), openmetrics
