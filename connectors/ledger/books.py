"""Payments an accountant records in a hand-written journal, read as external payments.

The format (hledger / Ledger; Beancount uses metadata with the same keys):

    2024-03-05 * Acme Corp | Check 1450 deposited
        ; invoice: INV-0016
        ; method: check
        ; reference: 1450
        ; external_id: bank-2024-03-05-01
        Assets:Bank:Checking                         800.00 USD
        Assets:Accounts Receivable:Acme Corp        -800.00 USD

A payment is a posting that *credits* an account under the receivable root
(`accounts.receivable`, default `Assets:Accounts Receivable`) in a transaction tagged
`invoice:`. The customer (checked against the invoice by the push-back) is a
`customer:` tag (id or number), else the number in parentheses that ends the receivable
account's name (`...:Acme Corp (CUST-00001)`, as the default mapping names them), else
not given. Several receivable postings in one transaction (one deposit paying several
invoices) each carry their own `; invoice: ...` posting comment. `method`, `reference`
and `external_id` are optional; without `external_id` the id is a hash of the payment's
date, invoice, amount, currency and account (plus `-2`, `-3` for identical twins, in file
order), so re-reading an unchanged file gives the same ids. Transactions that syncd
generated itself (tagged `invoiced_id`) are ignored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from syncd.plugin import ExternalPayment, Rejection
from syncd.textdecode import UndecodableText, decode_text

SOURCE = "ledger"
_DATE = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:=\S+)?(?=\s|$)")
_HEAD = re.compile(
    r"^\S+\s*(?P<flag>[*!])?\s*(?:\((?P<code>[^)]*)\))?\s*(?P<desc>[^;]*)(?:;(?P<comment>.*))?$"
)
_TAG = re.compile(r"(?:^|[\s,])([A-Za-z_][\w-]*):\s*([^,]*)")
_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY"}
_AMOUNT = re.compile(
    r"^(?P<sign1>-)?\s*(?P<pre>[A-Za-z]{2,10}|[$€£¥])?\s*(?P<sign2>-)?\s*(?P<num>\d[\d,]*(?:\.\d*)?|\.\d+)\s*(?P<post>[A-Za-z]{2,10})?$"
)


@dataclass(frozen=True, slots=True)
class BookRejection(Rejection):
    """An entry of the books that cannot be pushed; `origin` is `file:line`.

    `record_id` is the entry's `external_id` tag when it has one, else its origin.
    """

    origin: str = ""


def _refuse(origin: str, reason: str, external_id: str | None = None) -> BookRejection:
    return BookRejection("payments", external_id or origin, reason, origin)


@dataclass
class _Posting:
    account: str
    amount: Decimal | None
    currency: str | None
    tags: dict[str, str]
    line: int


@dataclass
class _Txn:
    date: dt.date
    description: str
    code: str
    line: int
    tags: dict[str, str] = field(default_factory=dict)
    postings: list[_Posting] = field(default_factory=list)


def tags_of(comment: str) -> dict[str, str]:
    """hledger-style `name: value` tags in a comment (a value ends at a comma)."""
    return {k.lower(): v.strip() for k, v in _TAG.findall(comment)}


def parse_amount(raw: str) -> tuple[Decimal, str | None]:
    """`-800.00 USD`, `USD -800`, `$800.00`, `800` -> (Decimal, commodity)."""
    m = _AMOUNT.match(raw.strip())
    if not m:
        raise ValueError(f"cannot read amount {raw.strip()!r}")
    try:
        number = Decimal(m["num"].replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"cannot read amount {raw.strip()!r}") from None
    if m["sign1"] or m["sign2"]:
        number = -number
    cur = m["pre"] or m["post"]
    return number, (_SYMBOLS.get(cur, cur.upper()) if cur else None)


def _parse_ledger(text: str, where: str) -> Iterator[_Txn | Rejection]:
    txn: _Txn | None = None
    for no, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue
        if not line[0].isspace():
            if txn:
                yield txn
            txn = None
            m = _DATE.match(line)
            if m:
                head = _HEAD.match(line)
                assert head is not None  # the pattern accepts any line starting with a token
                date = dt.date(int(m[1]), int(m[2]), int(m[3]))
                txn = _Txn(date, (head["desc"] or "").strip(), (head["code"] or "").strip(), no)
                txn.tags.update(tags_of(head["comment"] or ""))
            continue
        if txn is None:
            continue
        if stripped.startswith((";", "#", "*")):
            target = txn.postings[-1].tags if txn.postings else txn.tags
            target.update(tags_of(stripped[1:]))
            continue
        body, _, comment = stripped.partition(";")
        parts = re.split(r"\s{2,}|\t", body.strip(), maxsplit=1)
        acct = parts[0].strip()
        amount: Decimal | None = None
        cur: str | None = None
        if len(parts) > 1 and parts[1].strip():
            raw = parts[1].split("@")[0].split("=")[0]
            try:
                amount, cur = parse_amount(raw)
            except ValueError as exc:
                yield _refuse(f"{where}:{no}", str(exc))
                continue
        txn.postings.append(_Posting(acct, amount, cur, tags_of(comment), no))
    if txn:
        yield txn


def _infer_missing(txn: _Txn) -> None:
    missing = [p for p in txn.postings if p.amount is None]
    known = [p for p in txn.postings if p.amount is not None]
    currencies = {p.currency for p in known}
    if len(missing) == 1 and len(currencies) == 1:
        missing[0].amount = -sum((p.amount for p in known if p.amount is not None), Decimal(0))
        missing[0].currency = currencies.pop()


def _parse_beancount(path: Path) -> Iterator[_Txn | Rejection]:
    from beancount import loader
    from beancount.core import data

    entries, _errors, _options = loader.load_file(str(path))
    for entry in entries:
        if not isinstance(entry, data.Transaction):
            continue
        meta = {
            str(k).lower(): str(v) for k, v in (entry.meta or {}).items() if k not in ("filename", "lineno")
        }
        txn = _Txn(entry.date, entry.narration or "", "", int(entry.meta.get("lineno", 0)), meta)
        if entry.payee:
            txn.description = f"{entry.payee}: {entry.narration}" if entry.narration else entry.payee
        if str(entry.meta.get("filename", "")) != str(path.resolve()):
            continue  # included files (e.g. syncd's own output) are not hand-written payments
        for p in entry.postings:
            pmeta = {
                str(k).lower(): str(v) for k, v in (p.meta or {}).items() if k not in ("filename", "lineno")
            }
            units = p.units
            amount = units.number if units is not None and isinstance(units.number, Decimal) else None
            cur = units.currency if units is not None else None
            txn.postings.append(
                _Posting(p.account, amount, cur, pmeta, int((p.meta or {}).get("lineno", txn.line)))
            )
        yield txn


def _is_receivable(account: str, roots: tuple[str, ...]) -> bool:
    return any(account == r or account.startswith(r + ":") for r in roots)


def read_payments(
    path: Path, dialect: str, receivable: str, receivable_alt: str | None = None
) -> Iterator[ExternalPayment | Rejection]:
    """Every external payment in a hand-written journal, or a Rejection naming file:line."""
    where = str(path)
    try:
        text = decode_text(path.read_bytes(), where)
    except OSError as exc:
        yield _refuse(where, f"cannot read: {exc.strerror}")
        return
    except UndecodableText as exc:
        yield _refuse(where, str(exc))
        return
    if dialect == "beancount" and importlib.util.find_spec("beancount") is None:
        yield _refuse(where, "reading Beancount books needs the beancount package")
        return
    items = _parse_beancount(path) if dialect == "beancount" else _parse_ledger(text, where)
    roots = tuple(r for r in (receivable, receivable_alt) if r)
    seen: dict[str, int] = {}
    for item in items:
        if isinstance(item, Rejection):
            yield item
            continue
        if "invoiced_id" in item.tags:
            continue
        _infer_missing(item)
        ar = [p for p in item.postings if _is_receivable(p.account, roots)]
        tagged = [p for p in ar if "invoice" in p.tags] or ar
        invoice_tag = item.tags.get("invoice")
        if not invoice_tag and not any("invoice" in p.tags for p in ar):
            continue  # not a payment against an invoice
        if not tagged:
            yield _refuse(
                f"{where}:{item.line}", "tagged invoice but no receivable posting", item.tags.get("external_id")
            )
            continue
        for p in tagged:
            origin = f"{where}:{p.line}"
            invoice = p.tags.get("invoice") or invoice_tag or ""
            tagged_id = p.tags.get("external_id") or item.tags.get("external_id")
            if p.amount is None or not p.currency:
                yield _refuse(origin, f"posting to {p.account}: amount or commodity missing", tagged_id)
                continue
            if p.amount >= 0:
                yield _refuse(origin, f"posting to {p.account} must credit the receivable", tagged_id)
                continue
            amount, cur = -p.amount, p.currency.upper()
            explicit = p.tags.get("external_id") or item.tags.get("external_id")
            if explicit and len(tagged) > 1 and "external_id" not in p.tags:
                explicit = f"{explicit}/{invoice}"
            ext = explicit or _hashed_id(item.date, invoice, amount, cur, p.account)
            seen[ext] = seen.get(ext, 0) + 1
            if seen[ext] > 1:
                if explicit:
                    yield _refuse(origin, f"external_id {ext!r} used twice")
                    continue
                ext = f"{ext}-{seen[ext]}"
            tags = {**item.tags, **p.tags}
            yield ExternalPayment(
                external_id=ext,
                source=SOURCE,
                invoice=invoice,
                amount=amount,
                currency=cur.lower(),
                date=item.date,
                method=tags.get("method", "other"),
                customer=tags.get("customer") or _customer_number(p.account),
                reference=tags.get("reference") or item.code or None,
                notes=item.description or None,
                origin=origin,
                extra=_extra(tags),
            )


def _hashed_id(date: dt.date, invoice: str, amount: Decimal, currency: str, account: str) -> str:
    """The id of a payment without an `external_id` tag: a correction gives it a new one
    (the push-back then holds it as `changed: review`, see syncd/pushback/identity.py)."""
    key = f"{date.isoformat()}|{invoice}|{amount}|{currency}|{account}"
    return "ledger-" + hashlib.sha256(key.encode()).hexdigest()[:20]


def _customer_number(account: str) -> str | None:
    """`...:Acme Corp (CUST-00001)` -> `CUST-00001`: the default mapping's account names."""
    m = re.search(r"\(([^()]+)\)\s*$", account.rsplit(":", 1)[-1])
    return m[1].strip() if m else None


def _extra(tags: Mapping[str, str]) -> dict[str, str]:
    known = {"invoice", "method", "reference", "external_id", "customer"}
    return {k: v for k, v in sorted(tags.items()) if k not in known}
