"""Output rows keyed in render order by a small table id, JSON rows packed; SQLite: WITHOUT ROWID;
content hashes as 16 bytes; raw records indexed by `dependents_due` only where it is set.

`outputrow` was three b-trees (the rows, the primary key, the render index), each holding
the connector's and the table's names; its text was most of a store. Now a connector's
table is named once (`outputtable`), a row is keyed (table id, sort_key, record id,
stream, ordinal), which is the render's order and finds a record's rows too, and a JSON
row's text is deflated (syncd.store.store.pack_row). Existing rows are copied over here,
in batches. Content hashes (raw records, deliveries) were 32 hex digits; they are kept as
the 16 bytes those spell (syncd.store.store.hash_bytes; the markers `deleted`, `partial` as
their text), the same values. `ix_rawrecord_due` held an entry for every raw record; now only
for those whose dependents are due, by stream and in `Store.dependents_due`'s order.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 04:20:00.000000
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from syncd.store.store import hash_bytes, hash_text, pack_row, unpack_row

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_BATCH = 2000


def _old_columns() -> list[sa.Column[object]]:
    """`outputrow`'s columns as revisions 0001-0005 made them."""
    return [
        sa.Column("connector", sa.String(length=60), nullable=False),
        sa.Column("stream", sa.String(length=40), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("table_name", sa.String(length=60), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("sort_key", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
    ]


_OLD_KEY = ("connector", "stream", "record_id", "table_name", "ordinal")


def _new_columns() -> list[sa.Column[object]]:
    """`outputrow`'s columns as this revision makes them (models.OutputRow)."""
    return [
        sa.Column("tab", sa.Integer(), nullable=False),
        sa.Column("sort_key", sa.BigInteger(), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("stream", sa.String(length=40), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    ]


_NEW_KEY = ("tab", "sort_key", "record_id", "stream", "ordinal")


def _old(name: str = "outputrow") -> sa.Table:
    return sa.Table(name, sa.MetaData(), *_old_columns(), sa.PrimaryKeyConstraint(*_OLD_KEY))


def _new(name: str = "outputrow") -> sa.Table:
    return sa.Table(name, sa.MetaData(), *_new_columns(), sa.PrimaryKeyConstraint(*_NEW_KEY))


_TABLES = sa.table("outputtable", sa.column("id"), sa.column("connector"), sa.column("table_name"))


def _copy(source: sa.Table, target: sa.Table, convert: str) -> None:
    """Copy every row of `source` into `target` in `source`'s key order, a batch at a time,
    converting it (`pack`: old to new, `unpack`: new to old)."""
    if context.is_offline_mode():
        return  # a dry run: the SQL shows the change of the tables
    conn = op.get_bind()
    names = {tab: (connector, table) for tab, connector, table in conn.execute(sa.select(_TABLES))}
    ids = {pair: tab for tab, pair in names.items()}
    key = list(source.primary_key.columns)
    after: tuple[object, ...] | None = None
    while True:
        query = sa.select(source).order_by(*key).limit(_BATCH)
        if after is not None:
            query = query.where(sa.tuple_(*key) > sa.tuple_(*after))
        rows = conn.execute(query).mappings().all()
        if not rows:
            return
        if convert == "pack":
            out = [
                {
                    "tab": ids[(r["connector"], r["table_name"])],
                    "sort_key": r["sort_key"],
                    "record_id": r["record_id"],
                    "stream": r["stream"],
                    "ordinal": r["ordinal"],
                    "data": pack_row(r["data"]),
                }
                for r in rows
            ]
        else:
            out = [
                {
                    "connector": names[r["tab"]][0],
                    "table_name": names[r["tab"]][1],
                    "sort_key": r["sort_key"],
                    "record_id": r["record_id"],
                    "stream": r["stream"],
                    "ordinal": r["ordinal"],
                    "data": unpack_row(r["data"]),
                }
                for r in rows
            ]
        conn.execute(target.insert(), out)
        after = tuple(rows[-1][c.name] for c in key)


def _hashed(hash_type: sa.types.TypeEngine[Any]) -> tuple[sa.Table, sa.Table]:
    """`rawrecord` and `delivery` with their content hash as text (before) or bytes (after),
    for SQLite's batch mode to copy from without reflecting (a dry run has no tables)."""
    meta = sa.MetaData()
    raw = sa.Table(
        "rawrecord",
        meta,
        sa.Column("stream", sa.String(length=40), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("sort_key", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("content_hash", hash_type, nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("invoice_id", sa.String(length=64), nullable=True),
        sa.Column("dependents_due", sa.Boolean(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("stream", "record_id"),
        sa.Index("ix_rawrecord_customer", "stream", "customer_id"),
        sa.Index("ix_rawrecord_stream_sort", "stream", "sort_key"),
    )
    delivery = sa.Table(
        "delivery",
        meta,
        sa.Column("connector", sa.String(length=60), nullable=False),
        sa.Column("stream", sa.String(length=40), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("content_hash", hash_type, nullable=False),
        sa.PrimaryKeyConstraint("connector", "stream", "record_id"),
    )
    return raw, delivery


def _rewrite_hashes(table: sa.Table, change: Callable[[Any], Any], out: sa.types.TypeEngine[Any]) -> None:
    """Replace every row's `content_hash` by `change(content_hash)` (of type `out`), a batch at
    a time (SQLite)."""
    if context.is_offline_mode():
        return
    conn = op.get_bind()
    key = list(table.primary_key.columns)
    update = (
        table.update()
        .where(*(c == sa.bindparam(f"k_{c.name}") for c in key))
        .values(content_hash=sa.bindparam("h", type_=out))
    )
    after: tuple[Any, ...] | None = None
    while True:
        query = sa.select(*key, sa.cast(table.c.content_hash, sa.LargeBinary())).order_by(*key).limit(_BATCH)
        if after is not None:
            query = query.where(sa.tuple_(*key) > sa.tuple_(*after))
        rows = conn.execute(query).all()
        if not rows:
            return
        conn.execute(
            update,
            [{**{f"k_{c.name}": r[i] for i, c in enumerate(key)}, "h": change(r[-1])} for r in rows],
        )
        after = tuple(rows[-1][:-1])


def _to_bytes(value: Any) -> bytes:
    return hash_bytes(bytes(value).decode())


# PostgreSQL converts in place; a marker (`deleted`) is not 32 hex digits, a hash is.
_PG_TO_BYTES = "CASE WHEN content_hash ~ '^[0-9a-f]{32}$' THEN decode(content_hash, 'hex') ELSE convert_to(content_hash, 'UTF8') END"
_PG_TO_TEXT = "CASE WHEN length(content_hash) = 16 THEN encode(content_hash, 'hex') ELSE convert_from(content_hash, 'UTF8') END"


def _hashes_to(hash_type: sa.types.TypeEngine[Any]) -> None:
    """Content hashes of raw records and deliveries to bytes (LargeBinary) or back to text."""
    to_bytes = isinstance(hash_type, sa.LargeBinary)
    if context.get_context().dialect.name != "sqlite":
        for name in ("rawrecord", "delivery"):
            op.alter_column(
                name,
                "content_hash",
                existing_type=sa.String(length=64) if to_bytes else sa.LargeBinary(),
                type_=hash_type,
                existing_nullable=False,
                postgresql_using=_PG_TO_BYTES if to_bytes else _PG_TO_TEXT,
            )
        return
    before = sa.String(length=64) if to_bytes else sa.LargeBinary()
    raw, delivery = _hashed(before)
    if not to_bytes:  # text in the bytes column first: batch mode's copy casts it as it is
        _rewrite_hashes(raw, hash_text, sa.String())
        _rewrite_hashes(delivery, hash_text, sa.String())
    # Batch mode copies each table into a new one (its indexes too, but not a partial index's
    # condition: ix_rawrecord_invoice and ix_rawrecord_due are made again after).
    with op.batch_alter_table("rawrecord", recreate="always", copy_from=raw) as batch:
        batch.alter_column("content_hash", existing_type=before, type_=hash_type, existing_nullable=False)
    without_rowid = {"sqlite_with_rowid": False}
    with op.batch_alter_table(
        "delivery", recreate="always", copy_from=delivery, table_kwargs=without_rowid
    ) as batch:
        batch.alter_column("content_hash", existing_type=before, type_=hash_type, existing_nullable=False)
    if to_bytes:
        raw, delivery = _hashed(hash_type)
        _rewrite_hashes(raw, _to_bytes, sa.LargeBinary())
        _rewrite_hashes(delivery, _to_bytes, sa.LargeBinary())


def _invoice_index() -> None:
    op.create_index(
        "ix_rawrecord_invoice",
        "rawrecord",
        ["stream", "invoice_id"],
        sqlite_where=sa.text("invoice_id IS NOT NULL"),
        postgresql_where=sa.text("invoice_id IS NOT NULL"),
    )


def upgrade() -> None:
    postgresql = context.get_context().dialect.name == "postgresql"
    op.create_table(
        "outputtable",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connector", sa.String(length=60), nullable=False),
        sa.Column("table_name", sa.String(length=60), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("connector", "table_name", name="uq_outputtable_name"),
    )
    op.execute(
        "INSERT INTO outputtable (connector, table_name) "
        "SELECT DISTINCT connector, table_name FROM outputrow ORDER BY connector, table_name"
    )
    op.create_table(
        "outputrow_new",
        *_new_columns(),
        sa.ForeignKeyConstraint(["tab"], ["outputtable.id"], name="outputrow_tab_fkey"),
        sa.PrimaryKeyConstraint(*_NEW_KEY),
        sqlite_with_rowid=False,
    )
    _copy(_old(), _new("outputrow_new"), "pack")
    op.drop_index("ix_outputrow_table", table_name="outputrow")
    op.drop_table("outputrow")
    op.rename_table("outputrow_new", "outputrow")
    if postgresql:  # the key's name as a store made from scratch would have it
        op.execute("ALTER TABLE outputrow RENAME CONSTRAINT outputrow_new_pkey TO outputrow_pkey")
    sqlite = not postgresql
    if sqlite:  # batch mode makes every index again from the table it is given
        op.drop_index("ix_rawrecord_invoice", table_name="rawrecord")
        op.drop_index("ix_rawrecord_due", table_name="rawrecord")
    _hashes_to(sa.LargeBinary())
    if sqlite:
        _invoice_index()
    else:
        op.drop_index("ix_rawrecord_due", table_name="rawrecord")
    op.create_index(
        "ix_rawrecord_due",
        "rawrecord",
        ["stream", "sort_key"],
        sqlite_where=sa.text("dependents_due = 1"),
        postgresql_where=sa.text("dependents_due"),
    )


def downgrade() -> None:
    postgresql = context.get_context().dialect.name == "postgresql"
    op.drop_index("ix_rawrecord_due", table_name="rawrecord")
    if not postgresql:
        op.drop_index("ix_rawrecord_invoice", table_name="rawrecord")
    _hashes_to(sa.String(length=64))
    if not postgresql:
        _invoice_index()
    op.create_index("ix_rawrecord_due", "rawrecord", ["dependents_due"])
    op.create_table("outputrow_old", *_old_columns(), sa.PrimaryKeyConstraint(*_OLD_KEY))
    _copy(_new(), _old("outputrow_old"), "unpack")
    op.drop_table("outputrow")
    op.rename_table("outputrow_old", "outputrow")
    if postgresql:
        op.execute("ALTER TABLE outputrow RENAME CONSTRAINT outputrow_old_pkey TO outputrow_pkey")
    op.create_index(
        "ix_outputrow_table", "outputrow", ["connector", "table_name", "sort_key", "record_id", "ordinal"]
    )
    op.drop_table("outputtable")
