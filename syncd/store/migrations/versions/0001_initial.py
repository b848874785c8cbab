"""The schema of syncd before migrations (SCHEMA_VERSION 1 in the Meta table).

A store created by that syncd is recognised and stamped with this revision.

Revision ID: 0001
Revises:
Create Date: 2026-12-01 18:54:40.368644
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cursor",
        sa.Column("stream", sa.String(length=40), nullable=False),
        sa.Column("partition", sa.String(length=80), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("advanced_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("stream", "partition"),
    )
    op.create_table(
        "deadletter",
        sa.Column("connector", sa.String(length=60), nullable=False),
        sa.Column("stream", sa.String(length=40), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("first_seen", sa.Float(), nullable=False),
        sa.Column("last_seen", sa.Float(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("connector", "stream", "record_id"),
    )
    op.create_table(
        "delivery",
        sa.Column("connector", sa.String(length=60), nullable=False),
        sa.Column("stream", sa.String(length=40), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("connector", "stream", "record_id"),
    )
    op.create_table(
        "lock",
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("since", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "meta",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "outputrow",
        sa.Column("connector", sa.String(length=60), nullable=False),
        sa.Column("stream", sa.String(length=40), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("table_name", sa.String(length=60), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("sort_key", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("connector", "stream", "record_id", "table_name", "ordinal"),
    )
    with op.batch_alter_table("outputrow", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outputrow_table",
            ["connector", "table_name", "sort_key", "record_id", "ordinal"],
            unique=False,
        )

    op.create_table(
        "pushedpayment",
        sa.Column("external_id", sa.String(length=120), nullable=False),
        sa.Column("source", sa.String(length=60), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("origin", sa.String(length=300), nullable=False),
        sa.Column("invoice_id", sa.String(length=64), nullable=True),
        sa.Column("dependents_due", sa.Boolean(), nullable=False),
        sa.Column("transaction_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("external_id"),
    )
    with op.batch_alter_table("pushedpayment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pushedpayment_state"), ["state"], unique=False)

    op.create_table(
        "rawrecord",
        sa.Column("stream", sa.String(length=40), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("sort_key", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("invoice_id", sa.String(length=64), nullable=True),
        sa.Column("dependents_due", sa.Boolean(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("stream", "record_id"),
    )
    with op.batch_alter_table("rawrecord", schema=None) as batch_op:
        batch_op.create_index("ix_rawrecord_customer", ["stream", "customer_id"], unique=False)
        batch_op.create_index("ix_rawrecord_due", ["dependents_due"], unique=False)
        batch_op.create_index("ix_rawrecord_invoice", ["stream", "invoice_id"], unique=False)
        batch_op.create_index("ix_rawrecord_stream_sort", ["stream", "sort_key"], unique=False)

    op.create_table(
        "run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("run")
    with op.batch_alter_table("rawrecord", schema=None) as batch_op:
        batch_op.drop_index("ix_rawrecord_stream_sort")
        batch_op.drop_index("ix_rawrecord_invoice")
        batch_op.drop_index("ix_rawrecord_due")
        batch_op.drop_index("ix_rawrecord_customer")

    op.drop_table("rawrecord")
    with op.batch_alter_table("pushedpayment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pushedpayment_state"))

    op.drop_table("pushedpayment")
    with op.batch_alter_table("outputrow", schema=None) as batch_op:
        batch_op.drop_index("ix_outputrow_table")

    op.drop_table("outputrow")
    op.drop_table("meta")
    op.drop_table("lock")
    op.drop_table("delivery")
    op.drop_table("deadletter")
    op.drop_table("cursor")
