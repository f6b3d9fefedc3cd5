"""`conformance db ...`: the system database from the command line.

conformance db upgrade [--db URL]                   apply the schema migrations
conformance db status [--db URL] [--runs N]         open entries by owner, health checks, last runs
conformance db import-bulletin FILE [--db URL]      an old bulletin.jsonl into an empty database
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import URL, Engine

from conformance.bulletin.store import OpenProblem, open_problems, read_entries
from conformance.errors import InventoryError
from conformance.inventory.loader import INVENTORY_ENV, load_inventory
from conformance.inventory.model import Secret
from conformance.store import schema
from conformance.store.db import DB_ENV, database_url, describe, make_engine, upgrade, with_password
from conformance.store.records import bulletin_entries, import_entries
from conformance.store.session import STORE_FAILURES, failure_text

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_RUNS = 10


def default_bulletin_file() -> Path:
    return Path(os.environ.get("CONFORMANCE_BULLETIN") or PROJECT_ROOT / "reports" / "bulletin.jsonl")


def _inventory_secrets() -> Sequence[Secret]:
    """The inventory's secrets, for the database password (none if it cannot be loaded)."""
    path = os.environ.get(INVENTORY_ENV) or PROJECT_ROOT / "inventory" / "gateway.yaml"
    try:
        return load_inventory(path).secrets
    except InventoryError:
        return ()


def resolve(option: str | None, bulletin_file: Path | None = None) -> URL:
    return with_password(database_url(option, bulletin_file or default_bulletin_file()), _inventory_secrets())


def configured(option: str | None) -> bool:
    """Whether a database was named (otherwise `conformance bulletin` reads the file)."""
    return bool(option or os.environ.get(DB_ENV))


def _missing_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and not Path(url.database or "").exists()


def open_engine(url: URL) -> Engine:
    engine = make_engine(url)
    upgrade(engine)
    return engine


def open_entries_from(option: str | None, bulletin_file: Path | None = None) -> tuple[dict[str, OpenProblem], str]:
    """The open problems folded from the database's bulletin, and where they came from."""
    url = resolve(option, bulletin_file)
    engine = open_engine(url)
    try:
        with engine.connect() as connection:
            return open_problems(bulletin_entries(connection)), describe(url)
    finally:
        engine.dispose()


def _age(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "?"
    if then.tzinfo is None:  # SQLite keeps no zone; every stamp is written in UTC
        then = then.replace(tzinfo=UTC)
    minutes = max(0, int((now - then).total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    if days:
        return f"{days} d {rest // 60} h"
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def status_report(engine: Engine, runs: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    with engine.connect() as connection:
        problems = open_problems(bulletin_entries(connection))
        checks = connection.execute(
            select(schema.health_checks).order_by(schema.health_checks.c.layer, schema.health_checks.c.id)
        ).all()
        last_runs = connection.execute(select(schema.runs).order_by(schema.runs.c.finished_at.desc()).limit(runs)).all()
    by_owner: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for problem in sorted(problems.values(), key=lambda item: item.opened["time"]):
        by_owner[problem.opened.get("owner") or "?"].append({**problem.opened, "last_seen": problem.last["time"]})
    return {
        "open_by_owner": dict(sorted(by_owner.items())),
        "health_checks": [
            {
                "layer": row.layer,
                "id": row.id,
                "url": row.url,
                "seen_from": row.host if row.vantage == "loopback" else "lan",
                "last_status": row.last_status,
                "held_for": _age(row.last_changed, now) if row.last_changed else None,
                "last_checked": _age(row.last_checked, now) + " ago" if row.last_checked else None,
                "latency_ms": row.latency_ms,
            }
            for row in checks
        ],
        "runs": [
            {
                "id": row.id,
                "runner": row.runner,
                "finished": _age(row.finished_at, now) + " ago",
                "complete": row.complete,
                "passed": row.passed,
                "violated": row.violated,
                "broken": row.broken,
                "skipped": row.skipped,
            }
            for row in last_runs
        ],
    }


def _print_status(where: str, report: dict[str, Any]) -> None:
    owners = report["open_by_owner"]
    total = sum(len(entries) for entries in owners.values())
    print(f"system database {where}")
    print(f"open entries: {total}")
    for owner, entries in owners.items():
        print(f"  {owner}: {len(entries)}")
        for entry in entries:
            print(f"    - [{entry.get('severity', '?')}] {entry.get('summary', '')} (since {entry['time']})")
    print("health checks (last status, held for, last checked):")
    for check in report["health_checks"]:
        status = check["last_status"] or "never checked"
        held = f", for {check['held_for']}" if check["held_for"] else ""
        checked = f", checked {check['last_checked']}" if check["last_checked"] else ""
        latency = f", {check['latency_ms']:.0f} ms" if check["latency_ms"] is not None else ""
        origin = f" (on {check['seen_from']})" if check["seen_from"] != "lan" else ""
        print(f"  {check['id']}: {status}{held}{checked}{latency}  {check['url']}{origin}")
    print(f"last {len(report['runs'])} runs:")
    for run in report["runs"]:
        scope = "whole inventory" if run["complete"] else "partial"
        print(
            f"  {run['id']} by {run['runner']}, {run['finished']}: {run['passed']} passed, {run['violated']} failed, "
            f"{run['broken']} broken, {run['skipped']} skipped ({scope})"
        )


def run_db_command(args: argparse.Namespace) -> int:
    try:
        url = resolve(args.db)
        where = describe(url)
    except STORE_FAILURES as exc:
        print(f"conformance db: {failure_text(exc)}", file=sys.stderr)
        return 1
    if args.db_command == "status" and _missing_sqlite(url):
        print(f"conformance db: no system database at {where} yet (a run creates it)", file=sys.stderr)
        return 1
    try:
        engine = open_engine(url)
        try:
            if args.db_command == "upgrade":
                print(f"system database {where}: schema up to date")
            elif args.db_command == "status":
                report = status_report(engine, args.runs)
                if args.json:
                    print(json.dumps(report, indent=2, default=str))
                else:
                    _print_status(where, report)
            elif args.db_command == "import-bulletin":
                entries = read_entries(Path(args.file))
                count = import_entries(engine, entries, default_layer="gateway")
                still_open = len(open_problems(entries))
                print(f"imported {count} entries ({still_open} open) from {args.file} into {where}")
        finally:
            engine.dispose()
    except (ValueError, *STORE_FAILURES) as exc:
        print(f"conformance db: {where}: {failure_text(exc)}", file=sys.stderr)
        return 1
    return 0


def add_db_parser(sub: Any) -> None:
    db = sub.add_parser("db", help="the system database (SQLite by default, or PostgreSQL by URL)")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    for name, text in (
        ("upgrade", "apply the schema migrations"),
        ("status", "open entries by owner, health checks with their last status, the last runs"),
        ("import-bulletin", "import a bulletin.jsonl file into an empty database"),
    ):
        action = db_sub.add_parser(name, help=text)
        action.add_argument("--db", default=None, metavar="URL", help=f"database URL (default: ${DB_ENV} or SQLite)")
        if name == "status":
            action.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="how many recent runs to list")
            action.add_argument("--json", action="store_true")
        if name == "import-bulletin":
            action.add_argument("file")
