"""A small, hand-built book of Invoiced records with every case the journal must handle."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from tests.ledger.helpers import ar_account

D = Decimal

CUSTOMERS = {
    "1": "Acme",
    "2": "Zoë & Co; Ltd | Paris",
    "3": "Tanaka 株式会社",
    "4": "acme",  # sanitises like "Acme" for Beancount
}


def invoice(
    iid: int,
    customer: int,
    currency: str,
    items: Iterable[str],
    *,
    taxes: Iterable[str] = (),
    discounts: Iterable[str] = (),
    day: int = 1,
    status: str = "sent",
    draft: bool = False,
) -> dict[str, Any]:
    lines = [
        {
            "id": iid * 10 + n,
            "type": "product" if n % 2 else "service",
            "name": f"line {n}",
            "amount": D(a),
            "taxes": [],
            "discounts": [],
        }
        for n, a in enumerate(items)
    ]
    tax = [{"id": iid * 100 + n, "amount": D(a)} for n, a in enumerate(taxes)]
    disc = [{"id": iid * 1000 + n, "amount": D(a)} for n, a in enumerate(discounts)]
    total = (
        sum((i["amount"] for i in lines), D(0))
        + sum((t["amount"] for t in tax), D(0))
        - sum((d["amount"] for d in disc), D(0))
    )
    return {
        "id": iid,
        "object": "invoice",
        "customer": customer,
        "number": f"INV-{iid:04d}",
        "currency": currency,
        "date": 1704067200 + day * 86400,
        "items": lines,
        "taxes": tax,
        "discounts": disc,
        "total": total,
        "balance": total,
        "status": "draft" if draft else status,
        "draft": draft,
        "updated_at": 1704067200 + day * 86400,
    }


def txn(
    tid: int,
    invoice_: Mapping[str, Any],
    kind: str,
    amount: str,
    *,
    method: str = "check",
    day: int = 5,
    status: str = "succeeded",
) -> dict[str, Any]:
    return {
        "id": tid,
        "object": "transaction",
        "customer": invoice_["customer"],
        "invoice": invoice_["id"],
        "date": 1704067200 + day * 86400,
        "type": kind,
        "method": method,
        "status": status,
        "currency": invoice_["currency"],
        "amount": D(amount),
        "updated_at": 1704067200 + day * 86400,
    }


def book() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Invoices and transactions: multi-currency, taxes, discounts, partial payments, refunds, adjustments, void, draft."""
    inv = [
        invoice(101, 1, "usd", ["100.00", "45.50"], taxes=["12.04"], discounts=["10.00"], day=1),
        invoice(102, 2, "eur", ["99.99"], taxes=["19.00"], day=1),
        invoice(103, 3, "jpy", ["5000", "1200"], taxes=["620"], day=2),
        invoice(104, 4, "usd", ["10.00"], day=3),
        invoice(105, 1, "usd", ["70.00"], day=3, status="voided"),
        invoice(106, 2, "eur", ["5.00"], day=4, draft=True),
        invoice(107, 1, "gbp", ["250.00"], day=4),
    ]
    by_id = {i["id"]: i for i in inv}
    tx = [
        txn(201, by_id[101], "payment", "50.00", day=5),  # partial
        txn(202, by_id[101], "charge", "97.54", method="credit_card", day=6),  # pays the rest
        txn(203, by_id[101], "refund", "20.00", method="credit_card", day=7),  # reopens 20
        txn(204, by_id[102], "adjustment", "-18.99", method="balance", day=5),  # credit note-like
        txn(205, by_id[103], "payment", "3000", day=6),
        txn(206, by_id[104], "adjustment", "2.50", method="balance", day=6),  # extra charge
        txn(207, by_id[104], "payment", "4.00", day=7, status="failed"),
        txn(208, by_id[107], "payment", "100.00", method="wire", day=8, status="pending"),
        {
            **txn(211, by_id[107], "adjustment", "-7.00", method="balance", day=8),
            "invoice": None,
        },  # credit balance
    ]
    return inv, tx


def open_balances(
    invoices: Iterable[Mapping[str, Any]],
    transactions: Iterable[Mapping[str, Any]],
    customers: Mapping[str, str] = CUSTOMERS,
) -> dict[tuple[str, str], Decimal]:
    """What Invoiced says each customer owes: sum of open (not draft, not voided) invoice balances."""
    effect: dict[Any, Decimal] = defaultdict(Decimal)
    for t in transactions:
        if t["status"] != "succeeded" or t["invoice"] is None:
            continue
        sign = 1 if t["type"] in ("payment", "charge") else -1
        effect[t["invoice"]] += sign * D(t["amount"])
    owed: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for i in invoices:
        if i["draft"] or i["status"] == "voided":
            continue
        # ";" would start a comment: the connector writes ","
        account = ar_account(i["customer"], customers).replace(";", ",")
        owed[(account, i["currency"].upper())] += D(i["total"]) - effect[i["id"]]
    return {k: v for k, v in owed.items() if v}
