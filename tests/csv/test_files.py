"""CSV cells are exact and safe; files are replaced whole."""

from __future__ import annotations

import csv
import os
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.csv.files import cell, write_atomic


@pytest.mark.parametrize(
    ("value", "text"),
    [
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
    ],
)
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
