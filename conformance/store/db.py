"""Where the system database is, how to connect to it, and bringing its schema up to date.

SQLite is the embedded default: ``conformance.db`` next to the bulletin file (under
``reports/``), in WAL mode, so a user who names no database gets one without doing
anything. A shared PostgreSQL is named by URL (``--db`` or ``CONFORMANCE_DB``); its
password may be left out of the URL and supplied by the inventory's ``system-db`` secret
(an environment variable or a file). A URL is only ever shown with its password masked.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool

from conformance.errors import SecretsFileRefused
from conformance.inventory.model import Secret
from conformance.redact import register_secret
from conformance.secrets import SecretSources

if TYPE_CHECKING:  # Alembic is imported only when a migration must run (about 0.25 s of start-up)
    from alembic.config import Config

DB_ENV = "CONFORMANCE_DB"
DEFAULT_FILE_NAME = "conformance.db"
DB_SECRET_NAME = "system-db"  # noqa: S105 (the name of an inventory secret, not a value)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The newest migration's revision. Every run compares the database with it before loading
# Alembic at all; a test keeps it equal to the head of MIGRATIONS.
HEAD_REVISION = "0003"
CONNECT_TIMEOUT_SECONDS = 10
# SQLite waits this long for another writer's transaction before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000
# PostgreSQL: no statement (a lock wait included) may hang a run.
PG_STATEMENT_TIMEOUT_MS = 60_000
# One key for every writer of the bulletin (pg_advisory_xact_lock takes a bigint).
BULLETIN_LOCK_KEY = zlib.crc32(b"gateway-conformance bulletin")


class StoreError(Exception):
    """The system database could not be reached, read or written."""


def database_url(value: str | None, bulletin_file: Path) -> URL:
    """The URL given (option, then environment), else the SQLite file beside the bulletin."""
    value = value or os.environ.get(DB_ENV)
    if not value:
        return URL.create("sqlite+pysqlite", database=str(bulletin_file.parent / DEFAULT_FILE_NAME))
    try:
        url = make_url(value)
    except ArgumentError:
        # make_url's message quotes the text it could not parse, which may hold a password.
        raise StoreError(f"{DB_ENV} / --db is not a database URL (postgresql://... or sqlite:///...)") from None
    register_secret(url.password if isinstance(url.password, str) else None)
    if url.drivername in ("postgresql", "postgres"):
        # SQLAlchemy's default PostgreSQL driver is psycopg2; this project ships psycopg 3.
        url = url.set(drivername="postgresql+psycopg")
    return url


def with_password(
    url: URL, secrets: Iterable[Secret], environ: dict[str, str] | None = None, secrets_file: str | None = None
) -> URL:
    """Fill in a URL's missing password from the inventory's ``system-db`` secret, looked up
    like every secret (``conformance.secrets``: variable, own file, systemd credential, the
    site's secrets file). A refused secrets file leaves the URL as it is (the database then
    refuses the login, and the run says so)."""
    if url.password or url.get_backend_name() == "sqlite":
        return url
    sources = SecretSources(Path(secrets_file) if secrets_file else None, os.environ if environ is None else environ)
    for secret in secrets:
        if secret.name != DB_SECRET_NAME:
            continue
        try:
            value = sources.value(secret)
        except SecretsFileRefused:
            value = None
        if value:
            register_secret(value)
            return url.set(password=value)
    return url


def describe(url: URL) -> str:
    """The URL as it may be shown: never with its password."""
    return url.render_as_string(hide_password=True)


def make_engine(url: URL, exclusive: bool = True) -> Engine:
    """An engine for ``url``.

    ``exclusive``: SQLite transactions start with ``BEGIN IMMEDIATE``, taking the write
    lock before anything is read, so deciding "is this already open" and appending the
    event cannot interleave with another writer (the default, deferred ``BEGIN`` only takes
    it at the first write). Turned off only to show what goes wrong without it.
    """
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        begin = "BEGIN IMMEDIATE" if exclusive else "BEGIN"

        # The pysqlite recipe of SQLAlchemy's SQLite dialect documentation ("Serializable
        # isolation / Savepoints / Transactional DDL"): the driver's own transaction handling
        # is switched off and every transaction is begun here, explicitly.
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Connection) -> None:
            connection.exec_driver_sql(begin)

        return engine
    connect_args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    if url.get_backend_name() == "postgresql":
        connect_args["options"] = f"-c statement_timeout={PG_STATEMENT_TIMEOUT_MS}"
    return create_engine(url, poolclass=NullPool, connect_args=connect_args)


def lock_bulletin(connection: Connection) -> None:
    """Serialise the bulletin's writers until this transaction ends.

    PostgreSQL: a transaction-level advisory lock (released at commit or rollback). SQLite:
    the transaction already holds the database's write lock (``BEGIN IMMEDIATE``).
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": BULLETIN_LOCK_KEY})


def _alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The head of the migration scripts, as Alembic reads them."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def _stored_revision(connection: Connection) -> str | None:
    """The revision in Alembic's version table (where Alembic's MigrationContext reads it)."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return str(revision) if revision is not None else None


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return _stored_revision(connection)


def upgrade(engine: Engine) -> str | None:
    """Apply every migration not yet applied; safe when several runners start at once."""
    with engine.begin() as connection:
        lock_bulletin(connection)
        if _stored_revision(connection) != HEAD_REVISION:
            from alembic import command
            from alembic.util import CommandError

            try:
                command.upgrade(_alembic_config(connection), "head")
            except CommandError as exc:  # e.g. a database stamped by a newer harness
                raise StoreError(f"the schema cannot be migrated: {exc}") from exc
    return HEAD_REVISION
