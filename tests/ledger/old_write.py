"""The ledger connector's write path as it was before #14's per-record work (commit 509b605):
journal.invoice_entries / transaction_entries, render.entry_block and rows.encode, the
reference test_write_path.py holds the connector's to. Frozen: do not edit."""

# ruff: noqa
# mypy: ignore-errors

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import msgspec

from connectors.ledger.journal import Accounts, Entry, EntryError, Posting, log

RENDER_VERSION = "2"

ROOTS = ("Assets", "Liabilities", "Equity", "Income", "Expenses")

# ISO 4217 minor units where they differ from 2.
_EXPONENTS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF"), 0),
    **dict.fromkeys(("UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


PAYMENT_LIKE = frozenset({"payment", "charge"})
RECEIVABLE_UP = frozenset({"refund", "adjustment"})


def exponent(currency: str) -> int:
    """Decimal places of a currency's minor unit (JPY 0, KWD 3, most 2)."""
    return _EXPONENTS.get(currency.upper(), 2)


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round to the currency's minor unit, half up (the commercial convention)."""
    return amount.quantize(_UNITS[exponent(currency)], rounding=ROUND_HALF_UP)


_UNITS = {places: Decimal(1).scaleb(-places) for places in (0, 2, 3)}  # every value of `exponent`


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
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(int(value), tz).date()
    if isinstance(value, str) and value.strip():
        raw = value.strip()
        if raw.isascii() and raw.isdigit():
            return dt.datetime.fromtimestamp(int(raw), tz).date()
        try:
            return dt.date.fromisoformat(raw[:10])
        except ValueError:
            pass
    raise EntryError(f"{where}: {value!r} is not a date")


def account(row: Mapping[str, Any], key: str, default: str, table: str) -> str:
    """An account name: single spaces, `;` (a comment in journals) as `,`, an empty component
    (a template whose value was missing) as `Unknown`; the root must be a standard one."""
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
    return [(k, text(row, k)) for k in keys if text(row, k)]


def invoice_entries(
    record_id: str,
    data: Mapping[str, Any],
    tables: Mapping[str, Sequence[Mapping[str, Any]]],
    accounts: Accounts,
    tz: zoneinfo.ZoneInfo,
) -> list[Entry]:
    """The entries of one invoice: none for drafts, the entry plus its reversal when voided."""
    head = _first(tables, "invoices")
    if head is None or data.get("draft") is True or data.get("status") == "draft":
        return []
    cur = currency_of(head, data, "invoices")
    total = quantize(money(head, "total", "invoices"), cur)
    receivable = account(head, "ar_account", accounts.receivable, "invoices")
    postings = [Posting(receivable, total, cur, role="ar")]
    # Lines and taxes are credited; discounts (contra-revenue) are debited.
    parts = (
        ("invoice_lines", accounts.revenue, -1),
        ("invoice_taxes", accounts.tax, -1),
        ("invoice_discounts", accounts.discounts, 1),
    )
    for table, fallback, sign in parts:
        for i, row in enumerate(tables.get(table) or ()):
            where = f"{table}[{i}]"
            amount = quantize(money(row, "amount", where), cur)
            if amount:
                postings.append(
                    Posting(account(row, "account", fallback, where), sign * amount, cur, text(row, "memo"))
                )
    # Line-level taxes and discounts (items[].taxes[], items[].discounts[]) go to the default accounts.
    for item in data.get("items") or ():
        for tax in item.get("taxes") or ():
            amount = quantize(money(tax, "amount", "items[].taxes[]"), cur)
            if amount:
                postings.append(Posting(accounts.tax, -amount, cur, "line tax"))
        for disc in item.get("discounts") or ():
            amount = quantize(money(disc, "amount", "items[].discounts[]"), cur)
            if amount:
                postings.append(Posting(accounts.discounts, amount, cur, "line discount"))
    residue = -sum((p.amount for p in postings), Decimal(0))
    if residue:
        # Per-line rounding leaves at most half a minor unit per line; more means the
        # document's parts do not add up to its total: still balanced, but flagged.
        unit = Decimal(1).scaleb(-exponent(cur))
        if abs(residue) > unit * len(postings):
            log.warning(
                "ledger.invoice_parts_mismatch", invoice=record_id, residue=str(residue), currency=cur
            )
        postings.append(Posting(accounts.rounding, residue, cur, "rounding"))
    date = to_date(head.get("date", data.get("date")), tz, "invoices.date")
    payee = text(head, "payee", "Unknown customer").replace("|", "/")
    narration = text(head, "narration", f"Invoice {text(data, 'number', record_id)}")
    meta = [("invoiced_type", "invoice"), ("invoiced_id", record_id), *_meta(head, ("number", "customer"))]
    customer = _customer_id(data)
    entry = Entry(
        date, "invoice", "invoice", record_id, payee, narration, tuple(postings), tuple(meta), customer
    )
    if data.get("status") != "voided" and text(head, "status") != "voided":
        return [entry]
    void_at = head.get("void_date") or data.get("date_voided") or data.get("updated_at")
    void_date = max(date, to_date(void_at, tz, "invoices.void_date"))
    reversal = Entry(
        void_date,
        "void",
        "invoice",
        record_id,
        payee,
        f"Void: {narration}",
        tuple(replace(p, amount=-p.amount) for p in postings),
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
    row = _first(tables, "transactions")
    if row is None:
        return []
    status = text(row, "status") or text(data, "status", "succeeded")
    if status not in statuses:
        return []
    kind = (text(row, "type") or text(data, "type")).lower()
    if kind not in PAYMENT_LIKE | RECEIVABLE_UP:
        raise EntryError(f"transactions.type: {kind!r} is not one of charge, payment, refund, adjustment")
    cur = currency_of(row, data, "transactions")
    amount = quantize(money(row, "amount", "transactions"), cur)
    if text(row, "invoice") or data.get("invoice"):
        role, receivable = "ar", account(row, "ar_account", accounts.receivable, "transactions")
    else:
        # Money not applied to an invoice is the customer's credit balance, not a receivable.
        role, receivable = "credit", account(row, "credit_account", accounts.customer_credit, "transactions")
    default_other = accounts.adjustments if kind == "adjustment" else accounts.cash
    other = account(row, "account", default_other, "transactions")
    # The receivable moves by +amount for refunds and adjustments, -amount for payments.
    signed = amount if kind in RECEIVABLE_UP else -amount
    postings = (Posting(receivable, signed, cur, role=role), Posting(other, -signed, cur))
    date = to_date(row.get("date", data.get("date")), tz, "transactions.date")
    payee = text(row, "payee", "Unknown customer").replace("|", "/")
    narration = text(row, "narration", f"{kind.capitalize()} {record_id}")
    meta = [
        ("invoiced_type", "transaction"),
        ("invoiced_id", record_id),
        *_meta(row, ("invoice", "method", "reference", "external_source", "external_id")),
    ]
    entry = Entry(
        date, kind, "transaction", record_id, payee, narration, postings, tuple(meta), _customer_id(data)
    )
    return [entry]


def _customer_id(data: Mapping[str, Any]) -> str:
    customer = data.get("customer")
    if isinstance(customer, Mapping):
        customer = customer.get("id")
    return "" if customer is None else str(customer)


def amount_text(amount: Decimal, currency: str) -> str:
    """`-12.50 USD`: fixed point, at least the currency's decimals, never an exponent."""
    text = str(amount)
    # Most amounts were rounded to the currency's unit: str() then already writes them so.
    if "E" not in text:
        dot = text.find(".")
        places = len(text) - dot - 1 if dot >= 0 else 0
        if places >= exponent(currency) and not (text[0] == "-" and amount.is_zero()):
            return f"{text} {currency}"
    if amount.is_zero():
        amount = abs(amount)  # never "-0.00"
    exp = amount.as_tuple().exponent
    places = max(exponent(currency), -exp if isinstance(exp, int) else 0)
    return f"{amount:.{places}f} {currency}"


# A value `_clean` would change: other whitespace than single inner spaces, or a dropped character.
_DIRTY = {
    drop: re.compile(r"[^\S ]|  |^ | $" + (f"|[{re.escape(drop)}]" if drop else ""))
    for drop in ("", ";", ";|", ",;", ";,:")
}


def _clean(value: str, drop: str) -> str:
    dirty = _DIRTY.get(drop)
    if dirty is not None and not dirty.search(value):
        return value  # most values are clean already (entries are built from `text()`)
    out = " ".join(value.split())
    for ch in drop:
        out = out.replace(ch, " ")
    return " ".join(out.split())


def _untagged(note: str) -> str:
    """A note Ledger does not read as metadata: no word ending in `:` (`Void: X` would be a
    tag named Void) nor starting with one (`:a:b:` is a tag list)."""
    return " ".join(re.sub(r"^:+|:+$", "", word) or "-" for word in note.split())


def _component(part: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", part).encode("ascii", "ignore").decode()
    comp = re.sub(r"[^A-Za-z0-9]+", "-", ascii_text).strip("-") or "X"
    return comp[0].upper() + comp[1:]


def beancount_base(name: str) -> str:
    """A journal account name made a valid Beancount one, before telling collisions apart."""
    return ":".join(_component(p) for p in name.split(":"))


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ledger_entry(e: Entry, dialect: str) -> list[str]:
    payee = _clean(e.payee, ";|")
    narration = _clean(e.narration, ";")
    if dialect == "ledger":
        narration = _untagged(narration)
    if dialect == "hledger":
        head = f"{e.date.isoformat()} * {payee} | {narration}" if narration else f"{e.date} * {payee}"
    else:
        head = f"{e.date.isoformat()} * {payee}"
    lines = ["", head]
    if dialect == "ledger" and narration:
        lines.append(f"    ; {narration}")
    lines.extend(f"    ; {k}: {_clean(v, ',;')}" for k, v in e.meta)
    for p in e.postings:
        line = f"    {p.account}  {amount_text(p.amount, p.currency)}"
        if p.comment:
            line += f"  ; {_clean(p.comment, ';,:')}"
        lines.append(line)
    return lines


def entry_block(e: Entry, dialect: str, names: dict[str, str]) -> str:
    """One entry's lines joined, starting with the blank line before it (`names`: Beancount's)."""
    if dialect == "beancount":
        return "\n".join(_beancount_entry(e, names))
    return "\n".join(_ledger_entry(e, dialect))


def _beancount_entry(e: Entry, names: dict[str, str]) -> list[str]:
    lines = ["", f"{e.date.isoformat()} * {_quote(_clean(e.payee, ''))} {_quote(_clean(e.narration, ''))}"]
    lines.extend(f"  {k}: {_quote(_clean(v, ''))}" for k, v in e.meta)
    for p in e.postings:
        lines.append(f"  {names[p.account]}  {amount_text(p.amount, p.currency)}")
        if p.comment:
            lines.append(f"    memo: {_quote(_clean(p.comment, ''))}")
    return lines


_DIALECT_CODE = {"hledger": "h", "ledger": "l", "beancount": "b"}

# A text, or where the row's block holds it: (start, length).
Text = str | tuple[int, int]


class Fields(msgspec.Struct, array_like=True, frozen=True):
    """An entry's fields as plain text: cheap to decode, exact to turn back into an `Entry`."""

    date: str
    kind: str
    object: str
    object_id: str
    payee: Text
    narration: Text
    postings: tuple[tuple[Text, str, str, Text, str], ...]  # account, amount, currency, comment, role
    meta: tuple[tuple[str, Text], ...]
    customer: str


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Fields)
_SHORTEST = 8  # characters: a shorter text is kept as it is ("[12,7]" would not be shorter)


def tag(dialect: str) -> str:
    """The start of a row whose text is in `dialect` as this version renders it (never "{")."""
    return f"L{RENDER_VERSION}{_DIALECT_CODE[dialect]}"


def fields_of(e: Entry, block: str = "") -> Fields:
    """`e`'s fields; with `block`, those it holds verbatim as references into it."""

    def ref(s: str) -> Text:
        if len(s) >= _SHORTEST and (at := block.find(s)) >= 0:
            return (at, len(s))
        return s

    return Fields(
        e.date.isoformat(),
        e.kind,
        e.object,
        e.object_id,
        ref(e.payee),
        ref(e.narration),
        tuple((ref(p.account), str(p.amount), p.currency, ref(p.comment), p.role) for p in e.postings),
        tuple((k, ref(v)) for k, v in e.meta),
        e.customer,
    )


class _BaseNames(dict[str, str]):
    """Beancount names before collisions are known: what `beancount_accounts` gives a name
    that collides with no other (the render re-renders the entries of those that do)."""

    def __missing__(self, name: str) -> str:
        base = self[name] = beancount_base(name)
        return base


_BASE_NAMES = _BaseNames()


def encode(e: Entry, dialect: str) -> str:
    """The row the store keeps for `e`: its fields, then its text in `dialect`."""
    if len(_BASE_NAMES) >= 4096:  # a memo of account names, small
        _BASE_NAMES.clear()
    names: dict[str, str] = _BASE_NAMES if dialect == "beancount" else {}
    block = entry_block(e, dialect, names)
    return tag(dialect) + _ENCODER.encode(fields_of(e, block)).decode() + "\n" + block
