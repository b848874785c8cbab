"""Differential: entries kept with their text (rows.py) render the journal the old render wrote.

The reference is `old_render`, the render as it was before (entries rebuilt from JSON rows,
each rendered at every render). Entries are varied on purpose: ties in the sort key, ids
numeric and not, amounts of any exponent, text needing cleaning, Beancount names that
collide, customers renamed, payments the books hold, rows of older versions and dialects.
"""

from __future__ import annotations

import datetime as dt
import random
import zoneinfo
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.ledger import CUSTOMERS, ENTRIES, LedgerConnector, books, render, rows, stream
from connectors.ledger.journal import Entry, Posting
from connectors.ledger.render import DIALECTS
from syncd.store import Store
from tests.ledger import old_render
from tests.ledger.helpers import make_connector

_AR = ("Assets:AR:Zoë & Co", "Assets:AR:Zoe Co", "Assets:AR:zoe-co", "Assets:AR:Acme", "Assets:AR:Acme Ltd")
_CREDIT = ("Liabilities:Credit:Acme", "Liabilities:Credit:Zoë")
_AMOUNTS = (
    "12.5",
    "100",
    "0.001",
    "-0.00",
    "0.00",
    "1E+2",
    "3.14159",
    "7",
    "-42.10",
    "1E-7",
    "-0.0000001",
    "12345678.9",
)
_KINDS = ("invoice", "void", "payment", "charge", "refund", "adjustment", "other")
_TEXTS = (
    "Acme",
    "Payee | x; y",
    "a  b\tc",
    " lead",
    "Void: it :tag:",
    "",
    "Zoë & Co",
    'say "hi" \\ back',
    "a,b:c",
)
_CUSTOMERS = {
    "c1": {"id": "c1", "payee": "Renamed Co", "ar_account": "Assets:AR:Renamed"},  # both change
    "c2": {"id": "c2", "ar_account": "Assets:AR:Acme"},  # may or may not change an entry
    "c3": {"id": "c3", "payee": "Acme", "credit_account": "Liabilities:Credit:Acme"},
    "c4": {"id": "c4", "ar_account": "Assets:AR:Zoe Co", "credit_account": ""},
}
_IN_BOOKS = frozenset({"bk-1", "bk-3"})


def _entry(i: int, rnd: random.Random) -> Entry:
    kind = rnd.choice(_KINDS)
    obj = "invoice" if kind in ("invoice", "void") else "transaction"
    oid = rnd.choice((str(rnd.randint(1, 40)), "007", "7", f"inv_{rnd.randint(1, 5)}", "10", "9", "0"))
    cur = rnd.choice(("USD", "JPY", "KWD", "EUR"))
    amount = Decimal(rnd.choice(_AMOUNTS))
    role, receivable = rnd.choice(
        (("ar", rnd.choice(_AR)), ("credit", rnd.choice(_CREDIT)), ("", "Assets:Cash"))
    )
    postings = [Posting(receivable, amount, cur, role=role)]
    for _ in range(rnd.randint(1, 3)):
        share = Decimal(rnd.choice(_AMOUNTS))
        postings.append(Posting(f"Income:Sales:{rnd.choice('AB')}", -share, cur, rnd.choice(_TEXTS)))
        postings.append(Posting(rnd.choice(("Expenses:Rounding", "Income:Zoë")), share, cur))
    meta: list[tuple[str, str]] = [("invoiced_type", obj), ("invoiced_id", oid)]
    if rnd.random() < 0.3:
        meta += [
            ("external_source", rnd.choice((books.SOURCE, "other"))),
            ("external_id", f"bk-{rnd.randint(1, 4)}"),
        ]
    if rnd.random() < 0.5:
        meta.append(("number", rnd.choice(_TEXTS) or "INV-1"))
    return Entry(
        dt.date(2024, 1, 1) + dt.timedelta(days=rnd.randint(0, 4)),
        kind,
        obj,
        oid,
        rnd.choice(_TEXTS) or "Unknown customer",
        rnd.choice(_TEXTS),
        tuple(postings),
        tuple(meta),
        rnd.choice(("c1", "c2", "c3", "c4", "c9", "")),
    )


def _entries(n: int, seed: int) -> list[Entry]:
    rnd = random.Random(seed)
    return [_entry(i, rnd) for i in range(n)]


def _expected(entries: list[Entry], dialect: str, conn: LedgerConnector, in_books: frozenset[str]) -> bytes:
    """What the old connector rendered: entries as the customers table says, less those in the books."""
    current = []
    for e in entries:
        if e.customer in _CUSTOMERS:
            e = e.for_customer(_CUSTOMERS[e.customer])
        meta = dict(e.meta)
        if not (meta.get("external_source") == books.SOURCE and meta.get("external_id", "") in in_books):
            current.append(e)
    stamp = conn._stamp(in_books)
    return old_render.render(current, dialect, declared=conn.declared, stamp=stamp).encode("utf-8")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'syncd.db'}")
    yield s
    s.close()


def _fill(conn: LedgerConnector, entries: list[Entry], row: Any) -> None:
    """One record per entry, numbered so that the store's order is the list's."""
    out = conn.context.outputs
    out.put_many([(f"{e.object}s", str(i), {ENTRIES: [row(e)]}) for i, e in enumerate(entries)])
    out.put_many([("customers", cid, {CUSTOMERS: [c]}) for cid, c in _CUSTOMERS.items()])


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("batch", [1, 7, 100_000])
def test_rows_render_the_old_journal_byte_for_byte(
    tmp_path: Path, store: Store, dialect: str, batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "BATCH", batch)
    monkeypatch.setattr(LedgerConnector, "_payments_in_books", lambda self: _IN_BOOKS)
    conn = make_connector(tmp_path, store, dialect=dialect)
    entries = _entries(400, seed=len(dialect) + batch)
    _fill(conn, entries, conn._row)
    assert all(isinstance(r, str) for r in store.outputs("ledger").stored(ENTRIES))  # kept as text
    assert conn.render()
    assert conn.path.read_bytes() == _expected(entries, dialect, conn, _IN_BOOKS)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_rows_of_older_versions_and_other_dialects_render_the_same(
    tmp_path: Path, store: Store, dialect: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows kept as JSON (before this version), in another dialect, or of another render
    version are rendered again from their fields: the same journal as if all were current."""
    monkeypatch.setattr(stream, "BATCH", 16)
    monkeypatch.setattr(LedgerConnector, "_payments_in_books", lambda self: _IN_BOOKS)
    conn = make_connector(tmp_path, store, dialect=dialect)
    rnd = random.Random(5)

    def mixed(e: Entry) -> str | dict[str, Any]:
        pick = rnd.randrange(4)
        if pick == 0:
            return e.to_row()  # as an older syncd kept it
        if pick == 1:
            return rows.encode(e, rnd.choice([d for d in DIALECTS if d != dialect]))
        if pick == 2:
            return "L1" + rows.encode(e, dialect)[2:]  # another render version's text
        return rows.encode(e, dialect)

    entries = _entries(300, seed=11)
    _fill(conn, entries, mixed)
    assert conn.render()
    assert conn.path.read_bytes() == _expected(entries, dialect, conn, _IN_BOOKS)


def test_text_the_store_cannot_hold_is_kept_as_json(tmp_path: Path, store: Store) -> None:
    conn = make_connector(tmp_path, store)
    e = _entries(1, seed=3)[0]
    assert isinstance(conn._row(e), str)
    nul = Entry(
        e.date, e.kind, e.object, e.object_id, "Nul\x00Co", e.narration, e.postings, e.meta, e.customer
    )
    assert conn._row(nul) == nul.to_row()


def test_a_row_reads_back_as_its_entry() -> None:
    for e in _entries(200, seed=9):
        for dialect in DIALECTS:
            tag, fields, block = rows.decode(rows.encode(e, dialect))
            assert tag == rows.tag(dialect)
            assert rows.entry_of(fields, block) == e
            names = {p.account: render.beancount_base(p.account) for p in e.postings}
            assert block == render.entry_block(e, dialect, names)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.dates(),
            st.sampled_from(_KINDS),
            st.sampled_from(("invoice", "transaction")),
            # Any id: digits int() refuses ("¹") and other scripts' digits ("٣") sort as text.
            st.one_of(
                st.text(st.characters(codec="utf-8"), max_size=6),
                st.integers(0, 10**30).map(str),
                st.sampled_from(("0", "007", "7", "00", "٣", "03", "¹", "1¹", "²3")),
            ),
        ),
        min_size=2,
        max_size=30,
    )
)
def test_the_text_sort_key_orders_as_the_entry_sort_key(keys: list[tuple[dt.date, str, str, str]]) -> None:
    entries = [Entry(d, k, o, i, "p", "n", ()) for d, k, o, i in keys]
    by_tuple = sorted(range(len(entries)), key=lambda n: entries[n].sort_key())
    by_text = sorted(range(len(entries)), key=lambda n: rows.entry_sort_key(entries[n]))
    assert by_text == by_tuple  # stable sorts: ties keep the same order too


@settings(max_examples=500, deadline=None)
@given(
    st.decimals(allow_nan=False, allow_infinity=False),
    st.sampled_from(("USD", "JPY", "KWD", "usd")),
)
def test_amount_text_is_the_old_one(amount: Decimal, currency: str) -> None:
    assert render.amount_text(amount, currency) == old_render.amount_text(amount, currency)


@settings(max_examples=500, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("ab ;|,:\t\n\x1c\x85\u00a0\u2003\u200bx"), max_size=12),
    st.sampled_from(("", ";|", ";", ",;", ";,:")),
)
def test_clean_is_the_old_one(value: str, drop: str) -> None:
    assert render._clean(value, drop) == old_render._clean(value, drop)


def test_a_row_holds_what_its_text_shows_once() -> None:
    account = "Assets:Accounts Receivable:Pied Piper Industries & Co (CUST-00001)"
    e = Entry(
        dt.date(2024, 5, 1),
        "payment",
        "transaction",
        "12",
        "Pied Piper Industries & Co",
        "Payment INV-000001",
        (
            Posting(account, Decimal("-10.00"), "USD", role="ar"),
            Posting("Assets:Bank:Checking", Decimal(10), "USD"),
        ),
        (("invoiced_type", "transaction"), ("invoiced_id", "12")),
        "1",
    )
    row = rows.encode(e, "hledger")
    _, fields, block = rows.decode(row)
    for text in (account, "Pied Piper Industries & Co", "Payment INV-000001"):
        assert row.count(text) == block.count(text)  # the fields point into the text
    assert rows.entry_of(fields, block) == e


def test_ids_of_digits_int_refuses_sort_as_text_after_numbers() -> None:
    day = dt.date(2024, 5, 1)
    ids = ["¹", "10", "٣", "2", "1¹"]
    entries = [Entry(day, "invoice", "invoice", i, "p", "n", ()) for i in ids]
    assert [e.object_id for e in sorted(entries, key=Entry.sort_key)] == ["2", "10", "1¹", "¹", "٣"]
    assert [e.object_id for e in sorted(entries, key=rows.entry_sort_key)] == ["2", "10", "1¹", "¹", "٣"]


def test_a_date_of_digits_int_refuses_is_an_entry_error() -> None:
    from connectors.ledger.journal import EntryError, to_date

    with pytest.raises(EntryError, match="invoice 7: '¹' is not a date"):
        to_date("¹", zoneinfo.ZoneInfo("UTC"), "invoice 7")
