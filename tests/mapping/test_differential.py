"""Differential: `MappingSet.apply` against a plain per-column interpreter, and against the
outputs of the implementation before the generated row builders (a digest).

Records: seeded sandbox objects as stored (Decimal money) and as decoded from their JSON
bytes (whole numbers are ints), with references expanded or not, as read-only mappings
(the general path), and broken copies that a step refuses. Mappings: every shipped one
plus `EVERY_KIND` below, which uses each source kind, step and filter. Values are compared
with their types (Decimal exponent included), errors by their text, line and field.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from syncd.errors import MappingError
from syncd.invoiced.decode import loads
from syncd.mapping import MappingSet, load_mapping
from syncd.mapping.model import OutputTable
from syncd.mapping.transforms import ApplyError
from syncd.plugin import Record
from syncd.sandbox.data import SandboxData
from tests.mapping.helpers import MAPPINGS, write

EVERY_KIND = """
[defaults]
timezone = "Europe/Paris"
rounding = "half_even"
date_format = "%d/%m/%Y"
currency_digits = { EUR = 3 }

[streams.invoices]
skip = [{ path = "status", in = ["voided"] }]

[values.methods]
check = "C"
ach = "A"
wire = "W"
cash = "K"
credit_card = "CC"
paypal = "PP"
other = "O"
balance = "B"
direct_debit = "DD"

[values.kinds]
product = "P"
service = "S"

[tables.inv]
stream = "invoices"
skip = [{ path = "draft", equals = true }, { path = "metadata.region", equals = "nowhere" }]
fields = [
  { name = "id", from = "id", transforms = ["text"] },
  { name = "cust", from = "customer.name", transforms = ["strip", "upper", { truncate = 5 }] },
  { name = "cust_id", from = "customer.id" },
  { name = "cust_ref", from = "customer" },
  { name = "three", template = "{number}/{customer.number}/{currency}%" },
  { name = "two", template = "{number} {metadata.region}" },
  { name = "const", value = "X" },
  { name = "const_steps", value = "12.345", transforms = [{ decimal = 2 }] },
  { name = "region", from = "metadata.region", transforms = [{ default = "none" }] },
  { name = "names", from = "items[].name", transforms = [{ join = "; " }] },
  { name = "qty", from = "items[].quantity", transforms = ["sum", { decimal = 1, rounding = "half_up" }] },
  { name = "when", from = "date", transforms = [{ datetime = "%Y-%m-%dT%H:%M", tz = "America/New_York" }] },
  { name = "iso", from = "date", transforms = ["datetime"] },
  { name = "day", from = "due_date", transforms = ["date"] },
  { name = "paid", from = "paid", transforms = ["text", "upper"] },
  { name = "total", from = "total", transforms = ["money", "text"] },
  { name = "status", from = "status", transforms = ["lower", { map = { paid = 1, sent = 2 }, fallback = 0 }] },
  { name = "city", from = "ship_to.city" },
]

[tables.lines]
stream = "invoices"
rows = "items"
skip = [{ path = "items[].quantity", in = [7, "8"] }]
fields = [
  { name = "line", from = "items[].id" },
  { name = "inv", from = "number" },
  { name = "kind", from = "items[].type", transforms = [{ map = "kinds" }] },
  { name = "amount", from = "items[].amount", transforms = [{ money = "currency" }] },
  { name = "row_cur", from = "items[].amount", transforms = [{ money = "items[].metadata.cur", rounding = "half_up" }] },
  { name = "tax", from = "items[].taxes[].amount", transforms = ["sum", "money"] },
  { name = "label", template = "{items[].name} x{items[].quantity}" },
  { name = "cust", from = "customer.name" },
  { name = "cust_t", template = "<{customer.name}>" },
  { name = "meta", from = "items[].metadata" },
  { name = "tag", value = true },
  { name = "due", from = "due_date", transforms = ["date", { default = "never" }] },
]

[tables.line_taxes]
stream = "invoices"
rows = "items[].taxes"
fields = [
  { name = "inv", from = "id" },
  { name = "amount", from = "items[].taxes[].amount", transforms = ["money"] },
]

[tables.txn]
stream = "transactions"
skip = [{ path = "amount", equals = 0 }]
fields = [
  { name = "inv_cust", from = "invoice.customer.name" },
  { name = "inv_total", from = "invoice.total", transforms = ["money"] },
  { name = "source", from = "payment_source.brand" },
  { name = "amount", from = "amount", transforms = [{ decimal = 0, rounding = "half_even" }] },
  { name = "method", from = "method", transforms = [{ map = "methods" }] },
]

[tables.cust]
stream = "customers"
fields = [
  { name = "credit", from = "credit_limit", transforms = [{ money = "currency" }] },
  { name = "taxes", from = "taxes[].amount", transforms = ["sum"] },
  { name = "email", from = "email", transforms = ["strip", "lower", { default = "-" }] },
  { name = "created", from = "created_at", transforms = [{ date = "%A %d %B %Y", tz = "UTC" }] },
]
"""

# sha256 of `_outcomes` for every mapping, as the implementation before the generated row
# builders gave them. If the sandbox's seeded data changes on purpose, check that
# test_apply_equals_the_plain_interpreter passes, then print the new digest and paste it.
DIGEST = "8adc0e619225af6408ee1254ff67d5a9f67c7e8348ae5e41b65562fb0d751119"

STREAMS = ("customers", "invoices", "transactions")

# Broken copies: (stream, what is changed) -> value. Each is refused or mapped as before.
BROKEN: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    ("invoices", lambda o: o.update(total="abc")),
    ("invoices", lambda o: o.update(total=True)),
    ("invoices", lambda o: o.update(total=Decimal("NaN"))),
    ("invoices", lambda o: o.update(total=Decimal("-Infinity"))),
    ("invoices", lambda o: o.update(total=" 12.5 ")),
    ("invoices", lambda o: o.update(total=12.25)),
    ("invoices", lambda o: o.update(total=[1, 2])),
    ("invoices", lambda o: o.update(total="")),
    ("invoices", lambda o: o.update(date="yesterday")),
    ("invoices", lambda o: o.update(date=10**20)),
    ("invoices", lambda o: o.update(date="1700000000")),
    ("invoices", lambda o: o.update(date=Decimal("1700000000.9"))),
    ("invoices", lambda o: o.update(date=False)),
    ("invoices", lambda o: o.update(due_date={"a": 1})),
    ("invoices", lambda o: o.update(currency=None)),
    ("invoices", lambda o: o.update(currency=5)),
    ("invoices", lambda o: o.update(currency="jpy")),
    ("invoices", lambda o: o.update(currency="KWD")),
    ("invoices", lambda o: o.update(customer=True)),
    ("invoices", lambda o: o.update(customer="999999")),
    ("invoices", lambda o: o.update(customer={})),
    ("invoices", lambda o: o.update(customer={"id": 3, "name": "  Inline  ", "number": 7})),
    ("invoices", lambda o: o.update(number=None)),
    ("invoices", lambda o: o.update(number=Decimal("1.50"))),
    ("invoices", lambda o: o.update(status="voided")),
    ("invoices", lambda o: o.update(status=None)),
    ("invoices", lambda o: o.update(draft=True)),
    ("invoices", lambda o: o.update(metadata={"region": "nowhere"})),
    ("invoices", lambda o: o.update(metadata=None)),
    ("invoices", lambda o: o.update(ship_to={"city": "Lyon"})),
    ("invoices", lambda o: o.update(items="not a list")),
    ("invoices", lambda o: o.update(items=None)),
    ("invoices", lambda o: o.update(items=[])),
    ("invoices", lambda o: o.update(items=[5, None, "x"])),
    ("invoices", lambda o: o["items"].append({"id": 99})),
    ("invoices", lambda o: o["items"].append({"id": 97, "type": "service", "amount": 3, "quantity": 7})),
    ("invoices", lambda o: o["items"].append({"id": 98, "type": "plan", "amount": 3, "quantity": 1})),
    ("invoices", lambda o: o["items"][0].update(amount="x")),
    ("invoices", lambda o: o["items"][0].update(amount=None, quantity="8")),
    ("invoices", lambda o: o["items"][0].update(type="service", metadata={"cur": "bhd"})),
    ("invoices", lambda o: o["items"][0].update(taxes=[{"amount": Decimal("0.125")}, {"amount": 2}])),
    ("invoices", lambda o: o["items"][0].update(taxes=[{"amount": "x"}])),
    ("invoices", lambda o: o["items"][0].update(name=None, quantity=Decimal("2.50"))),
    ("invoices", lambda o: o.update(discounts=[{"amount": Decimal("1.005")}, {"amount": None}])),
    ("invoices", lambda o: o.update(taxes=[{"amount": True}])),
    ("invoices", lambda o: o.update(taxes=[{"amount": "1e3"}, 5])),
    ("transactions", lambda o: o.update(amount="x")),
    ("transactions", lambda o: o.update(amount=0)),
    ("transactions", lambda o: o.update(amount=Decimal("2.5"), currency="jpy")),
    ("transactions", lambda o: o.update(status="pending")),
    ("transactions", lambda o: o.update(method="teleport")),
    ("transactions", lambda o: o.update(method=None)),
    ("transactions", lambda o: o.update(invoice=None, customer=None)),
    ("transactions", lambda o: o.update(invoice={"id": 1, "number": "X-1", "customer": {"name": "N"}})),
    ("transactions", lambda o: o.update(metadata={"syncd_source": "ledger", "syncd_external_id": 4})),
    ("transactions", lambda o: o.update(payment_source={"brand": "Visa"})),
    ("transactions", lambda o: o.update(type=None)),
    ("customers", lambda o: o.update(credit_limit="lots")),
    ("customers", lambda o: o.update(credit_limit=Decimal("10.0049"), currency="bhd")),
    ("customers", lambda o: o.update(created_at=-86400 * 365 * 3000)),
    ("customers", lambda o: o.update(name=None, number=None, email="  A@B.C ")),
    ("customers", lambda o: o.update(name=["a"], taxes=[{"amount": 1}, {"amount": Decimal("0.5")}])),
    ("customers", lambda o: o.update(autopay="yes", taxable=None, currency=7)),
]


def _mappings(tmp_path: Path) -> list[MappingSet]:
    files = [*sorted(MAPPINGS.glob("*.toml")), write(tmp_path, EVERY_KIND, "every_kind.toml")]
    return [load_mapping(p) for p in files]


def _frozen(value: Any) -> Any:
    """A read-only copy (not a dict): `apply` must take its general path."""
    if isinstance(value, dict):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_frozen(v) for v in value]
    return value


def _thawed(value: Any) -> Any:
    if isinstance(value, dict | MappingProxyType):
        return {k: _thawed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_thawed(v) for v in value]
    return value


def _cases() -> Iterator[tuple[str, Record, Mapping[tuple[str, str], Any]]]:
    """(label, record, referenced records) for every variant of every sandbox record."""
    data = SandboxData.seeded(seed=5, customers=25, invoices=120, transactions=80)
    stored = {s: data.list(s) for s in STREAMS}
    decoded = {s: [loads(data.blob(s, o["id"])) for o in stored[s]] for s in STREAMS}
    for kind, objects in (("stored", stored), ("decoded", decoded)):
        known = {(s, str(o["id"])): o for s in ("customers", "invoices") for o in objects[s]}
        for stream in STREAMS:
            for i, obj in enumerate(objects[stream]):
                yield f"{kind} {stream} {i}", Record(stream, str(obj["id"]), 0, obj), known
                if i % 4 == 0:
                    expanded = dict(obj)
                    for ref, target in (("customer", "customers"), ("invoice", "invoices")):
                        if isinstance(obj.get(ref), int):
                            expanded[ref] = known.get((target, str(obj[ref])))
                    yield f"{kind} {stream} {i} expanded", Record(stream, str(obj["id"]), 0, expanded), known
                if i % 5 == 0:
                    yield (
                        f"{kind} {stream} {i} frozen",
                        Record(stream, str(obj["id"]), 0, _frozen(obj)),
                        known,
                    )
        for n, (stream, change) in enumerate(BROKEN):
            for j in (0, 7):
                broken = copy.deepcopy(objects[stream][j])
                change(broken)
                yield f"{kind} broken {n}/{j}", Record(stream, str(broken["id"]), 0, broken), known
                if j == 0:
                    frozen = Record(stream, str(broken["id"]), 0, _frozen(broken))
                    yield f"{kind} broken {n} frozen", frozen, known


def _typed(value: Any) -> Any:
    """A value with its type, for exact comparison (Decimal('1.50') != Decimal('1.5') here)."""
    if isinstance(value, dict):
        return ["dict", [[k, _typed(v)] for k, v in value.items()]]
    if isinstance(value, list):
        return ["list", [_typed(v) for v in value]]
    if isinstance(value, MappingProxyType):
        return ["mappingproxy", [[k, _typed(v)] for k, v in value.items()]]
    return [type(value).__name__, repr(value)]


def _outcome(run: Callable[..., Any], *args: Any) -> Any:
    try:
        return ["rows", _typed(run(*args))]
    except MappingError as exc:
        return ["error", exc.reason, Path(exc.file or "").name, exc.line, exc.field]
    except Exception as exc:  # compared, not swallowed
        return ["raised", type(exc).__name__, str(exc)]


def _resolver(known: Mapping[tuple[str, str], Any]) -> Callable[[str, str], Any]:
    return lambda stream, rid: known.get((stream, rid))


def _plain(mapping: MappingSet, record: Record, resolve: Callable[[str, str], Any]) -> dict[str, Any]:
    """What `apply` means, one column at a time: the reference `apply` is compared with."""
    out: dict[str, list[dict[str, Any]]] = {}
    table: OutputTable
    for table in mapping.tables.values():
        if table.stream != record.stream:
            continue
        rows = out[table.name] = []
        for env in table.envs(record.data, resolve, {}):
            row = {}
            for column in table.columns:
                try:
                    value = column.source_value(env)
                    for step in column.steps:
                        value = step.apply(value, env)
                except (ApplyError, ArithmeticError, ValueError, TypeError) as exc:
                    raise MappingError(
                        f"{record.stream} {record.id}: {table.name}.{column.name}: {exc}",
                        file=str(mapping.path),
                        line=column.line,
                        field=f"tables.{table.name}.{column.name}",
                    ) from None
                row[column.name] = value
            rows.append(row)
    return out


def _outcomes(mappings: list[MappingSet]) -> Iterator[tuple[str, str, Any]]:
    for label, record, known in _cases():
        resolve = _resolver(known)
        for mapping in mappings:
            yield label, mapping.path.name, _outcome(mapping.apply, record, resolve)


def test_apply_equals_the_plain_interpreter(tmp_path: Path) -> None:
    mappings = _mappings(tmp_path)
    kinds: set[str] = set()
    for label, record, known in _cases():
        resolve = _resolver(known)
        for mapping in mappings:
            got = _outcome(mapping.apply, record, resolve)
            want = _outcome(_plain, mapping, record, resolve)
            assert got == want, (label, mapping.path.name)
            kinds.add(got[0])
    assert kinds == {"rows", "error"}


def test_apply_gives_what_it_gave_before(tmp_path: Path) -> None:
    digest = hashlib.sha256()
    errors = 0
    for label, name, outcome in _outcomes(_mappings(tmp_path)):
        digest.update(json.dumps([label, name, outcome]).encode())
        errors += outcome[0] == "error"
    assert errors > 40
    assert digest.hexdigest() == DIGEST


@pytest.mark.parametrize("name", ["csv.toml", "ledger.toml", "hubspot.toml"])
def test_records_of_the_general_path_map_as_dicts_do(tmp_path: Path, name: str) -> None:
    mapping = load_mapping(MAPPINGS / name)
    data = SandboxData.seeded(seed=9, customers=5, invoices=20, transactions=10)
    known = {(s, str(o["id"])): o for s in ("customers", "invoices") for o in data.list(s)}
    resolve = _resolver(known)
    for stream in STREAMS:
        for obj in data.list(stream):
            as_dict = mapping.apply(Record(stream, str(obj["id"]), 0, obj), resolve)
            frozen = mapping.apply(Record(stream, str(obj["id"]), 0, _frozen(obj)), resolve)
            assert _typed(_thawed(frozen)) == _typed(as_dict)  # (metadata is copied as is)
