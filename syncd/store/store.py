"""Store operations. Every write is one transaction per call, batched per page."""

from __future__ import annotations

import hashlib
import time
from decimal import Decimal
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import simplejson
from sqlalchemy import Table, and_, delete, func, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from syncd.errors import StoreError
from syncd.plugin import Record
from syncd.store.database import make_engine
from syncd.store.models import Cursor, DeadLetter, Delivery, Meta, OutputRow, RawRecord, Run

# Queries go through the Table objects: typed columns, no ORM overhead on the hot path.
RAW: Table = RawRecord.__table__  # type: ignore[attr-defined]
DELIVERY: Table = Delivery.__table__  # type: ignore[attr-defined]
DEAD: Table = DeadLetter.__table__  # type: ignore[attr-defined]
OUTPUT: Table = OutputRow.__table__  # type: ignore[attr-defined]
CURSOR: Table = Cursor.__table__  # type: ignore[attr-defined]
META: Table = Meta.__table__  # type: ignore[attr-defined]
RUN: Table = Run.__table__  # type: ignore[attr-defined]

REFERRED_STREAMS = frozenset({"customers", "invoices"})  # streams other records refer to
_CHUNK = 500  # ids per IN (...) query; well under SQLite's variable limit


def dumps(value: Any) -> str:
    """JSON with Decimal kept exact (written as a number, read back as Decimal)."""
    return simplejson.dumps(value, use_decimal=True, sort_keys=True, separators=(",", ":"), default=str)


# One decoder for the process: simplejson.loads(use_decimal=True) builds a new one per call.
_DECODER = simplejson.JSONDecoder(parse_float=Decimal)


def loads(text: str | bytes) -> Any:
    """Inverse of `dumps`: numbers with a fraction come back as Decimal."""
    return _DECODER.decode(text.decode() if isinstance(text, bytes) else text)


def content_hash(data: Mapping[str, Any]) -> str:
    """A stable fingerprint of a record's content."""
    return text_hash(dumps(data))


def text_hash(text: str) -> str:
    """`content_hash` of a record from its `dumps` text."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def sort_key(record_id: str) -> int:
    """Numeric ids sort numerically; anything else by a stable hash prefix."""
    try:
        return int(record_id)
    except ValueError:
        return int(hashlib.sha256(record_id.encode()).hexdigest()[:15], 16)


def ref_id(data: Mapping[str, Any], field: str) -> str | None:
    """The id a record refers to in `field` (`customer`, `invoice`), expanded or not."""
    value = data.get(field)
    if isinstance(value, Mapping):
        value = value.get("id")
    if value is None or isinstance(value, bool):
        return None
    return str(value)


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Store:
    """All reads and writes of the checkpoint store go through here."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._dialect = engine.dialect.name

    @classmethod
    def open(cls, url: str) -> Store:
        """Open (and create or check) the store at `url`."""
        return cls(make_engine(url))

    def close(self) -> None:
        self.engine.dispose()

    # -- plumbing -------------------------------------------------------------------
    def _upsert(self, conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        keys = [c.name for c in table.primary_key.columns]
        insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        stmt = insert(table)
        updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
        conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates), list(rows))

    def ping(self) -> None:
        """Raise StoreError when the store cannot be reached."""
        try:
            with self.engine.connect() as conn:
                conn.execute(select(1))
        except OperationalError as exc:
            raise StoreError(f"checkpoint store unreachable: {exc.orig}") from None

    # -- meta -----------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(META.c.value).where(META.c.key == key)).scalar_one_or_none()

    def set_meta(self, key: str, value: str) -> None:
        with self.engine.begin() as conn:
            self._upsert(conn, META, [{"key": key, "value": value}])

    # -- cursors --------------------------------------------------------------------
    def cursors(self, stream: str) -> dict[str, int]:
        """Every partition's cursor of a stream; "" is the stream's own."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(CURSOR.c.partition, CURSOR.c.value).where(CURSOR.c.stream == stream))
            return {p: v for p, v in rows}

    def all_cursors(self) -> list[Cursor]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(CURSOR)).mappings().all()
        return [Cursor(**row) for row in rows]

    def set_cursor(self, stream: str, partition: str, value: int) -> None:
        with self.engine.begin() as conn:
            self._set_cursor(conn, stream, partition, value)

    def _set_cursor(self, conn: Connection, stream: str, partition: str, value: int) -> None:
        row = {"stream": stream, "partition": partition, "value": value, "advanced_at": time.time()}
        self._upsert(conn, CURSOR, [row])

    def finish_partitions(self, stream: str, value: int) -> None:
        """Set the stream's cursor and drop its window cursors, atomically."""
        with self.engine.begin() as conn:
            conn.execute(delete(Cursor).where(and_(CURSOR.c.stream == stream, CURSOR.c.partition != "")))
            self._set_cursor(conn, stream, "", value)

    def reset_stream(self, stream: str) -> None:
        """Forget a stream's cursors (a `--full` run)."""
        with self.engine.begin() as conn:
            conn.execute(delete(Cursor).where(CURSOR.c.stream == stream))

    # -- raw records ----------------------------------------------------------------
    def raw_hashes(self, stream: str, ids: Sequence[str]) -> dict[str, str]:
        """Content hashes of the records already stored, by id."""
        found: dict[str, str] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(ids):
                stmt = select(RAW.c.record_id, RAW.c.content_hash).where(
                    RAW.c.stream == stream,
                    RAW.c.record_id.in_(chunk),
                )
                found.update({rid: h for rid, h in conn.execute(stmt)})
        return found

    def save_raw(
        self, records: Sequence[tuple[Record, str]], texts: Mapping[str, str] | None = None
    ) -> None:
        """Upsert raw records with their content hashes (`texts`: their `dumps`, when known)."""
        texts = texts or {}
        rows = [
            {
                "stream": r.stream,
                "record_id": r.id,
                "sort_key": sort_key(r.id),
                "updated_at": r.updated_at,
                "content_hash": h,
                "deleted": r.deleted,
                "data": texts[r.id] if r.id in texts else dumps(r.data),
                "customer_id": None if r.stream == "customers" else ref_id(r.data, "customer"),
                "invoice_id": ref_id(r.data, "invoice") if r.stream == "transactions" else None,
                "dependents_due": r.stream in REFERRED_STREAMS,
            }
            for r, h in records
        ]
        with self.engine.begin() as conn:
            for chunk in _chunks(rows):
                self._upsert(conn, RAW, chunk)

    def get_raw(self, stream: str, record_id: str) -> dict[str, Any] | None:
        """One raw record (None when unknown or deleted)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(RAW.c.data).where(
                    RAW.c.stream == stream,
                    RAW.c.record_id == record_id,
                    RAW.c.deleted == False,  # noqa: E712
                )
            ).first()
        return loads(row[0]) if row else None

    def dependents_due(self, stream: str, limit: int = 1000) -> list[str]:
        """Ids of changed records whose dependents may not have been re-delivered yet."""
        with self.engine.connect() as conn:
            stmt = (
                select(RAW.c.record_id)
                .where(RAW.c.stream == stream, RAW.c.dependents_due == True)  # noqa: E712
                .order_by(RAW.c.sort_key)
                .limit(limit)
            )
            return [rid for (rid,) in conn.execute(stmt)]

    def clear_dependents_due(self, stream: str, ids: Sequence[str]) -> None:
        """Say that the records referring to these have been re-delivered."""
        with self.engine.begin() as conn:
            for chunk in _chunks(ids):
                conn.execute(
                    RAW.update()
                    .where(RAW.c.stream == stream, RAW.c.record_id.in_(chunk))
                    .values(dependents_due=False)
                )

    def get_raw_many(self, stream: str, ids: Iterable[str]) -> dict[str, tuple[str, dict[str, Any]]]:
        """(content hash, raw record) by id, unknown and deleted ones left out; one query per chunk."""
        wanted = sorted(set(ids))
        found: dict[str, tuple[str, dict[str, Any]]] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(wanted):
                stmt = select(RAW.c.record_id, RAW.c.content_hash, RAW.c.data).where(
                    RAW.c.stream == stream,
                    RAW.c.record_id.in_(chunk),
                    RAW.c.deleted == False,  # noqa: E712
                )
                found.update({rid: (h, loads(data)) for rid, h, data in conn.execute(stmt)})
        return found

    def raw_referring(self, stream: str, field: str, ids: Sequence[str]) -> list[Record]:
        """Stored records of `stream` whose `field` (customer or invoice) is one of `ids`."""
        column = RAW.c.customer_id if field == "customer" else RAW.c.invoice_id
        records: list[Record] = []
        with self.engine.connect() as conn:
            for chunk in _chunks(ids):
                stmt = (
                    select(RAW)
                    .where(RAW.c.stream == stream, column.in_(chunk), RAW.c.deleted == False)  # noqa: E712
                    .order_by(RAW.c.sort_key)
                )
                records.extend(
                    Record(stream, r["record_id"], r["updated_at"], loads(r["data"]))
                    for r in conn.execute(stmt).mappings()
                )
        return records

    def iter_raw(
        self, stream: str, *, include_deleted: bool = True, batch: int = 1000
    ) -> Iterator[list[Record]]:
        """Every stored record of a stream, in id order, in batches (memory stays flat)."""
        after = -(2**63)
        while True:
            stmt = (
                select(RAW)
                .where(RAW.c.stream == stream, RAW.c.sort_key > after)
                .order_by(RAW.c.sort_key)
                .limit(batch)
            )
            if not include_deleted:
                stmt = stmt.where(RAW.c.deleted == False)  # noqa: E712
            with self.engine.connect() as conn:
                rows = conn.execute(stmt).mappings().all()
            if not rows:
                return
            yield [
                Record(stream, r["record_id"], r["updated_at"], loads(r["data"]), bool(r["deleted"]))
                for r in rows
            ]
            after = rows[-1]["sort_key"]

    def count_raw(self, stream: str) -> int:
        with self.engine.connect() as conn:
            stmt = select(func.count()).where(RAW.c.stream == stream, RAW.c.deleted == False)  # noqa: E712
            return int(conn.execute(stmt).scalar_one())

    # -- deliveries -----------------------------------------------------------------
    def delivered_hashes(self, connector: str, stream: str, ids: Sequence[str]) -> dict[str, str]:
        """What each record looked like when `connector` last received it."""
        found: dict[str, str] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(ids):
                stmt = select(DELIVERY.c.record_id, DELIVERY.c.content_hash).where(
                    DELIVERY.c.connector == connector,
                    DELIVERY.c.stream == stream,
                    DELIVERY.c.record_id.in_(chunk),
                )
                found.update({rid: h for rid, h in conn.execute(stmt)})
        return found

    def commit_deliveries(
        self,
        connector: str,
        stream: str,
        delivered: Iterable[tuple[str, str]],
        rejected: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Record what a connector now holds durably, and what it refused (dead letters)."""
        now = time.time()
        done = [
            {"connector": connector, "stream": stream, "record_id": rid, "content_hash": h}
            for rid, h in delivered
        ]
        dead = list(rejected)
        with self.engine.begin() as conn:
            for chunk in _chunks(done):
                self._upsert(conn, DELIVERY, chunk)
                ids = [row["record_id"] for row in chunk]
                conn.execute(
                    delete(DeadLetter).where(
                        DEAD.c.connector == connector,
                        DEAD.c.stream == stream,
                        DEAD.c.record_id.in_(ids),
                    )
                )
            for rid, reason in dead:
                self._add_dead_letter(conn, connector, stream, rid, reason, now)

    def _add_dead_letter(
        self, conn: Connection, connector: str, stream: str, record_id: str, reason: str, now: float
    ) -> None:
        key = and_(DEAD.c.connector == connector, DEAD.c.stream == stream, DEAD.c.record_id == record_id)
        attempts = conn.execute(select(DEAD.c.attempts).where(key)).scalar_one_or_none()
        row = {
            "connector": connector,
            "stream": stream,
            "record_id": record_id,
            "reason": reason,
            "first_seen": now,
            "last_seen": now,
            "attempts": (attempts or 0) + 1,
        }
        if attempts is not None:
            conn.execute(DEAD.update().where(key).values(reason=reason, last_seen=now, attempts=attempts + 1))
        else:
            self._upsert(conn, DEAD, [row])

    def forget_deliveries(self, connector: str, streams: Sequence[str] | None = None) -> None:
        """Make every record count as undelivered to `connector` (after a mapping change)."""
        with self.engine.begin() as conn:
            stmt = delete(Delivery).where(DELIVERY.c.connector == connector)
            if streams is not None:
                stmt = stmt.where(DELIVERY.c.stream.in_(streams))
            conn.execute(stmt)

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        with self.engine.connect() as conn:
            stmt = select(DEAD).order_by(DEAD.c.last_seen.desc()).limit(limit)
            return [DeadLetter(**row) for row in conn.execute(stmt).mappings()]

    def count_dead_letters(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(DeadLetter)).scalar_one())

    # -- connector output rows ------------------------------------------------------
    def outputs(self, connector: str) -> ConnectorOutputs:
        """The OutputStore a file connector keeps its rows in."""
        return ConnectorOutputs(self, connector)

    # -- runs -----------------------------------------------------------------------
    def start_run(self, kind: str) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(RUN.insert().values(kind=kind, started_at=time.time(), counts="{}"))
            key = result.inserted_primary_key
            assert key is not None  # an autoincrement insert always returns its key
            return int(key[0])

    def finish_run(
        self, run_id: int, status: str, counts: Mapping[str, Any], error: str | None = None
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                RUN.update()
                .where(RUN.c.id == run_id)
                .values(ended_at=time.time(), status=status, counts=dumps(dict(counts)), error=error)
            )

    def recent_runs(self, limit: int = 10) -> list[Run]:
        with self.engine.connect() as conn:
            stmt = select(RUN).order_by(RUN.c.id.desc()).limit(limit)
            return [Run(**row) for row in conn.execute(stmt).mappings()]


class ConnectorOutputs:
    """One connector's rows in the store (implements syncd.plugin.OutputStore)."""

    def __init__(self, store: Store, connector: str) -> None:
        self._store = store
        self.connector = connector

    def _key(self, stream: str, record_id: str) -> Any:
        return and_(
            OUTPUT.c.connector == self.connector,
            OUTPUT.c.stream == stream,
            OUTPUT.c.record_id == record_id,
        )

    def put_many(self, items: Sequence[tuple[str, str, Mapping[str, Sequence[Mapping[str, Any]]]]]) -> None:
        """Replace the rows of many records in one transaction."""
        rows: list[dict[str, Any]] = []
        for stream, record_id, tables in items:
            key = sort_key(record_id)
            for table, table_rows in tables.items():
                rows.extend(
                    {
                        "connector": self.connector,
                        "stream": stream,
                        "record_id": record_id,
                        "table_name": table,
                        "ordinal": i,
                        "sort_key": key,
                        "data": dumps(dict(row)),
                    }
                    for i, row in enumerate(table_rows)
                )
        with self._store.engine.begin() as conn:
            by_stream: dict[str, list[str]] = {}
            for stream, record_id, _ in items:
                by_stream.setdefault(stream, []).append(record_id)
            for stream, ids in by_stream.items():
                for chunk in _chunks(ids):
                    conn.execute(
                        delete(OutputRow).where(
                            OUTPUT.c.connector == self.connector,
                            OUTPUT.c.stream == stream,
                            OUTPUT.c.record_id.in_(chunk),
                        )
                    )
            for chunk in _chunks(rows):
                conn.execute(OUTPUT.insert(), list(chunk))
            self._mark(conn, dirty=True)

    def _mark(self, conn: Connection, *, dirty: bool) -> None:
        self._store._upsert(conn, META, [{"key": f"dirty:{self.connector}", "value": "1" if dirty else "0"}])

    def is_dirty(self) -> bool:
        """True when rows changed since the connector last rendered its files."""
        return self._store.get_meta(f"dirty:{self.connector}") != "0"

    def mark_clean(self) -> None:
        """Called by a file connector once its files reflect every row."""
        with self._store.engine.begin() as conn:
            self._mark(conn, dirty=False)

    def put(self, stream: str, record_id: str, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        self.put_many([(stream, record_id, tables)])

    def delete(self, stream: str, record_id: str) -> None:
        with self._store.engine.begin() as conn:
            conn.execute(delete(OutputRow).where(self._key(stream, record_id)))
            self._mark(conn, dirty=True)

    def rows(self, table: str) -> Iterator[dict[str, Any]]:
        """Rows of one table by record id then ordinal, read in batches."""
        after: tuple[int, str, int] = (-(2**63), "", -1)
        cols = (OUTPUT.c.sort_key, OUTPUT.c.record_id, OUTPUT.c.ordinal)
        while True:
            stmt = (
                select(OUTPUT.c.sort_key, OUTPUT.c.record_id, OUTPUT.c.ordinal, OUTPUT.c.data)
                .where(
                    OUTPUT.c.connector == self.connector,
                    OUTPUT.c.table_name == table,
                    tuple_(*cols) > tuple_(*after),
                )
                .order_by(*cols)
                .limit(2000)
            )
            with self._store.engine.connect() as conn:
                batch = conn.execute(stmt).all()
            if not batch:
                return
            for row in batch:
                yield loads(row[3])
            last = batch[-1]
            after = (last[0], last[1], last[2])
