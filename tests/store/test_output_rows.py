"""File connectors' rows in the store (`ConnectorOutputs`): keys, packing, migration 0006."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from syncd.plugin import Record
from syncd.store import Store, content_hash
from syncd.store import store as store_module
from syncd.store.database import _normalise
from syncd.store.migrate import alembic_config
from syncd.store.store import _dumps_row, dumps, loads, pack_row, unpack_row

ENTRY = {
    "customer": "3",
    "date": "2022-06-09",
    "kind": "invoice",
    "meta": [["invoiced_type", "invoice"], ["invoiced_id", "1"], ["number", "INV-000001"]],
    "narration": "Invoice INV-000001",
    "object": "invoice",
    "object_id": "1",
    "payee": "Pied Piper Analytics KK",
    "postings": [
        [
            "Assets:Accounts Receivable:Pied Piper Analytics KK (CUST-00003)",
            Decimal("1349.85"),
            "USD",
            "",
            "ar",
        ],
        ["Income:Sales:Products", Decimal("-1349.85"), "USD", "Toner cartridge", ""],
    ],
}


def test_rows_of_two_streams_with_one_id_in_one_table_are_all_read(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Invoice 7 and transaction 7 both have entries in the ledger's one table: a render's
    batch that ends between them must not skip the second (they share id and ordinal)."""
    monkeypatch.setattr(store_module, "_RENDER_BATCH", 1)
    store = Store.open(store_url)
    try:
        outputs = store.outputs("ledger")
        outputs.put_many(
            [
                ("invoices", "7", {"entries": [{"kind": "invoice"}]}),
                ("transactions", "7", {"entries": [{"kind": "payment"}]}),
                ("invoices", "8", {"entries": [{"kind": "invoice"}, {"kind": "void"}]}),
            ]
        )
        assert [r["kind"] for r in outputs.rows("entries")] == ["invoice", "payment", "invoice", "void"]
    finally:
        store.close()


def test_a_record_put_again_loses_the_rows_of_tables_it_no_longer_has(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        csv, other = store.outputs("csv"), store.outputs("other")
        csv.put("invoices", "1", {"invoices": ["a,1"], "invoice_lines": ["l,1", "l,2"]})
        csv.put("invoices", "2", {"invoices": ["a,2"], "invoice_lines": ["l,3"]})
        other.put("invoices", "1", {"invoices": [{"id": "1"}]})
        csv.put("invoices", "1", {"invoices": ["b,1"]})
        assert list(csv.stored("invoices")) == ["b,1", "a,2"]
        assert list(csv.stored("invoice_lines")) == ["l,3"]
        assert csv.held("invoices", ["1", "2", "3"]) == {"1", "2"}
        csv.delete("invoices", "2")
        assert list(csv.stored("invoice_lines")) == []
        assert csv.held("invoices", ["1", "2"]) == {"1"}
        assert list(other.rows("invoices")) == [{"id": "1"}]  # another connector's rows stay
        assert list(csv.stored("never_written")) == []
    finally:
        store.close()


def test_json_rows_are_packed_and_text_rows_kept_as_they_are() -> None:
    row = dumps(ENTRY)
    packed = pack_row(row)
    assert packed[:1] == b"\xf6" and len(packed) < len(row) / 2
    assert unpack_row(packed) == row and loads(unpack_row(packed)) == ENTRY
    line = "INV-1,Acme,1.50\r\n"
    assert pack_row(line) == line.encode() and unpack_row(pack_row(line)) == line
    tagged = "\x02 starts like a packed row"
    assert unpack_row(pack_row(tagged)) == tagged


def test_a_ledger_entry_row_is_kept_deflated_to_well_under_half_its_text() -> None:
    from connectors.ledger.journal import Entry, Posting
    from connectors.ledger.rows import encode

    entry = Entry(
        date=date(2025, 3, 14),
        kind="payment",
        object="transaction",
        object_id="4711",
        narration="payment INV-004242",
        payee="Nakatomi Trading plc",
        postings=(
            Posting("Assets:Accounts Receivable:Nakatomi Trading plc (CUST-00042)", Decimal("-1250.75"), "EUR", role="ar"),
            Posting("Assets:Bank:Checking", Decimal("1250.75"), "EUR"),
        ),
        meta=(("invoiced_type", "transaction"), ("invoiced_id", "4711"), ("invoice", "INV-004242"), ("method", "wire")),
        customer="42",
    )
    row = encode(entry, "hledger")
    assert len(row) > 360  # a CSV line of the shipped mapping is at most ~270: kept as it is
    packed = pack_row(row)
    assert packed[:1] == b"\xf6" and len(packed) < len(row) / 2.2, (len(packed), len(row))
    assert unpack_row(packed) == row


def test_nested_rows_are_written_as_dumps_writes_them() -> None:
    """The fast encoder is taken for nested rows of JSON types and Decimal only, with the
    text `dumps` gives; a date inside goes the slow way (msgspec would write it otherwise)."""
    import datetime as dt

    assert _dumps_row(ENTRY) == dumps(ENTRY)
    dated: dict[str, Any] = {"a": [{"when": dt.datetime(2024, 1, 2, 3, 4, 5)}], "b": Decimal("1.5")}
    assert _dumps_row(dated) == dumps(dated)
    assert loads(_dumps_row(dated)) == {"a": [{"when": "2024-01-02 03:04:05"}], "b": Decimal("1.5")}


HASHES = {1: content_hash({"id": 1}), 2: content_hash({"id": 2}), 3: "h"}  # "h": a test's stand-in
HELD = {1: HASHES[1], 2: "deleted", 3: "partial", 4: "0" * 32}


def _insert_0005_rows(url: str) -> list[tuple[str, str, str, str, int, int, str]]:
    """Rows of two connectors as revision 0005 kept them (more than a batch of the migration)."""
    rows = []
    for i in range(1500):
        rid = str(i)
        rows.append(("csv", "invoices", rid, "invoices", 0, i, f"INV-{i},Acme,{i}.50\r\n"))
        rows.append(("csv", "invoices", rid, "invoice_lines", 0, i, f"L-{i}-a\r\n"))
        rows.append(("csv", "invoices", rid, "invoice_lines", 1, i, f"L-{i}-b\r\n"))
        entry = dict(ENTRY, object_id=rid)
        rows.append(("ledger", "invoices", rid, "entries", 0, i, dumps(entry)))
        if i % 3 == 0:  # a payment with the same id, in the same table
            rows.append(("ledger", "transactions", rid, "entries", 0, i, dumps(dict(entry, kind="payment"))))
    rows.append(("csv", "customers", "cus_x", "customers", 0, 2**59, "C-x\r\n"))  # a hashed sort key
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO outputrow (connector, stream, record_id, table_name, ordinal, sort_key, data) "
                "VALUES (:c, :s, :r, :t, :o, :k, :d)"
            ),
            [dict(zip("csrtokd", row, strict=True)) for row in rows],
        )
        for i, due in ((1, True), (2, False), (3, True)):
            conn.execute(
                text(
                    "INSERT INTO rawrecord (stream, record_id, sort_key, updated_at, content_hash, "
                    "dependents_due, deleted, data) VALUES ('customers', :id, :n, 100, :h, :due, :gone, :d)"
                ),
                {"id": str(i), "n": i, "h": HASHES[i], "due": due, "gone": i == 2, "d": b"\x01" + b"x"},
            )
        conn.execute(
            text(
                "INSERT INTO delivery (connector, stream, record_id, content_hash) "
                "VALUES ('csv', 'customers', :id, :h)"
            ),
            [{"id": str(i), "h": h} for i, h in HELD.items()],
        )
    engine.dispose()
    return rows


def _as_0005_read(
    rows: list[tuple[str, str, str, str, int, int, str]], connector: str, table: str
) -> list[str]:
    mine = [r for r in rows if r[0] == connector and r[3] == table]
    return [r[6] for r in sorted(mine, key=lambda r: (r[5], r[2], r[1], r[4]))]


def test_a_store_of_revision_0005_gets_its_output_rows_keyed_by_table_and_packed(store_url: str) -> None:
    url = _normalise(store_url)
    command.upgrade(alembic_config(url), "0005")
    rows = _insert_0005_rows(url)
    store = Store.open(store_url)  # migrates to the newest revision
    try:
        csv, ledger = store.outputs("csv"), store.outputs("ledger")
        for connector, outputs, table in (
            ("csv", csv, "invoices"),
            ("csv", csv, "invoice_lines"),
            ("csv", csv, "customers"),
            ("ledger", ledger, "entries"),
        ):
            expected = _as_0005_read(rows, connector, table)
            assert list(outputs.stored(table)) == [loads(t) if t.startswith("{") else t for t in expected]
        assert len(list(ledger.rows("entries"))) == 2000  # every payment beside its invoice
        assert ledger.held("transactions", ["3", "4"]) == {"3"}
        assert store.dependents_due("customers") == ["1", "3"]
        # Content hashes as they were, kept as 16 bytes; the markers as their text.
        assert store.raw_hashes("customers", ["1", "2", "3"]) == {str(i): h for i, h in HASHES.items()}
        assert store.raw_versions("customers", ["1", "2"]) == {"1": HASHES[1], "2": "deleted"}
        ids = [str(i) for i in HELD]
        assert store.delivered_hashes("csv", "customers", ids) == {str(i): h for i, h in HELD.items()}
        with store.engine.connect() as conn:
            lengths = conn.execute(text("SELECT record_id, content_hash FROM delivery")).all()
        assert {rid: len(bytes(h)) for rid, h in lengths} == {"1": 16, "2": 7, "3": 7, "4": 16}
        with store.engine.connect() as conn:
            stored = conn.execute(
                text("SELECT t.connector, o.data FROM outputrow o JOIN outputtable t ON t.id = o.tab")
            ).all()
        firsts = {(connector, bytes(data)[:1] == b"\xf6") for connector, data in stored}
        assert firsts == {("ledger", True), ("csv", False)}  # JSON rows packed, CSV lines as they are
        # It goes on working: a record put again replaces its rows, a new table gets an id.
        csv.put("invoices", "5", {"invoices": ["INV-5,Acme,new\r\n"], "credit_notes": ["CN-5\r\n"]})
        assert list(csv.stored("invoice_lines"))[8:12] == ["L-4-a\r\n", "L-4-b\r\n", "L-6-a\r\n", "L-6-b\r\n"]
        assert list(csv.stored("credit_notes")) == ["CN-5\r\n"]
        store.save_raw([(Record("customers", "9", 9, {"id": 9}), content_hash({"id": 9}))])
        assert store.dependents_due("customers") == ["1", "3", "9"]
    finally:
        store.close()
    command.downgrade(alembic_config(url), "0005")  # and back: the rows as 0005 kept them
    engine = create_engine(url)
    with engine.connect() as conn:
        back = conn.execute(
            text(
                "SELECT data FROM outputrow WHERE connector = 'ledger' AND stream = 'transactions' "
                "AND record_id = '3' AND table_name = 'entries'"
            )
        ).scalar_one()
        count = conn.execute(text("SELECT count(*) FROM outputrow")).scalar_one()
        held = dict(conn.execute(text("SELECT record_id, content_hash FROM delivery")).all())
        raw = dict(conn.execute(text("SELECT record_id, content_hash FROM rawrecord")).all())
    engine.dispose()
    assert held == {str(i): h for i, h in HELD.items()}
    assert raw == {**{str(i): h for i, h in HASHES.items()}, "9": content_hash({"id": 9})}
    assert back == dumps(dict(ENTRY, object_id="3", kind="payment"))
    assert count == len(rows) + 1 - 2  # record 5: one invoices row and a credit note for three rows
