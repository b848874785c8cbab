"""The compiled line writers and the faster JSON cells write the very text they did before.

Differential against a frozen copy of `files.line` (tests/csv/old_line.py): rows of every
type a mapping can give, texts that start a formula, need quotes or are not ASCII, rows
that lack a column, rows that are not dicts.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Callable
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from connectors.csv import files
from connectors.csv.linecode import line_writer
from tests.csv import old_line

COLUMNS = ["a", "b", "c", "d", "e"]


def _outcome(write: Callable[..., str], *args: Any) -> tuple[str, str]:
    """The text written, or the error raised (a JSON cell with a NaN Decimal)."""
    try:
        return "text", write(*args)
    except Exception as exc:
        return type(exc).__name__, str(exc)


_texts = st.text(alphabet=st.sampled_from("ab,\"\r\n\t =+-@'{}é✓E.0") | st.characters(), max_size=8)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _texts | st.decimals(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_texts, children, max_size=3),
    max_leaves=8,
)
_values = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.decimals()
    | st.floats()
    | _texts
    | st.sampled_from(["-12.50", "=1+1", "+1 555", "", "a,b", 'say "hi"', "\t5", "\tx", "\r", "\rx", "@x", " -1"])
    | st.sampled_from([Decimal("1E+2"), Decimal("-0.00"), Decimal("1E-7"), Decimal("sNaN"), Decimal("-Inf")])
    | st.just(dt.date(2024, 3, 1))
    | st.dictionaries(_texts, _json, max_size=3)
    | st.lists(_json, max_size=3)
)


@given(st.lists(_values, min_size=5, max_size=5))
def test_a_full_row_is_the_line_files_line_wrote(values: list[Any]) -> None:
    row = dict(zip(COLUMNS, values, strict=True))
    old = _outcome(old_line.line, COLUMNS, row)
    assert _outcome(line_writer(COLUMNS), row) == old
    assert _outcome(files.line, COLUMNS, row) == old


@given(st.dictionaries(st.sampled_from([*COLUMNS, "x"]), _values, max_size=6), st.integers(1, 5))
def test_any_row_of_any_width_is_the_line_files_line_wrote(row: dict[str, Any], width: int) -> None:
    """Rows without some column (stored cell texts), and a table of one column."""
    columns = COLUMNS[:width]
    old = _outcome(old_line.line, columns, row)
    write = line_writer(columns)
    assert _outcome(write, row) == old
    assert _outcome(write, MappingProxyType(row)) == old
    assert _outcome(write, OrderedDict(row)) == old


def test_the_cases_the_writer_hands_on_are_the_old_lines() -> None:
    rows = [
        {"a": "=cmd()", "b": Decimal("-12.50"), "c": True, "d": None, "e": {"k": "v, w"}},
        {"a": "", "b": "", "c": "", "d": "", "e": ""},
        {"a": "x\ny", "b": 'q"', "c": "a,b", "d": "\r", "e": "-1"},
        {"a": "x", "b": "\tx", "c": "\t5", "d": "1", "e": "y"},
        {"a": "x", "b": "+1 555", "c": "@x", "d": "a=b", "e": "y@z"},
        {"a": Decimal("1E+2"), "b": 10**30, "c": False, "d": [], "e": {}},
        {"a": "Zoë", "b": "✓", "c": "\ud800", "d": "\x00", "e": 1.5},
    ]
    for row in rows:
        assert line_writer(COLUMNS)(row) == old_line.line(COLUMNS, row)
    assert line_writer(["a"])({"a": ""}) == old_line.line(["a"], {"a": ""}) == '""'


@given(st.dictionaries(_texts, _json, max_size=4) | st.lists(_json, max_size=4))
def test_a_json_cell_is_the_text_it_was(value: Any) -> None:
    assert _outcome(files._json_text, value) == _outcome(old_line._json_text, value)


def test_a_circular_json_cell_fails_as_it_did() -> None:
    value: dict[str, Any] = {"a": 1}
    value["self"] = value
    errors = []
    for encode in (files._json_text, old_line._json_text):
        try:
            encode(value)
        except ValueError as exc:
            errors.append(str(exc))
    assert errors == ["Circular reference detected"] * 2
