"""Validation of request bodies and the money arithmetic of invoices, as the API reference describes.

Every problem with client input raises `ApiProblem` (a 400 naming `param`); nothing here may
let a bad value through to a 500. Money is `Decimal`, quantized to the currency's minor unit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

ZERO_DECIMAL_CURRENCIES = frozenset({"jpy", "krw", "vnd", "clp", "isk"})
THREE_DECIMAL_CURRENCIES = frozenset({"bhd", "iqd", "jod", "kwd", "lyd", "omr", "tnd"})
TRANSACTION_TYPES = ("charge", "payment", "refund", "adjustment")
TRANSACTION_METHODS = (
    "ach",
    "balance",
    "cash",
    "check",
    "credit_card",
    "direct_debit",
    "eft",
    "other",
    "paypal",
    "wire_transfer",
    "wire",
)
TRANSACTION_STATUSES = ("succeeded", "pending", "failed")
METADATA_MAX_KEYS, METADATA_MAX_KEY, METADATA_MAX_VALUE = 10, 40, 255
_NUMBER = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)$")
_CURRENCY = re.compile(r"^[a-z]{3}$")


class ApiProblem(Exception):
    """An error answer: HTTP status plus the documented body `{type, message, param}`."""

    def __init__(
        self, status: int, message: str, param: str | None = None, type: str = "invalid_request"
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.type = status, message, param, type

    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        return {"type": self.type, "message": self.message, "param": self.param}


def bad(param: str, message: str) -> ApiProblem:
    """A 400 naming `param`."""
    return ApiProblem(400, message, param)


def exponent(currency: str) -> Decimal:
    """The quantum of one minor unit: 0.01, 1 for currencies without a minor unit (JPY), 0.001 for KWD..."""
    if currency in ZERO_DECIMAL_CURRENCIES:
        return Decimal(1)
    return Decimal("0.001") if currency in THREE_DECIMAL_CURRENCIES else Decimal("0.01")


def money(value: Decimal | int, currency: str) -> Decimal:
    """`value` rounded half-up to the currency's minor unit."""
    return Decimal(value).quantize(exponent(currency), rounding=ROUND_HALF_UP)


_ZEROS: dict[str, Decimal] = {}


def _zero(currency: str) -> Decimal:
    """A shared zero in the currency's precision (Decimals are immutable)."""
    zero = _ZEROS.get(currency)
    if zero is None:
        zero = _ZEROS[currency] = money(0, currency)
    return zero


# -- scalar validators: (value, param, form) -> value ---------------------------------------------

Validator = Callable[[Any, str, bool], Any]


def _nullable(inner: Validator) -> Validator:
    def check(value: Any, param: str, form: bool) -> Any:
        if value is None or (form and value == ""):
            return None
        return inner(value, param, form)

    return check


def v_str(value: Any, param: str, form: bool) -> str:
    if not isinstance(value, str):
        raise bad(param, f"{param} must be a string")
    if len(value) > 10_000:
        raise bad(param, f"{param} is too long")
    return value


def v_int(value: Any, param: str, form: bool) -> int:
    if form and isinstance(value, str) and re.fullmatch(r"-?\d{1,18}", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(param, f"{param} must be an integer")
    if value < 0 or value > 2**53:
        raise bad(param, f"{param} must be a positive integer")
    return value


def v_bool(value: Any, param: str, form: bool) -> bool:
    if form and isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    if not isinstance(value, bool):
        raise bad(param, f"{param} must be a boolean")
    return value


def _number(value: Any, param: str, form: bool) -> Decimal:
    if form and isinstance(value, str) and _NUMBER.match(value):
        value = Decimal(value)
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise bad(param, f"{param} must be a number")
    try:
        number = Decimal(value)
    except InvalidOperation:  # pragma: no cover - int and Decimal always convert
        raise bad(param, f"{param} must be a number") from None
    if not number.is_finite() or abs(number) >= Decimal("1e13"):
        raise bad(param, f"{param} must be a finite number below 10^13")
    return number


def v_amount(value: Any, param: str, form: bool) -> Decimal:
    number = _number(value, param, form)
    if number < 0:
        raise bad(param, f"{param} must not be negative")
    return number


def v_signed(value: Any, param: str, form: bool) -> Decimal:
    return _number(value, param, form)


def v_currency(value: Any, param: str, form: bool) -> str:
    text = v_str(value, param, form).lower()
    if not _CURRENCY.match(text):
        raise bad(param, f"{param} must be a 3-letter ISO currency code")
    return text


def v_enum(*choices: str) -> Validator:
    def check(value: Any, param: str, form: bool) -> str:
        if value not in choices:
            raise bad(param, f"{param} must be one of {', '.join(choices)}")
        return str(value)

    return check


def v_metadata(value: Any, param: str, form: bool) -> dict[str, str]:
    if value is None or (form and value == ""):
        return {}
    if not isinstance(value, Mapping):
        raise bad(param, f"{param} must be an object of key/value pairs")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key or len(key) > METADATA_MAX_KEY:
            raise bad(param, f"metadata keys must be 1 to {METADATA_MAX_KEY} characters: {str(key)[:60]!r}")
        if item is None:
            continue
        if isinstance(item, bool) or not isinstance(item, str | int | Decimal):
            raise bad(f"{param}[{key}]", f"{param}[{key}] must be a string")
        text = str(item)
        if len(text) > METADATA_MAX_VALUE:
            raise bad(f"{param}[{key}]", f"{param}[{key}] is longer than {METADATA_MAX_VALUE} characters")
        out[key] = text
    if len(out) > METADATA_MAX_KEYS:
        raise bad(param, f"{param} may have at most {METADATA_MAX_KEYS} keys, got {len(out)}")
    return out


def as_list(value: Any, param: str) -> list[Any]:
    """A JSON array, or a form-encoded `x[0][..]`/`x[][..]` collection, as a list."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and all(isinstance(k, str) and k.isdigit() for k in value):
        return [value[k] for k in sorted(value, key=int)]
    raise bad(param, f"{param} must be an array")


def _fields(spec: Mapping[str, Validator], value: Any, param: str, form: bool) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise bad(param, f"{param} must be an object")
    out = {}
    for key, item in value.items():
        check = spec.get(key)
        if check is None:
            raise bad(f"{param}[{key}]", f"unknown field {param}[{key}]")
        out[key] = check(item, f"{param}[{key}]", form)
    return out


_ADJUSTMENT_SPEC: dict[str, Validator] = {
    "id": _nullable(v_int),
    "amount": v_amount,
    "object": _nullable(v_str),
    "coupon": _nullable(v_str),
    "tax_rate": _nullable(v_str),
    "expires": _nullable(v_int),
}


def v_adjustments(value: Any, param: str, form: bool) -> list[dict[str, Any]]:
    """Discounts or taxes: `[{amount}]`, each amount a non-negative number."""
    if value is None:
        return []
    rows = [
        _fields(_ADJUSTMENT_SPEC, row, f"{param}[{i}]", form) for i, row in enumerate(as_list(value, param))
    ]
    for i, row in enumerate(rows):
        if "amount" not in row:
            raise bad(f"{param}[{i}][amount]", f"{param}[{i}][amount] is required")
    return rows


_ITEM_SPEC: dict[str, Validator] = {
    "id": _nullable(v_int),
    "object": _nullable(v_str),
    "catalog_item": _nullable(v_str),
    "type": _nullable(v_str),
    "name": _nullable(v_str),
    "description": _nullable(v_str),
    "quantity": v_amount,
    "unit_cost": v_amount,
    "amount": v_amount,  # computed; accepted only because retrieved items are sent back as they are
    "discountable": v_bool,
    "taxable": v_bool,
    "discounts": v_adjustments,
    "taxes": v_adjustments,
    "metadata": v_metadata,
}


def v_items(value: Any, param: str, form: bool) -> list[dict[str, Any]]:
    """Line items: name, quantity, unit_cost, discounts, taxes, metadata."""
    if value is None:
        return []
    return [_fields(_ITEM_SPEC, row, f"{param}[{i}]", form) for i, row in enumerate(as_list(value, param))]


def v_list(value: Any, param: str, form: bool) -> list[Any]:
    if value is None:
        return []
    return as_list(value, param)


_s = _nullable(v_str)
CUSTOMER_FIELDS: dict[str, Validator] = {
    "name": v_str,
    "number": v_str,
    "email": _s,
    "autopay": v_bool,
    "payment_terms": _s,
    "type": v_enum("company", "person"),
    "attention_to": _s,
    "address1": _s,
    "address2": _s,
    "city": _s,
    "state": _s,
    "postal_code": _s,
    "country": _s,
    "currency": _nullable(v_currency),
    "language": _s,
    "tax_id": _s,
    "phone": _s,
    "notes": _s,
    "chase": v_bool,
    "credit_hold": v_bool,
    "credit_limit": _nullable(v_amount),
    "taxable": v_bool,
    "taxes": v_list,
    "metadata": v_metadata,
}
INVOICE_FIELDS: dict[str, Validator] = {
    "customer": v_int,
    "name": _s,
    "number": v_str,
    "currency": v_currency,
    "autopay": v_bool,
    "payment_terms": _s,
    "date": v_int,
    "due_date": _nullable(v_int),
    "draft": v_bool,
    "closed": v_bool,
    "chase": v_bool,
    "items": v_items,
    "notes": _s,
    "discounts": v_adjustments,
    "taxes": v_adjustments,
    "metadata": v_metadata,
    "purchase_order": _s,
}
INVOICE_IMMUTABLE = frozenset({"customer"})
TRANSACTION_FIELDS: dict[str, Validator] = {
    "customer": v_int,
    "invoice": _nullable(v_int),
    "credit_note": _nullable(v_int),
    "type": v_enum(*TRANSACTION_TYPES),
    "date": v_int,
    "method": v_enum(*TRANSACTION_METHODS),
    "status": v_enum(*TRANSACTION_STATUSES),
    "gateway": _s,
    "gateway_id": _s,
    "currency": v_currency,
    "amount": v_signed,
    "notes": _s,
    "metadata": v_metadata,
    "parent_transaction": _nullable(v_int),
}
TRANSACTION_IMMUTABLE = frozenset({"customer", "invoice", "credit_note", "type", "parent_transaction"})
FIELDS = {"customers": CUSTOMER_FIELDS, "invoices": INVOICE_FIELDS, "transactions": TRANSACTION_FIELDS}
IMMUTABLE = {"customers": frozenset(), "invoices": INVOICE_IMMUTABLE, "transactions": TRANSACTION_IMMUTABLE}
REQUIRED = {"customers": ("name",), "invoices": ("customer",), "transactions": ("type", "amount")}


def validate(stream: str, fields: Any, *, creating: bool, form: bool = False) -> dict[str, Any]:
    """Check a create/update body against the resource's documented fields; 400 naming the field."""
    if not isinstance(fields, Mapping):
        raise bad("body", "the request body must be an object")
    spec = FIELDS[stream]
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if not isinstance(key, str):
            raise bad(str(key), f"unknown field {key}")
        check = spec.get(key)
        if check is None:
            raise bad(key, f"unknown field: {key}")
        if not creating and key in IMMUTABLE[stream]:
            raise bad(key, f"{key} cannot be changed after creation")
        out[key] = check(value, key, form)
    if creating:
        for key in REQUIRED[stream]:
            if out.get(key) is None:
                raise bad(key, f"{key} is required")
    if (
        stream == "transactions"
        and "amount" in out
        and out.get("type", "payment") != "adjustment"
        and out["amount"] < 0
    ):
        raise bad("amount", "amount must not be negative")
    return out


# -- invoice arithmetic ---------------------------------------------------------------------------


def compute_invoice(
    invoice: dict[str, Any], paid_amount: Decimal, pending: bool, flags: Mapping[str, bool], now: int
) -> None:
    """Fill items[].amount, subtotal, total, amount_paid, balance, paid and status in place.

    total = subtotal - discounts + taxes (invoice and line level); balance = total - paid_amount.
    """
    currency = invoice["currency"]
    subtotal = discounts = taxes = Decimal(0)
    for item in invoice["items"]:
        amount = money(Decimal(item["quantity"]) * item["unit_cost"], currency)
        if item["amount"] != amount:  # keeps shared Decimal instances when nothing changed
            item["amount"] = amount
        subtotal += item["amount"]
        discounts += sum((d["amount"] for d in item["discounts"]), Decimal(0))
        taxes += sum((t["amount"] for t in item["taxes"]), Decimal(0))
    discounts += sum((d["amount"] for d in invoice["discounts"]), Decimal(0))
    taxes += sum((t["amount"] for t in invoice["taxes"]), Decimal(0))
    invoice["subtotal"] = money(subtotal, currency)
    # One shared Decimal for subtotal, total and balance when nothing sets them apart.
    total = (
        invoice["subtotal"] if not discounts and not taxes else money(subtotal - discounts + taxes, currency)
    )
    if total < 0:
        raise bad("discounts", "discounts exceed the invoice subtotal")
    invoice["total"] = total
    invoice["amount_paid"] = _zero(currency) if not paid_amount else money(paid_amount, currency)
    invoice["balance"] = total if not paid_amount else money(total - paid_amount, currency)
    voided = flags.get("voided", False)
    invoice["paid"] = not invoice["draft"] and not voided and invoice["balance"] <= 0
    if voided:
        status = "voided"
    elif invoice["draft"]:
        status = "draft"
    elif invoice["paid"]:
        status = "paid"
    elif pending:
        status = "pending"
    elif invoice["due_date"] is not None and invoice["due_date"] < now:
        status = "past_due"
    elif flags.get("viewed"):
        status = "viewed"
    elif flags.get("sent"):
        status = "sent"
    else:
        status = "not_sent"
    invoice["status"] = status


def paid_effect(tx: Mapping[str, Any]) -> Decimal:
    """How much a succeeded transaction pays off its invoice (refunds and charges to the customer count against)."""
    if tx["status"] != "succeeded":
        return Decimal(0)
    kind, amount = tx["type"], tx["amount"]
    if kind in ("payment", "charge"):
        return Decimal(amount)
    if kind == "refund":
        return -Decimal(amount)
    return -Decimal(amount)  # adjustment: negative = credit to the customer, reduces the balance
