"""The sandbox's account: customers, invoices, transactions and events, in memory.

Objects are stored exactly as the API returns them (money as Decimal, timestamps as int) and
are never mutated in place: a change stores a new dict, so an event's snapshot stays as it was.
Each object's JSON bytes are cached until it changes, and a sorted `(updated_at, id)` index
answers `updated_after` + `sort=updated_at asc` listings without sorting the table; a date
index and one such index per date window (kept up to date by every write) answer date-window
listings and `sort=date asc` counts the same way, so no request scans the table.
"""

from __future__ import annotations

import bisect
import builtins
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar, cast

import simplejson

from syncd.sandbox.model import (
    ApiProblem,
    bad,
    compute_invoice,
    money,
    paid_effect,
    validate,
)

STREAMS = ("customers", "invoices", "transactions")
OBJECT = {"customers": "customer", "invoices": "invoice", "transactions": "transaction", "events": "event"}
BASE_URL = "https://sandbox.invoiced.local"

# filter[field] values are compared after conversion to the field's type.
FILTERABLE: dict[str, dict[str, type]] = {
    "customers": {
        "id": int,
        "name": str,
        "number": str,
        "email": str,
        "type": str,
        "country": str,
        "currency": str,
        "autopay": bool,
        "payment_terms": str,
        "city": str,
        "state": str,
        "chase": bool,
        "credit_hold": bool,
    },
    "invoices": {
        "id": int,
        "customer": int,
        "number": str,
        "name": str,
        "currency": str,
        "status": str,
        "draft": bool,
        "closed": bool,
        "paid": bool,
        "autopay": bool,
        "payment_terms": str,
        "date": int,
        "due_date": int,
        "purchase_order": str,
    },
    "transactions": {
        "id": int,
        "customer": int,
        "invoice": int,
        "type": str,
        "method": str,
        "status": str,
        "currency": str,
        "gateway": str,
        "gateway_id": str,
        "parent_transaction": int,
        "credit_note": int,
        "date": int,
    },
    "events": {"id": int, "type": str},
}
SORTABLE: dict[str, frozenset[str]] = {
    "customers": frozenset({"id", "updated_at", "created_at", "name", "number"}),
    "invoices": frozenset(
        {"id", "updated_at", "created_at", "date", "due_date", "number", "name", "total", "balance"}
    ),
    "transactions": frozenset({"id", "updated_at", "created_at", "date", "amount"}),
    "events": frozenset({"id", "timestamp"}),
}
DEFAULT_SORT = {
    "customers": ("id", False),
    "invoices": ("id", False),
    "transactions": ("id", False),
    "events": ("timestamp", True),
}
EXPANDABLE = {
    "customers": frozenset(),
    "invoices": frozenset({"customer"}),
    "transactions": frozenset({"customer", "invoice"}),
    "events": frozenset(),
}
DATE_FIELD = {"invoices": "date", "transactions": "date", "events": "timestamp"}


def dumps(obj: Any) -> bytes:
    """Compact JSON with Decimals written as exact numbers."""
    return simplejson.dumps(obj, use_decimal=True, separators=(",", ":")).encode()


T = TypeVar("T")


def copy_obj(value: T) -> T:
    """A deep copy of JSON-shaped data (much faster than copy.deepcopy)."""
    if isinstance(value, dict):
        return cast(T, {k: copy_obj(v) for k, v in value.items()})
    if isinstance(value, list):
        return cast(T, [copy_obj(v) for v in value])
    return value


@dataclass(frozen=True)
class ListQuery:
    """A parsed list request."""

    page: int = 1
    per_page: int = 100
    sort_field: str = "id"
    sort_desc: bool = False
    filters: tuple[tuple[str, Any], ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()
    updated_after: int | None = None
    start_date: int | None = None
    end_date: int | None = None
    expand: frozenset[str] = frozenset()


def _query_int(name: str, value: str, low: int = 0) -> int:
    try:
        number = int(value)
    except ValueError:
        raise bad(name, f"{name} must be an integer, got {value[:40]!r}") from None
    if number < low:
        raise bad(name, f"{name} must be at least {low}")
    return number


def _coerce(name: str, kind: type, value: str) -> Any:
    if kind is int:
        return _query_int(name, value)
    if kind is bool:
        if value.lower() not in ("true", "false", "1", "0"):
            raise bad(name, f"{name} must be true or false")
        return value.lower() in ("true", "1")
    return value


def parse_list_query(stream: str, params: Iterable[tuple[str, str]]) -> ListQuery:
    """Turn query parameters into a ListQuery; a 400 naming the parameter when one is wrong.

    Parameters the API does not document are ignored, as the API itself does.
    """
    kw: dict[str, Any] = {}
    filters: list[tuple[str, Any]] = []
    metadata: list[tuple[str, str]] = []
    sort_field, sort_desc = DEFAULT_SORT[stream]
    for name, value in params:
        if name == "page":
            kw["page"] = _query_int(name, value, 1)
        elif name == "per_page":
            per_page = _query_int(name, value, 1)
            if per_page > 100:
                raise bad("per_page", f"per_page must be at most 100, got {per_page}")
            kw["per_page"] = per_page
        elif name == "sort":
            parts = value.split()
            if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
                raise bad("sort", f"sort must be '<column> asc|desc', got {value[:60]!r}")
            if parts[0] not in SORTABLE[stream]:
                raise bad(
                    "sort",
                    f"cannot sort {stream} by {parts[0][:40]!r}; use one of {', '.join(sorted(SORTABLE[stream]))}",
                )
            sort_field, sort_desc = parts[0], len(parts) == 2 and parts[1].lower() == "desc"
        elif name.startswith("filter[") and name.endswith("]"):
            column = name[7:-1]
            kind = FILTERABLE[stream].get(column)
            if kind is None:
                raise bad(name, f"cannot filter {stream} by {column[:40]!r}")
            filters.append((column, _coerce(name, kind, value)))
        elif name.startswith("metadata[") and name.endswith("]"):
            metadata.append((name[9:-1], value))
        elif name == "updated_after" and stream != "events":
            kw["updated_after"] = _query_int(name, value)
        elif name in ("start_date", "end_date") and stream in DATE_FIELD:
            kw[name] = _query_int(name, value)
        elif name == "expand":
            kw["expand"] = frozenset(v.strip() for v in value.split(",")) & EXPANDABLE[stream]
    return ListQuery(
        sort_field=sort_field, sort_desc=sort_desc, filters=tuple(filters), metadata=tuple(metadata), **kw
    )


# Date windows whose (updated_at, id) index is kept up to date; the oldest is dropped beyond.
WINDOW_INDEXES = 32


@dataclass
class _Table:
    clock_field: str = "updated_at"
    date_field: str | None = None
    rows: dict[int, dict[str, Any]] = field(default_factory=dict)
    blobs: dict[int, bytes] = field(default_factory=dict)
    index: list[tuple[int, int]] = field(default_factory=list)  # sorted (updated_at, id)
    # sorted (date, id) of the dated rows, and how many rows have no date (date_field only)
    dates: list[tuple[int, int]] = field(default_factory=list)
    undated: int = 0
    # (start_date, end_date) -> sorted (updated_at, id) of the rows dated in it: a sync's windows
    windows: OrderedDict[tuple[int | None, int | None], list[tuple[int, int]]] = field(
        default_factory=OrderedDict
    )
    version: int = 0
    next_id: int = 1

    def put(self, obj: dict[str, Any]) -> None:
        oid = obj["id"]
        old = self.rows.get(oid)
        if old is not None:
            self._unindex(old)
        self.rows[oid] = obj
        self.blobs.pop(oid, None)
        key = (obj[self.clock_field], oid)
        bisect.insort(self.index, key)
        if self.date_field is not None:
            date = obj.get(self.date_field)
            if date is None:
                self.undated += 1
            else:
                bisect.insort(self.dates, (date, oid))
            for (start, end), keys in self.windows.items():
                if _within(date, start, end):
                    bisect.insort(keys, key)
        self.version += 1

    def remove(self, oid: int) -> dict[str, Any]:
        old = self.rows.pop(oid)
        self.blobs.pop(oid, None)
        self._unindex(old)
        self.version += 1
        return old

    def _unindex(self, obj: dict[str, Any]) -> None:
        key = (obj[self.clock_field], obj["id"])
        del self.index[bisect.bisect_left(self.index, key)]
        if self.date_field is not None:
            date = obj.get(self.date_field)
            if date is None:
                self.undated -= 1
            else:
                del self.dates[bisect.bisect_left(self.dates, (date, obj["id"]))]
            for (start, end), keys in self.windows.items():
                if _within(date, start, end):
                    del keys[bisect.bisect_left(keys, key)]

    def window(self, start: int | None, end: int | None) -> list[tuple[int, int]]:
        """Sorted (updated_at, id) of the rows dated in [start, end]: built once, then kept."""
        keys = self.windows.get((start, end))
        if keys is None:
            rows, field_ = self.rows, cast(str, self.date_field)
            keys = [k for k in self.index if _within(rows[k[1]].get(field_), start, end)]
            self.windows[(start, end)] = keys
            if len(self.windows) > WINDOW_INDEXES:
                self.windows.popitem(last=False)
        else:
            self.windows.move_to_end((start, end))
        return keys

    def blob(self, oid: int) -> bytes:
        data = self.blobs.get(oid)
        if data is None:
            data = self.blobs[oid] = dumps(self.rows[oid])
        return data

    def load(self, objs: Iterable[dict[str, Any]]) -> None:
        """Bulk insert (seeding): one sort instead of many inserts."""
        for obj in objs:
            self.rows[obj["id"]] = obj
            self.next_id = max(self.next_id, obj["id"] + 1)
        self.index = sorted((o[self.clock_field], o["id"]) for o in self.rows.values())
        if self.date_field is not None:
            field_ = self.date_field
            self.dates = sorted((o[field_], o["id"]) for o in self.rows.values() if o.get(field_) is not None)
            self.undated = len(self.rows) - len(self.dates)
        self.windows.clear()
        self.blobs.clear()
        self.version += 1


def _within(date: int | None, start: int | None, end: int | None) -> bool:
    """The list filter's rule: a missing date counts as 0."""
    value = date or 0
    return (start is None or value >= start) and (end is None or value <= end)


def _clock() -> int:
    return int(time.time())


class SandboxData:
    """The sandbox's data; thread-safe. `list`/`get`/`create`/`update`/`delete` act like the API."""

    def __init__(self, clock: Callable[[], int] = _clock) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.tables = {name: _Table(date_field=DATE_FIELD.get(name)) for name in STREAMS}
        self.tables["events"] = _Table(clock_field="timestamp")
        self.flags: dict[int, dict[str, bool]] = {}  # invoice id -> sent/viewed/voided
        self.tx_by_invoice: dict[int, set[int]] = {}
        self.customer_refs: Counter[int] = Counter()  # invoices + transactions per customer
        self.numbers: dict[str, dict[str, int]] = {"customers": {}, "invoices": {}}
        self._sub_id = 1
        self._cache: OrderedDict[tuple[Any, ...], tuple[int, list[int], list[int] | None]] = OrderedDict()

    @classmethod
    def seeded(cls, seed: int, customers: int, invoices: int, transactions: int) -> SandboxData:
        """Realistic data, deterministic by `seed` (no server)."""
        from syncd.sandbox.seed import seed_data

        data = cls()
        seed_data(data, seed, customers, invoices, transactions)
        return data

    # -- reading ---------------------------------------------------------------------------------

    def list(self, stream: str) -> list[dict[str, Any]]:
        """Every object of `stream` (customers, invoices, transactions, events), ordered by id."""
        with self.lock:
            rows = self._table(stream).rows
            return [copy_obj(rows[i]) for i in sorted(rows)]

    def get(self, stream: str, oid: int | str) -> dict[str, Any] | None:
        """One object as the API would return it, or None."""
        with self.lock:
            row = self._table(stream).rows.get(_as_id(oid))
            return copy_obj(row) if row is not None else None

    def warm(self) -> None:
        """Serialize every object now, so that first reads cost what later ones do (fair benchmarks)."""
        for name in (*STREAMS, "events"):
            table = self.tables[name]
            with self.lock:
                ids = [oid for oid in table.rows if oid not in table.blobs]
            for start in range(0, len(ids), 1000):  # short lock holds: requests keep flowing
                with self.lock:
                    for oid in ids[start : start + 1000]:
                        if oid in table.rows:
                            table.blob(oid)

    def count(self, stream: str) -> int:
        """How many objects `stream` holds."""
        return len(self._table(stream).rows)

    def random_ids(self, stream: str, pick: Callable[[int], int], n: int) -> builtins.list[int]:
        """Up to `n` ids chosen with `pick(len)` (the edit thread's cheap random choice)."""
        with self.lock:
            index = self._table(stream).index
            return [index[pick(len(index))][1] for _ in range(n)] if index else []

    def _table(self, stream: str) -> _Table:
        try:
            return self.tables[stream]
        except KeyError:
            raise ValueError(f"unknown stream {stream!r}") from None

    def blob(self, stream: str, oid: int, expand: frozenset[str] = frozenset()) -> bytes:
        """The object's JSON bytes (cached), with `expand`ed references inlined."""
        table = self.tables[stream]
        if not expand:
            return table.blob(oid)
        obj = dict(table.rows[oid])
        for ref in expand:
            target = "customers" if ref == "customer" else "invoices"
            linked = self.tables[target].rows.get(obj.get(ref)) if obj.get(ref) is not None else None  # type: ignore[arg-type]
            if linked is not None:
                obj[ref] = linked
        return dumps(obj)

    def retrieve(self, stream: str, oid: int, expand: frozenset[str] = frozenset()) -> bytes:
        """GET /stream/id: the object's JSON bytes, or a 404."""
        with self.lock:
            if oid not in self.tables[stream].rows:
                raise ApiProblem(404, f"No such {OBJECT[stream]}: {oid}")
            return self.blob(stream, oid, expand & EXPANDABLE[stream])

    def query(self, stream: str, q: ListQuery) -> tuple[int, builtins.list[bytes]]:
        """(total matching, JSON bytes of the requested page)."""
        with self.lock:
            table = self.tables[stream]
            start = (q.page - 1) * q.per_page
            if (
                q.sort_field == table.clock_field
                and not q.sort_desc
                and not (q.filters or q.metadata or q.start_date is not None or q.end_date is not None)
            ):
                # The sync loop's query: bisect the live index, no copy, no sort.
                pos = (
                    0
                    if q.updated_after is None
                    else bisect.bisect_right(table.index, (q.updated_after, 2**63))
                )
                page_ids = [oid for _, oid in table.index[pos + start : pos + start + q.per_page]]
                total = len(table.index) - pos
            elif (
                q.sort_field == table.clock_field
                and not q.sort_desc
                and not (q.filters or q.metadata)
                and table.date_field is not None
            ):
                # A date window of the sync loop: its own index, kept up to date by every write.
                keys = table.window(q.start_date, q.end_date)
                pos = 0 if q.updated_after is None else bisect.bisect_right(keys, (q.updated_after, 2**63))
                page_ids = [oid for _, oid in keys[pos + start : pos + start + q.per_page]]
                total = len(keys) - pos
            elif (
                q.sort_field == table.date_field
                and not q.sort_desc
                and not (q.filters or q.metadata)
                and q.updated_after is None
                and not table.undated
            ):
                # Date-window counts and edges (the planning probes): bisect the date index.
                low = 0 if q.start_date is None else bisect.bisect_left(table.dates, (q.start_date, -1))
                high = len(table.dates) if q.end_date is None else bisect.bisect_right(table.dates, (q.end_date, 2**63))
                page_ids = [oid for _, oid in table.dates[low + start : min(low + start + q.per_page, high)]]
                total = max(high - low, 0)
            else:
                ids = self._ordered(stream, table, q)
                total = len(ids)
                page_ids = ids[start : start + q.per_page]
            return total, [self.blob(stream, oid, q.expand) for oid in page_ids]

    def _ordered(self, stream: str, table: _Table, q: ListQuery) -> builtins.list[int]:
        on_clock = q.sort_field == table.clock_field
        key = (
            stream,
            q.filters,
            q.metadata,
            q.start_date,
            q.end_date,
            q.sort_field,
            q.sort_desc,
            None if on_clock else q.updated_after,
        )
        hit = self._cache.get(key)
        if hit is not None and hit[0] == table.version:
            self._cache.move_to_end(key)
            ids, keys = hit[1], hit[2]
        else:
            ids, keys = self._compute_order(stream, table, q, on_clock)
            self._cache[key] = (table.version, ids, keys)
            if len(self._cache) > 16:
                self._cache.popitem(last=False)
        if on_clock and q.updated_after is not None and keys is not None:
            if q.sort_desc:  # keys are -updated_at ascending: the matches are a prefix
                return ids[: bisect.bisect_left(keys, -q.updated_after)]
            return ids[bisect.bisect_right(keys, q.updated_after) :]
        return ids

    def _compute_order(
        self, stream: str, table: _Table, q: ListQuery, on_clock: bool
    ) -> tuple[builtins.list[int], builtins.list[int] | None]:
        rows = table.rows
        match = _predicate(stream, q, None if on_clock else q.updated_after)
        if on_clock:
            pairs = [p for p in table.index if match is None or match(rows[p[1]])]
            if q.sort_desc:
                pairs.sort(key=lambda p: (-p[0], p[1]))
                return [p[1] for p in pairs], [-p[0] for p in pairs]
            return [p[1] for p in pairs], [p[0] for p in pairs]
        objs = [o for o in rows.values() if match is None or match(o)]
        objs.sort(key=lambda o: o["id"])
        if q.sort_field != "id" or q.sort_desc:
            column = q.sort_field
            # Stable sorts keep id ascending among ties, in both directions.
            objs.sort(
                key=lambda o: (o.get(column) is not None, o.get(column) if o.get(column) is not None else 0),
                reverse=q.sort_desc,
            )
        return [o["id"] for o in objs], None

    # -- writing ---------------------------------------------------------------------------------

    def create(self, stream: str, fields: Mapping[str, Any], *, form: bool = False) -> dict[str, Any]:
        """Create an object with the API's rules (totals computed, event emitted); 400 on bad input."""
        if stream not in STREAMS:
            raise ValueError(f"cannot create {stream}")
        with self.lock:
            values = validate(stream, fields, creating=True, form=form)
            now = self.clock()
            if stream == "customers":
                obj = self._new_customer(values, now)
            elif stream == "invoices":
                obj = self._new_invoice(values, now)
            else:
                obj = self._new_transaction(values, now)
            self._store(stream, obj)
            self._emit(f"{OBJECT[stream]}.created", obj, None, now)
            if stream == "transactions" and obj["invoice"] is not None:
                self._recompute_invoice(obj["invoice"], now)
            return copy_obj(obj)

    def update(
        self, stream: str, oid: int | str, fields: Mapping[str, Any], *, form: bool = False
    ) -> dict[str, Any]:
        """PATCH: apply `fields`, recompute, bump updated_at to the server clock, emit `.updated`."""
        with self.lock:
            old = self._existing(stream, oid)
            values = validate(stream, fields, creating=False, form=form)
            now = self.clock()
            new = dict(old)
            if stream == "invoices":
                self._apply_invoice(new, values, old)
            elif stream == "transactions":
                self._apply_transaction(new, values, old)
            else:
                self._apply_customer(new, values, old)
            new["updated_at"] = now
            self._store(stream, new, old)
            self._emit(f"{OBJECT[stream]}.updated", new, _diff(old, new), now)
            if stream == "transactions" and new["invoice"] is not None:
                self._recompute_invoice(new["invoice"], now)
            return copy_obj(new)

    def delete(self, stream: str, oid: int | str) -> None:
        """DELETE: remove the object and emit `<object>.deleted`.

        Money never dangles: deleting an invoice deletes its transactions first, and deleting a
        customer deletes its transactions and invoices, each with its own `.deleted` event.
        """
        with self.lock:
            old = self._existing(stream, oid)
            now = self.clock()
            rid: int = old["id"]
            if stream == "customers" and self.customer_refs[rid]:
                for child in ("transactions", "invoices"):
                    for obj in [o for o in self.tables[child].rows.values() if o["customer"] == rid]:
                        if obj["id"] in self.tables[child].rows:  # an invoice's delete may have taken it
                            self._delete(child, obj, now)
            self._delete(stream, old, now)

    def _delete(self, stream: str, old: dict[str, Any], now: int) -> None:
        if stream == "invoices":
            rows = self.tables["transactions"].rows
            for tid in sorted(self.tx_by_invoice.get(old["id"], ())):
                tx = rows[tid]
                self._unstore("transactions", tx)
                self._emit("transaction.deleted", tx, None, now)
        self._unstore(stream, old)
        self._emit(f"{OBJECT[stream]}.deleted", old, None, now)
        if stream == "transactions" and old["invoice"] is not None:
            self._recompute_invoice(old["invoice"], now)

    def drop_events_before(self, moment: float) -> None:
        """Forget the events stamped before `moment` (an account's limited event retention)."""
        with self.lock:
            table = self.tables["events"]
            cut = bisect.bisect_left(table.index, (moment, 0))
            if cut:
                for _, eid in table.index[:cut]:
                    table.rows.pop(eid, None)
                    table.blobs.pop(eid, None)
                del table.index[:cut]
                table.version += 1

    def touch_many(self, stream: str, ids: Iterable[int | str]) -> None:
        """A bulk edit: every object gets updated_at = the same server second."""
        with self.lock:
            now = self.clock()
            for oid in ids:
                old = self._existing(stream, oid)
                new = dict(old)
                new["updated_at"] = now
                self._store(stream, new, old)
                self._emit(f"{OBJECT[stream]}.updated", new, {}, now)

    def void_invoice(self, oid: int | str) -> dict[str, Any]:
        """POST /invoices/:id/void: the invoice is voided (no further payments)."""
        with self.lock:
            old = self._existing("invoices", oid)
            if self.flags.get(old["id"], {}).get("voided"):
                raise ApiProblem(400, f"invoice {old['id']} is already voided")
            # A new dict: seeded invoices share their flag dicts.
            self.flags[old["id"]] = {**self.flags.get(old["id"], {}), "voided": True}
            self._recompute_invoice(old["id"], self.clock(), force=True)
            return copy_obj(self.tables["invoices"].rows[old["id"]])

    # -- internals ---------------------------------------------------------------------------------

    def _existing(self, stream: str, oid: int | str) -> dict[str, Any]:
        row = self._table(stream).rows.get(_as_id(oid))
        if row is None:
            raise ApiProblem(404, f"No such {OBJECT.get(stream, stream)}: {oid}")
        return row

    def _next_id(self, stream: str) -> int:
        table = self.tables[stream]
        oid = table.next_id
        table.next_id += 1
        return oid

    def set_sub_id(self, next_id: int) -> None:
        """Where line item, discount and tax ids continue (after seeding)."""
        self._sub_id = next_id

    def sub_id(self) -> int:
        """An id for a line item, discount or tax."""
        oid = self._sub_id
        self._sub_id += 1
        return oid

    def _store(self, stream: str, new: dict[str, Any], old: dict[str, Any] | None = None) -> None:
        numbers = self.numbers.get(stream)
        if numbers is not None:
            if old is not None and numbers.get(old["number"]) == old["id"]:
                del numbers[old["number"]]
            numbers[new["number"]] = new["id"]
        if old is None:
            if stream in ("invoices", "transactions"):
                self.customer_refs[new["customer"]] += 1
            if stream == "transactions" and new["invoice"] is not None:
                self.tx_by_invoice.setdefault(new["invoice"], set()).add(new["id"])
        self.tables[stream].put(new)

    def _unstore(self, stream: str, old: dict[str, Any]) -> None:
        numbers = self.numbers.get(stream)
        if numbers is not None and numbers.get(old["number"]) == old["id"]:
            del numbers[old["number"]]
        if stream in ("invoices", "transactions"):
            self.customer_refs[old["customer"]] -= 1
        if stream == "transactions" and old["invoice"] is not None:
            self.tx_by_invoice.get(old["invoice"], set()).discard(old["id"])
        if stream == "invoices":
            self.flags.pop(old["id"], None)
        self.tables[stream].remove(old["id"])

    def _emit(self, kind: str, obj: dict[str, Any], previous: dict[str, Any] | None, now: int) -> None:
        data: dict[str, Any] = {"object": obj}
        if previous is not None:
            data["previous"] = previous
        table = self.tables["events"]
        eid = self._next_id("events")
        table.rows[eid] = {"id": eid, "object": "event", "type": kind, "timestamp": now, "data": data}
        table.index.append((now, eid))  # events arrive in clock order
        if len(table.index) > 1 and table.index[-2] > table.index[-1]:
            table.index.sort()
        table.version += 1

    def _unique_number(self, stream: str, number: str, oid: int) -> None:
        owner = self.numbers[stream].get(number)
        if owner is not None and owner != oid:
            raise bad("number", f"number {number!r} is already used by {OBJECT[stream]} {owner}")

    def _new_customer(self, v: dict[str, Any], now: int) -> dict[str, Any]:
        oid = self._next_id("customers")
        number = v.get("number") or f"CUST-{oid:05d}"
        self._unique_number("customers", number, oid)
        obj = customer_template(oid, now)
        obj.update(v)
        obj["number"] = number
        return obj

    def _apply_customer(self, new: dict[str, Any], v: dict[str, Any], old: dict[str, Any]) -> None:
        if "number" in v:
            self._unique_number("customers", v["number"], old["id"])
        new.update(v)

    def _new_invoice(self, v: dict[str, Any], now: int) -> dict[str, Any]:
        customer = self.tables["customers"].rows.get(v["customer"])
        if customer is None:
            raise bad("customer", f"No such customer: {v['customer']}")
        oid = self._next_id("invoices")
        obj = invoice_template(
            oid, v["customer"], v.get("currency") or customer.get("currency") or "usd", now
        )
        obj["autopay"] = bool(customer.get("autopay"))
        obj["payment_terms"] = customer.get("payment_terms")
        obj["number"] = f"INV-{oid:06d}"
        self._apply_invoice(obj, v, None)
        if "due_date" not in v and obj["payment_terms"]:
            obj["due_date"] = _due(obj["date"], obj["payment_terms"])
        return obj

    def _apply_invoice(self, inv: dict[str, Any], v: dict[str, Any], old: dict[str, Any] | None) -> None:
        if "number" in v:
            self._unique_number("invoices", v["number"], inv["id"])
        if (
            old is not None
            and "currency" in v
            and v["currency"] != old["currency"]
            and self.tx_by_invoice.get(inv["id"])
        ):
            raise bad("currency", "the currency of an invoice with transactions cannot change")
        if old is not None and self.flags.get(inv["id"], {}).get("voided") and set(v) - {"metadata", "notes"}:
            raise bad(sorted(set(v) - {"metadata", "notes"})[0], f"invoice {inv['id']} is voided")
        inv.update({k: val for k, val in v.items() if k not in ("items", "discounts", "taxes")})
        currency = inv["currency"]
        if "items" in v:
            inv["items"] = [self._line_item(item, currency) for item in v["items"]]
        else:
            inv["items"] = [dict(i) for i in inv["items"]]
        for name, kind in (("discounts", "discount"), ("taxes", "tax")):
            if name in v:
                inv[name] = [self._adjustment(kind, row, currency) for row in v[name]]
        paid, pending = self._payments(inv["id"]) if old is not None else (Decimal(0), False)
        compute_invoice(inv, paid, pending, self.flags.get(inv["id"], {}), self.clock())

    def _line_item(self, item: dict[str, Any], currency: str) -> dict[str, Any]:
        return {
            "id": item.get("id") or self.sub_id(),
            "object": "line_item",
            "catalog_item": item.get("catalog_item"),
            "type": item.get("type"),
            "name": item.get("name"),
            "description": item.get("description"),
            "quantity": item.get("quantity", Decimal(1)),
            "unit_cost": money(item.get("unit_cost", Decimal(0)), currency),
            "amount": Decimal(0),
            "discountable": item.get("discountable", True),
            "discounts": [self._adjustment("discount", d, currency) for d in item.get("discounts", [])],
            "taxable": item.get("taxable", True),
            "taxes": [self._adjustment("tax", t, currency) for t in item.get("taxes", [])],
            "metadata": item.get("metadata", {}),
        }

    def _adjustment(self, kind: str, row: dict[str, Any], currency: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": row.get("id") or self.sub_id(),
            "object": kind,
            "amount": money(row["amount"], currency),
        }
        if kind == "discount":
            out.update(coupon=row.get("coupon"), expires=row.get("expires"))
        else:
            out["tax_rate"] = row.get("tax_rate")
        return out

    def _payments(self, invoice_id: int) -> tuple[Decimal, bool]:
        rows = self.tables["transactions"].rows
        txs = [rows[t] for t in self.tx_by_invoice.get(invoice_id, ())]
        return sum((paid_effect(t) for t in txs), Decimal(0)), any(t["status"] == "pending" for t in txs)

    def _recompute_invoice(self, invoice_id: int, now: int, *, force: bool = False) -> None:
        old = self.tables["invoices"].rows.get(invoice_id)
        if old is None:
            return
        new = dict(old)
        new["items"] = [dict(i) for i in old["items"]]
        paid, pending = self._payments(invoice_id)
        compute_invoice(new, paid, pending, self.flags.get(invoice_id, {}), now)
        previous = _diff(old, new)
        if previous or force:
            new["updated_at"] = now
            self._store("invoices", new, old)
            self._emit("invoice.updated", new, previous, now)

    def _new_transaction(self, v: dict[str, Any], now: int) -> dict[str, Any]:
        invoice = None
        if v.get("invoice") is not None:
            invoice = self.tables["invoices"].rows.get(v["invoice"])
            if invoice is None:
                raise bad("invoice", f"No such invoice: {v['invoice']}")
            if v.get("customer") is not None and v["customer"] != invoice["customer"]:
                raise bad("customer", f"invoice {invoice['id']} belongs to customer {invoice['customer']}")
            v["customer"] = invoice["customer"]
            if v.get("currency", invoice["currency"]) != invoice["currency"]:
                raise bad("currency", f"currency must be {invoice['currency']}, the invoice's currency")
            flags = self.flags.get(invoice["id"], {})
            if v["type"] in ("payment", "charge") and (
                flags.get("voided") or invoice["draft"] or invoice["closed"]
            ):
                raise bad(
                    "invoice",
                    f"invoice {invoice['id']} is {invoice['status'] if not invoice['closed'] else 'closed'} and cannot take payments",
                )
        if v.get("customer") is None:
            raise bad("customer", "customer is required when no invoice is given")
        customer = self.tables["customers"].rows.get(v["customer"])
        if customer is None:
            raise bad("customer", f"No such customer: {v['customer']}")
        if (
            v.get("parent_transaction") is not None
            and v["parent_transaction"] not in self.tables["transactions"].rows
        ):
            raise bad("parent_transaction", f"No such transaction: {v['parent_transaction']}")
        currency = v.get("currency") or (invoice or customer).get("currency") or "usd"
        oid = self._next_id("transactions")
        obj = transaction_template(oid, v["customer"], currency, now)
        obj["method"] = "balance" if v["type"] == "adjustment" else "other"
        obj.update(v)
        obj["currency"] = currency
        obj["amount"] = money(v["amount"], currency)
        return obj

    def _apply_transaction(self, new: dict[str, Any], v: dict[str, Any], old: dict[str, Any]) -> None:
        if "currency" in v and old["invoice"] is not None and v["currency"] != old["currency"]:
            raise bad("currency", "the currency of a transaction on an invoice cannot change")
        new.update(v)
        new["amount"] = money(new["amount"], new["currency"])
        if new["type"] != "adjustment" and new["amount"] < 0:
            raise bad("amount", "amount must not be negative")


def _predicate(
    stream: str, q: ListQuery, updated_after: int | None
) -> Callable[[dict[str, Any]], bool] | None:
    checks: builtins.list[Callable[[dict[str, Any]], bool]] = []
    for column, value in q.filters:
        checks.append(lambda o, c=column, v=value: o.get(c) == v and type(o.get(c)) is type(v))  # type: ignore[misc]
    for key, value in q.metadata:
        checks.append(lambda o, k=key, v=value: (o.get("metadata") or {}).get(k) == v)  # type: ignore[misc]
    date_field = DATE_FIELD.get(stream)
    if date_field and q.start_date is not None:
        checks.append(lambda o, s=q.start_date: (o[date_field] or 0) >= s)  # type: ignore[misc]
    if date_field and q.end_date is not None:
        checks.append(lambda o, e=q.end_date: (o[date_field] or 0) <= e)  # type: ignore[misc]
    if updated_after is not None:
        checks.append(lambda o: o["updated_at"] > updated_after)
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]
    return lambda o: all(check(o) for check in checks)


def _as_id(oid: int | str) -> int:
    try:
        return int(oid)
    except (TypeError, ValueError):
        return -1


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level fields that changed, with their previous values (updated_at aside)."""
    return {k: old.get(k) for k in new if k != "updated_at" and old.get(k) != new[k]}


def _due(date: int, terms: str) -> int | None:
    parts = terms.upper().split()
    if len(parts) == 2 and parts[0] == "NET" and parts[1].isascii() and parts[1].isdigit():
        return date + int(parts[1]) * 86400
    return None


def customer_template(oid: int, now: int) -> dict[str, Any]:
    """A customer with every documented field at its default."""
    return {
        "id": oid,
        "object": "customer",
        "name": None,
        "number": None,
        "email": None,
        "autopay": False,
        "payment_terms": None,
        "payment_source": None,
        "taxes": [],
        "type": "company",
        "attention_to": None,
        "address1": None,
        "address2": None,
        "city": None,
        "state": None,
        "postal_code": None,
        "country": "US",
        "language": None,
        "currency": None,
        "tax_id": None,
        "phone": None,
        "notes": None,
        "chase": True,
        "credit_hold": False,
        "credit_limit": None,
        "taxable": True,
        "statement_pdf_url": f"{BASE_URL}/statements/{oid}/pdf",
        "created_at": now,
        "updated_at": now,
        "metadata": {},
    }


def invoice_template(oid: int, customer: int, currency: str, now: int) -> dict[str, Any]:
    """An invoice with every documented field at its default (totals still to compute)."""
    return {
        "id": oid,
        "object": "invoice",
        "customer": customer,
        "name": None,
        "currency": currency,
        "draft": False,
        "closed": False,
        "paid": False,
        "status": "not_sent",
        "autopay": False,
        "attempt_count": 0,
        "next_payment_attempt": None,
        "subscription": None,
        "number": None,
        "date": now,
        "due_date": None,
        "payment_terms": None,
        "purchase_order": None,
        "chase": False,
        "items": [],
        "notes": None,
        "subtotal": Decimal(0),
        "discounts": [],
        "taxes": [],
        "total": Decimal(0),
        "amount_paid": Decimal(0),
        "balance": Decimal(0),
        "url": f"{BASE_URL}/invoices/{oid}",
        "payment_url": f"{BASE_URL}/invoices/{oid}/payment",
        "pdf_url": f"{BASE_URL}/invoices/{oid}/pdf",
        "created_at": now,
        "updated_at": now,
        "metadata": {},
    }


def transaction_template(oid: int, customer: int, currency: str, now: int) -> dict[str, Any]:
    """A transaction with every documented field at its default."""
    return {
        "id": oid,
        "object": "transaction",
        "customer": customer,
        "invoice": None,
        "credit_note": None,
        "date": now,
        "type": "payment",
        "method": "other",
        "status": "succeeded",
        "gateway": None,
        "gateway_id": None,
        "payment_source": None,
        "currency": currency,
        "amount": Decimal(0),
        "notes": None,
        "parent_transaction": None,
        "pdf_url": f"{BASE_URL}/payments/{oid}/pdf",
        "created_at": now,
        "updated_at": now,
        "metadata": {},
    }
