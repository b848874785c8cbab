"""Entries: signs, balancing and rounding per currency, from mapped api-examples records."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal

import pytest

from connectors.ledger.journal import (
    Accounts,
    Entry,
    EntryError,
    Posting,
    invoice_entries,
    quantize,
    transaction_entries,
)
from tests.ledger.helpers import example, map_record

UTC = zoneinfo.ZoneInfo("UTC")
ACME = {"15444": "Acme", "15460": "Acme"}


def _invoice(data: dict) -> list[Entry]:
    return invoice_entries(str(data["id"]), data, map_record("invoices", data, ACME), Accounts(), UTC)


def _txn(data: dict) -> list[Entry]:
    return transaction_entries(str(data["id"]), data, map_record("transactions", data, ACME), Accounts(), UTC)


def _postings(entry: Entry) -> list[tuple[str, Decimal]]:
    return [(p.account, p.amount) for p in entry.postings]


def test_invoice_debits_receivable_for_total_and_balances_a_mismatched_document() -> None:
    # The reference example's parts do not add up (55 + 3.85 tax != 51.15 total): the
    # receivable still gets exactly the total and the difference is posted, not lost.
    data = example("invoicing/invoices/object.json")
    [entry] = _invoice(data)
    assert entry.imbalance() == {}
    assert entry.date == dt.date(2014, 11, 18)
    assert ("invoiced_id", "46225") in entry.meta and ("invoiced_type", "invoice") in entry.meta
    assert _postings(entry) == [
        ("Assets:Accounts Receivable:Acme (CUST-15444)", Decimal("51.15")),
        ("Income:Sales:Products", Decimal("-45")),
        ("Income:Sales:Services", Decimal("-10")),
        ("Liabilities:Sales Tax", Decimal("-3.85")),
        ("Expenses:Rounding", Decimal("7.70")),
    ]


def test_consistent_invoice_has_no_rounding_posting_and_discounts_are_contra_revenue() -> None:
    data = example("invoicing/invoices/object.json")
    data["discounts"] = [{"id": 1, "amount": Decimal("5")}]
    data["items"][0]["taxes"] = [{"id": 2, "amount": Decimal("1.10")}]
    data["total"] = Decimal("55") - Decimal("5") + Decimal("3.85") + Decimal("1.10")
    [entry] = _invoice(data)
    assert entry.imbalance() == {}
    assert "Expenses:Rounding" not in [a for a, _ in _postings(entry)]
    assert ("Income:Discounts", Decimal("5")) in _postings(entry)
    assert ("Liabilities:Sales Tax", Decimal("-1.10")) in _postings(entry)


def test_jpy_is_rounded_to_whole_yen_and_still_balances() -> None:
    data = example("invoicing/invoices/object.json")
    data.update(currency="jpy", taxes=[], total=Decimal("5000"))
    data["items"] = [
        {"type": "product", "name": "a", "amount": Decimal("2500.4")},
        {"type": "product", "name": "b", "amount": Decimal("2499.6")},
    ]
    [entry] = _invoice(data)
    assert {p.currency for p in entry.postings} == {"JPY"}
    assert [p.amount for p in entry.postings] == [Decimal("5000"), Decimal("-2500"), Decimal("-2500")]
    assert quantize(Decimal("1.0005"), "KWD") == Decimal("1.001")
    assert quantize(Decimal("0.125"), "USD") == Decimal("0.13")


def test_voided_invoice_is_reversed_on_its_void_date() -> None:
    data = example("invoicing/invoices/voided.json")
    data["updated_at"] = 1417000000
    entry, reversal = _invoice(data)
    assert reversal.kind == "void" and reversal.date == dt.date(2014, 11, 26)
    assert _postings(reversal) == [(a, -m) for a, m in _postings(entry)]
    assert reversal.sort_key() > entry.sort_key()


def test_draft_invoice_has_no_entry() -> None:
    data = example("invoicing/invoices/object.json")
    data.update(draft=True, status="draft")
    assert _invoice(data) == []
    # even if a mapping forgot to skip drafts
    assert (
        invoice_entries("1", data, {"invoices": [{"date": "2020-01-01", "total": "1"}]}, Accounts(), UTC)
        == []
    )


@pytest.mark.parametrize(
    ("kind", "method", "amount", "receivable", "other"),
    [
        ("payment", "check", "800", Decimal("-800"), ("Assets:Bank:Checking", Decimal("800"))),
        ("charge", "credit_card", "800", Decimal("-800"), ("Assets:Clearing:Card Payments", Decimal("800"))),
        ("refund", "credit_card", "400", Decimal("400"), ("Assets:Clearing:Card Payments", Decimal("-400"))),
        ("adjustment", "balance", "20", Decimal("20"), ("Income:Adjustments", Decimal("-20"))),
        ("adjustment", "balance", "-20", Decimal("-20"), ("Income:Adjustments", Decimal("20"))),
    ],
)
def test_transaction_signs(kind: str, method: str, amount: str, receivable: Decimal, other: tuple) -> None:
    data = {
        "id": 20939,
        "customer": 15460,
        "invoice": 44648,
        "date": 1410843600,
        "type": kind,
        "method": method,
        "status": "succeeded",
        "currency": "usd",
        "amount": Decimal(amount),
    }
    [entry] = _txn(data)
    assert _postings(entry) == [("Assets:Accounts Receivable:Acme (CUST-15460)", receivable), other]
    assert ("invoiced_type", "transaction") in entry.meta and ("invoiced_id", "20939") in entry.meta


def test_failed_and_pending_transactions_post_nothing() -> None:
    base = {
        "id": 1,
        "customer": 15460,
        "date": 1410843600,
        "type": "payment",
        "method": "check",
        "currency": "usd",
        "amount": Decimal(5),
    }
    for status in ("failed", "pending"):
        tables = {
            "transactions": [{"date": "2020-01-01", "type": "payment", "amount": "5", "status": status}]
        }
        assert transaction_entries("1", {**base, "status": status}, tables, Accounts(), UTC) == []


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"total": 51.15}, "invoices.total: 51.15 is not an exact decimal"),
        ({"total": "n/a"}, "invoices.total: 'n/a' is not an amount"),
        ({"total": "NaN"}, "invoices.total: 'NaN' is not an amount"),
        (
            {"ar_account": "Receivables:Acme"},
            "invoices.ar_account: account 'Receivables:Acme' must start with",
        ),
        ({"date": "yesterday"}, "invoices.date: 'yesterday' is not a date"),
        ({"currency": "US$"}, "invoices.currency: 'US$' is not a currency code"),
    ],
)
def test_bad_mapped_values_name_table_and_field(row: dict, message: str) -> None:
    data = example("invoicing/invoices/object.json")
    tables = map_record("invoices", data, ACME)
    tables["invoices"][0].update(row)
    with pytest.raises(EntryError, match=message.replace("$", r"\$").replace("(", r"\(")):
        invoice_entries("46225", data, tables, Accounts(), UTC)


def test_entry_row_round_trip_keeps_decimals_exact() -> None:
    entry = Entry(
        dt.date(2024, 1, 2),
        "invoice",
        "invoice",
        "7",
        "P",
        "N",
        (Posting("Assets:X", Decimal("0.10"), "USD"), Posting("Income:Y", Decimal("-0.10"), "USD", "m")),
        (("invoiced_id", "7"),),
    )
    from syncd.store.store import dumps, loads

    assert Entry.from_row(loads(dumps(entry.to_row()))) == entry


def test_customer_missing_from_template_gives_a_valid_account() -> None:
    data = example("invoicing/invoices/object.json")
    tables = map_record("invoices", data, {})
    tables["invoices"][0]["ar_account"] = "Assets:Accounts Receivable: ()"  # name and number missing
    [entry] = invoice_entries("46225", data, tables, Accounts(), UTC)
    assert entry.postings[0].account == "Assets:Accounts Receivable:Unknown"
