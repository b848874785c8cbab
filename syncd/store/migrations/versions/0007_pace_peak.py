"""Pace: the pace at the last 429 episode (`peak`), which the shared pace climbs back to.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 05:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pace") as batch:
        batch.add_column(sa.Column("peak", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pace") as batch:
        batch.drop_column("peak")
