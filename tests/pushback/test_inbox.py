"""The CSV payments inbox: rows become payments; bad rows are rejected naming file and line."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path

from connectors.csv.inbox import Inbox, RowRejection, read_inbox, rejects_path
from syncd.plugin import ExternalPayment, Rejection

HEADER = "external_id,invoice,customer,amount,currency,date,method,reference,notes\n"


def _write(path: Path, body: str, header: str = HEADER) -> Path:
    path.write_text(header + body, encoding="utf-8")
    return path


def _split(items: list[ExternalPayment | Rejection]) -> tuple[list[ExternalPayment], list[RowRejection]]:
    payments = [i for i in items if isinstance(i, ExternalPayment)]
    rejections = [i for i in items if isinstance(i, RowRejection)]
    assert len(payments) + len(rejections) == len(items)
    return payments, rejections


def test_good_rows_become_payments_with_exact_amounts(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "p.csv",
        'P-1,INV-0001,CUST-1,"1,250.10",USD,2024-03-01,Check,1450,first\r\nP-2,42,,0.1,eur,2024-03-02,,,\r\n',
    )
    payments, rejections = _split(read_inbox(f, source="csv"))
    assert rejections == []
    assert [p.external_id for p in payments] == ["P-1", "P-2"]
    p1, p2 = payments
    assert p1.amount == Decimal("1250.10") and isinstance(p1.amount, Decimal)
    assert (p1.currency, p1.method, p1.reference, p1.customer, p1.notes) == (
        "usd",
        "check",
        "1450",
        "CUST-1",
        "first",
    )
    assert p1.date == dt.date(2024, 3, 1)
    assert p1.origin == f"{f}:2" and p2.origin == f"{f}:3"
    assert (p2.invoice, p2.customer, p2.method, p2.reference) == ("42", None, "other", None)
    assert p1.source == "csv"


def test_each_malformed_row_is_rejected_naming_file_and_line_and_the_rest_is_read(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "p.csv",
        "OK-1,INV-1,,10.00,usd,2024-01-01,check,,\n"  # line 2
        "BAD-AMOUNT,INV-1,,ten,usd,2024-01-01,check,,\n"  # 3
        "BAD-DATE,INV-1,,10,usd,01/02/2024,check,,\n"  # 4
        "BAD-METHOD,INV-1,,10,usd,2024-01-01,visa,,\n"  # 5
        "SHORT,INV-1,,10\n"  # 6: missing columns
        "EMPTY,,,10,usd,2024-01-01,,,\n"  # 7: missing value
        "WIDE,INV-1,,1,000.00,usd,2024-01-01,check,,\n"  # 8: unquoted comma
        "BAD-CUR,INV-1,,10,dollars,2024-01-01,,,\n"  # 9
        "OK-2,INV-2,,5,usd,2024-01-02,wire,,\n",  # 10
    )
    payments, rejections = _split(read_inbox(f))
    assert [p.external_id for p in payments] == ["OK-1", "OK-2"]
    got = {r.record_id: r for r in rejections}
    expected = {
        "BAD-AMOUNT": (3, "bad amount 'ten'"),
        "BAD-DATE": (4, "bad date '01/02/2024'"),
        "BAD-METHOD": (5, "bad method 'visa'"),
        "SHORT": (6, "missing column currency, date"),
        "EMPTY": (7, "missing value for invoice"),
        "WIDE": (8, "more fields than the header"),
        "BAD-CUR": (9, "bad currency 'dollars'"),
    }
    assert set(got) == set(expected)
    for ext, (line, text) in expected.items():
        assert got[ext].origin == f"{f}:{line}"
        assert got[ext].reason.startswith(f"{f}:{line}: "), got[ext].reason
        assert text in got[ext].reason


def test_missing_header_column_rejects_every_row(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "p.csv",
        "A,INV-1,10,2024-01-01\nB,INV-2,11,2024-01-01\n",
        header="external_id,invoice,amount,date\n",
    )
    payments, rejections = _split(read_inbox(f))
    assert payments == []
    assert [r.origin for r in rejections] == [f"{f}:2", f"{f}:3"]
    assert all("missing column currency" in r.reason for r in rejections)


def test_duplicate_id_with_different_content_rejects_all_copies_identical_copy_read_once(
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    _write(inbox / "a.csv", "D-1,INV-1,,10,usd,2024-01-01,check,,\nSAME,INV-2,,7,usd,2024-01-01,,,\n")
    _write(inbox / "b.csv", "D-1,INV-1,,11,usd,2024-01-01,check,,\nSAME,INV-2,,7.00,usd,2024-01-01,,,\n")
    payments, rejections = _split(read_inbox(inbox))
    assert [(p.external_id, p.origin) for p in payments] == [("SAME", f"{inbox / 'a.csv'}:3")]
    assert sorted(r.origin for r in rejections) == [f"{inbox / 'a.csv'}:2", f"{inbox / 'b.csv'}:2"]
    for r in rejections:
        assert r.record_id == "D-1"
        assert "duplicate external id 'D-1' with different content" in r.reason
        assert f"{inbox / 'a.csv'}:2" in r.reason and f"{inbox / 'b.csv'}:2" in r.reason


def test_multiline_quoted_note_keeps_line_numbers_of_the_row_start(tmp_path: Path) -> None:
    f = _write(tmp_path / "p.csv", 'A,INV-1,,1,usd,2024-01-01,,,"two\nlines"\nB,INV-1,,x,usd,2024-01-01,,,\n')
    payments, rejections = _split(read_inbox(f))
    assert payments[0].notes == "two\nlines"
    assert rejections[0].origin == f"{f}:4"


def test_directory_inbox_skips_rejects_file_and_bom_and_semicolons_are_read(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "excel.csv").write_bytes(
        "\ufeffExternal ID;Invoice;Amount;Currency;Date\nE-1;INV-9;12.5;usd;2024-05-05\n".encode()
    )
    _write(inbox / "old.rejects.csv", "X,INV-1,,1,usd,2024-01-01,,,\n")
    (inbox / "notes.txt").write_text("not a csv")
    payments, rejections = _split(read_inbox(inbox))
    assert rejections == []
    assert [(p.external_id, p.amount) for p in payments] == [("E-1", Decimal("12.5"))]


def test_rejects_file_beside_inbox_holds_raw_rows_and_reasons(tmp_path: Path) -> None:
    f = _write(tmp_path / "payments.csv", "A,INV-1,,1,usd,2024-01-01,,,\nB,INV-1,,oops,usd,2024-01-01,,,\n")
    box = Inbox(f)
    items = list(box)
    bad = next(i for i in items if isinstance(i, RowRejection))
    path = box.write_rejects(
        [
            ("B", bad.origin, "bad amount 'oops'"),
            ("A", f"{f}:2", "unknown invoice INV-1"),
            ("Z", "elsewhere:1", "x"),
        ]
    )
    assert path == rejects_path(f) == tmp_path / "payments.rejects.csv"
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["line"], r["external_id"], r["amount"], r["reason"]) for r in rows] == [
        ("2", "A", "1", "unknown invoice INV-1"),
        ("3", "B", "oops", "bad amount 'oops'"),
    ]
    assert rows[0]["file"] == str(f)  # sorted by file and line
    assert not list(tmp_path.glob(".*tmp"))  # atomic: no temp file left behind
    # A later clean run empties the rejects file rather than leaving stale rows.
    list(box)
    box.write_rejects([])
    with path.open(encoding="utf-8", newline="") as fh:
        assert list(csv.DictReader(fh)) == []


def test_directory_rejects_go_beside_the_directory(tmp_path: Path) -> None:
    assert rejects_path(tmp_path / "inbox") == tmp_path / "inbox.rejects.csv"


def test_missing_inbox_yields_nothing(tmp_path: Path) -> None:
    assert read_inbox(tmp_path / "nope") == []
