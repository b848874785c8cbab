"""The bounded-memory render (external merge sort) writes exactly the in-memory render's bytes."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.ledger import stream
from connectors.ledger.journal import Entry, Posting
from connectors.ledger.render import DIALECTS, render
from connectors.ledger.stream import render_file
from syncd.plugin import MappedRecord, Record
from syncd.store import Store
from tests.ledger.helpers import hledger_check, ledger_check, make_connector, mapped
from tests.ledger.scenario import CUSTOMERS, book

# Beancount sanitises these three alike: -2, -3 by sorted name, whatever the entry order.
_AR = ("Assets:AR:Zoë & Co", "Assets:AR:Zoe Co", "Assets:AR:zoe-co", "Assets:AR:Acme")
_AMOUNTS = ("12.5", "100", "0.001", "-0.00", "1E+2", "3.14159", "7", "-42.10")
_KINDS = ("invoice", "void", "payment", "charge", "refund", "adjustment")


def _entries(n: int, seed: int = 7) -> list[Entry]:
    """Entries crowded on a few dates, with ties in the sort key (`7` and `007`, repeats)."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        kind = rnd.choice(_KINDS)
        obj = "invoice" if kind in ("invoice", "void") else "transaction"
        oid = rnd.choice((str(rnd.randint(1, 30)), "007", f"inv_{rnd.randint(1, 5)}", "7"))
        amount, cur = Decimal(rnd.choice(_AMOUNTS)), rnd.choice(("USD", "JPY", "KWD"))
        comment = rnd.choice(("", "line; one, two:", "rounding"))
        postings = (
            Posting(rnd.choice(_AR), amount, cur, role="ar"),
            Posting(f"Income:Sales:{rnd.choice('ABC')}", -amount, cur, comment),
        )
        meta = (("invoiced_type", obj), ("invoiced_id", oid), *((("method", "check"),) if i % 3 else ()))
        out.append(
            Entry(
                dt.date(2024, 1, 1) + dt.timedelta(days=rnd.randint(0, 3)),
                kind,
                obj,
                oid,
                f"Payee {i} | x; y",  # distinct payees: a tie broken the wrong way shows
                rnd.choice(("", f"Invoice {oid}", "Void: it :tag:")),
                postings,
                meta,
                rnd.choice(("c1", "c2", "")),
            )
        )
    renamed = {"id": "c1", "payee": "Renamed Co", "ar_account": "Assets:AR:Renamed"}
    return [e.for_customer(renamed) if e.customer == "c1" else e for e in out]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("batch", [1, 3, 64, 10_000])
def test_streamed_journal_is_the_in_memory_one_byte_for_byte(
    tmp_path: Path, dialect: str, batch: int
) -> None:
    entries = _entries(500)
    declared = frozenset({"Income:Sales:B", "KWD"})
    path = tmp_path / "out.journal"
    assert render_file(path, iter(entries), dialect, declared=declared, stamp="abc", batch=batch)
    expected = render(entries, dialect, declared=declared, stamp="abc").encode("utf-8")
    assert path.read_bytes() == expected
    assert [p.name for p in tmp_path.iterdir()] == ["out.journal"]  # the runs leave nothing behind


@pytest.mark.parametrize("dialect", DIALECTS)
def test_empty_journal_is_the_header(tmp_path: Path, dialect: str) -> None:
    path = tmp_path / "out.journal"
    render_file(path, iter(()), dialect, stamp="s")
    assert path.read_bytes() == render([], dialect, stamp="s").encode()


def test_unchanged_text_leaves_the_file_alone(tmp_path: Path) -> None:
    entries, path = _entries(50), tmp_path / "out.journal"
    assert render_file(path, iter(entries), "hledger", batch=4)
    before = path.stat()
    assert not render_file(path, iter(entries), "hledger", batch=7)  # other runs, same text
    assert path.stat().st_ino == before.st_ino
    assert render_file(path, iter(entries[1:]), "hledger", batch=4)
    assert path.read_bytes() == render(entries[1:], "hledger").encode()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'syncd.db'}")
    yield s
    s.close()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_connector_renders_through_many_runs(
    tmp_path: Path, store: Store, dialect: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "BATCH", 2)
    conn = make_connector(tmp_path, store, dialect=dialect)
    invoices, txns = book()
    assert conn.write("invoices", [mapped("invoices", r, CUSTOMERS) for r in invoices]) == []
    assert conn.write("transactions", [mapped("transactions", r, CUSTOMERS) for r in txns]) == []
    renamed = {"payee": "Acme Renamed", "ar_account": "Assets:Accounts Receivable:Acme Renamed (CUST-1)"}
    record = Record("customers", "1", 1, {"id": 1, "name": "Acme Renamed"})
    assert conn.write("customers", [MappedRecord(record, {"customers": [renamed]})]) == []
    assert conn.render()
    text = conn.path.read_text(encoding="utf-8")
    expected = render(conn.entries(frozenset()), dialect, stamp=conn._stamp(frozenset()))
    assert text == expected
    assert "Acme Renamed" in text and len(conn.entries(frozenset())) > 10
    if dialect == "hledger":
        hledger_check(conn.path)
    elif dialect == "ledger":
        ledger_check(conn.path)
