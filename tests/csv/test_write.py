"""`CsvConnector.write` puts in the store the very rows it did before (tests/csv/old_write.py).

Differential: every record of a seeded sandbox mapped through mappings/csv.toml, and rows of
odd values (None, non-ASCII, quotes, line breaks, NUL, lone surrogates, formulas, Decimal
edge cases, dates, missing columns, rows that are not dicts, a table with no columns), in
pages with deleted records; the rows each record's put carries, and the count the render
clock is told.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.csv import CsvConnector, CsvSettings, layout_tag
from syncd.mapping import load_mapping
from syncd.plugin import ConnectorContext, MappedRecord, Record
from syncd.sandbox.data import SandboxData
from tests.csv import old_write

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = {"t": ["a", "b", "c", "d"], "u": ["x", "y"]}


class _Outputs:
    """A LineStore that keeps what it is given."""

    def __init__(self) -> None:
        self.puts: list[Any] = []

    def put_many(self, items: Sequence[Any]) -> None:
        self.puts.extend(items)

    def stored(self, table: str) -> Iterator[dict[str, Any] | str]:
        return iter(())

    def remember(self, key: str, value: str) -> str:
        return value

    def recall(self, key: str) -> str | None:
        return None

    def rows(self, table: str) -> Iterator[dict[str, Any]]:
        return iter(())

    def put(self, stream: str, record_id: str, tables: Any) -> None:
        self.put_many([(stream, record_id, tables)])

    def delete(self, stream: str, record_id: str) -> None:
        raise AssertionError("a CSV write deletes by putting no rows")

    def is_dirty(self) -> bool:
        return True

    def mark_clean(self) -> None:
        pass


def _connector(tmp_path: Path, columns: Mapping[str, list[str]]) -> tuple[CsvConnector, _Outputs]:
    outputs = _Outputs()
    context = ConnectorContext(name="csv", outputs=outputs, state_dir=tmp_path, columns=dict(columns))
    connector = CsvConnector(CsvSettings(directory=tmp_path / "out", render_every=1e9), context)
    connector.open()
    return connector, outputs


def _old_puts(stream: str, pages: list[list[MappedRecord]], columns: Mapping[str, list[str]]) -> list[Any]:
    writers = {table: old_write.line_writer(cols) for table, cols in columns.items()}
    puts = []
    for page in pages:
        for mapped in page:
            tables = {}
            if not mapped.record.deleted:
                for table, rows in mapped.tables.items():
                    cols = columns.get(table, [])
                    tag = layout_tag(cols) if cols else None
                    write = writers.get(table) or old_write.line_writer(cols)
                    tables[table] = old_write.kept(cols, tag, write, rows)
            puts.append((stream, mapped.record.id, tables))
    return puts


def _check(
    tmp_path: Path, stream: str, pages: list[list[MappedRecord]], columns: Mapping[str, list[str]]
) -> None:
    connector, outputs = _connector(tmp_path, columns)
    told: list[int] = []
    connector._clock.wrote = told.append  # type: ignore[method-assign]
    for page in pages:
        assert connector.write(stream, page) == []
    want = _old_puts(stream, pages, columns)
    assert repr(outputs.puts) == repr(want)
    counts, start = [], 0
    for page in pages:
        if page:
            counts.append(
                sum(len(rows) for _, _, tables in want[start : start + len(page)] for rows in tables.values())
            )
        start += len(page)
    assert told == counts


def test_the_sandbox_mapped_through_the_csv_mapping_is_stored_as_before(tmp_path: Path) -> None:
    data = SandboxData.seeded(seed=11, customers=40, invoices=300, transactions=120)
    mapping = load_mapping(ROOT / "mappings" / "csv.toml")
    known = {(s, str(o["id"])): o for s in ("customers", "invoices") for o in data.list(s)}
    for n, stream in enumerate(("customers", "invoices", "transactions")):
        records = [
            MappedRecord(
                record, {} if record.deleted else mapping.apply(record, lambda s, r: known.get((s, r)))
            )
            for i, obj in enumerate(data.list(stream))
            for record in [Record(stream, str(obj["id"]), 0, obj, deleted=i % 17 == 3)]
        ]
        pages = [records[i : i + 100] for i in range(0, len(records), 100)]
        _check(tmp_path / str(n), stream, pages, mapping.columns())


_texts = st.text(alphabet=st.sampled_from("ab,\"\r\n\t =+-@'{}é✓E.0\x00\ud800") | st.characters(), max_size=8)
_values = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.decimals()
    | st.floats()
    | _texts
    | st.sampled_from(
        ["-12.50", "=1+1", "+1 555", "", "a,b", 'say "hi"', "\t5", "\r", "@x", " -1", "Zoë", "\x00"]
    )
    | st.sampled_from([Decimal("1E+2"), Decimal("-0.00"), Decimal("1E-7"), Decimal("sNaN"), Decimal("-Inf")])
    | st.just(dt.date(2024, 3, 1))
    | st.dictionaries(_texts, st.none() | st.integers() | _texts, max_size=2)
    | st.lists(st.integers() | _texts, max_size=2)
)
_rows = st.one_of(
    st.fixed_dictionaries({c: _values for c in COLUMNS["t"]}),
    st.dictionaries(st.sampled_from(["a", "b", "c", "d", "z"]), _values, max_size=5),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.lists(_rows, max_size=3),
            st.lists(st.fixed_dictionaries({"x": _values, "y": _values}), max_size=2),
            st.lists(st.dictionaries(st.sampled_from(["p", "q"]), _values, max_size=2), max_size=2),
            st.booleans(),
        ),
        max_size=6,
    ),
    st.integers(1, 4),
)
def test_odd_rows_are_stored_as_before(tmp_path_factory: Any, spec: list[Any], size: int) -> None:
    records = []
    for i, (deleted, t_rows, u_rows, v_rows, proxy) in enumerate(spec):
        tables: dict[str, list[Any]] = {
            "t": [MappingProxyType(r) if proxy else r for r in t_rows],
            "u": u_rows,
        }
        if v_rows:
            tables["v"] = v_rows  # a table the mapping gave no columns for
        record = Record("invoices", str(i), 0, {}, deleted=deleted)
        records.append(MappedRecord(record, {} if deleted else tables))
    pages = [records[i : i + size] for i in range(0, len(records), size)]
    _check(tmp_path_factory.mktemp("w"), "invoices", pages, COLUMNS)
