"""Store operations. Every write is one transaction per call, batched per page, or part of
a delivered page's one transaction (`Store.page`)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from decimal import Decimal
from typing import Any

import msgspec
import simplejson
import structlog
import zstandard
from sqlalchemy import Table, and_, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from syncd.errors import StoreError
from syncd.log import redact_text
from syncd.plugin import Record
from syncd.store.database import PAGE_CACHE_KIB, make_engine, pace_engine
from syncd.store.models import Cursor, DeadLetter, Delivery, Meta, OutputRow, OutputTable, RawRecord, Run

log = structlog.get_logger(__name__)

# Queries go through the Table objects: typed columns, no ORM overhead on the hot path.
RAW: Table = RawRecord.__table__  # type: ignore[attr-defined]
DELIVERY: Table = Delivery.__table__  # type: ignore[attr-defined]
DEAD: Table = DeadLetter.__table__  # type: ignore[attr-defined]
OUTPUT: Table = OutputRow.__table__  # type: ignore[attr-defined]
OUTPUT_TABLE: Table = OutputTable.__table__  # type: ignore[attr-defined]
CURSOR: Table = Cursor.__table__  # type: ignore[attr-defined]
META: Table = Meta.__table__  # type: ignore[attr-defined]
RUN: Table = Run.__table__  # type: ignore[attr-defined]

REFERRED_STREAMS = frozenset({"customers", "invoices"})  # streams other records refer to
# The streams whose records refer to each of those (by customer_id, by invoice_id).
_DEPENDENTS = {"customers": ("invoices", "transactions"), "invoices": ("transactions",)}
_RAW_COLS = (
    "stream",
    "record_id",
    "sort_key",
    "updated_at",
    "content_hash",
    "deleted",
    "data",
    "customer_id",
    "invoice_id",
    "dependents_due",
)
_OUTPUT_COLS = ("tab", "sort_key", "record_id", "stream", "ordinal", "data")
_DECODED_MAX = 1024  # referred records kept decoded: every customer of a typical account
_CHUNK = 500  # ids per IN (...) query; well under SQLite's variable limit
_RENDER_BATCH = 5000  # output rows per query of a render


# One encoder for the process: simplejson.dumps with options builds a new one per call.
_ENCODER = simplejson.JSONEncoder(use_decimal=True, sort_keys=True, separators=(",", ":"), default=str)


# The standard library's C encoder, for output rows of plain values (CSV rows are text):
# about three times faster than simplejson, and the same text for such values.
_PLAIN = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


_FLAT = frozenset({str, int, bool, type(None), Decimal})


def _json_typed(value: Any) -> bool:
    """Only JSON's types and Decimal, nested or not (what `dumps_record` writes as `dumps`)."""
    kind = type(value)
    if kind in _FLAT:
        return True
    if kind is list or kind is tuple:
        return all(_json_typed(v) for v in value)
    if kind is dict:
        return all(type(k) is str and _json_typed(v) for k, v in value.items())
    return False


def _dumps_row(row: Mapping[str, Any]) -> str:
    """`dumps` of an output row, by the faster encoders when its values are plain."""
    data = row if type(row) is dict else dict(row)
    if _json_typed(data):
        return dumps_record(data)  # msgspec: the same text (a date or such would not be)
    try:
        return _PLAIN.encode(data)
    except TypeError:  # a Decimal beside a float, say: simplejson keeps it an exact number
        return dumps(data)


def dumps(value: Any) -> str:
    """JSON with Decimal kept exact (written as a number, read back as Decimal)."""
    return _ENCODER.encode(value)


# One decoder for the process: simplejson.loads(use_decimal=True) builds a new one per call.
_DECODER = simplejson.JSONDecoder(parse_float=Decimal)
# The fast paths: msgspec's C codec, exact (fractions read into Decimal, Decimal written as a
# number), keys sorted like `dumps`.
_FAST_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_FAST_ENCODER = msgspec.json.Encoder(decimal_format="number", order="sorted")


def loads(text: str | bytes) -> Any:
    """Inverse of `dumps`: numbers with a fraction come back as Decimal (also of `pack`ed bytes)."""
    if not isinstance(text, str):
        text = unpack(text)
    try:
        return _FAST_DECODER.decode(text)
    except (msgspec.DecodeError, RecursionError):  # NaN, a lone surrogate escape: simplejson reads those
        return _DECODER.decode(text.decode() if isinstance(text, bytes) else text)


def dumps_record(data: Mapping[str, Any]) -> str:
    """`dumps` of a record decoded from JSON (only JSON's types and Decimal), the same text.

    msgspec writes the same bytes as `dumps` for such values as long as they are printable
    ASCII (`dumps` escapes everything else); any other record, or one msgspec refuses (NaN,
    a surrogate), goes through `dumps`. Same text, same content hash, whichever path.
    """
    try:
        raw = _FAST_ENCODER.encode(data)
    except (TypeError, ValueError, OverflowError):
        return dumps(data)
    if not raw.isascii() or b"\x7f" in raw:
        return dumps(data)
    return raw.decode("ascii")


# Raw records are stored as bytes: `_PACKED_ZSTD` then the JSON text as a Zstandard frame
# without its magic number (the tag stands for it), compressed against a dictionary of text
# Invoiced objects share (their keys; raw content, no entropy tables), which takes a record of
# about 1 KiB to a sixth of it. Stores written before it hold `_PACKED` then the text deflated
# (raw deflate, no header) against the same dictionary: read, never written. Anything not
# tagged is the JSON text itself (rows a PostgreSQL store held as text before 0005). Tags and
# dictionary are a format: change them only with a new tag. The new tags are bytes no UTF-8
# text starts with (0xF5-0xFF), so no untagged text can be taken for one.
_PACKED = b"\x01"
_PACKED_ZSTD = b"\xf5"
_ZDICT = (
    b'"object":"customer","ach_gateway":null,"autopay":false,"autopay_delay_days":null,'
    b'"bill_to_parent":false,"chase":true,"chasing_cadence":null,"consolidated":false,'
    b'"country":"US","created_at":1654000000,"credit_hold":false,"credit_limit":null,'
    b'"currency":"usd","email":"billing@example.com","id":1,"language":null,"metadata":{},'
    b'"name":"","notes":null,"number":"CUST-00001","owner":null,"parent_customer":null,'
    b'"payment_source":null,"payment_terms":"NET 30","phone":null,"sign_up_page":null,'
    b'"statement_pdf_url":"https://","tax_id":null,"taxable":true,"taxes":[],"type":"company",'
    b'"updated_at":1654000000,"address1":null,"address2":null,"city":null,"postal_code":null,'
    b'"state":null,"amount":0.00,"method":"ach","invoice":null,"customer":1,"credit_note":null,'
    b'"date":1654000000,"gateway":null,"gateway_id":null,"parent_transaction":null,'
    b'"payment_source":null,"pdf_url":"https://","receipt_url":"https://","status":"succeeded",'
    b'"type":"payment","object":"transaction",'
    b'{"amount_paid":0.00,"attempt_count":0,"autopay":false,"balance":0.00,"chase":false,'
    b'"closed":false,"created_at":1654000000,"currency":"usd","customer":1,"date":1654000000,'
    b'"discounts":[],"draft":false,"due_date":1654000000,"id":1,"items":[{"amount":0.00,'
    b'"catalog_item":null,"description":null,"discountable":true,"discounts":[],"id":1,'
    b'"metadata":{},"name":"","object":"line_item","quantity":1,"taxable":true,"taxes":[],'
    b'"type":"product","unit_cost":0.00}],"metadata":{},"name":null,"next_payment_attempt":null,'
    b'"notes":null,"number":"INV-000001","object":"invoice","paid":false,"payment_terms":"NET 30",'
    b'"payment_url":"https://sandbox.invoiced.local/invoices/1/payment",'
    b'"pdf_url":"https://sandbox.invoiced.local/invoices/1/pdf","purchase_order":null,'
    b'"status":"not_sent","subscription":null,"subtotal":0.00,"taxes":[],"total":0.00,'
    b'"updated_at":1654000000,"url":"https://sandbox.invoiced.local/invoices/1"}'
)
_INFLATE = zlib.decompressobj(-12, _ZDICT)
# Level 3: for a record of 1 KiB against this dictionary as cheap as level 1 and ~7 % smaller
# (level 4 is ~4 % smaller again for ~50 % more CPU); the rest zstd sizes to each record. Not
# part of the format: a reader needs only the dictionary. Each frame holds its content size:
# a reader allocates once.
_ZSTD_LEVEL = 3
_ZSTD_PARAMS = zstandard.ZstdCompressionParameters(
    compression_level=_ZSTD_LEVEL,
    format=zstandard.FORMAT_ZSTD1_MAGICLESS,
    write_content_size=1,
    write_checksum=0,
    write_dict_id=0,
)


def _zstd_dict(content: bytes) -> zstandard.ZstdCompressionDict:
    """`content` as a raw-content dictionary, its compression tables built once (shared by threads)."""
    zdict = zstandard.ZstdCompressionDict(content, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    zdict.precompute_compress(level=_ZSTD_LEVEL)
    return zdict


class _Zstd(threading.local):
    """A thread's Zstandard compressor and decompressor against one dictionary: neither may be
    used by two threads at once, and one per thread costs no lock per record."""

    def __init__(self, zdict: zstandard.ZstdCompressionDict) -> None:
        self.compress = zstandard.ZstdCompressor(dict_data=zdict, compression_params=_ZSTD_PARAMS).compress
        self.decompress = zstandard.ZstdDecompressor(
            dict_data=zdict, format=zstandard.FORMAT_ZSTD1_MAGICLESS
        ).decompress


_ZSTD = _Zstd(_zstd_dict(_ZDICT))


def pack(text: str) -> bytes:
    """A record's JSON text as stored: tagged and compressed (see `_PACKED_ZSTD`)."""
    return _PACKED_ZSTD + _ZSTD.compress(text.encode())


def unpack(data: bytes | memoryview) -> bytes:
    """The JSON text (UTF-8) of a stored raw record, in any format ever written."""
    tag = data[:1]
    if tag == _PACKED_ZSTD:
        return _ZSTD.decompress(memoryview(data)[1:])
    data = bytes(data)
    if tag != _PACKED:
        return data
    inflate = _INFLATE.copy()
    return inflate.decompress(data[1:]) + inflate.flush()


# Output rows are stored as bytes. A JSON row, or a long text (a ledger entry: its fields and
# its journal text), repeats keys, account names and metadata in every row: it is kept as
# `_ROW_PACKED_ZSTD` then its text as a Zstandard frame (as raw records: `_PACKED_ZSTD`)
# against a dictionary of what such rows of the shipped connectors share (keys, the default
# accounts, a journal entry's shape), which takes a ledger entry to about a third of its
# text. Stores written before it hold `_ROW_PACKED` then the text deflated against the same
# dictionary: read, never written. A short text (a CSV line: 70-270 characters in the shipped
# mapping) is already compact and is what a render copies: it is kept as its UTF-8 bytes,
# unless it starts with a tag. Tags and dictionary are a format: change them only with a new tag.
_ROW_PACKED = b"\x02"
_ROW_PACKED_ZSTD = b"\xf6"
_ROW_ZDICT = (
    b'{"ar_account":"Assets:Accounts Receivable:","credit_account":"Liabilities:Customer Credit:",'
    b'"id":"1","payee":""}'
    b'{"customer":"1","date":"2024-01-01","kind":"payment","meta":[["invoiced_type","transaction"],'
    b'["invoiced_id","1"],["invoice","INV-000001"],["method","credit_card"],["reference",""]],'
    b'"narration":"payment INV-000001","object":"transaction","object_id":"1","payee":"",'
    b'"postings":[["Assets:Accounts Receivable: (CUST-00001)",-100.00,"USD","","ar"],'
    b'["Assets:Bank:Checking",100.00,"USD","",""],["Assets:Clearing:Card Payments",100.00,"USD","",""],'
    b'["Assets:Cash",100.00,"USD","",""],["Liabilities:Customer Credit: (CUST-00001)",-100.00,"USD","","credit"]]}'
    b'{"customer":"1","date":"2024-01-01","kind":"invoice","meta":[["invoiced_type","invoice"],'
    b'["invoiced_id","1"],["number","INV-000001"]],"narration":"Invoice INV-000001","object":"invoice",'
    b'"object_id":"1","payee":"","postings":[["Assets:Accounts Receivable: (CUST-00001)",100.00,"USD","","ar"],'
    b'["Income:Sales:Services",-100.00,"USD","",""],["Liabilities:Sales Tax",-10.00,"USD","",""],'
    b'["Income:Sales:Products",-100.00,"USD","",""]]}'
    # A ledger entry row (connectors/ledger/rows.py), hledger's text: its last 4 KiB is what
    # deflate's window sees, so it comes last.
    b'L2h["2024-01-01","payment","transaction","1",[14,19],[36,18],[[[158,59],"-24.49","USD","","ar"],'
    b'[[234,20],"24.49","USD","",""]],[["invoiced_type",[76,11]],["invoiced_id","1"],["invoice",[44,10]],'
    b'["method","ach"]],"1"]\n\n2024-01-01 * Example Customer | payment INV-000001\n'
    b"    ; invoiced_type: transaction\n    ; invoiced_id: 1\n    ; invoice: INV-000001\n    ; method: ach\n"
    b"    Assets:Accounts Receivable:Example Customer (CUST-00001)  -100.00 USD\n"
    b"    Assets:Bank:Checking  100.00 USD\n"
    b'L2h["2024-01-01","invoice","invoice","1",[14,21],[38,18],[[[136,61],"100.00","USD","","ar"],'
    b'[[214,21],"-100.00","USD",[252,8],""]],[["invoiced_type","invoice"],["invoiced_id","1"],'
    b'["number",[46,10]]],"1"]\n\n2024-01-01 * Example Customer | Invoice INV-000001\n'
    b"    ; invoiced_type: invoice\n    ; invoiced_id: 1\n    ; invoiced_event: voided\n    ; number: INV-000001\n"
    b"    Assets:Accounts Receivable:Example Customer (CUST-00001)  100.00 USD\n"
    b"    Income:Sales:Services  -100.00 USD  ; Services\n    Income:Sales:Products  -100.00 USD  ; Products\n"
    b"    Liabilities:Sales Tax  -10.00 USD\n"
)
_ROW_LONG = 360  # characters: a text longer than this is packed too
_ROW_INFLATE = zlib.decompressobj(-12, _ROW_ZDICT)
_ROW_ZSTD = _Zstd(_zstd_dict(_ROW_ZDICT))


_ROW_PACKED_FIRST = frozenset({"{", "\x02"})  # first characters of the texts `pack_row` packs


def pack_row(text: str) -> bytes:
    """An output row's text as stored: a JSON row or a long text tagged and compressed, any
    other as its bytes (see `_ROW_PACKED`)."""
    # No text's UTF-8 starts with `_ROW_PACKED_ZSTD`: only the old tag needs keeping out.
    # (`text[:1]` in a set: 260 instructions less than `startswith` and a tuple, which parses
    # its arguments; every CSV row comes here)
    if len(text) <= _ROW_LONG and text[:1] not in _ROW_PACKED_FIRST:
        return text.encode()
    return _ROW_PACKED_ZSTD + _ROW_ZSTD.compress(text.encode())


def unpack_row(data: bytes | memoryview) -> str:
    """The text of a stored output row (the inverse of `pack_row`), in any format ever written."""
    tag = data[:1]
    if tag == _ROW_PACKED_ZSTD:
        return _ROW_ZSTD.decompress(memoryview(data)[1:]).decode()
    data = bytes(data)
    if tag != _ROW_PACKED:
        return data.decode()
    inflate = _ROW_INFLATE.copy()
    return (inflate.decompress(data[1:]) + inflate.flush()).decode()


def content_hash(data: Mapping[str, Any]) -> str:
    """A stable fingerprint of a record's content."""
    return text_hash(dumps(data))


def text_hash(text: str) -> str:
    """`content_hash` of a record from its `dumps` text."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def hash_bytes(value: str) -> bytes:
    """A content hash or delivered version as stored: the 16 bytes its 32 hex digits spell;
    anything else (the markers `deleted` and `partial`, which are shorter) as its text."""
    if len(value) == 32:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    return value.encode()


def hash_text(value: bytes | memoryview | str) -> str:
    """Inverse of `hash_bytes`: 16 bytes are a hash (no marker is that long)."""
    if isinstance(value, str):
        return value
    data = bytes(value)
    return data.hex() if len(data) == 16 else data.decode()


def sort_key(record_id: str) -> int:
    """Numeric ids sort numerically; anything else by a stable hash prefix."""
    try:
        return int(record_id)
    except ValueError:
        return int(hashlib.sha256(record_id.encode()).hexdigest()[:15], 16)


def ref_id(data: Mapping[str, Any], field: str) -> str | None:
    """The id a record refers to in `field` (`customer`, `invoice`), expanded or not."""
    value = data.get(field)
    kind = type(value)
    if kind is int or kind is str:  # an id not expanded, twice a saved record: no ABC check
        return str(value)
    if value is None:
        return None
    if isinstance(value, Mapping):
        value = value.get("id")
    if value is None or isinstance(value, bool):
        return None
    return str(value)


def _resume_key(stream: str, partition: str) -> str:
    """The Meta key of a cursor's resume point (kept beside the cursor, not in its row)."""
    return f"resume:{stream}:{partition}"


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Store:
    """All reads and writes of the checkpoint store go through here."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._dialect = engine.dialect.name
        # The hot path sends plain SQL to the driver: building and compiling SQLAlchemy
        # statements cost more than SQLite's work for a page. That SQL (noqa: S608) holds
        # only our table and column names; every value goes in as a bound parameter.
        self._p = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        # And runs it on the driver's cursor (`_run`): exec_driver_sql cost ~13 µs a statement.
        self._dbapi_error: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._sql: dict[tuple[str, ...], str] = {}
        # Decoded referred records by (stream, id, content hash): every page of invoices reads
        # the same customers. Same hash, same text, so a hit is exactly what decoding gives.
        self._decoded: OrderedDict[tuple[str, str, str], dict[str, Any]] = OrderedDict()
        self._decoded_lock = threading.Lock()
        # The connection of the page transaction this thread has open (`page`), if any.
        self._local = threading.local()
        self._pace: Engine | None = None
        self._pace_lock = threading.Lock()

    @classmethod
    def open(cls, url: str) -> Store:
        """Open (and create or check) the store at `url`."""
        return cls(make_engine(url))

    def close(self) -> None:
        with self._pace_lock:
            pace, self._pace = self._pace, None
        if pace is not None and pace is not self.engine:
            pace.dispose()
        self.engine.dispose()

    @property
    def pace_engine(self) -> Engine:
        """Where the account's shared pace lives (syncd.store.pacing): beside a SQLite file
        store (`syncd.store.database.pace_engine`), else in the store itself."""
        with self._pace_lock:
            if self._pace is None:
                try:
                    self._pace = pace_engine(self.engine) or self.engine
                except SQLAlchemyError as exc:
                    log.warning(
                        "pacing.file_unusable",
                        error=redact_text(" ".join(f"{type(exc).__name__}: {exc}".split()))[:300],
                        note="the pace is kept in the store itself",
                    )
                    self._pace = self.engine
            return self._pace

    # -- transactions ---------------------------------------------------------------
    @contextmanager
    def page(self) -> Iterator[Connection]:
        """One transaction for every write of this thread in the block (a delivered page: raw
        rows, the file connectors' rows, deliveries), committed at its end, or
        rolled back on an exception; a nested `page` joins the outer one.

        Its reads see its writes. On SQLite the write lock is taken at the first write and
        held to the end, so the block must do no slow work (requests) after writing: the lease
        heartbeat writes to the same store from another thread or process.
        """
        if getattr(self._local, "conn", None) is not None:
            with self._joined(self.engine.begin) as conn:  # nested: the outer `page` commits
                yield conn
            return
        with self.engine.begin() as conn:
            if self._dialect == "sqlite" and not conn.connection.info.get("page_cache"):
                self._run(conn, f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
                conn.connection.info["page_cache"] = True
            self._local.conn = conn
            try:
                yield conn
            finally:
                self._local.conn = None

    def begin(self) -> AbstractContextManager[Connection]:
        """A transaction: the open `page` of this thread, else one of its own."""
        return self._joined(self.engine.begin)

    def connect(self) -> AbstractContextManager[Connection]:
        """A connection to read with: the open `page` of this thread (it sees its writes)."""
        return self._joined(self.engine.connect)

    @contextmanager
    def _joined(self, open_: Callable[[], AbstractContextManager[Connection]]) -> Iterator[Connection]:
        """This thread's open `page`, else what `open_` opens."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            yield conn
            return
        with open_() as conn:
            yield conn

    # -- plumbing -------------------------------------------------------------------
    def _upsert(self, conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        keys = [c.name for c in table.primary_key.columns]
        insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        stmt = insert(table)
        updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
        conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates), list(rows))

    def _marks(self, n: int) -> str:
        return ",".join([self._p] * n)

    def _upsert_sql(self, table: Table, cols: Sequence[str]) -> str:
        """INSERT .. ON CONFLICT DO UPDATE for `cols` (SQLite and PostgreSQL), built once."""
        key = ("upsert", table.name, *cols)
        sql = self._sql.get(key)
        if sql is None:
            keys = [c.name for c in table.primary_key.columns]
            sets = ", ".join(f'"{c}" = excluded."{c}"' for c in cols if c not in keys)
            names = ", ".join(f'"{c}"' for c in cols)
            conflict = ", ".join(f'"{k}"' for k in keys)
            sql = (
                f'INSERT INTO "{table.name}" ({names}) VALUES ({self._marks(len(cols))}) '  # noqa: S608
                f"ON CONFLICT ({conflict}) " + (f"DO UPDATE SET {sets}" if sets else "DO NOTHING")
            )
            self._sql[key] = sql
        return sql

    def _run(self, conn: Connection, sql: str, params: Sequence[Any] = (), *, many: bool = False) -> list[Any]:
        """`sql` run on the driver's own cursor (with `many`, once for each of `params`' rows):
        its rows, the driver's tuples (SQLAlchemy's Row per row cost more than SQLite's work).

        The cursor is `conn`'s connection's: the statement is part of `conn`'s transaction,
        which commits or rolls it back (`page`). A driver error comes out as the SQLAlchemy
        error `exec_driver_sql` raises, a lost connection invalidated the same way.
        """
        driver = conn.connection.driver_connection
        assert driver is not None  # None only for a connection closed or invalidated
        cur = driver.cursor()
        try:
            if many:
                cur.executemany(sql, params)
                return []
            cur.execute(sql, params)
            return cur.fetchall() if cur.description is not None else []
        except self._dbapi_error as exc:
            conn._handle_dbapi_exception(exc, sql, params, cur, None)
        finally:
            cur.close()

    def _upsert_fast(
        self, conn: Connection, table: Table, cols: Sequence[str], rows: Sequence[tuple[Any, ...]]
    ) -> None:
        if rows:
            self._run(conn, self._upsert_sql(table, cols), rows, many=True)

    def _select_in(
        self, conn: Connection, sql: str, fixed: Sequence[Any], ids: Sequence[str]
    ) -> Iterator[Sequence[Any]]:
        """Rows of `sql` (its last condition `... IN ({})`) for every chunk of `ids`."""
        for chunk in _chunks(ids):
            yield from self._run(conn, sql.format(self._marks(len(chunk))), (*fixed, *chunk))

    def ping(self) -> None:
        """Raise StoreError when the store cannot be reached."""
        try:
            with self.engine.connect() as conn:
                conn.execute(select(1))
        except OperationalError as exc:
            raise StoreError(f"checkpoint store unreachable: {exc.orig}") from None

    # -- meta -----------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self.connect() as conn:
            return conn.execute(select(META.c.value).where(META.c.key == key)).scalar_one_or_none()

    def set_meta(self, key: str, value: str) -> None:
        with self.begin() as conn:
            self._upsert(conn, META, [{"key": key, "value": value}])

    # -- cursors --------------------------------------------------------------------
    def cursors(self, stream: str) -> dict[str, int]:
        """Every partition's cursor of a stream; "" is the stream's own."""
        with self.connect() as conn:
            rows = conn.execute(select(CURSOR.c.partition, CURSOR.c.value).where(CURSOR.c.stream == stream))
            return {p: v for p, v in rows}

    def all_cursors(self) -> list[Cursor]:
        with self.connect() as conn:
            rows = conn.execute(select(CURSOR)).mappings().all()
        return [Cursor(**row) for row in rows]

    def set_cursor(
        self, stream: str, partition: str, value: int, resume: tuple[int, Sequence[int]] | None = None
    ) -> None:
        """Move one cursor; `resume` (where a killed walk may go on, and the deep-scanned seconds
        it watches: syncd.cursor.Resume) is stored with it, or any earlier one dropped."""
        with self.begin() as conn:
            self._set_cursor(conn, stream, partition, value)
            key = _resume_key(stream, partition)
            if resume is None:
                self._run(conn, f'DELETE FROM "{META.name}" WHERE key = {self._p}', (key,))  # noqa: S608
            else:
                text = json.dumps({"at": resume[0], "seconds": sorted(resume[1])})
                self._upsert_fast(conn, META, ("key", "value"), [(key, text)])

    def resume_points(self, stream: str) -> dict[str, tuple[int, tuple[int, ...]]]:
        """The resume points stored with a stream's cursors, by partition (see `set_cursor`)."""
        prefix = _resume_key(stream, "")
        with self.connect() as conn:
            rows = conn.execute(
                select(META.c.key, META.c.value).where(META.c.key.startswith(prefix, autoescape=True))
            ).all()
        points = {}
        for key, text in rows:
            try:
                data = json.loads(text)
                points[key[len(prefix) :]] = (int(data["at"]), tuple(int(s) for s in data["seconds"]))
            except (ValueError, TypeError, KeyError):
                continue  # unreadable: the walk goes on from its cursor, as without one
        return points

    def _drop_resume(self, conn: Connection, stream: str, partitions: Sequence[str] | None = None) -> None:
        """Forget resume points of some partitions of a stream (None: all of them)."""
        if partitions is None:
            conn.execute(delete(Meta).where(META.c.key.startswith(_resume_key(stream, ""), autoescape=True)))
        elif partitions:
            conn.execute(delete(Meta).where(META.c.key.in_([_resume_key(stream, p) for p in partitions])))

    def set_cursors(self, stream: str, values: Mapping[str, int]) -> None:
        """Set several partitions' cursors in one transaction (a plan is stored whole or not at all)."""
        with self.begin() as conn:
            for partition, value in values.items():
                self._set_cursor(conn, stream, partition, value)

    def _set_cursor(self, conn: Connection, stream: str, partition: str, value: int) -> None:
        row = (stream, partition, value, time.time())
        self._upsert_fast(conn, CURSOR, ("stream", "partition", "value", "advanced_at"), [row])

    def finish_partitions(self, stream: str, value: int, meta: Mapping[str, str] | None = None) -> None:
        """Set the stream's cursor and drop its window cursors (and set `meta`), atomically."""
        with self.begin() as conn:
            conn.execute(delete(Cursor).where(and_(CURSOR.c.stream == stream, CURSOR.c.partition != "")))
            self._drop_resume(conn, stream)
            self._set_cursor(conn, stream, "", value)
            if meta:
                self._upsert(conn, META, [{"key": k, "value": v} for k, v in meta.items()])

    def drop_cursors(self, stream: str, partitions: Sequence[str]) -> None:
        """Forget some partitions' cursors of a stream (an abandoned scope backfill)."""
        if partitions:
            with self.begin() as conn:
                conn.execute(delete(Cursor).where(CURSOR.c.stream == stream, CURSOR.c.partition.in_(partitions)))
                self._drop_resume(conn, stream, partitions)

    def reset_stream(self, stream: str) -> None:
        """Forget a stream's cursors (a `--full` run)."""
        with self.begin() as conn:
            conn.execute(delete(Cursor).where(CURSOR.c.stream == stream))
            self._drop_resume(conn, stream)

    # -- raw records ----------------------------------------------------------------
    def raw_hashes(self, stream: str, ids: Sequence[str]) -> dict[str, str]:
        """Content hashes of the records already stored, by id."""
        sql = f'SELECT record_id, content_hash FROM "{RAW.name}" WHERE stream = {self._p} AND record_id IN ({{}})'  # noqa: S608
        with self.connect() as conn:
            return {rid: hash_text(h) for rid, h in self._select_in(conn, sql, (stream,), ids)}

    def raw_versions(self, stream: str, ids: Sequence[str]) -> dict[str, str]:
        """`raw_hashes`, with `deleted` for a record marked deleted."""
        sql = (
            f'SELECT record_id, content_hash, deleted FROM "{RAW.name}" '  # noqa: S608
            f"WHERE stream = {self._p} AND record_id IN ({{}})"
        )
        with self.connect() as conn:
            return {
                rid: "deleted" if deleted else hash_text(h)
                for rid, h, deleted in self._select_in(conn, sql, (stream,), ids)
            }

    def stored_state(
        self, stream: str, ids: Sequence[str], updated: dict[str, int] | None = None
    ) -> tuple[dict[str, str], set[str]]:
        """`raw_hashes` and `referred_by_stored` of the same ids, in one round trip per chunk;
        with `updated`, the stored records' `updated_at` is put there, by id."""
        sql = self._sql.get(("state", stream))
        if sql is None:
            sql = f'SELECT record_id, content_hash, updated_at FROM "{RAW.name}" WHERE stream = {self._p} AND record_id IN ({{0}})'  # noqa: S608
            if stream in REFERRED_STREAMS:
                column = "customer_id" if stream == "customers" else "invoice_id"
                # Typed NULLs: PostgreSQL types a bare one as text under DISTINCT, not as the hash.
                pg = self._dialect == "postgresql"
                null, no_time = ("CAST(NULL AS BYTEA)", "CAST(NULL AS BIGINT)") if pg else ("NULL", "NULL")
                sql += (
                    f' UNION ALL SELECT DISTINCT {column}, {null}, {no_time} FROM "{RAW.name}" '  # noqa: S608
                    f"WHERE stream IN ({self._marks(len(_DEPENDENTS[stream]))}) AND deleted = {self._p} "
                    f"AND {column} IN ({{0}})"
                )
            self._sql[("state", stream)] = sql
        hashes: dict[str, str] = {}
        referred: set[str] = set()
        with self.connect() as conn:
            for chunk in _chunks(ids, _CHUNK // 2):
                marks = self._marks(len(chunk))
                params: tuple[Any, ...] = (stream, *chunk)
                if stream in REFERRED_STREAMS:
                    params += (*_DEPENDENTS[stream], False, *chunk)
                for rid, h, at in self._run(conn, sql.format(marks), params):
                    if h is None:
                        referred.add(rid)
                    else:
                        hashes[rid] = hash_text(h)
                        if updated is not None:
                            updated[rid] = int(at)
        return hashes, referred

    def save_raw(
        self,
        records: Sequence[tuple[Record, str]],
        texts: Mapping[str, str] | None = None,
        due: Collection[str] | None = None,
    ) -> None:
        """Upsert raw records with their content hashes (`texts`: their `dumps`, when known).

        A record others refer to is marked `dependents_due` (see `dependents_due`); with `due`,
        only the ids in it (those that stored records refer to).
        """
        texts = texts or {}
        rows = [
            (
                r.stream,
                r.id,
                sort_key(r.id),
                r.updated_at,
                hash_bytes(h),
                r.deleted,
                pack(texts[r.id] if r.id in texts else dumps(r.data)),
                None if r.stream == "customers" else ref_id(r.data, "customer"),
                ref_id(r.data, "invoice") if r.stream == "transactions" else None,
                r.stream in REFERRED_STREAMS and (due is None or r.id in due),
            )
            for r, h in records
        ]
        with self.begin() as conn:
            self._upsert_fast(conn, RAW, _RAW_COLS, rows)
        # Customers are read back soon and often (every invoice and transaction page refers to
        # them): keep them decoded. Invoices are not, here: a first sync saves far more of them
        # than the cache holds, and they would only push the customers out; the transactions
        # that refer to them keep the ones they read (`get_raw_many`).
        self._remember_many(
            [
                ((r.stream, r.id, h), r.data)
                for r, h in records
                if r.stream == "customers" and not r.deleted and type(r.data) is dict
            ]
        )

    def raw_updated_at(self, stream: str, seconds: Sequence[int]) -> dict[str, int]:
        """Live stored records of a stream last updated at one of `seconds`: id -> updated_at."""
        if not seconds:
            return {}
        sql = (
            f'SELECT record_id, updated_at FROM "{RAW.name}" '  # noqa: S608
            f"WHERE stream = {self._p} AND deleted = {self._p} AND updated_at IN ({self._marks(len(seconds))})"
        )
        with self.connect() as conn:
            return {rid: int(u) for rid, u in self._run(conn, sql, (stream, False, *seconds))}

    def get_raw(self, stream: str, record_id: str) -> dict[str, Any] | None:
        """One raw record (None when unknown or deleted)."""
        with self.connect() as conn:
            row = conn.execute(
                select(RAW.c.data).where(
                    RAW.c.stream == stream,
                    RAW.c.record_id == record_id,
                    RAW.c.deleted == False,  # noqa: E712
                )
            ).first()
        return loads(row[0]) if row else None

    def referred_by_stored(self, stream: str, ids: Sequence[str]) -> set[str]:
        """The ids among `ids` (of customers or invoices) that a stored live record refers to."""
        if stream not in REFERRED_STREAMS or not ids:
            return set()
        column = "customer_id" if stream == "customers" else "invoice_id"
        dependents = _DEPENDENTS[stream]
        sql = (
            f'SELECT DISTINCT {column} FROM "{RAW.name}" '  # noqa: S608
            f"WHERE stream = {self._p} AND deleted = {self._p} AND {column} IN ({{}})"
        )
        found: set[str] = set()
        with self.connect() as conn:
            for dependent in dependents:
                found.update(rid for (rid,) in self._select_in(conn, sql, (dependent, False), ids))
        return found

    def dependents_due(self, stream: str, limit: int = 1000) -> list[str]:
        """Ids of changed records whose dependents may not have been re-delivered yet."""
        with self.connect() as conn:
            stmt = (
                select(RAW.c.record_id)
                .where(RAW.c.stream == stream, RAW.c.dependents_due == True)  # noqa: E712
                .order_by(RAW.c.sort_key)
                .limit(limit)
            )
            return [rid for (rid,) in conn.execute(stmt)]

    def clear_dependents_due(self, stream: str, ids: Sequence[str]) -> None:
        """Say that the records referring to these have been re-delivered."""
        sql = f'UPDATE "{RAW.name}" SET dependents_due = {self._p} WHERE stream = {self._p} AND record_id IN ({{}})'  # noqa: S608
        with self.begin() as conn:
            for chunk in _chunks(ids):
                self._run(conn, sql.format(self._marks(len(chunk))), (False, stream, *chunk))

    def get_raw_many(self, stream: str, ids: Iterable[str]) -> dict[str, tuple[str, dict[str, Any]]]:
        """(content hash, raw record) by id, unknown and deleted ones left out.

        The hashes first: a record kept decoded in this version is not read, unpacked and
        decoded again (an invoice page refers to about as many customers as it holds).
        """
        wanted = sorted(set(ids))
        found: dict[str, tuple[str, dict[str, Any]]] = {}
        where = f"WHERE stream = {self._p} AND deleted = {self._p} AND record_id IN ({{}})"
        with self.connect() as conn:
            sql = f'SELECT record_id, content_hash FROM "{RAW.name}" {where}'  # noqa: S608
            hashes = [(rid, hash_text(h)) for rid, h in self._select_in(conn, sql, (stream, False), wanted)]
            missing = []
            with self._decoded_lock:  # once for the page's references
                for rid, h in hashes:
                    data = self._kept((stream, rid, h))
                    if data is None:
                        missing.append(rid)
                    else:
                        found[rid] = (h, data)
            if missing:
                sql = f'SELECT record_id, content_hash, data FROM "{RAW.name}" {where}'  # noqa: S608
                for rid, stored_hash, data in self._select_in(conn, sql, (stream, False), missing):
                    h = hash_text(stored_hash)
                    found[rid] = (h, self._decode(stream, rid, h, data))
        return found

    def _decode(self, stream: str, record_id: str, hash_: str, text: str) -> dict[str, Any]:
        key = (stream, record_id, hash_)
        with self._decoded_lock:
            data = self._kept(key)
        if data is not None:
            return data
        decoded: dict[str, Any] = loads(text)
        self._remember(key, decoded)
        return decoded

    def _kept(self, key: tuple[str, str, str]) -> dict[str, Any] | None:
        """The record kept decoded under `key`, now the most recently used (hold `_decoded_lock`)."""
        data = self._decoded.get(key)
        if data is not None:
            self._decoded.move_to_end(key)  # least recently used first
        return data

    def _remember(self, key: tuple[str, str, str], data: dict[str, Any]) -> None:
        self._remember_many([(key, data)])

    def _remember_many(self, items: Sequence[tuple[tuple[str, str, str], dict[str, Any]]]) -> None:
        cache = self._decoded
        with self._decoded_lock:  # once for a page's records
            for key, data in items:
                cache[key] = data
                cache.move_to_end(key)
            while len(cache) > _DECODED_MAX:
                cache.popitem(last=False)

    def raw_referring(self, stream: str, field: str, ids: Sequence[str]) -> list[Record]:
        """Stored records of `stream` whose `field` (customer or invoice) is one of `ids`."""
        return [record for record, _ in self.raw_referring_hashed(stream, field, ids)]

    def raw_referring_hashed(self, stream: str, field: str, ids: Sequence[str]) -> list[tuple[Record, str]]:
        """`raw_referring`, each record with its stored content hash."""
        column = "customer_id" if field == "customer" else "invoice_id"
        sql = (
            f'SELECT record_id, updated_at, content_hash, data FROM "{RAW.name}" '  # noqa: S608
            f"WHERE stream = {self._p} AND deleted = {self._p} AND {column} IN ({{}}) ORDER BY sort_key"
        )
        records: list[tuple[Record, str]] = []
        with self.connect() as conn:
            for chunk in _chunks(ids):
                rows = self._run(conn, sql.format(self._marks(len(chunk))), (stream, False, *chunk))
                records.extend(
                    (Record(stream, rid, updated, loads(data)), hash_text(h)) for rid, updated, h, data in rows
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
            with self.connect() as conn:
                rows = conn.execute(stmt).mappings().all()
            if not rows:
                return
            yield [
                Record(stream, r["record_id"], r["updated_at"], loads(r["data"]), bool(r["deleted"]))
                for r in rows
            ]
            after = rows[-1]["sort_key"]

    def count_raw(self, stream: str) -> int:
        with self.connect() as conn:
            stmt = select(func.count()).where(RAW.c.stream == stream, RAW.c.deleted == False)  # noqa: E712
            return int(conn.execute(stmt).scalar_one())

    # -- deliveries -----------------------------------------------------------------
    def delivered_hashes(self, connector: str, stream: str, ids: Sequence[str]) -> dict[str, str]:
        """What each record looked like when `connector` last received it."""
        sql = (
            f'SELECT record_id, content_hash FROM "{DELIVERY.name}" '  # noqa: S608
            f"WHERE connector = {self._p} AND stream = {self._p} AND record_id IN ({{}})"
        )
        with self.connect() as conn:
            return {rid: hash_text(h) for rid, h in self._select_in(conn, sql, (connector, stream), ids)}

    def commit_deliveries(
        self,
        connector: str,
        stream: str,
        delivered: Iterable[tuple[str, str]],
        rejected: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Record what a connector now holds durably, and what it refused (dead letters)."""
        now = time.time()
        # In key order: the table is its primary key's b-tree on SQLite (WITHOUT ROWID); the
        # pairs sort by id, as connector and stream are the same in every row.
        done = [(connector, stream, rid, hash_bytes(h)) for rid, h in sorted(delivered)]
        dead = list(rejected)
        clear = (
            f'DELETE FROM "{DEAD.name}" WHERE connector = {self._p} AND stream = {self._p} AND record_id IN ({{}})'  # noqa: S608
        )
        with self.begin() as conn:
            self._upsert_fast(conn, DELIVERY, ("connector", "stream", "record_id", "content_hash"), done)
            for chunk in _chunks([row[2] for row in done]):
                self._run(conn, clear.format(self._marks(len(chunk))), (connector, stream, *chunk))
            for rid, reason in dead:
                self._add_dead_letter(conn, connector, stream, rid, reason, now)

    def _add_dead_letter(
        self, conn: Connection, connector: str, stream: str, record_id: str, reason: str, now: float
    ) -> None:
        key = and_(DEAD.c.connector == connector, DEAD.c.stream == stream, DEAD.c.record_id == record_id)
        reason = redact_text(reason)  # `syncd status` shows it; a connector may quote a token
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
        with self.begin() as conn:
            stmt = delete(Delivery).where(DELIVERY.c.connector == connector)
            if streams is not None:
                stmt = stmt.where(DELIVERY.c.stream.in_(streams))
            conn.execute(stmt)

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        with self.connect() as conn:
            stmt = select(DEAD).order_by(DEAD.c.last_seen.desc()).limit(limit)
            return [DeadLetter(**row) for row in conn.execute(stmt).mappings()]

    def count_dead_letters(self) -> int:
        with self.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(DeadLetter)).scalar_one())

    # -- connector output rows ------------------------------------------------------
    def outputs(self, connector: str) -> ConnectorOutputs:
        """The OutputStore a file connector keeps its rows in."""
        return ConnectorOutputs(self, connector)

    # -- runs -----------------------------------------------------------------------
    def start_run(self, kind: str, job: str | None = None, holder: str | None = None) -> int:
        """Record a run starting now; called under the lease its kind needs (pull or push).

        Runs of the same lease still marked running belong to a process that was killed
        (the lease says nobody else is running): they are marked `interrupted` and end now,
        so the run log never shows a killed run overlapping the one that took over.
        """
        lease_kinds = _LEASE_KINDS.get(kind, (kind,))
        now = time.time()
        with self.begin() as conn:
            conn.execute(
                RUN.update()
                .where(RUN.c.status == "running", RUN.c.kind.in_(lease_kinds))
                .values(status="interrupted", ended_at=now)
            )
            result = conn.execute(
                RUN.insert().values(
                    kind=kind, job=job or kind, holder=holder or process_id(), started_at=now, counts="{}"
                )
            )
            key = result.inserted_primary_key
            assert key is not None  # an autoincrement insert always returns its key
            return int(key[0])

    def finish_run(
        self, run_id: int, status: str, counts: Mapping[str, Any], error: str | None = None
    ) -> None:
        with self.begin() as conn:
            conn.execute(
                RUN.update()
                .where(RUN.c.id == run_id)
                .values(
                    ended_at=time.time(),
                    status=status,
                    counts=dumps(dict(counts)),
                    error=redact_text(error) if error else error,
                )
            )

    def recent_runs(self, limit: int = 10) -> list[Run]:
        with self.connect() as conn:
            stmt = select(RUN).order_by(RUN.c.id.desc()).limit(limit)
            return [Run(**row) for row in conn.execute(stmt).mappings()]


# Kinds of run that share a lease: a `retry` re-delivers under the pull lease like a sync.
_LEASE_KINDS = {"sync": ("sync", "retry"), "retry": ("sync", "retry"), "push": ("push",)}


def process_id() -> str:
    """This process as recorded in the run log: `host:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


class ConnectorOutputs:
    """One connector's rows in the store (implements syncd.plugin.OutputStore).

    A row is kept as JSON (`rows` reads it back) or as a text of the connector's own: any
    text not starting with "{", as every JSON row does (`stored` reads both). Each of the
    connector's tables has a small id (`OutputTable`); a row is keyed by it, its record's
    `sort_key`, id and stream, and its place among the record's rows.
    """

    def __init__(self, store: Store, connector: str) -> None:
        self._store = store
        self.connector = connector
        p = store._p
        # SQLite would seek every (table, sort_key, record_id) of the IN lists' product; the
        # unary plus leaves record_id a filter (seeks: tables x records). PostgreSQL has no
        # unary plus for text, nor the need.
        rid = "+record_id" if store._dialect == "sqlite" else "record_id"
        self._clear_sql = (
            f'DELETE FROM "{OUTPUT.name}" WHERE tab IN ({{0}}) AND sort_key IN ({{1}}) '  # noqa: S608
            f"AND stream = {p} AND {rid} IN ({{1}})"
        )
        self._held_sql = self._clear_sql.replace("DELETE FROM", "SELECT DISTINCT record_id FROM", 1)

    def _tables(self, conn: Connection) -> dict[str, int]:
        """The connector's tables by name: their ids (one small query; read each time, as
        another process may have added one)."""
        sql = f'SELECT table_name, id FROM "{OUTPUT_TABLE.name}" WHERE connector = {self._store._p}'  # noqa: S608
        return {name: int(tab) for name, tab in self._store._run(conn, sql, (self.connector,))}

    def _table_ids(self, conn: Connection, names: Collection[str]) -> dict[str, int]:
        """`_tables`, with an id made for each of `names` not named yet."""
        tabs = self._tables(conn)
        missing = sorted(set(names) - set(tabs))
        if missing:
            p = self._store._p
            sql = (
                f'INSERT INTO "{OUTPUT_TABLE.name}" (connector, table_name) VALUES ({p}, {p}) '  # noqa: S608
                "ON CONFLICT (connector, table_name) DO NOTHING"  # another process named it meanwhile
            )
            self._store._run(conn, sql, [(self.connector, name) for name in missing], many=True)
            tabs = self._tables(conn)
        return tabs

    def _clear(self, conn: Connection, tabs: Collection[int], keys: Sequence[tuple[str, str]]) -> None:
        """Delete every row of these (stream, record id)s in any of the connector's tables."""
        if not tabs:
            return
        by_stream: dict[str, list[str]] = {}
        for stream, record_id in keys:
            by_stream.setdefault(stream, []).append(record_id)
        marks = self._store._marks
        for stream, ids in by_stream.items():
            for chunk in _chunks(sorted(set(ids)), _CHUNK // 4):
                sql = self._clear_sql.format(marks(len(tabs)), marks(len(chunk)))
                self._store._run(conn, sql, (*tabs, *(sort_key(r) for r in chunk), stream, *chunk))

    def put_many(self, items: Sequence[tuple[str, str, Mapping[str, Sequence[Mapping[str, Any] | str]]]]) -> None:
        """Replace the rows of many records in one transaction; a row given as text is kept as is."""
        store = self._store
        insert = f'INSERT INTO "{OUTPUT.name}" ({", ".join(_OUTPUT_COLS)}) VALUES ({store._marks(len(_OUTPUT_COLS))})'  # noqa: S608
        with store.begin() as conn:
            tabs = self._table_ids(conn, {table for _, _, tables in items for table in tables})
            self._clear(conn, tabs.values(), [(stream, record_id) for stream, record_id, _ in items])
            rows: list[tuple[Any, ...]] = []
            for stream, record_id, tables in items:
                key = sort_key(record_id)
                for table, table_rows in tables.items():
                    tab = tabs[table]
                    rows.extend(
                        (tab, key, record_id, stream, i, pack_row(row if isinstance(row, str) else _dumps_row(row)))
                        for i, row in enumerate(table_rows)
                    )
            if rows:
                rows.sort()  # in key order: the table is its key's b-tree on SQLite
                store._run(conn, insert, rows, many=True)
            self._mark(conn, dirty=True)

    def _mark(self, conn: Connection, *, dirty: bool) -> None:
        row = (f"dirty:{self.connector}", "1" if dirty else "0")
        self._store._upsert_fast(conn, META, ("key", "value"), [row])

    def is_dirty(self) -> bool:
        """True when rows changed since the connector last rendered its files."""
        return self._store.get_meta(f"dirty:{self.connector}") != "0"

    def mark_clean(self) -> None:
        """Called by a file connector once its files reflect every row."""
        with self._store.begin() as conn:
            self._mark(conn, dirty=False)

    def put(self, stream: str, record_id: str, tables: Mapping[str, Sequence[Mapping[str, Any] | str]]) -> None:
        self.put_many([(stream, record_id, tables)])

    def delete(self, stream: str, record_id: str) -> None:
        with self._store.begin() as conn:
            self._clear(conn, self._tables(conn).values(), [(stream, record_id)])
            self._mark(conn, dirty=True)

    def held(self, stream: str, ids: Sequence[str]) -> set[str]:
        """The ids among `ids` (of `stream`) that have rows here, in any table."""
        found: set[str] = set()
        marks = self._store._marks
        with self._store.connect() as conn:
            tabs = list(self._tables(conn).values())
            if not tabs:
                return found
            for chunk in _chunks(sorted(set(ids)), _CHUNK // 4):
                sql = self._held_sql.format(marks(len(tabs)), marks(len(chunk)))
                rows = self._store._run(conn, sql, (*tabs, *(sort_key(r) for r in chunk), stream, *chunk))
                found.update(rid for (rid,) in rows)
        return found

    def rows(self, table: str) -> Iterator[dict[str, Any]]:
        """Rows of one table by record id then ordinal, read in batches (JSON rows only)."""
        for text in self._data(table):
            if not text.startswith("{"):
                raise StoreError(f"a row of {self.connector}'s table {table} is kept as text, not JSON")
            yield loads(text)

    def stored(self, table: str) -> Iterator[dict[str, Any] | str]:
        """Rows of one table in the order of `rows`: a JSON row decoded, a text row as its text."""
        for text in self._data(table):
            yield loads(text) if text.startswith("{") else text

    def _data(self, table: str) -> Iterator[str]:
        # Keyset batches (no transaction held over a whole render), read off the driver's
        # cursor: rendering is a copy of these texts, Row objects would be most of its cost.
        store = self._store
        with store.connect() as conn:
            tab = self._tables(conn).get(table)
        if tab is None:
            return
        sql = (
            f'SELECT sort_key, record_id, stream, ordinal, data FROM "{OUTPUT.name}" '  # noqa: S608
            f"WHERE tab = {store._p} AND (sort_key, record_id, stream, ordinal) > ({store._marks(4)}) "
            f"ORDER BY sort_key, record_id, stream, ordinal LIMIT {_RENDER_BATCH}"
        )
        after: tuple[int, str, str, int] = (-(2**63), "", "", -1)
        while True:
            with store.connect() as conn:
                batch = store._run(conn, sql, (tab, *after))
            if not batch:
                return
            for row in batch:
                yield unpack_row(row[4])
            last = batch[-1]
            after = (last[0], last[1], last[2], last[3])

    def remember(self, key: str, value: str) -> str:
        """Keep `value` under `key` (this connector's) unless one is kept there; the kept value."""
        name = f"note:{self.connector}:{key}"
        with self._store.begin() as conn:
            kept = conn.execute(select(META.c.value).where(META.c.key == name)).scalar_one_or_none()
            if kept is None:
                conn.execute(META.insert().values(key=name, value=value))
        return value if kept is None else str(kept)

    def recall(self, key: str) -> str | None:
        """What `remember` keeps under `key`, if anything."""
        return self._store.get_meta(f"note:{self.connector}:{key}")
