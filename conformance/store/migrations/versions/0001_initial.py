"""The seed's planned tables, their owners, and the run history.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

NAME = 64


def _stamp() -> sa.Column[object]:
    return sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "owners",
        sa.Column("layer", sa.String(NAME), primary_key=True),
        sa.Column("id", sa.String(NAME), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        _stamp(),
    )
    op.create_table(
        "services",
        sa.Column("layer", sa.String(NAME), primary_key=True),
        sa.Column("name", sa.String(NAME), primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("host", sa.String(NAME), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(NAME), nullable=False),
        sa.Column("unit", sa.Text),
        _stamp(),
    )
    op.create_table(
        "ports",
        sa.Column("layer", sa.String(NAME), primary_key=True),
        sa.Column("host", sa.String(NAME), primary_key=True),
        sa.Column("port", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("service", sa.String(NAME), nullable=False),
        sa.Column("instance", sa.String(NAME)),
        sa.Column("bind", sa.String(64), nullable=False),
        sa.Column("exposure", sa.String(16), nullable=False),
        sa.Column("protocol", sa.String(8), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("model", sa.Text),
        _stamp(),
    )
    op.create_table(
        "health_checks",
        sa.Column("layer", sa.String(NAME), primary_key=True),
        sa.Column("id", sa.String(NAME), primary_key=True),
        sa.Column("service", sa.String(NAME), nullable=False),
        sa.Column("host", sa.String(NAME), nullable=False),
        sa.Column("port", sa.Integer, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("vantage", sa.String(16), nullable=False),
        sa.Column("last_status", sa.String(16)),
        sa.Column("last_summary", sa.Text),
        sa.Column("last_checked", sa.DateTime(timezone=True)),
        sa.Column("latency_ms", sa.Float),
        sa.Column("last_changed", sa.DateTime(timezone=True)),
        sa.Column("last_run", sa.String(64)),
        _stamp(),
    )
    op.create_table(
        "dependencies",
        sa.Column("layer", sa.String(NAME), primary_key=True),
        sa.Column("source", sa.String(NAME), primary_key=True),
        sa.Column("target", sa.String(NAME), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        _stamp(),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("layer", sa.String(NAME), nullable=False),
        sa.Column("runner", sa.String(128), nullable=False),
        sa.Column("inventory", sa.Text, nullable=False),
        sa.Column("harness_version", sa.String(32), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("complete", sa.Boolean, nullable=False),
        sa.Column("passed", sa.Integer, nullable=False),
        sa.Column("violated", sa.Integer, nullable=False),
        sa.Column("broken", sa.Integer, nullable=False),
        sa.Column("skipped", sa.Integer, nullable=False),
    )
    op.create_table(
        "results",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("layer", sa.String(NAME), nullable=False),
        sa.Column("check", sa.String(NAME), nullable=False),
        sa.Column("contract", sa.String(NAME)),
        sa.Column("host", sa.String(NAME)),
        sa.Column("service", sa.String(NAME)),
        sa.Column("port", sa.Integer),
        sa.Column("item", sa.Text),
        sa.Column("owner", sa.String(NAME), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("blocked_by", sa.Text),
        sa.Column("latency_ms", sa.Float),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
    )
    op.create_index("ix_results_run", "results", ["run"])
    op.create_index("ix_results_fingerprint", "results", ["fingerprint"])
    op.create_table(
        "bulletin",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("time", sa.String(20), nullable=False),
        sa.Column("run", sa.String(64), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("layer", sa.String(NAME), nullable=False),
        sa.Column("host", sa.String(NAME)),
        sa.Column("service", sa.String(NAME)),
        sa.Column("contract", sa.String(NAME)),
        sa.Column("severity", sa.String(16)),
        sa.Column("owner", sa.String(NAME)),
        sa.Column("outcome", sa.String(16)),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("blocked", sa.JSON, nullable=False),
    )
    op.create_index("ix_bulletin_fingerprint", "bulletin", ["fingerprint"])


def downgrade() -> None:
    for table in ("bulletin", "results", "runs", "dependencies", "health_checks", "ports", "services", "owners"):
        op.drop_table(table)
