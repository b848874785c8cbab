"""Property: any invoice or transaction becomes balanced entries, the receivable moving by exactly the document amount."""

from __future__ import annotations

import zoneinfo
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.ledger.journal import Accounts, invoice_entries, quantize, transaction_entries
from connectors.ledger.render import beancount_accounts, render

UTC = zoneinfo.ZoneInfo("UTC")
amounts = st.decimals(min_value=Decimal("0"), max_value=Decimal("100000"), places=4, allow_nan=False)
currencies = st.sampled_from(["USD", "EUR", "JPY", "KWD", "GBP"])


@settings(max_examples=150, deadline=None)
@given(
    currency=currencies,
    lines=st.lists(amounts, min_size=1, max_size=5),
    taxes=st.lists(amounts, max_size=2),
    discounts=st.lists(amounts, max_size=2),
    line_taxes=st.lists(amounts, max_size=2),
    voided=st.booleans(),
)
def test_invoice_entries_balance_and_debit_the_total(
    currency: str,
    lines: list[Decimal],
    taxes: list[Decimal],
    discounts: list[Decimal],
    line_taxes: list[Decimal],
    voided: bool,
) -> None:
    total = quantize(
        sum(lines, Decimal(0))
        + sum(taxes, Decimal(0))
        + sum(line_taxes, Decimal(0))
        - sum(discounts, Decimal(0)),
        currency,
    )
    data = {
        "id": 1,
        "customer": 9,
        "date": 1700000000,
        "updated_at": 1700090000,
        "status": "voided" if voided else "sent",
        "items": [
            {"amount": a, "taxes": [{"amount": t} for t in line_taxes] if i == 0 else []}
            for i, a in enumerate(lines)
        ],
    }
    tables = {
        "invoices": [
            {
                "date": "2023-11-14",
                "payee": "P",
                "ar_account": "Assets:AR:P",
                "currency": currency,
                "total": total,
            }
        ],
        "invoice_lines": [{"account": "Income:Sales", "amount": a} for a in lines],
        "invoice_taxes": [{"account": "Liabilities:Tax", "amount": t} for t in taxes],
        "invoice_discounts": [{"account": "Income:Discounts", "amount": d} for d in discounts],
    }
    entries = invoice_entries("1", data, tables, Accounts(), UTC)
    assert len(entries) == (2 if voided else 1)
    for entry in entries:
        assert entry.imbalance() == {}
        assert all(p.amount == quantize(p.amount, currency) for p in entry.postings)
    ar = sum((p.amount for e in entries for p in e.postings if p.account == "Assets:AR:P"), Decimal(0))
    assert ar == (0 if voided else total)
    text = render(entries, "beancount")
    assert "Assets:AR:P" in text


@settings(max_examples=100, deadline=None)
@given(
    kind=st.sampled_from(["payment", "charge", "refund", "adjustment"]),
    amount=st.decimals(min_value=Decimal("-1000"), max_value=Decimal("1000"), places=3, allow_nan=False),
    currency=currencies,
)
def test_transaction_moves_receivable_by_the_documented_sign(
    kind: str, amount: Decimal, currency: str
) -> None:
    tables = {
        "transactions": [
            {
                "date": "2024-01-01",
                "type": kind,
                "amount": amount,
                "currency": currency,
                "ar_account": "Assets:AR:P",
                "account": "Assets:Bank",
                "invoice": "INV-1",
            }
        ]
    }
    [entry] = transaction_entries("5", {"status": "succeeded", "invoice": 1}, tables, Accounts(), UTC)
    assert entry.imbalance() == {}
    ar = next(p.amount for p in entry.postings if p.account == "Assets:AR:P")
    q = quantize(amount, currency)
    assert ar == (-q if kind in ("payment", "charge") else q)


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=8))
def test_beancount_names_are_valid_and_distinct(names: list[str]) -> None:
    import re

    accounts = [f"Assets:AR:{n.replace(':', ' ')}" for n in names]
    out = beancount_accounts(accounts)
    assert len(set(out.values())) == len(set(accounts))
    for name in out.values():
        assert re.fullmatch(r"(Assets|Liabilities|Equity|Income|Expenses)(:[A-Z0-9][A-Za-z0-9-]*)+", name), (
            name
        )
