"""Seeded data is deterministic, realistic and adds up (balance = total - payments)."""

from __future__ import annotations

from collections import Counter
from decimal import ROUND_HALF_UP, Decimal

import pytest

from syncd.sandbox import SandboxData


@pytest.fixture(scope="module")
def data() -> SandboxData:
    return SandboxData.seeded(11, 40, 900, 400)


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b, c = (SandboxData.seeded(s, 8, 120, 50) for s in (3, 3, 4))
    for stream in ("customers", "invoices", "transactions"):
        assert a.list(stream) == b.list(stream)
        assert a.list(stream) != c.list(stream)
    assert a.list("events") == []


def test_amounts_add_up(data: SandboxData) -> None:
    txs = data.list("transactions")
    for inv in data.list("invoices"):
        assert inv["subtotal"] == sum(i["amount"] for i in inv["items"])
        for item in inv["items"]:
            assert item["amount"] == (item["quantity"] * item["unit_cost"]).quantize(
                item["unit_cost"], rounding=ROUND_HALF_UP
            )
        assert inv["total"] == inv["subtotal"] - sum(d["amount"] for d in inv["discounts"]) + sum(
            t["amount"] for t in inv["taxes"]
        )
        paid = sum(
            (t["amount"] if t["type"] == "payment" else -t["amount"])
            for t in txs
            if t["invoice"] == inv["id"] and t["status"] == "succeeded"
        )
        assert inv["amount_paid"] == paid and inv["balance"] == inv["total"] - paid
        assert inv["paid"] == (inv["balance"] <= 0 and inv["status"] not in ("draft", "voided"))
    assert not any(i["paid"] for i in SandboxData.seeded(2, 5, 60, 0).list("invoices"))


def test_realistic_variety(data: SandboxData) -> None:
    invoices = data.list("invoices")
    statuses = Counter(i["status"] for i in invoices)
    assert {"paid", "past_due", "draft", "voided"} <= set(statuses) and len(statuses) >= 5
    assert any(0 < i["amount_paid"] < i["total"] for i in invoices), "partly paid invoices"
    assert {i["currency"] for i in invoices} == {"usd", "eur", "gbp", "jpy"}
    for inv in invoices:
        if inv["currency"] == "jpy":
            assert all(
                v == v.to_integral_value()
                for v in (inv["total"], inv["balance"], *(i["unit_cost"] for i in inv["items"]))
            )
        else:
            assert inv["total"].as_tuple().exponent == -2 and isinstance(inv["total"], Decimal)
    assert any(i["discounts"] for i in invoices) and any(i["taxes"] for i in invoices)
    assert {t["type"] for t in data.list("transactions")} == {"payment", "refund", "adjustment"}
    customers = data.list("customers")
    assert sum("region" in c["metadata"] for c in customers) > len(customers) // 2
    assert sum("account_rep" in c["metadata"] for c in customers) > len(customers) // 3
    by_id = {c["id"]: c for c in customers}
    assert all(by_id[i["customer"]]["currency"] == i["currency"] for i in invoices)


def test_timestamps_lie_in_the_past_and_share_seconds(data: SandboxData) -> None:
    for stream in ("customers", "invoices", "transactions"):
        records = data.list(stream)
        assert [r["id"] for r in records] == sorted(r["id"] for r in records)
        assert all(r["created_at"] <= r["updated_at"] < data.clock() for r in records)
        seconds = Counter(r["updated_at"] for r in records)
        if stream != "customers":
            assert seconds.most_common(1)[0][1] >= 5, stream
    txs = {t["id"]: t for t in data.list("transactions")}
    for t in txs.values():
        if t["type"] == "refund":
            assert txs[t["parent_transaction"]]["invoice"] == t["invoice"]


def test_tiny_and_empty_sizes() -> None:
    tiny = SandboxData.seeded(1, 0, 3, 1)
    assert len(tiny.list("customers")) == 1 and len(tiny.list("invoices")) == 3
    empty = SandboxData.seeded(1, 0, 0, 0)
    assert all(empty.list(s) == [] for s in ("customers", "invoices", "transactions"))
    created = empty.create("customers", {"name": "First"})
    assert created["id"] == 1 and empty.list("events")[0]["type"] == "customer.created"
