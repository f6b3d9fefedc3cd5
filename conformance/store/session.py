"""A run's end, with the system database: record it there, and write the bulletin file from it.

The database is the bulletin's state; the file is the owners' interface, written from the
database after every run so both always agree. When the database cannot be reached or
refuses the write, the run says so (and the caller exits non-zero), nothing the database
already holds is touched (the run's transaction is rolled back as a whole), and the file is
still written the file-only way. The entries written that way are also kept in a pending
file beside it and carried into the database by the next run that can write it.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from conformance.bulletin.flapping import policy_from_inventory
from conformance.bulletin.store import BulletinUpdate, acknowledge, read_entries, update_bulletin, utc_now
from conformance.inventory.model import Inventory
from conformance.redact import redact
from conformance.results import Result
from conformance.store.db import (
    DB_ENV,
    DEFAULT_FILE_NAME,
    StoreError,
    database_url,
    describe,
    make_engine,
    upgrade,
    with_password,
)
from conformance.store.records import RunInfo, acknowledge_in_db, record_run, write_bulletin_file

RUNNER_ENV = "CONFORMANCE_RUNNER"
# A failed migration (Alembic's CommandError) reaches here as a StoreError (see db.upgrade).
STORE_FAILURES = (SQLAlchemyError, StoreError, OSError)


@dataclass
class StoreOutcome:
    update: BulletinUpdate
    database: str
    error: str | None = None


def runner_name() -> str:
    """Who ran: ``CONFORMANCE_RUNNER`` (e.g. mini-timer, ci), else this machine's name."""
    return os.environ.get(RUNNER_ENV) or socket.gethostname()


def pending_path(bulletin_file: Path) -> Path:
    return bulletin_file.with_name(bulletin_file.stem + ".pending.jsonl")


def failure_text(exc: BaseException) -> str:
    """One line about a database failure, without its SQL, parameters or any secret."""
    cause: BaseException = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines() or [type(cause).__name__]
    return redact(f"{type(cause).__name__}: {lines[0]}")[:300]


def resolve_url(option: str | None, bulletin_file: Path, inventory: Inventory) -> URL:
    return with_password(database_url(option, bulletin_file), inventory.secrets, secrets_file=inventory.secrets_file)


def open_store(url: URL) -> Engine:
    """An engine on an up-to-date schema (every run applies pending migrations)."""
    engine = make_engine(url)
    try:
        upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def record_session(
    db_option: str | None,
    bulletin_file: Path,
    inventory: Inventory,
    results: list[Result],
    run: RunInfo,
    now: datetime | None = None,
) -> StoreOutcome:
    """Record the run in the database and write the bulletin file from it (or without it)."""
    database = "the system database"
    try:
        url = resolve_url(db_option, bulletin_file, inventory)
        database = describe(url)
        engine = open_store(url)
        try:
            update = record_run(
                engine,
                inventory,
                results,
                run,
                read_entries(bulletin_file, bookkeeping=True),
                read_entries(pending_path(bulletin_file), bookkeeping=True),
                policy=policy_from_inventory(inventory),
                now=now,
            )
            update.still_open = write_bulletin_file(engine, bulletin_file, inventory.layer.name)
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure of the store is the run's error, never a crash
        # STORE_FAILURES are the expected ones (down, refused, a bad URL); anything else is a
        # defect, and the owners' bulletin file is still written from this run's results.
        error = f"{database}: {failure_text(exc)}"
        update = update_bulletin(
            bulletin_file,
            results,
            run.run_id,
            inventory.bulletin.reminder_after_hours,
            complete_run=run.complete,
            policy=policy_from_inventory(inventory),
            clock=(lambda: now) if now is not None else utc_now,
        )
        _append(pending_path(bulletin_file), update.entries)
        return StoreOutcome(update, database, error)
    pending_path(bulletin_file).unlink(missing_ok=True)
    return StoreOutcome(update, database)


def acknowledge_session(
    db_option: str | None,
    bulletin_file: Path,
    fingerprint: str,
    by: str,
    reason: str,
    until: str | None,
    secrets: tuple[Any, ...] = (),
    now: datetime | None = None,
) -> tuple[dict[str, Any], str]:
    """Acknowledge an open problem where the bulletin's state is; return the entry and where.

    A database that was named, or the default SQLite file that runs already keep beside the
    bulletin, holds the state: the event goes there and the file is written from it, so the
    next run (which folds the database) sees it. Without a database, the file alone.
    """
    url = with_password(database_url(db_option, bulletin_file), secrets)
    if db_option or os.environ.get(DB_ENV) or (bulletin_file.parent / DEFAULT_FILE_NAME).exists():
        engine = open_store(url)
        try:
            entry = acknowledge_in_db(engine, fingerprint, by, reason, until, now)
            write_bulletin_file(engine, bulletin_file, str(entry.get("layer") or ""))
        finally:
            engine.dispose()
        return entry, describe(url)
    clock = (lambda: now) if now is not None else utc_now
    return acknowledge(bulletin_file, fingerprint, by, reason, until, clock), str(bulletin_file)


def _append(path: Path, entries: list[dict[str, Any]]) -> None:
    if entries:
        with path.open("a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(entry, sort_keys=True) + "\n" for entry in entries))
