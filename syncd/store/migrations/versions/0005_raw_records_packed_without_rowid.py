"""Raw records packed (deflated JSON, bytes), indexed by invoice only where they refer to one;
SQLite: deliveries WITHOUT ROWID.

The raw record's text took two fifths of a store; packed it takes a sixth of that
(syncd.store.store.pack). Existing rows are packed here, in key order, in batches.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 00:50:00.000000
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from syncd.store.store import pack, unpack

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BATCH = 1000


def _tables(data: sa.types.TypeEngine[Any]) -> tuple[sa.Table, sa.Table]:
    """The two tables as they are before (`data` Text) or after (LargeBinary) this revision,
    for batch mode to copy from without reflecting (`store upgrade --dry-run` has no data)."""
    meta = sa.MetaData()
    raw = sa.Table(
        "rawrecord",
        meta,
        sa.Column("stream", sa.String(length=40), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("sort_key", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("invoice_id", sa.String(length=64), nullable=True),
        sa.Column("dependents_due", sa.Boolean(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("data", data, nullable=False),
        sa.PrimaryKeyConstraint("stream", "record_id"),
        sa.Index("ix_rawrecord_customer", "stream", "customer_id"),
        sa.Index("ix_rawrecord_due", "dependents_due"),
        sa.Index("ix_rawrecord_invoice", "stream", "invoice_id"),
        sa.Index("ix_rawrecord_stream_sort", "stream", "sort_key"),
    )
    delivery = sa.Table(
        "delivery",
        meta,
        sa.Column("connector", sa.String(length=60), nullable=False),
        sa.Column("stream", sa.String(length=40), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("connector", "stream", "record_id"),
    )
    return raw, delivery


def _rewrite(change: Callable[[bytes | str], bytes | str]) -> None:
    """Replace every raw record's `data` by `change(data)`, a batch of rows at a time."""
    if context.is_offline_mode():
        return  # a dry run: the SQL above shows the change of the table
    conn = op.get_bind()
    raw = sa.table(
        "rawrecord", sa.column("stream"), sa.column("record_id"), sa.column("data", sa.LargeBinary())
    )
    update = (
        raw.update()
        .where(raw.c.stream == sa.bindparam("s"), raw.c.record_id == sa.bindparam("r"))
        .values(data=sa.bindparam("d"))
    )
    after = ("", "")
    while True:
        rows = conn.execute(
            sa.select(raw.c.stream, raw.c.record_id, sa.cast(raw.c.data, sa.LargeBinary()))
            .where(sa.tuple_(raw.c.stream, raw.c.record_id) > sa.tuple_(*after))
            .order_by(raw.c.stream, raw.c.record_id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        conn.execute(update, [{"s": s, "r": r, "d": change(d)} for s, r, d in rows])
        after = (rows[-1][0], rows[-1][1])


def _pack(data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else bytes(data)
    return raw if raw[:1] == b"\x01" else pack(raw.decode())  # already packed: as it is


def upgrade() -> None:
    if context.get_context().dialect.name == "sqlite":
        # Batch mode copies each table into a new one (indexes included).
        raw, delivery = _tables(sa.Text())
        with op.batch_alter_table("rawrecord", recreate="always", copy_from=raw) as batch:
            batch.alter_column("data", existing_type=sa.Text(), type_=sa.LargeBinary(), existing_nullable=False)
        without_rowid = {"sqlite_with_rowid": False}
        with op.batch_alter_table("delivery", recreate="always", copy_from=delivery, table_kwargs=without_rowid):
            pass
    else:
        op.alter_column(
            "rawrecord",
            "data",
            existing_type=sa.Text(),
            type_=sa.LargeBinary(),
            existing_nullable=False,
            postgresql_using="convert_to(data, 'UTF8')",
        )
    _rewrite(_pack)
    op.drop_index("ix_rawrecord_invoice", table_name="rawrecord")
    op.create_index(
        "ix_rawrecord_invoice",
        "rawrecord",
        ["stream", "invoice_id"],
        sqlite_where=sa.text("invoice_id IS NOT NULL"),
        postgresql_where=sa.text("invoice_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_rawrecord_invoice", table_name="rawrecord")
    op.create_index("ix_rawrecord_invoice", "rawrecord", ["stream", "invoice_id"])
    _rewrite(lambda data: unpack(data.encode() if isinstance(data, str) else data))
    if context.get_context().dialect.name == "sqlite":
        raw, delivery = _tables(sa.LargeBinary())
        with op.batch_alter_table("delivery", recreate="always", copy_from=delivery):
            pass
        with op.batch_alter_table("rawrecord", recreate="always", copy_from=raw) as batch:
            batch.alter_column("data", existing_type=sa.LargeBinary(), type_=sa.Text(), existing_nullable=False)
        op.execute("UPDATE rawrecord SET data = CAST(data AS TEXT)")
    else:
        op.alter_column(
            "rawrecord",
            "data",
            existing_type=sa.LargeBinary(),
            type_=sa.Text(),
            existing_nullable=False,
            postgresql_using="convert_from(data, 'UTF8')",
        )
