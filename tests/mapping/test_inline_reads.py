"""Differential: `MappingSet.apply` against what the mapping gave before the row builders read
lists, references and templates inline (a digest of its outcomes).

Thousands of records: seeded sandbox objects (stored and decoded, references expanded or not)
and random variants of them whose values are of other types than the API's (ints, texts,
None, non-dict elements, lists of odd amounts, missing or unknown references), through every
shipped mapping and `INLINE_KINDS` below, which uses every source the builders write inline
in both kinds of table. Rows compared with their types (Decimal exponents included), errors
by their text, line and field.

The digest was taken with a frozen copy of the mapping package as it was before (the same
outcomes, compared one by one, under two hash seeds). If a shipped mapping or the sandbox's
seeded data changes on purpose, check that tests/mapping/test_differential.py passes, then
print the new digest and paste it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

from syncd.errors import MappingError
from syncd.invoiced.decode import loads
from syncd.mapping import load_mapping
from syncd.plugin import Record
from syncd.sandbox.data import SandboxData
from tests.mapping.helpers import MAPPINGS, write
from tests.mapping.test_differential import EVERY_KIND

INLINE_KINDS = """
[defaults]
currency_digits = { EUR = 3 }

[values.kinds]
product = "P"
service = "S"
"1" = "one"

[tables.inv]
stream = "invoices"
fields = [
  { name = "cust_id", from = "customer" },
  { name = "cust_id2", from = "customer.id" },
  { name = "cust_name", from = "customer.name" },
  { name = "cust_num", from = "customer.number", transforms = ["text", { default = "?" }] },
  { name = "cust_cur", from = "customer.currency", transforms = ["upper"] },
  { name = "disc", from = "discounts[].amount", transforms = ["sum", "money"] },
  { name = "disc_raw", from = "discounts[].amount", transforms = ["sum"] },
  { name = "tax_dec", from = "taxes[].amount", transforms = ["sum", { decimal = 1 }, "text"] },
  { name = "tax_join", from = "taxes[].amount", transforms = [{ join = "|" }] },
  { name = "qty", from = "items[].quantity", transforms = ["sum"] },
  { name = "region", from = "metadata.region", transforms = [{ default = "none" }] },
  { name = "po", from = "metadata.po_ref" },
  { name = "city", from = "ship_to.city" },
  { name = "t1", template = "Invoice {number}" },
  { name = "t2", template = "{customer.name} ({customer.number})" },
  { name = "t3", template = "{number}/{customer.name}/{currency}%" },
  { name = "t4", template = "{metadata.po_ref}-{total}" },
  { name = "t5", template = "{customer} {draft}" },
  { name = "kind", from = "status", transforms = [{ map = { paid = "P", past_due = 1 }, fallback = "-" }] },
  { name = "total", from = "total", transforms = ["money"] },
  { name = "total_t", from = "total", transforms = ["money", "text"] },
  { name = "payee", from = "name", transforms = [{ default = "Nobody" }] },
  { name = "payee2", from = "customer.name", transforms = ["strip", { default = "" }] },
]

[tables.lines]
stream = "invoices"
rows = "items"
fields = [
  { name = "line", from = "items[].id" },
  { name = "cust_name", from = "customer.name" },
  { name = "cust", from = "customer" },
  { name = "label", template = "{items[].name} x{items[].quantity}" },
  { name = "acct", template = "{customer.name}:{items[].type}" },
  { name = "kind", from = "items[].type", transforms = [{ map = "kinds", fallback = "?" }] },
  { name = "kind2", from = "items[].quantity", transforms = [{ map = "kinds", fallback = 0 }] },
  { name = "amount", from = "items[].amount", transforms = ["money"] },
  { name = "tax", from = "items[].taxes[].amount", transforms = ["sum", "money"] },
  { name = "disc", from = "discounts[].amount", transforms = ["sum", "money"] },
  { name = "memo", from = "items[].name", transforms = [{ default = "n/a" }] },
]

[tables.txn]
stream = "transactions"
fields = [
  { name = "cust", from = "customer" },
  { name = "inv", from = "invoice" },
  { name = "cust_name", from = "customer.name" },
  { name = "inv_num", from = "invoice.number" },
  { name = "inv_cust", from = "invoice.customer.name" },
  { name = "inv_total", from = "invoice.total", transforms = ["money"] },
  { name = "narr", template = "{type} {invoice.number}" },
  { name = "ar", template = "AR:{customer.name} ({customer.number})" },
  { name = "src", from = "metadata.syncd_source" },
  { name = "ext", from = "metadata.syncd_external_id", transforms = ["text"] },
  { name = "acct", from = "method", transforms = [{ map = { check = "C", ach = "A" }, fallback = "X" }] },
  { name = "amount", from = "amount", transforms = ["money"] },
]
"""

STREAMS = ("customers", "invoices", "transactions")
ODD: list[Any] = [
    None, "", "  x  ", "abc", 0, 7, -3, True, False, Decimal("1.005"), Decimal("-0.5"), Decimal("NaN"),
    Decimal("1E+3"), 12.25, "12.5", [], [1], {}, {"id": 4, "name": "In", "number": 9}, "ü", "1",
]  # fmt: skip


def _mappings(tmp_path: Path, load: Callable[[Path], Any]) -> list[Any]:
    files = [
        *sorted(MAPPINGS.glob("*.toml")),
        write(tmp_path, EVERY_KIND, "every_kind.toml"),
        write(tmp_path, INLINE_KINDS, "inline_kinds.toml"),
    ]
    return [load(p) for p in files]


# the keys the builders read inline, varied more often than the others
READ_INLINE = ("name", "number", "currency", "total", "status", "method", "type", "metadata", "date")
REFS: list[Any] = [
    None, True, False, 0, "", "2", 2, 999999, "999999", Decimal("2"), 2.0, [], {},
    {"id": 5, "name": None, "number": 3}, {"name": ["x"], "currency": "eur"},
    MappingProxyType({"id": 6, "name": "Proxy", "number": "P-6"}),
]  # fmt: skip


def _odd(values: list[Any], rng: random.Random) -> Any:
    value = rng.choice(values)
    return value if isinstance(value, MappingProxyType) else copy.deepcopy(value)


def _vary(obj: dict[str, Any], rng: random.Random) -> None:
    """Change a few values of a record (and of its list elements) to odd ones."""
    for _ in range(rng.randint(1, 4)):
        key = rng.choice(sorted(obj) if rng.random() < 0.5 else READ_INLINE)
        obj[key] = copy.deepcopy(rng.choice(ODD))
    for ref in ("customer", "invoice"):
        if ref in obj and rng.random() < 0.3:
            obj[ref] = _odd(REFS, rng)
    for name in ("items", "discounts", "taxes"):
        elements = obj.get(name)
        if isinstance(elements, list) and rng.random() < 0.5:
            choice = rng.random()
            if choice < 0.3 and elements:
                element = elements[rng.randrange(len(elements))]
                if isinstance(element, dict):
                    element[rng.choice(["amount", "quantity", "type", "name", "id"])] = copy.deepcopy(
                        rng.choice(ODD)
                    )
            elif choice < 0.5:
                elements.append(_odd([*ODD, MappingProxyType({"amount": 1, "type": "product"})], rng))
            elif choice < 0.8:
                elements.append(
                    {"amount": copy.deepcopy(rng.choice(ODD)), "type": rng.choice(["product", "x", 1])}
                )
            else:
                obj[name] = copy.deepcopy(rng.choice(ODD))
    if rng.random() < 0.1:
        del obj[
            rng.choice(sorted(obj) if rng.random() < 0.5 else [k for k in READ_INLINE if k in obj] or ["id"])
        ]
    for element in obj["items"] if isinstance(obj.get("items"), list) else []:
        if isinstance(element, dict) and element and rng.random() < 0.05:
            del element[rng.choice(sorted(element))]
    if rng.random() < 0.3:
        obj["metadata"] = copy.deepcopy(
            rng.choice(
                [
                    None,
                    {},
                    {"region": rng.choice(ODD)},
                    {"syncd_source": "ledger", "syncd_external_id": 3},
                    "x",
                ]
            )
        )


def _cases(seed: int) -> Iterator[tuple[Record, Mapping[tuple[str, str], Any]]]:
    data = SandboxData.seeded(seed=seed, customers=40, invoices=400, transactions=200)
    stored = {s: data.list(s) for s in STREAMS}
    decoded = {s: [loads(data.blob(s, o["id"])) for o in stored[s]] for s in STREAMS}
    rng = random.Random(seed)
    for objects in (stored, decoded):
        known = {(s, str(o["id"])): o for s in ("customers", "invoices") for o in objects[s]}
        for stream in STREAMS:
            for obj in objects[stream]:
                yield Record(stream, str(obj["id"]), 0, obj), known
                if rng.random() < 0.3:
                    expanded = dict(obj)
                    for ref, target in (("customer", "customers"), ("invoice", "invoices")):
                        if isinstance(obj.get(ref), int):
                            expanded[ref] = known.get((target, str(obj[ref])))
                    yield Record(stream, str(obj["id"]), 0, expanded), known
                if rng.random() < 0.5:
                    varied = copy.deepcopy(obj)
                    _vary(varied, rng)
                    yield Record(stream, str(obj["id"]), 0, varied), known


def _typed(value: Any) -> Any:
    if isinstance(value, dict):
        return ["dict", [[k, _typed(v)] for k, v in value.items()]]
    if isinstance(value, list):
        return ["list", [_typed(v) for v in value]]
    return [type(value).__name__, repr(value)]


def _outcome(mapping: Any, record: Record, resolve: Callable[[str, str], Any]) -> Any:
    try:
        return ["rows", _typed(mapping.apply(record, resolve))]
    except MappingError as exc:
        return ["error", exc.reason, exc.line, exc.field]
    except Exception as exc:  # compared, not swallowed
        return ["raised", type(exc).__name__, str(exc)]


DIGEST = "27953bfbb10820297cdfdd7f327c9493d57baee65deb1412c2a2f0d24b7d8f71"


def test_apply_gives_what_it_gave_before_the_inline_reads(tmp_path: Path) -> None:
    mappings = _mappings(tmp_path, load_mapping)
    digest = hashlib.sha256()
    count, kinds = 0, set()
    for seed in (1, 2):
        for record, known in _cases(seed):
            resolve = lambda stream, rid, known=known: known.get((stream, rid))  # noqa: E731
            for mapping in mappings:
                got = _outcome(mapping, record, resolve)
                digest.update(json.dumps([seed, mapping.path.name, got]).encode())
                kinds.add(got[0])
            count += 1
    assert count > 3000 and {"rows", "error"} <= kinds
    assert digest.hexdigest() == DIGEST
