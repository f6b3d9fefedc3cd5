"""Writing a run into the system database, and reading the bulletin back out of it.

One run is one transaction: the inventory's records are upserted, the run and each of its
results are recorded, each health check's last status is updated, and the bulletin is
folded and appended to. The fold happens under the bulletin lock (``db.lock_bulletin``):
deciding "is this already open" and appending the event cannot interleave with another
runner doing the same, so a problem two runners see at the same moment is opened once.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from filelock import FileLock
from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from conformance.bulletin import events
from conformance.bulletin.flapping import FlapPolicy
from conformance.bulletin.store import (
    LOCK_TIMEOUT_SECONDS,
    BulletinUpdate,
    open_problems,
    plan_acknowledgement,
    plan_update,
    utc_now,
)
from conformance.inventory.model import Inventory
from conformance.redact import redact
from conformance.results import Outcome, Result
from conformance.store import schema
from conformance.store.db import lock_bulletin

# The health contract's registry id (``contracts/health_endpoint.py``): the subjects whose
# outcome is a health check's last status. Spelled here, not imported: the store must not
# load the contract registry.
HEALTH_CHECK_ID = "health-endpoint"


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    runner: str
    harness_version: str
    complete: bool
    started_at: datetime | None = None
    finished_at: datetime | None = None  # default: when it is recorded (a simulated clock gives its own)


def entry_to_row(entry: dict[str, Any], layer: str) -> dict[str, Any]:
    """A bulletin JSON Lines entry as a ``bulletin`` row (the same fields)."""
    row = {name: entry.get(name) for name in schema.BULLETIN_FIELDS}
    row["layer"] = row["layer"] or layer
    row["summary"] = row["summary"] or ""
    row["details"] = list(row["details"] or [])
    row["evidence"] = dict(row["evidence"] or {})
    row["blocked"] = list(row["blocked"] or [])
    row["extra"] = {key: value for key, value in entry.items() if key not in schema.BULLETIN_FIELDS} or None
    return row


def row_to_entry(row: Any) -> dict[str, Any]:
    entry = {name: getattr(row, name) for name in schema.BULLETIN_FIELDS}
    entry.update(row.extra or {})
    return entry


def bulletin_entries(
    connection: Connection, layer: str | None = None, bookkeeping: bool = False
) -> list[dict[str, Any]]:
    """Every bulletin event, in the order it was written (of one layer, if given).

    ``bookkeeping``: also the ``state`` and ``run`` events that thresholds and flapping fold.
    """
    query = select(schema.bulletin).order_by(schema.bulletin.c.id)
    if layer is not None:
        query = query.where(schema.bulletin.c.layer == layer)
    if not bookkeeping:
        query = query.where(schema.bulletin.c.event.not_in(sorted(events.BOOKKEEPING)))
    return [row_to_entry(row) for row in connection.execute(query)]


def _now() -> datetime:
    return datetime.now(UTC)


def _upsert(connection: Connection, table: Table, layer: str, rows: Sequence[dict[str, Any]]) -> None:
    """Insert or update the layer's ``rows`` by primary key; delete its rows no longer listed."""
    keys = [column.name for column in table.primary_key.columns]
    if rows:
        # Each dialect's upsert is imported where it is used: the PostgreSQL dialect (and the
        # asyncio it pulls in) would cost every SQLite run about 25 ms of start-up.
        name = "postgresql" if connection.dialect.name == "postgresql" else "sqlite"
        dialect: Any = importlib.import_module(f"sqlalchemy.dialects.{name}")
        statement = dialect.insert(table)
        changed = {column: statement.excluded[column] for column in rows[0] if column not in keys}
        connection.execute(statement.on_conflict_do_update(index_elements=keys, set_=changed), list(rows))
    wanted = {tuple(row[key] for key in keys) for row in rows}
    key_columns = [table.c[key] for key in keys]
    for existing in connection.execute(select(*key_columns).where(table.c.layer == layer)).all():
        if tuple(existing) not in wanted:
            connection.execute(
                delete(table).where(*(column == value for column, value in zip(key_columns, existing, strict=True)))
            )


def health_url(inventory: Inventory, check_id: str) -> tuple[str, str, int, str]:
    """(service, host, port, URL) of a health check; loopback URLs are seen from the host itself."""
    check = next(record for record in inventory.health_checks if record.id == check_id)
    service = inventory.service(check.service)
    host = inventory.host(service.host)
    address = "127.0.0.1" if check.vantage == "loopback" else (host.address or host.name)
    if ":" in address:
        address = f"[{address}]"
    return service.name, host.name, check.port, f"http://{address}:{check.port}{check.path}"


def upsert_inventory(connection: Connection, inventory: Inventory) -> None:
    layer = inventory.layer.name
    now = _now()
    _upsert(
        connection,
        schema.owners,
        layer,
        [
            {"layer": layer, "id": owner.id, "kind": owner.kind, "description": owner.description, "updated_at": now}
            for owner in inventory.owners
        ],
    )
    _upsert(
        connection,
        schema.services,
        layer,
        [
            {
                "layer": layer,
                "name": service.name,
                "title": service.title,
                "kind": service.kind,
                "host": service.host,
                "tier": service.tier,
                "role": service.role,
                "state": service.state,
                "owner": inventory.owner_of(service),
                "unit": service.unit.name if service.unit else None,
                "updated_at": now,
            }
            for service in inventory.services
        ],
    )
    _upsert(
        connection,
        schema.ports,
        layer,
        [
            {
                "layer": layer,
                "host": port.host,
                "port": port.port,
                "service": port.service,
                "instance": port.instance,
                "bind": port.bind,
                "exposure": port.exposure,
                "protocol": port.protocol,
                "state": port.state,
                "model": port.model,
                "updated_at": now,
            }
            for port in inventory.ports
        ],
    )
    checks = []
    for check in inventory.health_checks:
        service, host, port, url = health_url(inventory, check.id)
        checks.append(
            {
                "layer": layer,
                "id": check.id,
                "service": service,
                "host": host,
                "port": port,
                "url": url,
                "vantage": check.vantage,
                "updated_at": now,
            }
        )
    _upsert(connection, schema.health_checks, layer, checks)
    _upsert(
        connection,
        schema.dependencies,
        layer,
        [
            {
                "layer": layer,
                "source": dependency.source,
                "target": dependency.target,
                "kind": dependency.kind,
                "description": dependency.description,
                "updated_at": now,
            }
            for dependency in inventory.dependencies
        ],
    )


def record_results(connection: Connection, inventory: Inventory, results: Sequence[Result], run: RunInfo) -> None:
    counts = dict.fromkeys(Outcome, 0)
    for result in results:
        counts[result.outcome] += 1
    connection.execute(
        insert(schema.runs).values(
            id=run.run_id,
            layer=inventory.layer.name,
            runner=run.runner[:128],
            inventory=inventory.source_path,
            harness_version=run.harness_version[:32],
            finished_at=run.finished_at or _now(),
            started_at=run.started_at,
            complete=run.complete,
            passed=counts[Outcome.PASSED],
            violated=counts[Outcome.VIOLATED],
            broken=counts[Outcome.BROKEN],
            skipped=counts[Outcome.SKIPPED],
            waived=counts[Outcome.WAIVED],
        )
    )
    rows = [
        {
            "run": run.run_id,
            "fingerprint": result.subject.fingerprint,
            "layer": result.subject.layer or inventory.layer.name,
            "check": result.subject.check,
            "contract": result.subject.contract,
            "host": result.subject.host,
            "service": result.subject.service,
            "port": result.subject.port,
            "item": result.subject.item,
            "owner": result.subject.owner,
            "severity": result.subject.severity,
            "outcome": result.outcome.value,
            "summary": redact(result.summary),
            "blocked_by": result.blocked_by,
            "latency_ms": result.latency_ms,
            "details": [redact(line) for line in result.details],
            "evidence": {key: redact(value)[:2000] for key, value in result.evidence.items()},
        }
        for result in results
        if result.subject is not None
    ]
    if rows:
        connection.execute(insert(schema.results), rows)


def update_health_checks(connection: Connection, inventory: Inventory, results: Sequence[Result], run_id: str) -> None:
    """Each health check's last status, when it was checked, its latency, and since when it holds.

    A skipped check (one that makes model calls, not asked for) was not checked: its row
    keeps what the last real check found.
    """
    table = schema.health_checks
    layer = inventory.layer.name
    now = _now()
    for result in results:
        subject = result.subject
        if subject is None or subject.check != HEALTH_CHECK_ID or not subject.item or result.outcome is Outcome.SKIPPED:
            continue
        key = (table.c.layer == layer, table.c.id == subject.item)
        previous = connection.execute(select(table.c.last_status, table.c.last_changed).where(*key)).first()
        if previous is None:
            continue
        changed = previous.last_changed if previous.last_status == result.outcome.value else now
        connection.execute(
            update(table)
            .where(*key)
            .values(
                last_status=result.outcome.value,
                last_summary=redact(result.summary)[:500],
                last_checked=now,
                latency_ms=result.latency_ms,
                last_changed=changed,
                last_run=run_id,
            )
        )


def carry_entries(
    connection: Connection, layer: str, file_entries: list[dict[str, Any]], pending: list[dict[str, Any]]
) -> int:
    """Bring into the database what only the file has; the caller holds the bulletin lock.

    An empty database (for this layer) takes the whole file: that is the migration from the
    file-only bulletin, so every open entry stays open with its history. Otherwise only
    ``pending`` entries (written to the file while the database could not be written) are
    added, each once.
    """
    existing = connection.execute(
        select(func.count()).select_from(schema.bulletin).where(schema.bulletin.c.layer == layer)
    ).scalar_one()
    carried = file_entries if existing == 0 else pending
    if existing and carried:
        known = {
            (row.run, row.event, row.fingerprint)
            for row in connection.execute(
                select(schema.bulletin.c.run, schema.bulletin.c.event, schema.bulletin.c.fingerprint).where(
                    schema.bulletin.c.layer == layer
                )
            )
        }
        carried = [
            entry for entry in carried if (entry.get("run"), entry.get("event"), entry.get("fingerprint")) not in known
        ]
    if carried:
        connection.execute(insert(schema.bulletin), [entry_to_row(entry, layer) for entry in carried])
    return len(carried)


def fold_bulletin(
    connection: Connection,
    layer: str,
    results: list[Result],
    run: RunInfo,
    reminder_after_hours: float | None,
    after_read: Callable[[], None] | None = None,
    policy: FlapPolicy | None = None,
    now: datetime | None = None,
) -> BulletinUpdate:
    """Decide this run's bulletin events from the table's history and append them.

    The caller holds the bulletin lock for the whole transaction. ``after_read`` runs
    between the decision and the append: the concurrency tests widen that window with it.
    """
    history = bulletin_entries(connection, layer, bookkeeping=True)
    new_entries, result = plan_update(
        history, results, run.run_id, reminder_after_hours, run.complete, now=now, policy=policy
    )
    if after_read is not None:
        after_read()
    if new_entries:
        connection.execute(insert(schema.bulletin), [entry_to_row(entry, layer) for entry in new_entries])
    return result


RETENTION_ENV = "CONFORMANCE_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 30.0


def retention_days() -> float:
    """How long the run history (``runs``, ``results`` and the runs' bookkeeping events) is kept."""
    try:
        days = float(os.environ.get(RETENTION_ENV) or DEFAULT_RETENTION_DAYS)
    except ValueError:
        return DEFAULT_RETENTION_DAYS
    return days if days > 0 else DEFAULT_RETENTION_DAYS


def prune_history(connection: Connection, layer: str, now: datetime, days: float) -> int:
    """The retention rule: runs older than ``days``, their results and their ``run`` events go.

    Escalations and ``state`` events stay (they are what is open, and the fold needs each
    check's last state); a run event older than the retention is far outside every flap window.
    Returns the number of runs removed.
    """
    cutoff = now - timedelta(days=days)
    old = select(schema.runs.c.id).where(schema.runs.c.layer == layer, schema.runs.c.finished_at < cutoff)
    ids = [row.id for row in connection.execute(old)]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        connection.execute(delete(schema.results).where(schema.results.c.run.in_(chunk)))
        connection.execute(
            delete(schema.bulletin).where(
                schema.bulletin.c.layer == layer,
                schema.bulletin.c.event == events.RUN,
                schema.bulletin.c.run.in_(chunk),
            )
        )
        connection.execute(delete(schema.runs).where(schema.runs.c.id.in_(chunk)))
    return len(ids)


def record_run(
    engine: Engine,
    inventory: Inventory,
    results: list[Result],
    run: RunInfo,
    file_entries: list[dict[str, Any]] | None = None,
    pending: list[dict[str, Any]] | None = None,
    after_read: Callable[[], None] | None = None,
    lock: bool = True,
    policy: FlapPolicy | None = None,
    now: datetime | None = None,
) -> BulletinUpdate:
    """The whole run in one transaction; nothing is written unless everything is."""
    layer = inventory.layer.name
    with engine.begin() as connection:
        if lock:
            lock_bulletin(connection)
        carry_entries(connection, layer, file_entries or [], pending or [])
        upsert_inventory(connection, inventory)
        record_results(connection, inventory, results, run)
        update_health_checks(connection, inventory, results, run.run_id)
        prune_history(connection, layer, now or _now(), retention_days())
        return fold_bulletin(
            connection, layer, results, run, inventory.bulletin.reminder_after_hours, after_read, policy, now
        )


def write_bulletin_file(engine: Engine, path: Path, layer: str) -> int:
    """Write the bulletin file from the database's state; returns the number of open entries.

    Read inside the file lock, so of two runners sharing the file the last to write has
    the newest state; replaced atomically, so a reader never sees half a file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_SECONDS):
        with engine.connect() as connection:
            entries = bulletin_entries(connection, layer, bookkeeping=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        partial.write_text("".join(json.dumps(entry, sort_keys=True) + "\n" for entry in entries), encoding="utf-8")
        partial.replace(path)
    return len(open_problems(entries))


def acknowledge_in_db(
    engine: Engine,
    fingerprint: str,
    by: str,
    reason: str,
    until: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Record an ``acknowledged`` event in the database's bulletin (the same event as the file's)."""
    with engine.begin() as connection:
        lock_bulletin(connection)
        entry = plan_acknowledgement(bulletin_entries(connection), fingerprint, by, reason, until, now or utc_now())
        connection.execute(insert(schema.bulletin), [entry_to_row(entry, str(entry.get("layer") or ""))])
    return entry


def import_entries(engine: Engine, entries: Iterable[dict[str, Any]], default_layer: str) -> int:
    """Import a bulletin file's entries into a database whose bulletin is empty."""
    rows = [entry_to_row(entry, default_layer) for entry in entries]
    with engine.begin() as connection:
        lock_bulletin(connection)
        if connection.execute(select(func.count()).select_from(schema.bulletin)).scalar_one():
            raise ValueError("the database's bulletin is not empty; import only into an empty one")
        if rows:
            connection.execute(insert(schema.bulletin), rows)
    return len(rows)


MONITOR_RUN_PREFIX = "monitor-"


def _keep_poll_events(policy: FlapPolicy) -> int:
    """How many of the monitor's ``run`` events the fold can still need: the flap window, or the
    longest failure threshold, whichever is larger (older ones change no decision)."""
    thresholds = [policy.open_after_failures, *policy.per_check.values()]
    return max(policy.window, *thresholds) + 1


def prune_poll_events(connection: Connection, layer: str, keep: int) -> int:
    """The retention rule of the monitor's bookkeeping: only its newest ``keep`` poll ``run``
    events stay (escalations and ``state`` events are never pruned). Returns rows deleted."""
    table = schema.bulletin
    mine = (table.c.layer == layer, table.c.event == events.RUN, table.c.run.startswith(MONITOR_RUN_PREFIX))
    cutoff = connection.execute(
        select(table.c.id).where(*mine).order_by(table.c.id.desc()).offset(keep - 1).limit(1)
    ).scalar()
    if cutoff is None:
        return 0
    return connection.execute(delete(table).where(*mine, table.c.id < cutoff)).rowcount or 0


def record_poll(
    engine: Engine,
    inventory: Inventory,
    results: list[Result],
    poll_id: str,
    policy: FlapPolicy,
    now: datetime | None = None,
    recovered_hosts: Iterable[str] = (),
) -> BulletinUpdate:
    """One health poll of the system monitor, in one transaction under the bulletin lock.

    Each polled check's last status, latency and last change go to ``health_checks``; the
    bulletin is folded as a run scoped to the polled fingerprints (``plan_update(scope=...)``),
    so the suites' windows and streaks are untouched. A host whose down entry this monitor
    opened and whose endpoints answer again (``recovered_hosts``) gets that entry resolved; an
    entry the suites opened (SSH, identity) is theirs to resolve. No ``runs``/``results`` rows:
    a poll every 30 s is not a run of the suites, and ``health_checks`` holds its outcome.
    """
    from conformance.outcomes import host_root_subject
    from conformance.results import passed

    layer = inventory.layer.name
    moment = now or utc_now()
    with engine.begin() as connection:
        lock_bulletin(connection)
        known = connection.execute(
            select(func.count()).select_from(schema.health_checks).where(schema.health_checks.c.layer == layer)
        ).scalar_one()
        if known != len(inventory.health_checks):
            upsert_inventory(connection, inventory)
        update_health_checks(connection, inventory, results, poll_id)
        history = bulletin_entries(connection, layer, bookkeeping=True)
        problems = open_problems(history)
        # A check an open entry already lists as blocked (the suites found its unit down, its
        # host unreachable) is that entry's symptom, not a new problem: one outage, one entry.
        explained = {
            dependent: problem.fingerprint
            for problem in problems.values()
            for dependent in (problem.last.get("blocked") or problem.opened.get("blocked") or [])
        }
        batch = [
            replace(result, blocked_by=explained[result.subject.fingerprint])
            if result.subject is not None
            and result.outcome is Outcome.BROKEN
            and result.blocked_by is None
            and result.subject.fingerprint in explained
            else result
            for result in results
        ]
        for host in recovered_hosts:
            root = host_root_subject(inventory, host)
            problem = problems.get(root.fingerprint)
            if problem is not None and str(problem.opened.get("run", "")).startswith(MONITOR_RUN_PREFIX):
                batch.append(passed(f"{host} answers its health endpoints again").about(root))
        scope = sorted({result.subject.fingerprint for result in batch if result.subject is not None})
        new_entries, update = plan_update(
            history,
            batch,
            poll_id,
            inventory.bulletin.reminder_after_hours,
            complete_run=False,
            now=moment,
            policy=policy,
            scope=scope,
        )
        if new_entries:
            connection.execute(insert(schema.bulletin), [entry_to_row(entry, layer) for entry in new_entries])
        prune_poll_events(connection, layer, _keep_poll_events(policy))
    return update
