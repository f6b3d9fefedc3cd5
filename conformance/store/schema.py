"""The system database's tables, defined once (SQLAlchemy Core).

The seed's planned tables for the Gateway slice (``services``, ``ports`` with bindings and
exposure, ``health_checks`` with URLs and last status, ``bulletin``, ``dependencies``), the
``owners`` they refer to, and the run history they need (``runs``, ``results``). Every
inventory record is keyed by its layer and its inventory id, so several layers can share
one database. The migrations in ``migrations/versions`` create exactly these tables; a
test compares the two.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

NAME = 64
metadata = MetaData()

owners = Table(
    "owners",
    metadata,
    Column("layer", String(NAME), primary_key=True),
    Column("id", String(NAME), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

services = Table(
    "services",
    metadata,
    Column("layer", String(NAME), primary_key=True),
    Column("name", String(NAME), primary_key=True),
    Column("title", Text, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("host", String(NAME), nullable=False),
    Column("tier", String(16), nullable=False),
    Column("role", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("owner", String(NAME), nullable=False),
    Column("unit", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

ports = Table(
    "ports",
    metadata,
    Column("layer", String(NAME), primary_key=True),
    Column("host", String(NAME), primary_key=True),
    Column("port", Integer, primary_key=True),
    Column("service", String(NAME), nullable=False),
    Column("instance", String(NAME)),
    Column("bind", String(64), nullable=False),
    Column("exposure", String(16), nullable=False),
    Column("protocol", String(8), nullable=False),
    Column("state", String(16), nullable=False),
    Column("model", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

health_checks = Table(
    "health_checks",
    metadata,
    Column("layer", String(NAME), primary_key=True),
    Column("id", String(NAME), primary_key=True),
    Column("service", String(NAME), nullable=False),
    Column("host", String(NAME), nullable=False),
    Column("port", Integer, nullable=False),
    Column("url", Text, nullable=False),
    Column("vantage", String(16), nullable=False),
    Column("last_status", String(16)),
    Column("last_summary", Text),
    Column("last_checked", DateTime(timezone=True)),
    Column("latency_ms", Float),
    Column("last_changed", DateTime(timezone=True)),
    Column("last_run", String(64)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

dependencies = Table(
    "dependencies",
    metadata,
    Column("layer", String(NAME), primary_key=True),
    Column("source", String(NAME), primary_key=True),
    Column("target", String(NAME), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("layer", String(NAME), nullable=False),
    Column("runner", String(128), nullable=False),
    Column("inventory", Text, nullable=False),
    Column("harness_version", String(32), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    # None for runs recorded before the harness kept it (migration 0003).
    Column("started_at", DateTime(timezone=True)),
    Column("complete", Boolean, nullable=False),
    Column("passed", Integer, nullable=False),
    Column("violated", Integer, nullable=False),
    Column("broken", Integer, nullable=False),
    Column("skipped", Integer, nullable=False),
    Column("waived", Integer, nullable=False, server_default="0"),
    Index("ix_runs_finished_at", "finished_at"),
)

results = Table(
    "results",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run", String(64), nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("layer", String(NAME), nullable=False),
    Column("check", String(NAME), nullable=False),
    Column("contract", String(NAME)),
    Column("host", String(NAME)),
    Column("service", String(NAME)),
    Column("port", Integer),
    Column("item", Text),
    Column("owner", String(NAME), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("summary", Text, nullable=False),
    Column("blocked_by", Text),
    Column("latency_ms", Float),
    Column("details", JSON, nullable=False),
    Column("evidence", JSON, nullable=False),
    Index("ix_results_run", "run"),
    Index("ix_results_fingerprint", "fingerprint"),
)

# The bulletin: an append-only log of events (opened, reminder, resolved, and whatever
# later events the owners add, e.g. acknowledged). Open problems are folded from it, as
# from the JSON Lines file, whose entries have exactly these fields.
bulletin = Table(
    "bulletin",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", String(20), nullable=False),
    Column("run", String(64), nullable=False),
    Column("event", String(16), nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("layer", String(NAME), nullable=False),
    Column("host", String(NAME)),
    Column("service", String(NAME)),
    Column("contract", String(NAME)),
    Column("severity", String(16)),
    Column("owner", String(NAME)),
    Column("outcome", String(16)),
    Column("summary", Text, nullable=False),
    Column("details", JSON, nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("blocked", JSON, nullable=False),
    # Every other field of the entry (an acknowledgement's by/reason/until, the evidence
    # class, flapping's percent, bookkeeping's failing flag ...), so a row and a file line
    # always carry the same entry, whatever events later versions add.
    Column("extra", JSON),
    Index("ix_bulletin_fingerprint", "fingerprint"),
)

# The columns of a bulletin row that are a JSON Lines entry's named fields.
BULLETIN_FIELDS = tuple(column.name for column in bulletin.columns if column.name not in ("id", "extra"))
