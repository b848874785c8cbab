"""Rows kept as their CSV lines render the very bytes rows kept as cell texts (JSON) did."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.csv import CsvConnector, CsvSettings, layout_tag
from connectors.csv.files import texts, write_atomic
from syncd.errors import ConnectorError, StoreError
from syncd.mapping import load_mapping
from syncd.plugin import ConnectorContext, MappedRecord, Record
from syncd.sandbox.data import SandboxData
from syncd.store import Store

ROOT = Path(__file__).resolve().parents[2]
NASTY = [
    "=cmd()",
    "-12.50",
    "+1 555",
    'Dunder "Mifflin", Inc.\nScranton',
    "a\r\nb",
    "Zoë, ✓",
    "",
    "'=already",
    "\t5",
    "@x",
    "{not json",
]


def _connector(store: Store, out: Path, columns: Mapping[str, Sequence[str]]) -> CsvConnector:
    context = ConnectorContext(name="csv", outputs=store.outputs("csv"), state_dir=out, columns=columns)
    connector = CsvConnector(CsvSettings(directory=out), context)
    connector.open()
    return connector


def _old_write(store: Store, columns: Mapping[str, Sequence[str]], stream: str, records: Sequence[MappedRecord]) -> None:
    """What the connector stored before lines: each row's cell texts, as JSON."""
    store.outputs("csv").put_many(
        [
            (stream, m.record.id, {t: [texts(columns.get(t) or r, r) for r in rows] for t, rows in m.tables.items()})
            for m in records
        ]
    )


def _old_render(store: Store, columns: Mapping[str, Sequence[str]], out: Path) -> dict[str, bytes]:
    """How the connector rendered rows stored as JSON before lines (csv.writer per row)."""
    files = {}
    for table, header in columns.items():
        write_atomic(out / f"{table}.csv", header, store.outputs("csv").rows(table))
        files[table] = (out / f"{table}.csv").read_bytes()
    return files


def _files(out: Path, columns: Mapping[str, Sequence[str]]) -> dict[str, bytes]:
    return {table: (out / f"{table}.csv").read_bytes() for table in columns}


def _sandbox() -> tuple[dict[str, list[str]], list[tuple[str, list[MappedRecord]]]]:
    """Customers and invoices of the seeded sandbox through mappings/csv.toml, and nasty ones."""
    data = SandboxData.seeded(seed=7, customers=40, invoices=300, transactions=0)
    mapping = load_mapping(ROOT / "mappings" / "csv.toml")
    known = {(s, str(o["id"])): o for s in ("customers", "invoices") for o in data.list(s)}

    def resolve(stream: str, rid: str) -> Mapping[str, Any] | None:
        return known.get((stream, rid))

    pages = []
    for stream in ("customers", "invoices"):
        records = [Record(stream, str(o["id"]), int(o["updated_at"]), o) for o in data.list(stream)]
        pages.append((stream, [MappedRecord(r, mapping.apply(r, resolve)) for r in records]))
    columns = {t: list(c) for t, c in mapping.columns().items()}
    nasty = []
    for i, text in enumerate(NASTY):
        row = {c: text for c in columns["customers"]}
        row.update(id=f"x{i}", autopay=bool(i % 2), metadata={"k": Decimal("1.50"), "s": text} if i % 3 else {})
        nasty.append(MappedRecord(Record("customers", f"x{i}", 1, {}), {"customers": [row]}))
    pages.append(("customers", nasty))
    return columns, pages


def test_the_sandbox_renders_byte_for_byte_as_before(tmp_path: Path) -> None:
    columns, pages = _sandbox()
    old = Store.open(f"sqlite:///{tmp_path / 'old.db'}")
    for stream, records in pages:
        _old_write(old, columns, stream, records)
    expected = _old_render(old, columns, tmp_path / "old")
    old.close()
    assert expected["invoices"].count(b"\r\n") > 300 and b"'=cmd()" in expected["customers"]

    new = Store.open(f"sqlite:///{tmp_path / 'new.db'}")
    connector = _connector(new, tmp_path / "new", columns)
    for stream, records in pages:
        connector.write(stream, records)
    assert all(isinstance(row, str) for row in new.outputs("csv").stored("invoices"))  # lines, not JSON
    connector.close()
    assert _files(tmp_path / "new", columns) == expected
    new.close()


def test_rows_an_older_version_stored_as_json_render_beside_lines_as_before(tmp_path: Path) -> None:
    columns, pages = _sandbox()
    reference = Store.open(f"sqlite:///{tmp_path / 'old.db'}")
    for stream, records in pages:
        _old_write(reference, columns, stream, records)
    expected = _old_render(reference, columns, tmp_path / "old")
    reference.close()

    store = Store.open(f"sqlite:///{tmp_path / 'mixed.db'}")
    for stream, records in pages:  # the older version stored every record
        _old_write(store, columns, stream, records)
    connector = _connector(store, tmp_path / "new", columns)
    for stream, records in pages:  # this one rewrites every other record (as a later page would)
        connector.write(stream, records[::2])
    kinds = {type(row) for row in store.outputs("csv").stored("invoices")}
    assert kinds == {str, dict}
    connector.close()
    assert _files(tmp_path / "new", columns) == expected
    store.close()


def _invoice(rid: str, total: str, note: str = "n") -> MappedRecord:
    row = {"id": rid, "customer": "=evil()", "total": Decimal(total), "note": note}
    return MappedRecord(Record("invoices", rid, 1, {}), {"invoices": [row]})


def test_rows_of_an_earlier_mapping_render_by_column_name(tmp_path: Path) -> None:
    before = {"invoices": ["id", "customer", "total"]}
    after = {"invoices": ["total", "id", "note"]}  # reordered, one column gone, one new
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    first = _connector(store, tmp_path / "out", before)
    first.write("invoices", [_invoice("1", "1.10"), _invoice("2", "2"), _invoice("3", "-3.5", "x")])
    first.close()
    # The new mapping refuses record 3 (its rows stay) and maps the others again.
    second = _connector(store, tmp_path / "out", after)
    second.write("invoices", [_invoice("1", "10.00", "a,b"), _invoice("2", "20")])
    second.close()
    expected = write_atomic(
        tmp_path / "expected.csv",
        after["invoices"],
        [
            texts(after["invoices"], _invoice("1", "10.00", "a,b").tables["invoices"][0]),
            texts(after["invoices"], _invoice("2", "20").tables["invoices"][0]),
            texts(before["invoices"], _invoice("3", "-3.5", "x").tables["invoices"][0]),
        ],
    )
    assert expected == 3
    assert (tmp_path / "out" / "invoices.csv").read_bytes() == (tmp_path / "expected.csv").read_bytes()
    assert (tmp_path / "out" / "invoices.csv").read_bytes() == b"total,id,note\r\n10.00,1,\"a,b\"\r\n20,2,n\r\n-3.5,3,\r\n"
    store.close()


def test_a_layout_tag_taken_by_other_columns_keeps_rows_as_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("connectors.csv.layout_tag", lambda columns: "AAAA")
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    first = _connector(store, tmp_path / "out", {"invoices": ["id", "total"]})
    first.write("invoices", [_invoice("1", "1"), _invoice("2", "2")])
    second = _connector(store, tmp_path / "out", {"invoices": ["total", "id"]})  # same tag, other columns
    second.write("invoices", [_invoice("2", "22")])
    assert [type(row) for row in store.outputs("csv").stored("invoices")] == [str, dict]
    second.close()
    assert (tmp_path / "out" / "invoices.csv").read_bytes() == b"total,id\r\n1,1\r\n22,2\r\n"
    store.close()


def test_a_line_the_store_could_not_keep_is_kept_as_json(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    connector = _connector(store, tmp_path / "out", {"invoices": ["id", "note"]})
    connector.write("invoices", [_invoice("1", "1", "nul\x00here"), _invoice("2", "2", "fine")])
    assert [type(row) for row in store.outputs("csv").stored("invoices")] == [dict, str]
    connector.close()
    assert (tmp_path / "out" / "invoices.csv").read_bytes() == b"id,note\r\n1,nul\x00here\r\n2,fine\r\n"
    connector.write("invoices", [_invoice("3", "3", "lone \ud800")])  # UTF-8 has no such text
    assert [type(row) for row in store.outputs("csv").stored("invoices")] == [dict, str, dict]
    store.close()


def test_a_line_of_an_unknown_layout_is_an_error_not_a_shifted_row(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    store.outputs("csv").put("invoices", "1", {"invoices": ["ZZZZ1,2"]})
    connector = _connector(store, tmp_path / "out", {"invoices": ["id", "total"]})
    with pytest.raises(ConnectorError, match="layout"):
        connector.close()
    store.close()


class _RowsOnly:
    """An OutputStore that keeps rows as given and reads them back (no text rows)."""

    def __init__(self) -> None:
        self.held: dict[str, list[Any]] = {}

    def put_many(self, items: Any) -> None:
        for _, _, tables in items:
            for table, rows in tables.items():
                self.held.setdefault(table, []).extend(rows)

    def rows(self, table: str) -> Iterator[dict[str, Any]]:
        yield from self.held.get(table, [])

    def is_dirty(self) -> bool:
        return True

    def mark_clean(self) -> None:
        pass


def test_an_output_store_without_text_rows_gets_cell_texts(tmp_path: Path) -> None:
    outputs = _RowsOnly()
    context = ConnectorContext(name="csv", outputs=outputs, state_dir=tmp_path, columns={"invoices": ["id", "total"]})  # type: ignore[arg-type]
    connector = CsvConnector(CsvSettings(directory=tmp_path / "out"), context)
    connector.open()
    connector.write("invoices", [_invoice("1", "1.50")])
    assert outputs.held["invoices"] == [{"id": "1", "total": "1.50"}]
    connector.close()
    assert (tmp_path / "out" / "invoices.csv").read_bytes() == b"id,total\r\n1,1.50\r\n"


def test_the_store_keeps_text_rows_as_given(store_url: str) -> None:
    store = Store.open(store_url)
    out = store.outputs("csv")
    tag = layout_tag(["a"])
    out.put_many([("invoices", "2", {"t": [tag + "Zoë, ✓ \"q\"", {"n": Decimal("1.5")}]}), ("invoices", "1", {"t": ["x"]})])
    assert list(out.stored("t")) == ["x", tag + "Zoë, ✓ \"q\"", {"n": Decimal("1.5")}]
    with pytest.raises(StoreError, match="text"):
        list(out.rows("t"))
    out.put("invoices", "2", {"t": [{"n": 2}]})  # replaced whole, text or not
    assert list(out.stored("t")) == ["x", {"n": 2}]
    assert out.recall("layout:t:abcd") is None
    assert out.remember("layout:t:abcd", '["a"]') == '["a"]'
    assert out.remember("layout:t:abcd", '["b"]') == '["a"]'  # the first kept wins
    assert out.recall("layout:t:abcd") == '["a"]'
    assert store.outputs("ledger").recall("layout:t:abcd") is None  # per connector
    store.close()
