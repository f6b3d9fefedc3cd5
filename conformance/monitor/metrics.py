"""A snapshot as Prometheus / OpenMetrics text, written by ``prometheus_client`` (never by hand).

Metric names and labels (the README's "System monitor" lists them with examples):

- ``gateway_conformance_check_state{contract,host,service,fingerprint,state}``: 1 for the
  check's current outcome, 0 for the other four (passed, violated, broken, skipped, waived);
- ``gateway_conformance_check_since_timestamp_seconds{contract,host,service,fingerprint}``;
- ``gateway_conformance_bulletin_open_entries{owner,severity,state}``;
- ``gateway_conformance_health_up{check,service,host}``, ``..._health_latency_seconds``,
  ``..._health_last_change_timestamp_seconds``, ``..._health_last_checked_timestamp_seconds``;
- ``gateway_conformance_runner_last_run_timestamp_seconds{runner}``,
  ``..._runner_last_run_duration_seconds{runner}``;
- ``gateway_conformance_monitor_database_up``, ``..._monitor_snapshot_age_seconds``,
  ``..._monitor_refresh_seconds``, ``..._monitor_poll_seconds``, and the process's own
  ``process_*`` metrics (``ProcessCollector``).

Cardinality is bounded by the inventory, never by traffic or by time: one ``check_state``
series per (case, outcome), i.e. 5 per check of the suites (a 2-host layer has about 50 checks,
200 hosts about 5,000); bulletin series are owners x 3 severities x 3 states; health series one
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
        labels = ["contract", "host", "service", "fingerprint"]
        state = GaugeMetricFamily(
            f"{PREFIX}_check_state",
            "The current outcome of each check of the suites (1 for its state, 0 for the others).",
            labels=[*labels, "state"],
        )
        since = GaugeMetricFamily(
            f"{PREFIX}_check_since_timestamp_seconds",
            "When each check's current outcome began (Unix time; absent when older than the history held).",
            labels=labels,
        )
        for check in snapshot.checks:
            values = [check.contract or check.check, check.host or "", check.service or "", check.fingerprint]
            for name in STATES:
                state.add_metric([*values, name], 1.0 if check.outcome == name else 0.0)
            if check.since is not None:
                since.add_metric(values, check.since.timestamp())
        yield state
        yield since

        entries = GaugeMetricFamily(
            f"{PREFIX}_bulletin_open_entries",
            "Open bulletin entries by owner, severity and state (open, acknowledged, flapping).",
            labels=["owner", "severity", "state"],
        )
        counts: dict[tuple[str, str, str], int] = {}
        owners = {owner.id for owner in self.inventory.owners}
        for problem in snapshot.problems.values():
            owner = str(problem.opened.get("owner") or "")
            severity = str(problem.opened.get("severity") or "")
            status = (
                "flapping" if problem.flapping else ("acknowledged" if problem.ack_active(snapshot.read_at) else "open")
            )
            key = (owner if owner in owners else "other", severity if severity in SEVERITIES else "other", status)
            counts[key] = counts.get(key, 0) + 1
        for owner in sorted(owners):
            for severity in SEVERITIES:
                for status in ENTRY_STATES:
                    entries.add_metric([owner, severity, status], float(counts.pop((owner, severity, status), 0)))
        for key, count in sorted(counts.items()):
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
