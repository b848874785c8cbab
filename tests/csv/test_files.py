"""CSV cells are exact and safe; files are replaced whole."""

from __future__ import annotations

import csv
import io
import os
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.csv.files import _decimal_text, _text, cell, line, split, texts, write_atomic, write_lines

CELLS = [
    (Decimal("0.30"), "0.30"),
    (Decimal("1E+3"), "1000"),
    (Decimal("-12.50"), "-12.50"),
    ("-12.50", "-12.50"),  # a number is not a formula
    ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
    ("+1 555", "'+1 555"),
    ("-cmd", "'-cmd"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"),
    ("\rx", "'\rx"),
    ("plain", "plain"),
    (None, ""),
    (True, "true"),
    (42, "42"),
    ({"b": Decimal("1.5"), "a": 1}, '{"a": 1, "b": 1.5}'),
    ("'=already", "'=already"),
    ("", ""),
    (False, "false"),
    (Decimal("-0.00"), "-0.00"),
    ("\t5", "\t5"),  # padded number
]


@pytest.mark.parametrize(("value", "text"), CELLS)
def test_cell(value: object, text: str) -> None:
    assert cell(value) == text


def test_write_atomic_rfc4180_utf8(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "t.csv"
    rows = [
        {"id": 1, "name": 'Dunder "Mifflin", Inc.\nScranton', "total": Decimal("10.00")},
        {"id": 2, "name": "Zoë"},
    ]
    assert write_atomic(path, ["id", "name", "total"], rows) == 2
    raw = path.read_bytes()
    assert raw.startswith(b"id,name,total\r\n")
    assert b'"Dunder ""Mifflin"", Inc.\nScranton"' in raw
    with path.open(encoding="utf-8", newline="") as fh:
        parsed = list(csv.reader(fh))
    assert parsed[1] == ["1", 'Dunder "Mifflin", Inc.\nScranton', "10.00"]
    assert parsed[2] == ["2", "Zoë", ""]


def test_write_atomic_keeps_old_file_when_rendering_fails(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    write_atomic(path, ["id"], [{"id": 1}])

    def broken() -> object:
        yield {"id": 2}
        raise RuntimeError("store went away")

    with pytest.raises(RuntimeError):
        write_atomic(path, ["id"], broken())  # type: ignore[arg-type]
    assert path.read_bytes() == b"id\r\n1\r\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]  # no temp file left behind
    assert os.stat(path).st_size == len("id\r\n1\r\n")


@pytest.mark.parametrize(("value", "text"), CELLS)
def test_cell_of_its_own_text_is_that_text(value: object, text: str) -> None:
    # Rows are stored as cell texts now and as raw values by older versions: both render alike.
    assert cell(text) == text
    assert texts(["c"], {"c": value}) == ({"c": text} if text else {})


def test_rows_stored_as_texts_render_the_same_bytes(tmp_path: Path) -> None:
    header = ["id", "name", "total", "flag", "note", "missing"]
    rows = [
        {"id": 1, "name": "=cmd()", "total": Decimal("-12.50"), "flag": True, "note": None, "extra": "x"},
        {
            "id": 2,
            "name": 'Zoë "Z", Inc.\n',
            "total": Decimal("1E+2"),
            "flag": False,
            "note": {"a": Decimal("1.0")},
        },
        {"id": 3, "name": "-12.50", "total": Decimal("0"), "note": "+1 555"},
    ]
    write_atomic(tmp_path / "raw.csv", header, rows)
    stored = [texts(header, row) for row in rows]
    assert all(type(v) is str for row in stored for v in row.values())
    assert "extra" not in stored[0] and "note" not in stored[0]  # only header cells, empty ones left out
    write_atomic(tmp_path / "texts.csv", header, stored)
    assert (tmp_path / "texts.csv").read_bytes() == (tmp_path / "raw.csv").read_bytes()


_plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=15,
)


@given(st.dictionaries(st.text(max_size=6), _plain | st.decimals(allow_nan=False, allow_infinity=False), max_size=5))
def test_a_json_cell_is_the_text_simplejson_writes(value: dict[str, object]) -> None:
    """The fast path for dict and list cells leaves the CSV files byte for byte as they were."""
    import simplejson

    assert cell(value) == cell(simplejson.dumps(value, use_decimal=True, sort_keys=True))


def _writer_line(cells: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, dialect="excel", quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n").writerow(cells)
    return buffer.getvalue()


_any_text = st.text(alphabet=st.sampled_from('ab,"\r\n\t =+-@\'{}é ') | st.characters(), max_size=8)
_values = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.decimals()
    | _any_text
    | st.sampled_from(["-12.50", "=1+1", "+1 555", "", "a,b", 'say "hi"', "\t5"])
    | st.dictionaries(st.text(max_size=3), st.decimals(allow_nan=False, allow_infinity=False) | _any_text, max_size=3)
    | st.lists(st.integers() | _any_text, max_size=3)
)


@given(st.lists(st.tuples(st.sampled_from("abcdef"), _values), min_size=1, max_size=6), st.integers(1, 6))
def test_a_line_is_what_the_csv_writer_writes_for_the_row(items: list[tuple[str, object]], width: int) -> None:
    """`line` (the text a row is stored as) is byte for byte `write_atomic`'s line of it."""
    row = dict(items)
    columns = list("abcdef")[:width]
    cells = [_text(row.get(c)) for c in columns]
    assert line(columns, row) + "\r\n" == _writer_line(cells)
    assert split(line(columns, row)) == cells  # and it reads back as its cells


def test_a_lone_empty_cell_is_quoted_as_the_csv_writer_does() -> None:
    assert line(["a"], {}) == '""' == _writer_line([""])[:-2]
    assert line(["a", "b"], {}) == ","
    assert split('""') == [""]


@given(st.decimals())
def test_decimal_text_is_format_f(value: Decimal) -> None:
    assert _decimal_text(value) == format(value, "f")


def test_write_lines_writes_what_write_atomic_writes(tmp_path: Path) -> None:
    header = ["id", "name", "total"]
    rows = [{"id": i, "name": f"=n{i}, \"x\"", "total": Decimal(i) / 3} for i in range(2500)]
    assert write_atomic(tmp_path / "a.csv", header, rows) == 2500
    assert write_lines(tmp_path / "b.csv", header, (line(header, r) for r in rows)) == 2500
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert write_lines(tmp_path / "c.csv", header, []) == 0
    assert (tmp_path / "c.csv").read_bytes() == b"id,name,total\r\n"
