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
from pathlib import Path
from typing import Any

from alembic.util import CommandError
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from conformance.bulletin.store import BulletinUpdate, read_entries, update_bulletin
from conformance.inventory.model import Inventory
from conformance.redact import redact
from conformance.results import Result
from conformance.store.db import StoreError, database_url, describe, make_engine, upgrade, with_password
from conformance.store.records import RunInfo, record_run, write_bulletin_file

RUNNER_ENV = "CONFORMANCE_RUNNER"
STORE_FAILURES = (SQLAlchemyError, CommandError, StoreError, OSError)


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
    return with_password(database_url(option, bulletin_file), inventory.secrets)


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
) -> StoreOutcome:
    """Record the run in the database and write the bulletin file from it (or without it)."""
    database = "the system database"
    try:
        url = resolve_url(db_option, bulletin_file, inventory)
        database = describe(url)
        engine = open_store(url)
        try:
            update = record_run(
                engine, inventory, results, run, read_entries(bulletin_file), read_entries(pending_path(bulletin_file))
            )
            update.still_open = write_bulletin_file(engine, bulletin_file, inventory.layer.name)
        finally:
            engine.dispose()
    except STORE_FAILURES as exc:
        error = f"{database}: {failure_text(exc)}"
        update = update_bulletin(
            bulletin_file, results, run.run_id, inventory.bulletin.reminder_after_hours, complete_run=run.complete
        )
        _append(pending_path(bulletin_file), update.entries)
        return StoreOutcome(update, database, error)
    pending_path(bulletin_file).unlink(missing_ok=True)
    return StoreOutcome(update, database)


def _append(path: Path, entries: list[dict[str, Any]]) -> None:
    if entries:
        with path.open("a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(entry, sort_keys=True) + "\n" for entry in entries))
