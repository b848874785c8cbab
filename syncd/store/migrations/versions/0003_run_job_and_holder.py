"""Runs say which job they were (`pull:invoices`, `push`) and which process ran them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 21:34:48.357814
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: runs recorded before this revision do not know.
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("job", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("holder", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.drop_column("holder")
        batch_op.drop_column("job")
