"""The CSV connector keeps rows in the store and renders files that equal the rows."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from connectors.csv import CsvConnector, CsvSettings, layout_tag
from syncd.plugin import ConnectorContext, MappedRecord, Record
from syncd.store import Store

COLUMNS = {"invoices": ["id", "customer", "total"], "lines": ["invoice", "amount"]}


def _mapped(rid: str, total: str | None = None, *, deleted: bool = False) -> MappedRecord:
    record = Record("invoices", rid, 1, {"id": rid}, deleted=deleted)
    if deleted:
        return MappedRecord(record, {})
    rows = {
        "invoices": [{"id": rid, "customer": "=evil()", "total": Decimal(total or "0")}],
        "lines": [{"invoice": rid, "amount": Decimal("1.10")}, {"invoice": rid, "amount": None}],
    }
    return MappedRecord(record, rows)


def test_deleted_and_changed_records_of_a_page_render_exactly(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    context = ConnectorContext(name="csv", outputs=store.outputs("csv"), state_dir=tmp_path, columns=COLUMNS)
    connector = CsvConnector(CsvSettings(directory=tmp_path / "out"), context)
    connector.open()
    assert (
        connector.write("invoices", [_mapped("1", "10.50"), _mapped("2", "-3"), _mapped("3", "1E+2")]) == []
    )
    # One page deletes 2 and changes 3: both land in the same put_many.
    assert connector.write("invoices", [_mapped("2", deleted=True), _mapped("3", "7.00")]) == []
    connector.close()
    invoices = (tmp_path / "out" / "invoices.csv").read_bytes()
    assert invoices == b"id,customer,total\r\n1,'=evil(),10.50\r\n3,'=evil(),7.00\r\n"
    lines = (tmp_path / "out" / "lines.csv").read_bytes()
    assert lines == b"invoice,amount\r\n1,1.10\r\n1,\r\n3,1.10\r\n3,\r\n"
    # What the store keeps is each row's CSV line, after the tag of the columns it has.
    assert (
        next(store.outputs("csv").stored("invoices")) == layout_tag(COLUMNS["invoices"]) + "1,'=evil(),10.50"
    )
    store.close()


def test_a_long_run_renders_again_when_the_render_clock_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import connectors.csv as csv_module
    import syncd.render_clock

    now = [1000.0]
    monkeypatch.setattr(syncd.render_clock.time, "monotonic", lambda: now[0])
    renders: list[float] = []
    real = csv_module.write_lines

    def slow(*args: object, **kwargs: object) -> int:
        renders.append(now[0])
        now[0] += 1.0  # each table's file takes 1 s: a render of both, 2 s
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(csv_module, "write_lines", slow)
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    context = ConnectorContext(name="csv", outputs=store.outputs("csv"), state_dir=tmp_path, columns=COLUMNS)
    connector = CsvConnector(CsvSettings(directory=tmp_path / "out", render_every=10.0), context)
    connector.open()
    for i in range(45):  # a record (3 rows) every 5 s
        connector.write("invoices", [_mapped(str(i), "1")])
        now[0] += 5.0
        connector.flush()
    # Rendered at 10 s (6 rows in 2 s), then 20 periods later (200 s): 30 times the next
    # render's time outgrows the run (ten times the last one's alone: every 20 s).
    assert renders[::2] == [1010.0, 1212.0], renders
    connector.close()
    store.close()
