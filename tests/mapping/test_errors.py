"""Every kind of error names file:line:column, the field, and the nearest valid alternative."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from syncd.errors import MappingError
from syncd.mapping import check_mapping, load_mapping
from syncd.plugin import TableSpec
from tests.mapping.helpers import MAPPINGS, write

HEAD = '[tables.t]\nstream = "invoices"\n\n[[tables.t.fields]]\nname = "a"\n'  # the column is on lines 4-5

CASES = [
    # (id, file text, line, column, message pattern)
    (
        "unknown stream",
        '[tables.t]\nstream = "invoicez"\n',
        2,
        10,
        r"tables\.t\.stream: unknown stream 'invoicez'.*\(did you mean 'invoices'\?\)",
    ),
    (
        "unknown path",
        HEAD + 'from = "totl"\n',
        6,
        8,
        r"tables\.t\.fields\[0\]\.from: unknown path 'totl' for invoices \(did you mean 'total'\?\)",
    ),
    (
        "unknown nested path",
        HEAD + 'from = "customer.nmae"\n',
        6,
        8,
        r"unknown path 'customer\.nmae' for invoices \(did you mean 'customer\.name'\?\)",
    ),
    ("path into a scalar", HEAD + 'from = "number.x"\n', 6, 8, r"'number' has no fields"),
    (
        "list without []",
        HEAD + 'from = "items.amount"\n',
        6,
        8,
        r"'items' is a list: write 'items\[\]' .*\(did you mean 'items\[\]\.amount'\?\)",
    ),
    (
        "list left as list",
        HEAD + 'from = "items[].amount"\n',
        6,
        8,
        r"'items\[\]\.amount' is a list: add a join or sum transform; or set rows = 'items'",
    ),
    (
        "unknown transform",
        HEAD + 'from = "number"\ntransforms = ["strip", "uper"]\n',
        7,
        24,
        r"transforms\[1\]: unknown transform 'uper'.*\(did you mean 'upper'\?\)",
    ),
    (
        "unknown transform in table",
        HEAD + 'from = "number"\ntransforms = [{ truncat = 3 }]\n',
        7,
        17,
        r"unknown transform 'truncat'.*\(did you mean 'truncate'\?\)",
    ),
    (
        "wrong argument type",
        HEAD + 'from = "number"\ntransforms = [{ truncate = "forty" }]\n',
        7,
        17,
        r"transforms\[0\]\.truncate: truncate expects a length \(an integer ≥ 1\), got \"forty\"",
    ),
    (
        "zero truncate",
        HEAD + 'from = "number"\ntransforms = [{ truncate = 0 }]\n',
        7,
        17,
        r"expects a length",
    ),
    (
        "missing argument",
        HEAD + 'from = "number"\ntransforms = ["truncate"]\n',
        7,
        15,
        r"truncate needs an argument: write \{ truncate = 40 \}",
    ),
    (
        "unknown option",
        HEAD + 'from = "date"\ntransforms = [{ date = "%Y", zone = "UTC" }]\n',
        7,
        30,
        r"date has no option 'zone' \(options: tz\)",
    ),
    (
        "bad time zone",
        HEAD + 'from = "date"\ntransforms = [{ date = "%Y", tz = "Europe/Pariss" }]\n',
        7,
        30,
        r"unknown time zone 'Europe/Pariss' \(did you mean 'Europe/Paris'\?\)",
    ),
    (
        "bad rounding",
        '[defaults]\nrounding = "half-even"\n' + HEAD.replace("\n", "\n", 1) + 'from = "total"\n',
        2,
        12,
        r"rounding must be 'half_up' or 'half_even'.*\(did you mean 'half_even'\?\)",
    ),
    (
        "unknown value table",
        '[values.stages]\npaid = "won"\n' + HEAD + 'from = "status"\ntransforms = [{ map = "stage" }]\n',
        9,
        17,
        r"no value table \[values\.stage\].*\(did you mean 'stages'\?\)",
    ),
    (
        "money on a list",
        HEAD + 'from = "taxes[].amount"\ntransforms = ["money"]\n',
        7,
        15,
        r"money needs a single value but 'taxes\[\]\.amount' is a list.*\(did you mean 'sum'\?\)",
    ),
    (
        "duplicate column",
        HEAD + 'from = "id"\n\n[[tables.t.fields]]\nname = "a"\nfrom = "number"\n',
        9,
        8,
        r"duplicate column 'a' \(first at line 5\)",
    ),
    ("two sources", HEAD + 'from = "id"\nvalue = 1\n', 4, 1, r"column 'a' has both from and value"),
    ("no source", HEAD, 4, 1, r"column 'a' has no source"),
    (
        "unknown column key",
        HEAD + 'form = "id"\n',
        6,
        1,
        r"unknown key 'form' in a column.*\(did you mean 'from'\?\)",
    ),
    (
        "unknown table key",
        '[tables.t]\nstream = "invoices"\nrow = "items"\nfields = [{ name = "a", from = "id" }]\n',
        3,
        1,
        r"unknown key 'row'.*\(did you mean 'rows'\?\)",
    ),
    (
        "unknown section",
        '[tabels.t]\nstream = "invoices"\n[tables.u]\nstream = "invoices"\nfields = [{ name = "a", from = "id" }]\n',
        1,
        2,
        r"unknown key 'tabels'.*\(did you mean 'tables'\?\)",
    ),
    (
        "bad rows",
        '[tables.t]\nstream = "invoices"\nrows = "itemz"\nfields = [{ name = "a", from = "id" }]\n',
        3,
        8,
        r"unknown path 'itemz' for invoices \(did you mean 'items'\?\)",
    ),
    (
        "filter path",
        '[tables.t]\nstream = "invoices"\nskip = [{ path = "drafts", equals = true }]\nfields = [{ name = "a", from = "id" }]\n',
        3,
        18,
        r"skip\[0\]\.path: unknown path 'drafts' .*\(did you mean 'draft'\?\)",
    ),
    (
        "filter operator",
        '[tables.t]\nstream = "invoices"\nskip = [{ path = "draft", is = true }]\nfields = [{ name = "a", from = "id" }]\n',
        3,
        27,
        r"unknown key 'is' in a condition",
    ),
    (
        "filter operand",
        '[tables.t]\nstream = "invoices"\nskip = [{ path = "status", in = "paid" }]\nfields = [{ name = "a", from = "id" }]\n',
        3,
        33,
        r"in expects a list",
    ),
    (
        "stream section",
        '[streams.invoice]\nskip = []\n[tables.t]\nstream = "invoices"\nfields = [{ name = "a", from = "id" }]\n',
        1,
        1,
        r"unknown stream 'invoice'.*\(did you mean 'invoices'\?\)",
    ),
    (
        "template path",
        HEAD + 'template = "{number} – {customer.nam}"\n',
        6,
        12,
        r"template placeholder \{customer\.nam\}: unknown path.*\(did you mean 'customer\.name'\?\)",
    ),
    ("template brace", HEAD + 'template = "{number"\n', 6, 12, r"unclosed '\{'"),
    (
        "not toml",
        '[tables.t]\nstream = "invoices\n',
        2,
        10,
        r"not valid TOML: unclosed string: the quote at column 10",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "column", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_error_names_file_line_column_and_alternative(
    tmp_path: Path, text: str, line: int, column: int, pattern: str
) -> None:
    path = write(tmp_path, text, "csv.toml")
    errors = check_mapping(path)
    assert errors, "expected an error"
    matching = [e for e in errors if re.search(pattern, str(e))]
    assert matching, [str(e) for e in errors]
    error = matching[0]
    assert str(error).startswith(f"{path}:{line}:{column}: "), str(error)
    assert (error.file, error.line, error.column) == (str(path), line, column)
    with pytest.raises(MappingError, match=re.escape(f"csv.toml:{line}:{column}")):
        load_mapping(path)


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD + 'from = "totl"\n\n[[tables.t.fields]]\nname = "b"\nfrom = "id"\ntransforms = ["uper"]\n',
    )
    errors = check_mapping(path)
    assert [(e.line, e.column) for e in errors] == [(6, 8), (11, 15)]
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    text = str(info.value)
    assert "m.toml:6:8:" in text and "m.toml:11:15:" in text


def test_appended_broken_table_in_the_shipped_csv_mapping(tmp_path: Path) -> None:
    path = tmp_path / "csv.toml"
    shutil.copy(MAPPINGS / "csv.toml", path)
    lines = path.read_text(encoding="utf-8").count("\n")
    with path.open("a", encoding="utf-8") as fh:
        fh.write('\n[tables.broken]\nstream = "invoicez"\n')
    with pytest.raises(MappingError, match=r"csv\.toml:(\d+):10: .*did you mean 'invoices'") as info:
        load_mapping(path)
    assert info.value.line == lines + 3


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    errors = check_mapping(tmp_path / "nope.toml")
    assert len(errors) == 1 and "nope.toml" in str(errors[0]) and "cannot read" in str(errors[0])


SPECS = {
    "journal": TableSpec("invoices", frozenset({"account", "amount"})),
    "payments": TableSpec("transactions", frozenset({"amount"})),
}


def test_connector_table_specs_report_missing_columns_unknown_tables_and_wrong_streams(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        '[tables.journal]\nstream = "invoices"\nfields = [{ name = "amount", from = "total" }]\n\n'
        '[tables.journl]\nstream = "invoices"\nfields = [{ name = "amount", from = "total" }]\n',
    )
    messages = [str(e) for e in check_mapping(path, SPECS)]
    assert any(
        re.search(r"m\.toml:1:1: tables\.journal: missing column 'account' required by the connector", m)
        for m in messages
    )
    assert any(
        re.search(
            r"m\.toml:5:1: tables\.journl: the connector has no table 'journl'.*did you mean 'journal'", m
        )
        for m in messages
    )
    assert any("missing table [tables.payments]" in m for m in messages)
    wrong = write(
        tmp_path,
        '[tables.payments]\nstream = "invoices"\nfields = [{ name = "amount", from = "total" }]\n',
        "w.toml",
    )
    messages = [str(e) for e in check_mapping(wrong, {"payments": SPECS["payments"]})]
    assert any(re.search(r"w\.toml:2:10: .*must be fed by stream 'transactions'", m) for m in messages)
