"""Differential: the connector's write path gives the entries and rows it gave before #14's work.

The reference is `old_write`, a frozen copy of journal.invoice_entries / transaction_entries,
render.entry_block and rows.encode as they were. Entries are compared by `repr` (a Decimal's
exponent included: `Decimal("1.0") == Decimal("1.00")` would hide a change of text), rows and
blocks byte for byte, refusals by their message. Records are generated with odd cases on
purpose: non-ASCII and unclean text, zero, negative and many-decimal amounts, amounts as
text or int, currencies of 0 and 3 places, voided invoices, line taxes and discounts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import random
import zoneinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.ledger import ENTRIES, LedgerConnector, render, rows
from connectors.ledger.journal import (
    Accounts,
    Entry,
    EntryError,
    Posting,
    invoice_entries,
    transaction_entries,
)
from connectors.ledger.render import DIALECTS
from syncd.plugin import ConnectorContext, MappedRecord, Record
from tests.ledger import old_write
from tests.ledger.test_rows import _entries as row_entries

UTC = zoneinfo.ZoneInfo("UTC")
TZS = (UTC, zoneinfo.ZoneInfo("Pacific/Kiritimati"))
_TEXTS = (
    "Acme",
    "Zoë & Co — Ünïcödé GmbH",
    "株式会社テスト",
    "Payee | x; y",
    "a  b\tc\n",
    " lead ",
    "Void: it :tag:",
    "Storage, per TB",
    'say "hi" \\ back',
    "a,b:c;d",
    "\u00a0nbsp\u2003em\u200bzw",
    "",
    None,
    42,
)
_AMOUNTS = (
    "0",
    "0.00",
    "-0.00",
    "12.5",
    "-12.505",
    "0.005",
    "-0.004999",
    "3.14159265358979",
    "1E+3",
    "1E-9",
    "123456789012.345",
    "99.995",
    "-7",
)
_ACCOUNTS = (
    "Income:Sales:Products",
    "Income:Sales:Zoë's  Things",
    "Assets:Accounts Receivable:Dunder Energy GmbH (CUST-00001)",
    "Liabilities:Sales Tax;VAT",
    "Income",
    "Income::Empty",
    "",
    None,
)
_CURRENCIES = ("USD", "usd", "JPY", "KWD", "EUR", "USD", "EUR", "")


def _amount(rnd: random.Random) -> Any:
    raw = rnd.choice(_AMOUNTS)
    form = rnd.randrange(100)
    if form < 10:
        return raw  # as text
    if form < 20:
        return int(Decimal(raw))
    if form < 22:
        return rnd.choice((1.5, Decimal("NaN"), Decimal("Infinity"), "x", None, True))  # refused
    return Decimal(raw)


def _maybe(rnd: random.Random, row: dict[str, Any], key: str, values: tuple[Any, ...]) -> None:
    if rnd.random() < 0.8:
        row[key] = rnd.choice(values)


def _invoice(i: int, rnd: random.Random) -> tuple[str, dict[str, Any], dict[str, list[dict[str, Any]]]]:
    cur = rnd.choice(_CURRENCIES)
    status = rnd.choice(("paid", "open", "voided", "draft", None))
    data: dict[str, Any] = {"id": i, "currency": cur, "status": status, "number": f"INV-{i:06d}"}
    if rnd.random() < 0.2:
        data["draft"] = True
    if rnd.random() < 0.8:
        data["customer"] = rnd.choice((7, "c-7", {"id": 9}, None))
    if status == "voided":
        data["date_voided"] = rnd.choice((1700000000, "2024-02-01", None))
        data["updated_at"] = 1710000000
    data["items"] = [
        {
            "taxes": [{"amount": _amount(rnd)} for _ in range(rnd.randint(0, 2))],
            "discounts": [{"amount": _amount(rnd)} for _ in range(rnd.randint(0, 1))],
        }
        for _ in range(rnd.randint(0, 2))
    ]
    head: dict[str, Any] = {"total": _amount(rnd)}
    head["date"] = rnd.choice(
        ("2024-01-15", 1705300000, "1705300000", "2024-01-15T23:30:00Z", "2024-01-15", "soon")
    )
    for key in ("payee", "narration", "number", "customer"):
        _maybe(rnd, head, key, _TEXTS)
    _maybe(rnd, head, "ar_account", _ACCOUNTS)
    _maybe(rnd, head, "currency", _CURRENCIES)
    _maybe(rnd, head, "status", ("voided", "paid", None))
    tables: dict[str, list[dict[str, Any]]] = {"invoices": [head] if rnd.random() < 0.97 else []}
    for table in ("invoice_lines", "invoice_taxes", "invoice_discounts"):
        tables[table] = []
        for _ in range(rnd.randint(0, 4)):
            row: dict[str, Any] = {"amount": _amount(rnd)}
            _maybe(rnd, row, "account", _ACCOUNTS)
            _maybe(rnd, row, "memo", _TEXTS)
            tables[table].append(row)
    return str(i), data, tables


def _transaction(i: int, rnd: random.Random) -> tuple[str, dict[str, Any], dict[str, list[dict[str, Any]]]]:
    data: dict[str, Any] = {"id": i, "currency": rnd.choice(_CURRENCIES), "date": 1705300000}
    _maybe(rnd, data, "type", ("payment", "Refund", "charge", "adjustment", "credit"))
    _maybe(rnd, data, "invoice", (12, None))
    _maybe(rnd, data, "status", ("succeeded", "pending", None))
    _maybe(rnd, data, "customer", (3, {"id": "c3"}))
    row: dict[str, Any] = {"amount": _amount(rnd)}
    for key in ("payee", "narration", "invoice", "method", "reference", "external_source", "external_id"):
        _maybe(rnd, row, key, _TEXTS)
    for key in ("account", "ar_account", "credit_account"):
        _maybe(rnd, row, key, _ACCOUNTS)
    _maybe(rnd, row, "type", ("payment", "refund", "charge", "adjustment", "PAYMENT", "other"))
    _maybe(rnd, row, "currency", _CURRENCIES)
    _maybe(rnd, row, "status", ("succeeded", "failed"))
    _maybe(rnd, row, "date", ("2024-03-01", 1709251200))
    return str(i), data, {"transactions": [row] if rnd.random() < 0.97 else []}


def _outcome(build: Any, *args: Any) -> str:
    try:
        return repr(build(*args))
    except EntryError as exc:
        return f"EntryError: {exc}"


@pytest.mark.parametrize("seed", range(4))
def test_entries_are_the_old_ones(seed: int) -> None:
    rnd = random.Random(seed)
    accounts = Accounts(tax="Liabilities:Tax  Two", rounding="Expenses:Rounding")
    made = 0
    for i in range(1500):
        tz = rnd.choice(TZS)
        rid, data, tables = _invoice(i, rnd)
        new = _outcome(invoice_entries, rid, data, tables, accounts, tz)
        assert new == _outcome(old_write.invoice_entries, rid, data, tables, accounts, tz), (data, tables)
        rid, data, tables = _transaction(i, rnd)
        statuses = rnd.choice((("succeeded",), ("succeeded", "pending")))
        new_t = _outcome(transaction_entries, rid, data, tables, accounts, tz, statuses)
        old_t = _outcome(old_write.transaction_entries, rid, data, tables, accounts, tz, statuses)
        assert new_t == old_t, (data, tables)
        made += new.startswith("[Entry") + new_t.startswith("[Entry")
    assert made > 1000  # most records make entries: the comparison is not of refusals alone


def _generated_entries(seed: int) -> list[Entry]:
    rnd = random.Random(seed)
    out: list[Entry] = []
    for i in range(800):
        for build, make in ((invoice_entries, _invoice), (transaction_entries, _transaction)):
            rid, data, tables = make(i, rnd)
            with contextlib.suppress(EntryError):
                out += build(rid, data, tables, Accounts(), UTC)
    return out + row_entries(300, seed)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_rows_and_blocks_are_the_old_ones(dialect: str) -> None:
    entries = _generated_entries(len(dialect))
    assert len(entries) > 800
    for e in entries:
        assert rows.encode(e, dialect) == old_write.encode(e, dialect)
        names = {p.account: render.beancount_base(p.account) for p in e.postings}
        assert render.entry_block(e, dialect, names) == old_write.entry_block(e, dialect, names)


class _Kept:
    """An output store keeping what `write` puts, as text (a TextStore)."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def put(self, stream: str, record_id: str, tables: Any) -> None:
        self.items.append((stream, record_id, tables))

    def put_many(self, items: Any) -> None:
        self.items += items

    def delete(self, stream: str, record_id: str) -> None:
        self.items.append((stream, record_id, None))

    def rows(self, table: str) -> Any:
        return iter(())

    def stored(self, table: str) -> Any:
        return iter(())

    def is_dirty(self) -> bool:
        return True

    def mark_clean(self) -> None:
        pass


def _old_row(e: Entry, dialect: str, as_text: bool) -> Any:
    """What the old `_row` kept of an old entry: its text, else (a store refusing it) a dict."""
    if not as_text:
        return e.to_row()
    try:
        text = old_write.encode(e, dialect)
    except UnicodeEncodeError:
        return e.to_row()
    storable = "\x00" not in text and not any("\ud800" <= ch <= "\udfff" for ch in text)
    return text if storable else e.to_row()


class _KeptDicts(_Kept):
    """An output store that is not a TextStore: rows go to it as dicts."""

    stored = None  # type: ignore[assignment]


@pytest.mark.parametrize("as_text", [True, False])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_write_keeps_the_old_rows(tmp_path: Path, dialect: str, as_text: bool) -> None:
    """Through `write`: the rows are what the old entries encoded by the old code make, refusals
    and deletions as before, text the store cannot hold kept as a dict; twice, the second time
    with the memos the first one filled."""
    kept = _Kept() if as_text else _KeptDicts()
    settings_ = LedgerConnector.settings_model(enabled=True, dialect=dialect)
    conn = LedgerConnector(settings_, ConnectorContext(name="ledger", outputs=kept, state_dir=tmp_path))
    conn.open()
    rnd = random.Random(len(dialect))
    dicts = 0
    for stream, make in (("invoices", _invoice), ("transactions", _transaction)):
        batch, deleted, expected, rejected = [], [], [], []
        for i in range(600):
            rid, data, tables = make(i, rnd)
            if rnd.random() < 0.05:  # text a store refuses: the row is kept as a dict
                bad = rnd.choice(("a\x00b", "x\ud800y"))
                tables[stream][:1] = [{**row, "payee": bad} for row in tables[stream][:1]]
            if rnd.random() < 0.05:
                batch.append(MappedRecord(Record(stream, rid, 0, data, deleted=True), tables))
                deleted.append((stream, rid, None))
                continue
            batch.append(MappedRecord(Record(stream, rid, 0, data), tables))
            try:
                if stream == "invoices":
                    old = old_write.invoice_entries(rid, data, tables, conn.accounts, conn.tz)
                else:
                    old = old_write.transaction_entries(rid, data, tables, conn.accounts, conn.tz)
            except EntryError:
                rejected.append(rid)
                continue
            expected.append((stream, rid, {ENTRIES: [_old_row(e, dialect, as_text) for e in old]}))
        dicts += sum(isinstance(r, dict) for *_, t in expected for r in t[ENTRIES])
        for _ in range(2):
            kept.items.clear()
            assert [r.record_id for r in conn.write(stream, batch)] == rejected
            assert kept.items == deleted + expected
    assert dicts > 5 if as_text else dicts > 100


def test_multi_currency_entries_are_written_as_before() -> None:
    """An entry's postings in several currencies (none that `write` makes, but the render may be
    given one): each amount to its own currency's places, as the old code wrote it."""
    rnd = random.Random(5)
    entries = _generated_entries(3)
    for n, e in enumerate(entries[:600]):
        postings = tuple(
            Posting(p.account, p.amount, rnd.choice(("USD", "JPY", "KWD", "usd", "EUR")), p.comment, p.role)
            for p in e.postings
        )
        mixed = dataclasses.replace(e, postings=postings)
        for dialect in DIALECTS:
            assert rows.encode(mixed, dialect) == old_write.encode(mixed, dialect), n
            names = {p.account: render.beancount_base(p.account) for p in postings}
            assert render.entry_block(mixed, dialect, names) == old_write.entry_block(mixed, dialect, names)


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=16), st.sampled_from(("", ";|", ";", ",;", ";,:", ":", "a")))
def test_clean_of_any_text_is_the_old_one(value: str, drop: str) -> None:
    assert render._clean(value, drop) == old_write._clean(value, drop)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab :;\t"), max_size=14))
def test_ledger_notes_are_untagged_as_before(note: str) -> None:
    """`_ledger_entry` skips `_untagged` for a note without `:`; with or without, the old text."""
    e = Entry(old_write.to_date("2024-01-01", UTC, ""), "invoice", "invoice", "1", "p", note, ())
    assert render.entry_block(e, "ledger", {}) == old_write.entry_block(e, "ledger", {})


@pytest.mark.parametrize("cls", [Posting, Entry])
def test_hand_written_inits_take_the_fields_and_defaults(cls: type) -> None:
    """Posting's and Entry's own __init__ (faster than the generated one) take exactly the
    dataclass's fields, in order, with the same defaults, and keep instances frozen."""
    params = list(inspect.signature(cls).parameters.values())
    assert [(p.name, p.default) for p in params] == [
        (f.name, inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default)
        for f in dataclasses.fields(cls)
    ]
    e = _generated_entries(1)[0]
    same = {f.name: getattr(e, f.name) for f in dataclasses.fields(e)}
    assert Entry(**same) == e and repr(Entry(**same)) == repr(e)
    assert Posting(*dataclasses.astuple(e.postings[0])) == e.postings[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.payee = "y"  # type: ignore[misc]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.integers(0, 10**30).map(str), st.text("0123456789", max_size=8), st.text(max_size=4)))
def test_sort_key_of_digits_is_the_old_text(object_id: str) -> None:
    """rows.sort_key drops a numeric id's leading zeros by str methods, as str(int()) did."""
    if object_id.isascii() and object_id.isdigit():
        digits = str(int(object_id))
        oid = f"0{len(digits):05d}{digits}"
    else:
        oid = "1" + object_id
    assert rows.sort_key("2024-01-01", "invoice", "invoice", object_id) == f"2024-01-010invoice\x01{oid}"


def _old_for_customer(e: Entry, customer: dict[str, Any]) -> Entry:
    """Entry.for_customer as it was (by dataclasses.replace)."""
    accounts = {
        role: str(customer[key])
        for role, key in (("ar", "ar_account"), ("credit", "credit_account"))
        if customer.get(key)
    }
    postings = tuple(dataclasses.replace(p, account=accounts.get(p.role, p.account)) for p in e.postings)
    return dataclasses.replace(e, payee=customer.get("payee") or e.payee, postings=postings)


def test_for_customer_is_the_old_one() -> None:
    customers = [
        {"id": "c1", "payee": "Renamed Co", "ar_account": "Assets:AR:Renamed"},
        {"id": "c2", "ar_account": "Assets:AR:Acme", "credit_account": "Liabilities:Credit:Acme"},
        {"id": "c3", "payee": "", "credit_account": "Liabilities:Credit:Zoë"},
        {"id": "c4", "ar_account": "", "payee": None},
    ]
    for e in _generated_entries(2):
        for c in customers:
            assert repr(e.for_customer(c)) == repr(_old_for_customer(e, c))
