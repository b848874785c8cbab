"""The connector end to end on a real store: real tools accept the journal, AR equals what is owed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.ledger import LedgerConnector
from syncd.store import Store
from tests.ledger.helpers import (
    ar_balances,
    bean_check,
    example,
    hledger_check,
    ledger_ar,
    ledger_check,
    make_connector,
    mapped,
)
from tests.ledger.scenario import CUSTOMERS, book, open_balances


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'syncd.db'}")
    yield s
    s.close()


def _write(conn: LedgerConnector, stream: str, records: list[dict[str, Any]], **kw: Any) -> list[Any]:
    return conn.write(stream, [mapped(stream, r, CUSTOMERS, **kw) for r in records])


def _sync(conn: LedgerConnector, invoices: list[dict[str, Any]], txns: list[dict[str, Any]]) -> None:
    assert _write(conn, "invoices", invoices) == []
    assert _write(conn, "transactions", txns) == []
    conn.flush()
    conn.close()


def _beancount_ar(path: Path) -> dict[str, Decimal]:
    from beancount import loader
    from beancount.core import data

    entries, errors, _ = loader.load_file(str(path))
    assert not errors
    totals: dict[str, Decimal] = {}
    for e in entries:
        if isinstance(e, data.Transaction):
            for p in e.postings:
                if p.account.startswith("Assets:Accounts-Receivable:"):
                    totals[p.units.currency] = totals.get(p.units.currency, Decimal(0)) + p.units.number
    return {c: v for c, v in totals.items() if v}


def test_hledger_journal_is_accepted_and_ar_equals_open_balances(tmp_path: Path, store: Store) -> None:
    invoices, txns = book()
    conn = make_connector(tmp_path, store)
    _sync(conn, invoices, txns)
    path = tmp_path / "invoiced.journal"
    hledger_check(path)
    assert ar_balances(path) == open_balances(invoices, txns)
    text = path.read_text()
    assert "    ; invoiced_type: invoice\n    ; invoiced_id: 101\n" in text
    assert "    Liabilities:Customer Credit:Acme (CUST-1)  -7.00 GBP\n" in text  # unapplied credit is not AR
    assert "commodity 1000. JPY" in text and "6820 JPY" in text  # whole yen, no decimals
    assert "106" not in [
        line.rsplit(" ", 1)[-1] for line in text.splitlines() if "invoiced_id" in line
    ]  # draft


def test_ledger_dialect_is_accepted(tmp_path: Path, store: Store) -> None:
    invoices, txns = book()
    _sync(make_connector(tmp_path, store, dialect="ledger", path=Path("books.ledger")), invoices, txns)
    path = tmp_path / "books.ledger"
    hledger("check", "-f", str(path))  # hledger reads Ledger syntax
    assert ar_balances(path) == open_balances(invoices, txns)
    # ledger-cli itself: every account, commodity and metadata tag declared (--pedantic, --strict)
    ledger_check(path)
    assert ledger_ar(path) == open_balances(invoices, txns)
    # the void's note is a comment to Ledger, not a metadata tag named "Void"
    assert "    ; Void Invoice INV-0105\n" in path.read_text()


def test_beancount_journal_is_accepted_with_sanitised_accounts(tmp_path: Path, store: Store) -> None:
    invoices, txns = book()
    _sync(
        make_connector(tmp_path, store, dialect="beancount", path=Path("invoiced.beancount")), invoices, txns
    )
    path = tmp_path / "invoiced.beancount"
    bean_check(path)
    text = path.read_text()
    assert "Assets:Accounts-Receivable:Zoe-Co-Ltd-Paris-CUST-2" in text
    assert "Assets:Accounts-Receivable:Acme-CUST-4" in text
    assert '  invoiced_id: "101"' in text
    expected: dict[str, Decimal] = {}
    for (_, cur), value in open_balances(invoices, txns).items():
        expected[cur] = expected.get(cur, Decimal(0)) + value
    assert _beancount_ar(path) == expected


def test_updates_deletions_and_later_activity_keep_ar_equal(tmp_path: Path, store: Store) -> None:
    invoices, txns = book()
    path = tmp_path / "invoiced.journal"
    _sync(make_connector(tmp_path, store), invoices, txns)

    # An update replaces the entry: 102 gets another line, a payment is corrected.
    inv102 = next(i for i in invoices if i["id"] == 102)
    inv102["items"].append(
        {"id": 9, "type": "service", "name": "extra", "amount": Decimal("0.01"), "taxes": [], "discounts": []}
    )
    inv102["total"] += Decimal("0.01")
    t205 = next(t for t in txns if t["id"] == 205)
    t205["amount"] = Decimal("2999")
    # More activity: the pending payment settles, the draft is issued, a new partial payment and refund.
    next(t for t in txns if t["id"] == 208)["status"] = "succeeded"
    inv106 = next(i for i in invoices if i["id"] == 106)
    inv106.update(draft=False, status="sent")
    from tests.ledger.scenario import txn

    txns += [
        txn(209, inv106, "payment", "1.25", day=9),
        txn(210, inv106, "refund", "0.25", method="check", day=10),
    ]
    conn = make_connector(tmp_path, store)
    _sync(conn, [inv102, inv106], [t for t in txns if t["id"] in (205, 208, 209, 210)])
    hledger_check(path)
    assert ar_balances(path) == open_balances(invoices, txns)
    assert path.read_text().count("invoiced_id: 102\n") == 1

    # Voiding an invoice reverses it; deleting a record removes its entry.
    inv104 = next(i for i in invoices if i["id"] == 104)
    inv104.update(status="voided", updated_at=inv104["updated_at"] + 86400)
    inv104_txns = [t for t in txns if t["invoice"] == 104]
    t201 = next(t for t in txns if t["id"] == 201)
    conn = make_connector(tmp_path, store)
    assert _write(conn, "invoices", [inv104]) == []
    assert _write(conn, "transactions", [*inv104_txns, t201], deleted=True) == []
    conn.close()
    txns = [t for t in txns if t not in inv104_txns and t is not t201]
    hledger_check(path)
    assert ar_balances(path) == open_balances(invoices, txns)
    text = path.read_text()
    assert "invoiced_id: 201\n" not in text and "invoiced_event: voided" in text
    assert ("Assets:Accounts Receivable:acme (CUST-4)", "USD") not in ar_balances(path)


def test_rerender_is_byte_identical_and_order_is_stable(tmp_path: Path, store: Store) -> None:
    invoices, txns = book()
    _sync(make_connector(tmp_path, store), invoices, txns)
    path = tmp_path / "invoiced.journal"
    first = path.read_bytes()
    stamp = path.stat().st_mtime_ns
    conn = make_connector(tmp_path, store)
    conn.close()
    assert path.read_bytes() == first
    assert path.stat().st_mtime_ns == stamp  # not even rewritten

    # Another store fed the same records in another order renders the same bytes.
    other_dir = tmp_path / "other"
    other = Store.open(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        conn = make_connector(other_dir, other)
        assert _write(conn, "transactions", list(reversed(txns))) == []
        conn.close()
        conn = make_connector(other_dir, other)
        assert _write(conn, "invoices", list(reversed(invoices))) == []
        conn.close()
        assert (other_dir / "invoiced.journal").read_bytes() == first
    finally:
        other.close()
    dates = [line[:10] for line in first.decode().splitlines() if line[:1].isdigit()]
    assert dates == sorted(dates)


def test_bad_record_is_rejected_and_its_previous_entry_kept(tmp_path: Path, store: Store) -> None:
    invoices, txns = book()
    conn = make_connector(tmp_path, store)
    _sync(conn, invoices, txns)
    conn = make_connector(tmp_path, store)
    record = mapped("invoices", invoices[0], CUSTOMERS)
    record.tables["invoices"][0]["ar_account"] = "Receivable:Acme"  # type: ignore[index]
    [rejection] = conn.write("invoices", [record])
    assert rejection.record_id == "101"
    assert "invoices.ar_account" in rejection.reason and "Receivable:Acme" in rejection.reason
    conn.close()
    assert "invoiced_id: 101\n" in (tmp_path / "invoiced.journal").read_text()


def test_include_mode_leaves_main_journal_untouched(tmp_path: Path, store: Store) -> None:
    main = tmp_path / "main.journal"
    main.write_text(
        "include invoiced.journal\n\naccount Assets:Bank:Checking\ncommodity 1000.00 USD\n\n"
        "2024-01-01 * Opening\n    Assets:Bank:Checking  1000.00 USD\n    Equity:Opening  -1000.00 USD\n"
        "account Equity:Opening\n"
    )
    before = main.read_bytes()
    invoices, txns = book()
    _sync(make_connector(tmp_path, store, main_journal=Path("main.journal")), invoices, txns)
    assert main.read_bytes() == before
    generated = (tmp_path / "invoiced.journal").read_text()
    assert "account Assets:Bank:Checking\n" not in generated and "commodity 1000.00 USD" not in generated
    hledger_check(main)
    assert ar_balances(main) == open_balances(invoices, txns)


def test_beancount_include_mode_does_not_reopen_accounts(tmp_path: Path, store: Store) -> None:
    main = tmp_path / "main.beancount"
    main.write_text(
        'include "invoiced.beancount"\n\n2020-01-01 open Assets:Bank:Checking\n2020-01-01 commodity USD\n'
    )
    invoices, txns = book()
    conn = make_connector(
        tmp_path, store, dialect="beancount", path=Path("invoiced.beancount"), main_journal=main
    )
    _sync(conn, invoices, txns)
    bean_check(main)


def test_failed_render_keeps_the_old_file(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoices, txns = book()
    _sync(make_connector(tmp_path, store), invoices, txns)
    path = tmp_path / "invoiced.journal"
    before = path.read_bytes()
    conn = make_connector(tmp_path, store)
    _write(conn, "invoices", [{**invoices[0], "total": invoices[0]["total"] + 1}])

    def boom(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        conn.close()
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    conn.close()  # still dirty: the next render catches up
    assert path.read_bytes() != before
    hledger_check(path)


from tests.ledger.helpers import hledger  # noqa: E402


def test_main_journal_without_include_gets_a_warning_not_an_edit(tmp_path: Path, store: Store) -> None:
    from structlog.testing import capture_logs

    main = tmp_path / "main.journal"
    main.write_text("account Assets:Bank\n")
    with capture_logs() as logs:
        make_connector(tmp_path, store, main_journal=main)
    [warning] = [e for e in logs if e["event"] == "ledger.not_included"]
    assert warning["add_line"] == "include invoiced.journal"
    assert main.read_text() == "account Assets:Bank\n"
    with capture_logs() as logs:
        main.write_text("include invoiced.journal\n")
        make_connector(tmp_path, store, main_journal=main)
    assert not [e for e in logs if e["event"] == "ledger.not_included"]


def test_customer_table_moves_all_entries_to_the_current_account(tmp_path: Path, store: Store) -> None:
    from syncd.plugin import MappedRecord, Record

    invoices, txns = book()
    conn = make_connector(tmp_path, store)
    _sync(conn, invoices, txns)
    conn = make_connector(tmp_path, store)
    renamed = {"payee": "Acme Renamed", "ar_account": "Assets:Accounts Receivable:Acme Renamed (CUST-1)"}
    record = Record("customers", "1", 1, {"id": 1, "name": "Acme Renamed"})
    assert conn.write("customers", [MappedRecord(record, {"customers": [renamed]})]) == []
    conn.close()
    path = tmp_path / "invoiced.journal"
    hledger_check(path)
    balances = ar_balances(path)
    expected = {
        (k[0].replace("Acme (CUST-1)", "Acme Renamed (CUST-1)"), k[1]): v
        for k, v in open_balances(invoices, txns).items()
    }
    assert balances == expected
    text = path.read_text()
    assert "Receivable:Acme (CUST-1)" not in text and "* Acme Renamed | Invoice INV-0101" in text
    assert "Customer Credit:Acme (CUST-1)" in text  # no credit_account given: kept
    # a deleted customer row falls back to the accounts each entry was written with
    conn = make_connector(tmp_path, store)
    conn.write("customers", [MappedRecord(Record("customers", "1", 2, {}, deleted=True), {})])
    conn.close()
    assert ar_balances(path) == open_balances(invoices, txns)


def test_settings_change_rerenders_even_when_the_store_is_clean(tmp_path: Path, store: Store) -> None:
    invoices, txns = book()
    _sync(make_connector(tmp_path, store, path=Path("out.journal")), invoices, txns)
    path = tmp_path / "out.journal"
    hledger_text = path.read_text()
    make_connector(tmp_path, store, path=Path("out.journal"), dialect="beancount").close()
    assert path.read_text() != hledger_text
    bean_check(path)
    make_connector(tmp_path, store, path=Path("out.journal")).close()
    assert path.read_text() == hledger_text


def test_a_long_run_renders_again_after_thirty_times_the_next_render_or_twenty_periods(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import connectors.ledger as ledger_module
    import syncd.render_clock

    clock = [1000.0]
    monkeypatch.setattr(syncd.render_clock.time, "monotonic", lambda: clock[0])
    conn = make_connector(tmp_path, store, render_every=10.0)
    renders: list[float] = []
    real_render = ledger_module.render_items

    def slow_render(*args: Any, **kwargs: Any) -> bool:
        renders.append(clock[0])
        clock[0] += 5.0  # every render takes 5 s
        return real_render(*args, **kwargs)

    monkeypatch.setattr(ledger_module, "render_items", slow_render)
    customers = {"1": "Acme"}
    invoice = example("invoicing/invoices/object.json")

    def put(ids: range) -> None:
        conn.write(
            "invoices", [mapped("invoices", {**invoice, "id": i, "customer": 1}, customers) for i in ids]
        )

    def run_until(renders_wanted: int, write_each_step: bool) -> None:
        step = 0
        while len(renders) < renders_wanted:
            if write_each_step:
                put(range(900 + step, 901 + step))
            clock[0] += 5.0
            conn.flush()
            step += 1
            assert step < 100, renders

    put(range(400, 420))  # 20 entries
    run_until(1, write_each_step=False)  # at render_every
    assert renders == [1010.0]
    put(range(420, 421))  # one entry more: the next render should take 5 s * 21 / 20
    run_until(2, write_each_step=False)
    # 30 times that, 157.5 s (ten times the last render's time alone: 50 s)
    assert renders[1] - renders[0] == 160.0, renders
    # The books growing by an entry every 5 s: 30 times the next render's time outgrows the
    # time since the last, so the journal waits 20 render_every's (200 s), then renders.
    run_until(3, write_each_step=True)
    assert renders[2] - renders[1] == 200.0, renders
    put(range(990, 991))
    conn.close()  # renders whatever changed
    assert len(renders) == 4
