"""The bulletin's further event fields (acknowledgements, evidence class, flapping) and waived counts.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("bulletin") as batch:
        batch.add_column(sa.Column("extra", sa.JSON))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("waived", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("waived")
    with op.batch_alter_table("bulletin") as batch:
        batch.drop_column("extra")
