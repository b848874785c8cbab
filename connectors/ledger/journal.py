"""Journal entries built from mapped Invoiced records: the arithmetic lives here.

The mapping decides accounts, payees and narration; this module decides signs,
rounding per currency and balancing, so every entry sums to zero in every commodity.

    invoice      Dr receivable (total)        Cr revenue per line, tax liability per tax
                 Dr discounts (contra-revenue)  any rounding residue -> rounding account
    voided       the invoice entry, and its reversal on the void date
    payment      Dr cash/bank (by method)     Cr receivable      (also `charge`)
    refund       Dr receivable                Cr cash/bank
    adjustment   Dr receivable (amount)       Cr adjustments     (a negative amount credits the customer)

A transaction applied to no invoice moves the customer's credit balance
(`credit_account`, a liability) instead of the receivable, as Invoiced does.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import structlog

log = structlog.get_logger(__name__)

ROOTS = ("Assets", "Liabilities", "Equity", "Income", "Expenses")

# ISO 4217 minor units where they differ from 2.
_EXPONENTS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF"), 0),
    **dict.fromkeys(("UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}

# Order of entries that share a date: the invoice before what pays it, reversals last.
KIND_ORDER = {"invoice": 0, "charge": 1, "payment": 1, "adjustment": 1, "refund": 1, "void": 2}

PAYMENT_LIKE = frozenset({"payment", "charge"})
RECEIVABLE_UP = frozenset({"refund", "adjustment"})
_KINDS = PAYMENT_LIKE | RECEIVABLE_UP


class EntryError(ValueError):
    """A mapped record cannot become a journal entry; names the table and field."""


def exponent(currency: str) -> int:
    """Decimal places of a currency's minor unit (JPY 0, KWD 3, most 2)."""
    places = _PLACES.get(currency)
    if places is None:
        if len(_PLACES) >= 256:  # a few currencies, each asked once per amount: a small memo
            _PLACES.clear()
        places = _PLACES[currency] = _EXPONENTS.get(currency.upper(), 2)
    return places


_PLACES: dict[str, int] = {}


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round to the currency's minor unit, half up (the commercial convention)."""
    return amount.quantize(_UNITS[exponent(currency)], rounding=ROUND_HALF_UP)


_ZERO = Decimal(0)
_UNITS = {places: Decimal(1).scaleb(-places) for places in (0, 2, 3)}  # every value of `exponent`


@dataclass(frozen=True, slots=True)
class Posting:
    """One line of an entry: `amount` in `currency` (uppercase commodity) on `account`."""

    account: str
    amount: Decimal
    currency: str
    comment: str = ""
    role: str = ""  # "ar" or "credit": the customer's account, which the customers table may rename

    def __init__(
        self, account: str, amount: Decimal, currency: str, comment: str = "", role: str = ""
    ) -> None:
        # The fields and defaults above, set by the slots' own setters: a frozen dataclass's
        # generated __init__ calls object.__setattr__ per field, nearly twice the cost.
        _p_account(self, account)
        _p_amount(self, amount)
        _p_currency(self, currency)
        _p_comment(self, comment)
        _p_role(self, role)


@dataclass(frozen=True, slots=True)
class Entry:
    """One balanced journal transaction, tagged with the Invoiced object it comes from."""

    date: dt.date
    kind: str
    object: str
    object_id: str
    payee: str
    narration: str
    postings: tuple[Posting, ...]
    meta: tuple[tuple[str, str], ...] = field(default=())
    customer: str = ""

    def __init__(
        self,
        date: dt.date,
        kind: str,
        object: str,
        object_id: str,
        payee: str,
        narration: str,
        postings: tuple[Posting, ...],
        meta: tuple[tuple[str, str], ...] = (),
        customer: str = "",
    ) -> None:
        # As Posting's: the fields and defaults above, by the slots' setters.
        _e_date(self, date)
        _e_kind(self, kind)
        _e_object(self, object)
        _e_object_id(self, object_id)
        _e_payee(self, payee)
        _e_narration(self, narration)
        _e_postings(self, postings)
        _e_meta(self, meta)
        _e_customer(self, customer)

    def sort_key(self) -> tuple[Any, ...]:
        """Date, then type, then id (numerically when ASCII digits): a stable order.

        Not `isdigit()` alone: "¹" passes it and `int()` refuses it; "٣" would sort as 3.
        """
        numeric = self.object_id.isascii() and self.object_id.isdigit()
        oid = (0, int(self.object_id), "") if numeric else (1, 0, self.object_id)
        return (self.date, KIND_ORDER.get(self.kind, 9), self.object, oid)

    def imbalance(self) -> dict[str, Decimal]:
        """Per-commodity sum of the postings (empty when balanced)."""
        return imbalance(parts_of(self)[6])

    def to_row(self) -> dict[str, Any]:
        """A JSON-able dict for the checkpoint store (Decimals stay exact)."""
        return {
            "date": self.date.isoformat(),
            "kind": self.kind,
            "object": self.object,
            "object_id": self.object_id,
            "payee": self.payee,
            "narration": self.narration,
            "postings": [[p.account, p.amount, p.currency, p.comment, p.role] for p in self.postings],
            "meta": [list(m) for m in self.meta],
            "customer": self.customer,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Entry:
        """Inverse of `to_row`."""
        return cls(
            date=dt.date.fromisoformat(row["date"]),
            kind=row["kind"],
            object=row["object"],
            object_id=row["object_id"],
            payee=row["payee"],
            narration=row["narration"],
            postings=tuple(Posting(a, Decimal(str(m)), c, k, r) for a, m, c, k, r in row["postings"]),
            meta=tuple((k, v) for k, v in row["meta"]),
            customer=row.get("customer", ""),
        )

    def for_customer(self, customer: Mapping[str, Any]) -> Entry:
        """This entry with the customer's current payee and accounts (after a rename, say)."""
        accounts: dict[str, str] = {
            role: str(customer[key])
            for role, key in (("ar", "ar_account"), ("credit", "credit_account"))
            if customer.get(key)
        }
        # Built, not `replace`d (which reads the fields' metadata per call): a render does this for
        # every entry of a customer renamed since the entry was written.
        postings = tuple(
            Posting(accounts.get(p.role, p.account), p.amount, p.currency, p.comment, p.role)
            for p in self.postings
        )
        payee = customer.get("payee") or self.payee
        return Entry(
            self.date,
            self.kind,
            self.object,
            self.object_id,
            payee,
            self.narration,
            postings,
            self.meta,
            self.customer,
        )


def _setters(cls: type) -> list[Callable[[Any, Any], None]]:
    """The slot setters of a dataclass's fields, in field order (a field added or removed fails
    below; test_write_path holds each __init__ to the fields' order and defaults)."""
    return [cls.__dict__[f.name].__set__ for f in fields(cls)]


_p_account, _p_amount, _p_currency, _p_comment, _p_role = _setters(Posting)
_e_date, _e_kind, _e_object, _e_object_id, _e_payee, _e_narration, _e_postings, _e_meta, _e_customer = (
    _setters(Entry)
)

# An entry's and its postings' fields as plain tuples, in the classes' field order: `write`
# encodes these without building the objects (their construction was a quarter of the entries' cost).
PostingParts = tuple[str, Decimal, str, str, str]  # account, amount, currency, comment, role
Parts = tuple[
    dt.date, str, str, str, str, str, Sequence[PostingParts], tuple[tuple[str, str], ...], str
]  # date, kind, object, object_id, payee, narration, postings, meta, customer


def entry_of_parts(p: Parts) -> Entry:
    """The `Entry` of `p`."""
    return Entry(p[0], p[1], p[2], p[3], p[4], p[5], tuple([Posting(*q) for q in p[6]]), p[7], p[8])


def parts_of(e: Entry) -> Parts:
    """The `Parts` of `e`."""
    postings = [(p.account, p.amount, p.currency, p.comment, p.role) for p in e.postings]
    return (e.date, e.kind, e.object, e.object_id, e.payee, e.narration, postings, e.meta, e.customer)


def imbalance(postings: Sequence[PostingParts]) -> dict[str, Decimal]:
    """Per-commodity sum of postings given as parts (empty when balanced)."""
    sums: dict[str, Decimal] = {}
    for _, amount, c, _, _ in postings:
        sums[c] = sums[c] + amount if c in sums else _ZERO + amount
    return {c: s for c, s in sums.items() if s != 0}


@dataclass(frozen=True, slots=True)
class Accounts:
    """Fallback accounts, used when a mapped row leaves one empty."""

    receivable: str = "Assets:Accounts Receivable"
    revenue: str = "Income:Sales"
    tax: str = "Liabilities:Sales Tax"
    discounts: str = "Income:Discounts"
    cash: str = "Assets:Undeposited Funds"
    adjustments: str = "Income:Adjustments"
    rounding: str = "Expenses:Rounding"
    customer_credit: str = "Liabilities:Customer Credit"


# -- reading mapped values -------------------------------------------------------------


def money(row: Mapping[str, Any], key: str, table: str) -> Decimal:
    """A money field as an exact Decimal; floats are refused (they are not exact)."""
    value = row.get(key)
    if isinstance(value, Decimal) and not value.is_finite():
        raise EntryError(f"{table}.{key}: {value!r} is not an amount")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool | float):
        raise EntryError(f"{table}.{key}: {value!r} is not an exact decimal")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str) and value.strip():
        try:
            number = Decimal(value.strip().replace(",", ""))
        except InvalidOperation:
            number = Decimal("NaN")
        if number.is_finite():
            return number
    raise EntryError(f"{table}.{key}: {value!r} is not an amount")


def text(row: Mapping[str, Any], key: str, default: str = "") -> str:
    """A text field, single-line, stripped; `default` when missing or empty."""
    value = row.get(key)
    if value is None:
        return default
    out = " ".join(str(value).split())
    return out or default


def to_date(value: Any, tz: zoneinfo.ZoneInfo, where: str) -> dt.date:
    """An ISO date/datetime string, a date, or a unix timestamp (in `tz`)."""
    if isinstance(value, str):  # the usual case first: a str is none of the others
        raw = value.strip()
        if raw.isascii() and raw.isdigit():
            return dt.datetime.fromtimestamp(int(raw), tz).date()
        if raw:
            try:
                return dt.date.fromisoformat(raw[:10])
            except ValueError:
                pass
    elif isinstance(value, dt.datetime):
        return value.date()
    elif isinstance(value, dt.date):
        return value
    elif isinstance(value, int | Decimal) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(int(value), tz).date()
    raise EntryError(f"{where}: {value!r} is not a date")


def account(row: Mapping[str, Any], key: str, default: str, table: str) -> str:
    """An account name: single spaces, `;` (a comment in journals) as `,`, an empty component
    (a template whose value was missing) as `Unknown`; the root must be a standard one."""
    value = row.get(key)
    # A name as given that the memo holds comes out as it would after `text`: the parts below
    # space each part as `text` does, and a name the memo holds is valid, so never blank.
    found = _ACCOUNTS.get(value) if type(value) is str else None
    if found is not None:
        return found
    name = text(row, key, default)
    found = _ACCOUNTS.get(name)
    if found is not None:
        return found
    parts = [" ".join(part.replace(";", ",").split()) for part in name.split(":")]
    parts = [p if any(ch.isalnum() for ch in p) else "Unknown" for p in parts]
    if not parts or parts[0] not in ROOTS:
        raise EntryError(f"{table}.{key}: account {name!r} must start with one of {', '.join(ROOTS)}")
    if len(parts) == 1:
        parts.append("Other")
    if len(_ACCOUNTS) >= 4096:  # names repeat (revenue, tax, a customer's): a small memo
        _ACCOUNTS.clear()
    found = _ACCOUNTS[name] = ":".join(parts)
    return found


_ACCOUNTS: dict[str, str] = {}  # account names as given: as `account` writes them


def currency_of(row: Mapping[str, Any], data: Mapping[str, Any], table: str) -> str:
    """The commodity: the mapped `currency`, else the record's, uppercase."""
    cur = text(row, "currency") or text(data, "currency")
    if not cur.isalpha() or not 2 <= len(cur) <= 10:
        raise EntryError(f"{table}.currency: {cur!r} is not a currency code")
    return cur.upper()


# -- building entries --------------------------------------------------------------------


def _first(tables: Mapping[str, Sequence[Mapping[str, Any]]], name: str) -> Mapping[str, Any] | None:
    rows = tables.get(name) or ()
    return rows[0] if rows else None


def _meta(row: Mapping[str, Any], keys: Sequence[str]) -> list[tuple[str, str]]:
    return [(k, v) for k in keys if (v := text(row, k))]


def _amount(row: Mapping[str, Any], key: str, where: str, unit: Decimal) -> Decimal:
    """`money` rounded to `unit` (half up); `where` only names the field in a refusal."""
    value = row.get(key)
    if type(value) is not Decimal or not value.is_finite():  # else `money` gives it back as it is
        value = money(row, key, where)
    return value.quantize(unit, ROUND_HALF_UP)


def invoice_entries(
    record_id: str,
    data: Mapping[str, Any],
    tables: Mapping[str, Sequence[Mapping[str, Any]]],
    accounts: Accounts,
    tz: zoneinfo.ZoneInfo,
) -> list[Entry]:
    """The entries of one invoice: none for drafts, the entry plus its reversal when voided."""
    return [entry_of_parts(p) for p in invoice_parts(record_id, data, tables, accounts, tz)]


def invoice_parts(
    record_id: str,
    data: Mapping[str, Any],
    tables: Mapping[str, Sequence[Mapping[str, Any]]],
    accounts: Accounts,
    tz: zoneinfo.ZoneInfo,
) -> list[Parts]:
    """`invoice_entries` as `Parts`."""
    head = _first(tables, "invoices")
    if head is None or data.get("draft") is True or data.get("status") == "draft":
        return []
    cur = currency_of(head, data, "invoices")
    unit = _UNITS[exponent(cur)]
    total = _amount(head, "total", "invoices", unit)
    postings = [(account(head, "ar_account", accounts.receivable, "invoices"), total, cur, "", "ar")]
    balance = _ZERO + total  # the sum of the postings, added in their order
    # Lines and taxes are credited; discounts (contra-revenue) are debited.
    parts = (
        ("invoice_lines", accounts.revenue, True),
        ("invoice_taxes", accounts.tax, True),
        ("invoice_discounts", accounts.discounts, False),
    )
    for table, fallback, credit in parts:
        for i, row in enumerate(tables.get(table) or ()):
            # `_amount` and `account` inline, their usual case first: most invoices have lines.
            amount = row.get("amount")
            if type(amount) is not Decimal or not amount.is_finite():
                amount = money(row, "amount", f"{table}[{i}]")
            amount = amount.quantize(unit, ROUND_HALF_UP)
            if amount:
                if credit:  # `-amount` is `-1 * amount`, digits and exponent, once it is not zero
                    amount = -amount
                name = row.get("account")
                if type(name) is not str or (name := _ACCOUNTS.get(name)) is None:
                    name = account(row, "account", fallback, f"{table}[{i}]")
                postings.append((name, amount, cur, text(row, "memo"), ""))
                balance += amount
    # Line-level taxes and discounts (items[].taxes[], items[].discounts[]) go to the default accounts.
    for item in data.get("items") or ():
        for tax in item.get("taxes") or ():
            amount = _amount(tax, "amount", "items[].taxes[]", unit)
            if amount:
                amount = -amount
                postings.append((accounts.tax, amount, cur, "line tax", ""))
                balance += amount
        for disc in item.get("discounts") or ():
            amount = _amount(disc, "amount", "items[].discounts[]", unit)
            if amount:
                postings.append((accounts.discounts, amount, cur, "line discount", ""))
                balance += amount
    residue = -balance
    if residue:
        # Per-line rounding leaves at most half a minor unit per line; more means the
        # document's parts do not add up to its total: still balanced, but flagged.
        if abs(residue) > unit * len(postings):
            log.warning(
                "ledger.invoice_parts_mismatch", invoice=record_id, residue=str(residue), currency=cur
            )
        postings.append((accounts.rounding, residue, cur, "rounding", ""))
    date = to_date(head.get("date", data.get("date")), tz, "invoices.date")
    payee = text(head, "payee", "Unknown customer").replace("|", "/")
    narration = text(head, "narration") or f"Invoice {text(data, 'number', record_id)}"
    meta = (("invoiced_type", "invoice"), ("invoiced_id", record_id), *_meta(head, ("number", "customer")))
    customer = _customer_id(data)
    entry = (date, "invoice", "invoice", record_id, payee, narration, postings, meta, customer)
    if data.get("status") != "voided" and text(head, "status") != "voided":
        return [entry]
    void_at = head.get("void_date") or data.get("date_voided") or data.get("updated_at")
    void_date = max(date, to_date(void_at, tz, "invoices.void_date"))
    reversal = (
        void_date,
        "void",
        "invoice",
        record_id,
        payee,
        f"Void: {narration}",
        [(a, -m, c, k, r) for a, m, c, k, r in postings],
        (("invoiced_type", "invoice"), ("invoiced_id", record_id), ("invoiced_event", "voided")),
        customer,
    )
    return [entry, reversal]


def transaction_entries(
    record_id: str,
    data: Mapping[str, Any],
    tables: Mapping[str, Sequence[Mapping[str, Any]]],
    accounts: Accounts,
    tz: zoneinfo.ZoneInfo,
    statuses: Sequence[str] = ("succeeded",),
) -> list[Entry]:
    """The entry of one transaction (none for failed or pending ones, or unknown types)."""
    return [entry_of_parts(p) for p in transaction_parts(record_id, data, tables, accounts, tz, statuses)]


def transaction_parts(
    record_id: str,
    data: Mapping[str, Any],
    tables: Mapping[str, Sequence[Mapping[str, Any]]],
    accounts: Accounts,
    tz: zoneinfo.ZoneInfo,
    statuses: Sequence[str] = ("succeeded",),
) -> list[Parts]:
    """`transaction_entries` as `Parts`."""
    row = _first(tables, "transactions")
    if row is None:
        return []
    status = text(row, "status") or text(data, "status", "succeeded")
    if status not in statuses:
        return []
    kind = (text(row, "type") or text(data, "type")).lower()
    if kind not in _KINDS:
        raise EntryError(f"transactions.type: {kind!r} is not one of charge, payment, refund, adjustment")
    cur = currency_of(row, data, "transactions")
    amount = _amount(row, "amount", "transactions", _UNITS[exponent(cur)])
    if text(row, "invoice") or data.get("invoice"):
        role, receivable = "ar", account(row, "ar_account", accounts.receivable, "transactions")
    else:
        # Money not applied to an invoice is the customer's credit balance, not a receivable.
        role, receivable = "credit", account(row, "credit_account", accounts.customer_credit, "transactions")
    default_other = accounts.adjustments if kind == "adjustment" else accounts.cash
    other = account(row, "account", default_other, "transactions")
    # The receivable moves by +amount for refunds and adjustments, -amount for payments.
    signed = amount if kind in RECEIVABLE_UP else -amount
    postings = ((receivable, signed, cur, "", role), (other, -signed, cur, "", ""))
    date = to_date(row.get("date", data.get("date")), tz, "transactions.date")
    payee = text(row, "payee", "Unknown customer").replace("|", "/")
    narration = text(row, "narration") or f"{kind.capitalize()} {record_id}"
    meta = [
        ("invoiced_type", "transaction"),
        ("invoiced_id", record_id),
        *_meta(row, ("invoice", "method", "reference", "external_source", "external_id")),
    ]
    return [
        (date, kind, "transaction", record_id, payee, narration, postings, tuple(meta), _customer_id(data))
    ]


def _customer_id(data: Mapping[str, Any]) -> str:
    customer = data.get("customer")
    if type(customer) is int:  # an id, as most records have it: no Mapping (an ABC check)
        return str(customer)
    if isinstance(customer, Mapping):
        customer = customer.get("id")
    return "" if customer is None else str(customer)


def customer_row(record_id: str, row: Mapping[str, Any], accounts: Accounts) -> dict[str, str]:
    """A customer's current payee and accounts, validated (the `customers` table)."""
    out = {"id": record_id, "ar_account": account(row, "ar_account", accounts.receivable, "customers")}
    if text(row, "credit_account"):
        out["credit_account"] = account(row, "credit_account", accounts.customer_credit, "customers")
    if text(row, "payee"):
        out["payee"] = text(row, "payee").replace("|", "/")
    return out
