"""The layer's state as the system database holds it, read into one immutable ``Snapshot``.

Read-only: only SELECTs. The reader is incremental, so a refresh every few seconds costs what
changed, not the database's size: the newest result of every check and the strip of its last
24 hours (half-hour cells, the worst outcome of each) are kept in memory and advanced by the
result rows added since the last refresh (``results.id`` grows). The bulletin's escalations,
the health checks and the runs are small tables and are read whole.

Memory is bounded by the inventory, not by time: one latest row per fingerprint, and at most
``history_hours * 2`` cells per fingerprint, the older ones dropped at each refresh.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from conformance.bulletin.store import OpenProblem, open_problems
from conformance.store import schema
from conformance.store.records import bulletin_entries

CELL_SECONDS = 1800
# Worst first: a cell shows the worst outcome any run of that half hour had.
OUTCOME_RANK = {"violated": 5, "broken": 4, "waived": 3, "passed": 2, "skipped": 1}


@dataclass(frozen=True)
class CheckState:
    fingerprint: str
    check: str
    contract: str | None
    host: str | None
    service: str | None
    port: int | None
    item: str | None
    owner: str
    severity: str
    outcome: str
    summary: str
    run: str
    runner: str
    checked_at: datetime | None
    since: datetime | None  # when this outcome started (None: before the history the reader holds)
    blocked_by: str | None


@dataclass(frozen=True)
class HealthState:
    id: str
    service: str
    host: str
    port: int
    url: str
    vantage: str
    last_status: str | None
    last_summary: str | None
    last_checked: datetime | None
    latency_ms: float | None
    last_changed: datetime | None
    last_run: str | None


@dataclass(frozen=True)
class RunnerState:
    runner: str
    run: str
    finished_at: datetime
    started_at: datetime | None
    complete: bool
    counts: Mapping[str, int]

    @property
    def seconds(self) -> float | None:
        if self.started_at is None:
            return None
        return max(0.0, (self.finished_at - self.started_at).total_seconds())


@dataclass(frozen=True)
class Snapshot:
    """Everything a page, a metric or an API answer shows, as of ``read_at``."""

    read_at: datetime
    database: str
    checks: tuple[CheckState, ...] = ()
    strips: Mapping[str, Mapping[int, str]] = field(default_factory=dict)  # fingerprint -> cell -> outcome
    problems: Mapping[str, OpenProblem] = field(default_factory=dict)
    health: tuple[HealthState, ...] = ()
    runners: tuple[RunnerState, ...] = ()
    newest_run_at: datetime | None = None
    error: str | None = None  # set when the last refresh failed: this is the last known state
    stale_since: datetime | None = None

    @property
    def stale(self) -> bool:
        return self.error is not None


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands timezone-aware columns back naive (in UTC); PostgreSQL keeps the zone.
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def cell_of(moment: datetime) -> int:
    return math.floor(moment.timestamp() / CELL_SECONDS)


class StateReader:
    """Reads snapshots of one layer; keeps the incremental part between refreshes."""

    def __init__(self, layer: str, database: str, history_hours: float = 24.0) -> None:
        self.layer = layer
        self.database = database
        self.history = timedelta(hours=history_hours)
        self._last_result_id = 0
        self._latest: dict[str, CheckState] = {}
        self._strips: dict[str, dict[int, str]] = {}

    def _advance(self, connection: Connection, now: datetime) -> None:
        results, runs = schema.results, schema.runs
        query = (
            select(results, runs.c.finished_at, runs.c.runner)
            .join(runs, runs.c.id == results.c.run)
            .where(results.c.layer == self.layer, results.c.id > self._last_result_id)
            .order_by(results.c.id)
        )
        if self._last_result_id == 0:
            # First read: the history window, plus each older fingerprint's newest row.
            query = query.where(runs.c.finished_at >= now - self.history)
            newest = (
                select(func.max(results.c.id))
                .join(runs, runs.c.id == results.c.run)
                .where(results.c.layer == self.layer, runs.c.finished_at < now - self.history)
                .group_by(results.c.fingerprint)
            )
            older = (
                select(results, runs.c.finished_at, runs.c.runner)
                .join(runs, runs.c.id == results.c.run)
                .where(results.c.id.in_(newest))
                .order_by(results.c.id)
            )
            for row in connection.execute(older):
                self._take(row, in_window=False)
        for row in connection.execute(query):
            self._take(row, in_window=True)
        first = cell_of(now - self.history)
        for strip in self._strips.values():
            for cell in [cell for cell in strip if cell < first]:
                del strip[cell]

    def _take(self, row: Any, in_window: bool) -> None:
        self._last_result_id = max(self._last_result_id, int(row.id))
        finished = _aware(row.finished_at)
        previous = self._latest.get(row.fingerprint)
        since: datetime | None
        if previous is not None and previous.outcome == row.outcome:
            since = previous.since
        else:
            since = finished if (previous is not None or in_window) else None
        self._latest[row.fingerprint] = CheckState(
            fingerprint=row.fingerprint,
            check=row.check,
            contract=row.contract,
            host=row.host,
            service=row.service,
            port=row.port,
            item=row.item,
            owner=row.owner,
            severity=row.severity,
            outcome=row.outcome,
            summary=row.summary,
            run=row.run,
            runner=row.runner,
            checked_at=finished,
            since=since,
            blocked_by=row.blocked_by,
        )
        if in_window and finished is not None:
            strip = self._strips.setdefault(row.fingerprint, {})
            cell = cell_of(finished)
            if OUTCOME_RANK.get(row.outcome, 0) > OUTCOME_RANK.get(strip.get(cell, ""), 0):
                strip[cell] = row.outcome

    def version(self, connection: Connection) -> tuple[object, ...]:
        """A cheap fingerprint of what a snapshot shows: it changes whenever a runner or a poll writes."""
        layer = self.layer
        return (
            connection.execute(select(func.max(schema.results.c.id)).where(schema.results.c.layer == layer)).scalar(),
            connection.execute(select(func.max(schema.bulletin.c.id)).where(schema.bulletin.c.layer == layer)).scalar(),
            connection.execute(
                select(func.max(schema.health_checks.c.last_checked), func.count()).where(
                    schema.health_checks.c.layer == layer
                )
            ).one()[:],
            connection.execute(
                select(func.max(schema.runs.c.finished_at)).where(schema.runs.c.layer == layer)
            ).scalar(),
        )

    def read(self, connection: Connection, now: datetime | None = None) -> Snapshot:
        now = now or datetime.now(UTC)
        self._advance(connection, now)
        problems = open_problems(bulletin_entries(connection, self.layer))
        health = tuple(
            HealthState(
                id=row.id,
                service=row.service,
                host=row.host,
                port=row.port,
                url=row.url,
                vantage=row.vantage,
                last_status=row.last_status,
                last_summary=row.last_summary,
                last_checked=_aware(row.last_checked),
                latency_ms=row.latency_ms,
                last_changed=_aware(row.last_changed),
                last_run=row.last_run,
            )
            for row in connection.execute(
                select(schema.health_checks)
                .where(schema.health_checks.c.layer == self.layer)
                .order_by(schema.health_checks.c.id)
            )
        )
        runners: dict[str, RunnerState] = {}
        recent = (
            select(schema.runs)
            .where(schema.runs.c.layer == self.layer)
            .order_by(schema.runs.c.finished_at.desc())
            .limit(1000)
        )
        for row in connection.execute(recent):
            if row.runner in runners:
                continue
            runners[row.runner] = RunnerState(
                runner=row.runner,
                run=row.id,
                finished_at=_aware(row.finished_at) or now,
                started_at=_aware(getattr(row, "started_at", None)),
                complete=bool(row.complete),
                counts={
                    "passed": row.passed,
                    "violated": row.violated,
                    "broken": row.broken,
                    "skipped": row.skipped,
                    "waived": row.waived,
                },
            )
        ordered = tuple(sorted(runners.values(), key=lambda runner: runner.runner))
        return Snapshot(
            read_at=now,
            database=self.database,
            checks=tuple(sorted(self._latest.values(), key=lambda state: state.fingerprint)),
            strips={key: dict(value) for key, value in self._strips.items()},
            problems=problems,
            health=health,
            runners=ordered,
            newest_run_at=max((runner.finished_at for runner in ordered), default=None),
        )
