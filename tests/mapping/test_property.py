"""Property: every record the API (or the sandbox) can produce maps through every shipped
mapping without a crash, and money comes out exactly equal to the source amount."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.csv.files import cell
from syncd.errors import MappingError
from syncd.mapping import CURRENCY_DIGITS, MappingSet, load_mapping
from syncd.mapping.model import Column, OutputTable
from syncd.plugin import Record
from syncd.sandbox.data import SandboxData
from tests.mapping.helpers import MAPPINGS

FILES = sorted(MAPPINGS.glob("*.toml"))
SETS: list[MappingSet] = [load_mapping(p) for p in FILES]
CURRENCIES = ["usd", "eur", "gbp", "jpy", "bhd", "kwd", "krw", "USD", "chf"]
EXACT_STEPS = {"money", "sum", "default"}
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- API-shaped records (from the api-examples objects) --------------------------------------

text = st.one_of(st.none(), st.text(max_size=12))
ids = st.integers(min_value=1, max_value=10**9)
stamps = st.one_of(st.none(), st.integers(min_value=0, max_value=4_102_444_800))
metadata = st.dictionaries(
    st.sampled_from(["region", "account", "po", "rep"]), st.text(max_size=8), max_size=4
)


def money(currency: str) -> st.SearchStrategy[Any]:
    digits = CURRENCY_DIGITS.get(currency.upper(), 2)
    units = st.integers(min_value=-(10**12), max_value=10**12)
    return st.one_of(
        units.map(lambda n: Decimal(n).scaleb(-digits)),
        st.integers(min_value=-(10**6), max_value=10**6),  # whole amounts arrive as JSON integers
    )


def adjustments(currency: str) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(
        st.fixed_dictionaries({"id": ids, "object": st.just("tax"), "amount": money(currency)}), max_size=3
    )


@st.composite
def invoices(draw: st.DrawFn) -> dict[str, Any]:
    currency = draw(st.sampled_from(CURRENCIES))
    item = st.fixed_dictionaries(
        {
            "id": ids,
            "object": st.just("line_item"),
            "catalog_item": text,
            "type": st.sampled_from(["product", "service", None, "plan"]),
            "name": text,
            "description": text,
            "quantity": st.one_of(st.integers(0, 1000), st.decimals(0, 1000, places=3)),
            "unit_cost": st.decimals(-(10**6), 10**6, places=4),
            "amount": money(currency),
            "discountable": st.booleans(),
            "taxable": st.booleans(),
            "taxes": adjustments(currency),
            "discounts": adjustments(currency),
            "metadata": metadata,
        }
    )
    status = draw(
        st.sampled_from(["draft", "not_sent", "sent", "viewed", "past_due", "pending", "paid", "voided"])
    )
    customer = draw(ids)
    return {
        "id": draw(ids),
        "object": "invoice",
        "customer": draw(st.sampled_from([customer, {"id": customer, "name": "Expanded", "number": "C-1"}])),
        "name": draw(text),
        "currency": currency,
        "draft": status == "draft",
        "closed": draw(st.booleans()),
        "paid": status == "paid",
        "status": status,
        "number": draw(st.text(min_size=1, max_size=10)),
        "date": draw(stamps),
        "due_date": draw(stamps),
        "payment_terms": draw(text),
        "purchase_order": draw(text),
        "items": draw(st.lists(item, max_size=4)),
        "subtotal": draw(money(currency)),
        "discounts": draw(adjustments(currency)),
        "taxes": draw(adjustments(currency)),
        "total": draw(money(currency)),
        "balance": draw(money(currency)),
        "url": draw(text),
        "created_at": draw(stamps),
        "updated_at": draw(stamps) or 0,
        "metadata": draw(metadata),
    }


@st.composite
def customers(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "id": draw(ids),
        "object": "customer",
        "name": draw(text),
        "number": draw(text),
        "email": draw(text),
        "type": draw(st.sampled_from(["company", "person", None])),
        "currency": draw(st.one_of(st.none(), st.sampled_from(CURRENCIES))),
        "country": draw(text),
        "autopay": draw(st.booleans()),
        "taxable": draw(st.booleans()),
        "credit_limit": draw(st.one_of(st.none(), money("usd"))),
        "payment_source": draw(
            st.one_of(st.none(), st.fixed_dictionaries({"id": ids, "brand": text, "last4": text}))
        ),
        "created_at": draw(stamps),
        "updated_at": draw(stamps) or 0,
        "metadata": draw(metadata),
    }


@st.composite
def transactions(draw: st.DrawFn) -> dict[str, Any]:
    currency = draw(st.sampled_from(CURRENCIES))
    kind = draw(st.sampled_from(["payment", "charge", "refund", "adjustment", "credit"]))
    return {
        "id": draw(ids),
        "object": "transaction",
        "customer": draw(ids),
        "invoice": draw(st.one_of(st.none(), ids)),
        "credit_note": None,
        "date": draw(stamps),
        "type": kind,
        "method": draw(
            st.sampled_from(["check", "ach", "wire", "cash", "credit_card", "paypal", "other", "balance"])
        ),
        "status": draw(st.sampled_from(["succeeded", "pending", "failed"])),
        "gateway": draw(text),
        "gateway_id": draw(text),
        "currency": currency,
        "amount": draw(money(currency)),
        "notes": draw(text),
        "parent_transaction": draw(st.one_of(st.none(), ids)),
        "created_at": draw(stamps),
        "updated_at": draw(stamps) or 0,
        "metadata": draw(metadata),
    }


def _resolve(stream: str, rid: str) -> Mapping[str, Any] | None:
    if stream == "customers":
        return {
            "id": int(rid),
            "name": f"Customer {rid}",
            "number": f"C-{rid}",
            "currency": "usd",
            "metadata": {},
        }
    if stream == "invoices":
        return {
            "id": int(rid),
            "number": f"INV-{rid}",
            "customer": 1,
            "currency": "eur",
            "total": Decimal("1.00"),
        }
    return None


# -- the checks ---------------------------------------------------------------------------


def _is_exact_money(column: Column) -> bool:
    names = [s.name for s in column.steps]
    if not names or not any(n in ("money", "sum", "decimal") for n in names):
        return False
    return all(
        s.name in EXACT_STEPS or (s.name == "decimal" and s.canonical[1] is None) for s in column.steps
    )


def _source_total(value: Any) -> Decimal | None:
    if isinstance(value, list):
        return sum((Decimal(v) for v in value if v is not None), Decimal(0))
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return Decimal(value)
    return None


def _check_money(table: OutputTable, data: Mapping[str, Any]) -> int:
    """Every exact-money column equals its source amount, also as CSV text. Returns the count."""
    checked = 0
    for env in table.envs(data, _resolve):
        for column in table.columns:
            if not _is_exact_money(column):
                continue
            source = _source_total(column.source_value(env))
            out = column.value(env)
            if source is None:
                continue
            assert isinstance(out, Decimal), (table.name, column.name, out)
            assert out == source, (table.name, column.name, source, out)
            assert Decimal(cell(out)) == source
            checked += 1
    return checked


def _map_everywhere(stream: str, data: dict[str, Any]) -> None:
    record = Record(stream, str(data["id"]), int(data["updated_at"]), data)
    for mapping in SETS:
        rejection: MappingError | None = None
        try:
            out = mapping.apply(record, _resolve)
        except MappingError as exc:
            rejection = exc
        if rejection is not None:
            # a deliberate rejection (e.g. a value table without fallback) names file and line
            assert rejection.file == str(mapping.path) and rejection.line is not None
            continue
        assert set(out) == set(mapping.tables_for(stream))
        for name in out:
            table = mapping.tables[name]
            assert all(list(row) == [c.name for c in table.columns] for row in out[name])
            _check_money(table, data)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_shipped_mappings_load(path: Path) -> None:
    assert load_mapping(path).tables


@FAST
@given(invoices())
def test_any_invoice_maps_and_money_round_trips(data: dict[str, Any]) -> None:
    _map_everywhere("invoices", data)


@FAST
@given(customers())
def test_any_customer_maps(data: dict[str, Any]) -> None:
    _map_everywhere("customers", data)


@FAST
@given(transactions())
def test_any_transaction_maps_and_money_round_trips(data: dict[str, Any]) -> None:
    _map_everywhere("transactions", data)


def test_money_check_is_not_vacuous() -> None:
    csv = next(m for m in SETS if m.path.name == "csv.toml")
    data = {
        "id": 1,
        "currency": "jpy",
        "total": Decimal("1200"),
        "subtotal": 1200,
        "taxes": [{"amount": 7}],
        "items": [{"amount": Decimal("1200")}],
    }
    assert _check_money(csv.tables["invoices"], data) >= 3
    assert _check_money(csv.tables["invoice_lines"], data) == 1




@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**31 - 1))
def test_everything_the_sandbox_produces_maps_strictly(seed: int) -> None:

    sandbox = SandboxData.seeded(seed, 8, 40, 30)

    def resolve(stream: str, rid: str) -> Mapping[str, Any] | None:
        return sandbox.get(stream, rid)

    checked = 0
    for stream in ("customers", "invoices", "transactions"):
        for data in sandbox.list(stream):
            record = Record(stream, str(data["id"]), int(data["updated_at"]), data)
            for mapping in SETS:
                out = mapping.apply(record, resolve)  # no exception at all, not even a rejection
                assert set(out) == set(mapping.tables_for(stream))
                for name in out:
                    table = mapping.tables[name]
                    for env in table.envs(data, resolve):
                        for column in table.columns:
                            if _is_exact_money(column):
                                source = _source_total(column.source_value(env))
                                if source is not None:
                                    assert column.value(env) == source, (mapping.path.name, name, column.name)
                                    checked += 1
    assert checked > 0
