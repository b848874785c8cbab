"""Checking an external payment against Invoiced before it is posted.

The invoice must exist (by number, else by id), be open to payments, match the payment's
customer and currency; the amount must be positive, have no more decimals than the
currency has, and not exceed the open balance unless overpayment is allowed; the date must
lie within `max_days_past` before and `max_days_future` after today.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from syncd.errors import FatalApiError
from syncd.invoiced import InvoicedClient
from syncd.plugin import ExternalPayment

# ISO 4217 minor units that are not 2; everything else has cents.
_MINOR_UNITS = {
    **dict.fromkeys(
        (
            "bif",
            "clp",
            "djf",
            "gnf",
            "isk",
            "jpy",
            "kmf",
            "krw",
            "pyg",
            "rwf",
            "ugx",
            "vnd",
            "vuv",
            "xaf",
            "xof",
            "xpf",
        ),
        0,
    ),
    **dict.fromkeys(("bhd", "iqd", "jod", "kwd", "lyd", "omr", "tnd"), 3),
}


def minor_units(currency: str) -> int:
    """Decimal places of a currency's smallest unit (2 unless listed)."""
    return _MINOR_UNITS.get(currency.lower(), 2)


def money(value: Any) -> Decimal:
    """An API amount as Decimal (the client already parses fractions as Decimal)."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


@dataclass(frozen=True, slots=True)
class Checked:
    """The outcome of a check: the invoice found (when any) and the reason it fails (None: valid)."""

    invoice: Mapping[str, Any] | None
    reason: str | None = None

    @property
    def invoice_id(self) -> str | None:
        return str(self.invoice["id"]) if self.invoice is not None else None


def _is_not_found(exc: FatalApiError) -> bool:
    return exc.status == 404


class Validator:
    """Checks payments against live Invoiced data; customers are cached for one run."""

    def __init__(
        self,
        client: InvoicedClient,
        *,
        allow_overpayment: bool = False,
        max_days_past: int | None = None,
        max_days_future: int | None = None,
        today: Callable[[], dt.date] = dt.date.today,
    ) -> None:
        self.client = client
        self.allow_overpayment = allow_overpayment
        self.max_days_past = max_days_past
        self.max_days_future = max_days_future
        self.today = today
        self._customers: dict[str, Mapping[str, Any] | None] = {}

    def find_invoice(self, ref: str) -> tuple[Mapping[str, Any] | None, str | None]:
        """The invoice a payment names, by number first, then by id; or why it cannot be told."""
        page = self.client.get_page("/invoices", {"filter[number]": ref, "per_page": "2"})
        by_number = [inv for inv in page.items if str(inv.get("number")) == ref]
        by_id: Mapping[str, Any] | None = None
        if ref.isascii() and ref.isdigit():
            try:
                by_id = self.client.get(f"/invoices/{ref}")
            except FatalApiError as exc:
                if not _is_not_found(exc):
                    raise
        if len(by_number) > 1:
            return None, f"invoice number {ref} is used by {len(by_number)} invoices"
        if by_number and by_id is not None and str(by_id.get("id")) != str(by_number[0].get("id")):
            return (
                None,
                f"invoice {ref} is ambiguous: the number of invoice {by_number[0]['id']} and the id of {by_id.get('number')}",
            )
        if by_number:
            return by_number[0], None
        if by_id is not None:
            return by_id, None
        return None, f"unknown invoice {ref}"

    def _customer(self, customer_id: str) -> Mapping[str, Any] | None:
        if customer_id not in self._customers:
            try:
                self._customers[customer_id] = self.client.get(f"/customers/{customer_id}")
            except FatalApiError as exc:
                if not _is_not_found(exc):
                    raise
                self._customers[customer_id] = None
        return self._customers[customer_id]

    def _customer_matches(self, wanted: str, invoice: Mapping[str, Any]) -> tuple[bool, str]:
        ref = invoice.get("customer")
        customer = ref if isinstance(ref, Mapping) else None
        customer_id = str(customer["id"]) if customer is not None else str(ref)
        if wanted == customer_id:
            return True, customer_id
        if customer is None:
            customer = self._customer(customer_id)
        number = str(customer.get("number") or "") if customer is not None else ""
        return bool(number) and number.strip().lower() == wanted.strip().lower(), number or customer_id

    def date_problem(self, date: dt.date) -> str | None:
        """Why a payment date is implausible (a typo such as 2099 or 1900), or None."""
        today = self.today()
        if self.max_days_future is not None and date > today + dt.timedelta(days=self.max_days_future):
            return (
                f"date {date.isoformat()} is more than {self.max_days_future} days in the future "
                "([pushback] max_days_future)"
            )
        if self.max_days_past is not None and date < today - dt.timedelta(days=self.max_days_past):
            return (
                f"date {date.isoformat()} is more than {self.max_days_past} days in the past "
                "([pushback] max_days_past)"
            )
        return None

    def check(self, payment: ExternalPayment) -> Checked:
        """Validate one payment; API errors other than "not found" propagate."""
        p = payment
        problem = self.date_problem(p.date)
        if problem is not None:
            return Checked(None, problem)
        if not p.amount.is_finite() or p.amount <= 0:
            return Checked(None, f"amount {p.amount} is not above zero")
        places = minor_units(p.currency)
        exponent = p.amount.normalize().as_tuple().exponent
        if isinstance(exponent, int) and -exponent > places:
            return Checked(
                None, f"amount {p.amount} has more than {places} decimals for {p.currency.upper()}"
            )
        invoice, problem = self.find_invoice(p.invoice)
        if invoice is None:
            return Checked(None, problem)
        number = invoice.get("number") or invoice.get("id")
        status = str(invoice.get("status") or "")
        if status == "voided" or invoice.get("voided"):
            return Checked(invoice, f"invoice {number} is voided")
        if status == "draft" or invoice.get("draft"):
            return Checked(invoice, f"invoice {number} is a draft")
        if invoice.get("closed"):
            return Checked(invoice, f"invoice {number} is closed")
        currency = str(invoice.get("currency") or "").lower()
        if currency != p.currency.lower():
            return Checked(
                invoice, f"currency {p.currency.upper()} does not match invoice {number} ({currency.upper()})"
            )
        if p.customer:
            ok, theirs = self._customer_matches(p.customer, invoice)
            if not ok:
                return Checked(
                    invoice, f"customer {p.customer} does not match invoice {number}'s customer {theirs}"
                )
        balance = money(invoice.get("balance", 0))
        if p.amount > balance and not self.allow_overpayment:
            return Checked(
                invoice,
                f"amount {p.amount} is above invoice {number}'s open balance {balance} "
                "(set [pushback] allow_overpayment = true to allow)",
            )
        return Checked(invoice)
