"""The checkpoint store's tables (SQLModel). Any change needs a migration: see syncd/store/migrate.py."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, LargeBinary, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

# In Meta `schema_version`: 1 before Alembic; 2 since (the revision is in `alembic_version`),
# so that a syncd older than the migrations refuses a migrated store.
SCHEMA_VERSION = 2


class Meta(SQLModel, table=True):
    """Key/value facts about the store: schema version, mapping fingerprints, event cursor."""

    key: str = Field(primary_key=True, max_length=200)
    value: str = Field(sa_column=Column(Text, nullable=False))


class Cursor(SQLModel, table=True):
    """How far a stream (or one date window of it) is synced: all records updated before `value`."""

    stream: str = Field(primary_key=True, max_length=40)
    partition: str = Field(default="", primary_key=True, max_length=80)
    value: int = Field(sa_column=Column(BigInteger, nullable=False))
    advanced_at: float = 0.0


class RawRecord(SQLModel, table=True):
    """The latest raw object seen for a record, so mappings can be re-applied without refetching."""

    __table_args__ = (
        Index("ix_rawrecord_stream_sort", "stream", "sort_key"),
        Index("ix_rawrecord_customer", "stream", "customer_id"),
        # Only transactions refer to an invoice: no index entry (and upkeep) for other rows.
        Index(
            "ix_rawrecord_invoice",
            "stream",
            "invoice_id",
            sqlite_where=text("invoice_id IS NOT NULL"),
            postgresql_where=text("invoice_id IS NOT NULL"),
        ),
        # Only the few rows whose dependents are due (`Store.dependents_due`), in its order.
        Index(
            "ix_rawrecord_due",
            "stream",
            "sort_key",
            sqlite_where=text("dependents_due = 1"),
            postgresql_where=text("dependents_due"),
        ),
    )

    stream: str = Field(primary_key=True, max_length=40)
    record_id: str = Field(primary_key=True, max_length=64)
    sort_key: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    # 16 bytes (syncd.store.store.hash_bytes): half the hex digits' room, in the row and its copies.
    content_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # The records this one refers to, so a renamed customer can re-deliver its invoices.
    customer_id: str | None = Field(default=None, max_length=64)
    invoice_id: str | None = Field(default=None, max_length=64)
    # Set with a changed record, cleared once the records that refer to it are re-delivered:
    # a kill in between must not leave an invoice row with a customer's old name.
    dependents_due: bool = False
    deleted: bool = False
    # The JSON text, packed (syncd.store.store.pack: deflated, about a sixth of the text).
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Delivery(SQLModel, table=True):
    """What each connector last received for a record (content hash), to skip unchanged ones."""

    # SQLite: the rows live in the primary key's b-tree (keyed by text, a rowid table
    # beside it is only a second b-tree to write).
    __table_args__ = ({"sqlite_with_rowid": False},)

    connector: str = Field(primary_key=True, max_length=60)
    stream: str = Field(primary_key=True, max_length=40)
    record_id: str = Field(primary_key=True, max_length=64)
    content_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # as RawRecord's


class OutputTable(SQLModel, table=True):
    """A file connector's table, named once: its rows carry this small id, not two names."""

    __table_args__ = (UniqueConstraint("connector", "table_name", name="uq_outputtable_name"),)

    id: int | None = Field(default=None, primary_key=True)
    connector: str = Field(max_length=60)
    table_name: str = Field(max_length=60)


class OutputRow(SQLModel, table=True):
    """A row a file connector renders, kept here so files are rebuilt, never patched.

    Keyed in render order (table, then record id as `sort_key`, then the row's place), so a
    render reads one range of the key and the key is the only index; a record's rows are
    found through it too, as `sort_key` follows from the record id (syncd.store.store.sort_key).
    """

    # SQLite: the rows live in the key's b-tree; a rowid table would be a second one to write.
    __table_args__ = ({"sqlite_with_rowid": False},)

    tab: int = Field(primary_key=True, foreign_key="outputtable.id")
    sort_key: int = Field(sa_column=Column(BigInteger, primary_key=True))
    record_id: str = Field(primary_key=True, max_length=64)
    stream: str = Field(primary_key=True, max_length=40)
    ordinal: int = Field(primary_key=True)
    # The row's text, packed (syncd.store.store.pack_row: deflated against rows' usual text).
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Run(SQLModel, table=True):
    """One run of a job: a sync, a push, a re-delivery.

    `job` says what it did (`pull:invoices`, `pull:customers,invoices` for a sync of several
    streams, `push`, `retry`) and `holder` which process (`host:pid`, a worker's
    `name@host:pid`), so that overlapping runs of one job can be told from the log.
    """

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=40)
    job: str | None = Field(default=None, max_length=120)
    holder: str | None = Field(default=None, max_length=200)
    started_at: float
    ended_at: float | None = None
    status: str = Field(default="running", max_length=20)
    counts: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    error: str | None = Field(default=None, sa_column=Column(Text))


class DeadLetter(SQLModel, table=True):
    """A record a connector refused, with the reason; cleared when a later delivery succeeds."""

    __table_args__ = (Index("ix_deadletter_last_seen", "last_seen"),)  # `syncd status`: newest first

    connector: str = Field(primary_key=True, max_length=60)
    stream: str = Field(primary_key=True, max_length=40)
    record_id: str = Field(primary_key=True, max_length=64)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    first_seen: float
    last_seen: float
    attempts: int = 1


class PushedPayment(SQLModel, table=True):
    """The push-back outbox: one row per external payment, with its state.

    pending -> posting -> posted (transaction_id set) | failed (retried later)
    pending -> rejected (reason; never posted)
    """

    external_id: str = Field(primary_key=True, max_length=120)
    source: str = Field(max_length=60)
    fingerprint: str = Field(max_length=64)
    state: str = Field(default="pending", max_length=20, index=True)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    origin: str = Field(default="", max_length=300)
    invoice_id: str | None = Field(default=None, max_length=64)
    # Set with a changed record, cleared once the records that refer to it are re-delivered:
    # a kill in between must not leave an invoice row with a customer's old name.
    dependents_due: bool = False
    transaction_id: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, sa_column=Column(Text))
    attempts: int = 0
    created_at: float
    updated_at: float


class Lock(SQLModel, table=True):
    """A lease: one daemon per store. Taken over once `expires_at` has passed."""

    name: str = Field(primary_key=True, max_length=60)
    holder: str = Field(max_length=200)
    host: str = Field(max_length=200)
    pid: int
    since: float
    expires_at: float


class Pace(SQLModel, table=True):
    """An account's request pace, shared by every process that calls Invoiced for it.

    Times are seconds since the epoch on the database's clock (syncd/store/pacing.py);
    0 stands for "never".
    """

    key: str = Field(primary_key=True, max_length=60)  # the account
    rate: float | None = None  # requests/s; None: not paced (no 429 yet)
    next_at: float = 0.0  # the last slot of the pace granted (the next is 1/rate after it)
    paused_until: float = 0.0  # a Retry-After: nobody sends before
    decreased_at: float = 0.0  # the last time the pace was lowered (a 429 episode began)
    resumed_at: float = 0.0  # when that episode's pause ended
    episodes: int = 0
    peak: float | None = None  # the pace when the last episode began; climbed back to quickly
    # Successes counted over two adjacent windows, to measure the pace the server allows.
    window_start: float = 0.0
    window_count: int = 0
    previous_count: int = 0
    granted: float = 0.0  # the slot the last reservation took (-1: none); read back by it
    updated_at: float = 0.0
