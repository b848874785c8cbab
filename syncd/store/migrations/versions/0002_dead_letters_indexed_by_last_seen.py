"""Dead letters indexed by last_seen: `syncd status` lists the newest first.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 18:55:09.015131
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deadletter", schema=None) as batch_op:
        batch_op.create_index("ix_deadletter_last_seen", ["last_seen"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deadletter", schema=None) as batch_op:
        batch_op.drop_index("ix_deadletter_last_seen")
