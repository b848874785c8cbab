"""Output rows keyed in render order by a small table id, JSON rows packed; SQLite: WITHOUT ROWID;
raw records indexed by `dependents_due` only where it is set.

`outputrow` was three b-trees (the rows, the primary key, the render index), each holding
the connector's and the table's names; its text was most of a store. Now a connector's
table is named once (`outputtable`), a row is keyed (table id, sort_key, record id,
stream, ordinal), which is the render's order and finds a record's rows too, and a JSON
row's text is deflated (syncd.store.store.pack_row). Existing rows are copied over here,
in batches. `ix_rawrecord_due` held an entry for every raw record; now only for those whose
dependents are due, by stream and in `Store.dependents_due`'s order.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 04:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from syncd.store.store import pack_row, unpack_row

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
