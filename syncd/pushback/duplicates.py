"""Payments already in Invoiced by another way: entered by hand, or posted under another id.

Two checks run before a valid payment is posted (unless the user confirmed it):

- `hand_entered`: a transaction on the same invoice, without syncd's metadata, with the same
  amount and currency, a date at most `duplicate_window_days` away and the same reference
  (gateway_id) when both give one (`[pushback] duplicate_check`);
- `vanished_match` (see `identity.py`): a payment syncd posted earlier whose source row or
  book entry is gone while this new one looks like it, edited.

Either holds the payment (`held`, reason `possible duplicate: ...` or `changed: review: ...`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from syncd.invoiced import InvoicedClient
from syncd.plugin import ExternalPayment
from syncd.pushback.validate import money

PAYMENT_TYPES = ("payment", "charge")  # money received; refunds and adjustments are not
HOW_TO_ACT = "`syncd errors retry {ext}` posts it anyway, `syncd errors ignore {ext}` drops it"


def tx_date(tx: Mapping[str, Any]) -> dt.date | None:
    """A transaction's date (unix seconds) as a UTC calendar day."""
    value = tx.get("date")
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return dt.datetime.fromtimestamp(int(value), tz=dt.UTC).date()


def describe_tx(tx: Mapping[str, Any]) -> str:
    """`transaction 42 (2024-06-01, 100.00 USD, reference 1450)`."""
    day = tx_date(tx)
    parts = [
        day.isoformat() if day else "no date",
        f"{tx.get('amount')} {str(tx.get('currency') or '').upper()}",
    ]
    if tx.get("gateway_id"):
        parts.append(f"reference {tx['gateway_id']}")
    return f"transaction {tx.get('id')} ({', '.join(parts)})"


def describe_payment(payment: ExternalPayment) -> str:
    """`payment X (2024-06-01, 100.00 USD, invoice INV-1, reference 1450)`."""
    p = payment
    parts = [p.date.isoformat(), f"{p.amount} {p.currency.upper()}", f"invoice {p.invoice}"]
    if p.reference:
        parts.append(f"reference {p.reference}")
    return f"payment {p.external_id} ({', '.join(parts)})"


def _matches(payment: ExternalPayment, tx: Mapping[str, Any], metadata_key: str, window_days: int) -> bool:
    if (tx.get("metadata") or {}).get(metadata_key) is not None:
        return False  # syncd's own: found by the metadata lookup, or another payment of the source
    if str(tx.get("type") or "payment") not in PAYMENT_TYPES or tx.get("status") == "failed":
        return False
    if str(tx.get("currency") or payment.currency).lower() != payment.currency.lower():
        return False
    if "amount" not in tx or money(tx["amount"]) != payment.amount:
        return False
    day = tx_date(tx)
    if day is None or abs((day - payment.date).days) > window_days:
        return False
    theirs = str(tx.get("gateway_id") or "").strip().lower()
    ours = (payment.reference or "").strip().lower()
    return not (theirs and ours and theirs != ours)


def hand_entered(
    client: InvoicedClient,
    payment: ExternalPayment,
    invoice: Mapping[str, Any],
    *,
    metadata_key: str,
    window_days: int,
) -> str | None:
    """The `possible duplicate: ...` reason when the invoice already has such a payment, else None."""
    found = [
        tx
        for page in client.iter_pages(
            "/transactions", {"filter[invoice]": str(invoice["id"]), "per_page": "100"}
        )
        for tx in page.items
        if _matches(payment, tx, metadata_key, window_days)
    ]
    if not found:
        return None
    theirs = "; ".join(describe_tx(tx) for tx in found)
    number = invoice.get("number") or invoice.get("id")
    return (
        f"possible duplicate: {describe_payment(payment)} looks already recorded in Invoiced "
        f"on invoice {number} without syncd metadata: {theirs}; " + HOW_TO_ACT.format(ext=payment.external_id)
    )
