"""Mappings that would refuse every record are caught by `syncd mappings check`, at file:line:col,
and a sync refuses to start with them: none reaches a dead letter."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from syncd.cli import app
from syncd.config import load_settings
from syncd.engine import run_sync
from syncd.errors import ConfigError
from syncd.store import Store
from tests.mapping.helpers import MAPPINGS

runner = CliRunner()


def extra(stream: str, field: str, rows: str = "") -> str:
    """A CSV table of one column (`field` is the body of its [[fields]] section)."""
    rows_line = f'rows = "{rows}"\n' if rows else ""
    return (
        f'\n[tables.extra]\nstream = "{stream}"\n{rows_line}\n[[tables.extra.fields]]\nname = "x"\n{field}\n'
    )


# id, connector (ledger dialect after ':'), edit: text appended (CSV) or (old, new) in the shipped
# file, the text the error points at (its first occurrence in the edited file), what it says.
CASES: list[tuple[str, str, str | tuple[str, str], str, str]] = [
    (
        "money on text",
        "csv",
        extra("invoices", 'from = "number"\ntransforms = ["money"]'),
        '"money"',
        r"money needs a number, but 'number' is text",
    ),
    (
        "date on an invoice number",
        "csv",
        extra("invoices", 'from = "number"\ntransforms = ["date"]'),
        '"date"',
        r"date needs a unix timestamp",
    ),
    (
        "sum on a scalar",
        "csv",
        extra("invoices", 'from = "total"\ntransforms = ["sum"]'),
        '"sum"',
        r"sum adds up the elements of a list, but 'total' is a decimal number",
    ),
    (
        "sum of texts",
        "csv",
        extra("invoices", 'from = "items[].name"\ntransforms = ["sum"]'),
        '"sum"',
        r"sum needs numbers",
    ),
    (
        "decimal on a name",
        "csv",
        extra("invoices", 'from = "customer.name"\ntransforms = ["decimal"]'),
        '"decimal"',
        r"decimal needs a number, but 'customer.name' is text",
    ),
    (
        "money after upper",
        "csv",
        extra("invoices", 'from = "total"\ntransforms = ["upper", "money"]'),
        '"money"',
        r"money needs a number, but 'total' is .*text",
    ),
    (
        "datetime on a status",
        "csv",
        extra("invoices", 'from = "status"\ntransforms = ["datetime"]'),
        '"datetime"',
        r"datetime needs a unix timestamp",
    ),
    (
        "money on a text constant",
        "csv",
        extra("invoices", 'value = "abc"\ntransforms = ["money"]'),
        '"money"',
        r"the constant \"abc\" is text",
    ),
    (
        "date on a boolean",
        "csv",
        extra("invoices", 'from = "draft"\ntransforms = ["date"]'),
        '"date"',
        r"'draft' is a boolean",
    ),
    (
        "money on a card brand",
        "csv",
        extra("transactions", 'from = "payment_source.brand"\ntransforms = ["money"]'),
        '"money"',
        r"money needs a number",
    ),
    (
        "date on a line name",
        "csv",
        extra("invoices", 'from = "items[].name"\ntransforms = ["date"]', rows="items"),
        '"date"',
        r"date needs a unix timestamp, but 'items\[\]\.name' is text",
    ),
    (
        "decimal on an email",
        "csv",
        extra("customers", 'from = "email"\ntransforms = [{ decimal = 2 }]'),
        "{ decimal = 2 }",
        r"decimal needs a number",
    ),
    (
        "money on a template",
        "csv",
        extra("invoices", 'template = "{number}"\ntransforms = ["money"]'),
        '"money"',
        r"the template is text",
    ),
    (
        "toml duplicated key",
        "csv",
        '\n[tables.extra]\nstream = "invoices"\nstream = "customers"\n',
        'stream = "customers"',
        r"duplicate key 'stream': already set at line",
    ),
    (
        "toml unclosed string",
        "csv",
        '\n[tables.extra]\nstream = "invoices\n',
        '"invoices',
        r"unclosed string: the quote at column 10",
    ),
    (
        "toml table declared twice",
        "csv",
        '\n[tables.invoices]\nstream = "invoices"\n',
        "[tables.invoices]",
        r"table \[tables\.invoices\] is declared twice",
    ),
    (
        "ledger constant account",
        "ledger:hledger",
        ('value = "Liabilities:Sales Tax"', 'value = "income:sales"'),
        '"income:sales"',
        r"account 'income:sales' must start with one of Assets, .* \(did you mean 'Income:sales'\?\)",
    ),
    (
        "ledger bad account in a value table",
        "ledger:hledger",
        ('paypal = "Assets:Clearing:PayPal"', 'paypal = "Bank:PayPal"'),
        '"Bank:PayPal"',
        r"\[values\.cash_account\] 'paypal' .*must start with one of",
    ),
    (
        "ledger empty account part",
        "ledger:hledger",
        ('fallback = "Income:Sales" }', 'fallback = "Income::Sales:" }'),
        '"Income::Sales:"',
        r"has an empty part",
    ),
    (
        "beancount account characters",
        "ledger:beancount",
        ('value = "Income:Discounts"', 'value = "Income:Discounts & rebates"'),
        '"Income:Discounts & rebates"',
        r"Beancount account part 'Discounts & rebates'.*would be written as 'Income:Discounts-rebates'",
    ),
    (
        "ledger default account",
        "ledger:ledger",
        (
            'transforms = [{ default = "Unknown customer" }]\n\n[[tables.customers.fields]]\nname = "ar_account"\ntemplate = "Assets:Accounts Receivable:{name} ({number})"',
            'transforms = [{ default = "Unknown customer" }]\n\n[[tables.customers.fields]]\nname = "ar_account"\nfrom = "metadata.ar"\ntransforms = [{ default = "receivable" }]',
        ),
        '"receivable"',
        r"account 'receivable' must start with",
    ),
    (
        "ledger template root",
        "ledger:hledger",
        (
            'template = "Liabilities:Customer Credit:{name} ({number})"',
            'template = "liabilities:Credit:{name}"',
        ),
        '"liabilities:Credit:{name}"',
        r"account 'liabilities:Credit' must start with",
    ),
    (
        "ledger transaction type",
        "ledger:hledger",
        ('name = "type"\nfrom = "type"', 'name = "type"\nvalue = "payout"'),
        '"payout"',
        r"transaction type 'payout' is not one of adjustment, charge, payment, refund",
    ),
    (
        "ledger constant total",
        "ledger:hledger",
        ('name = "total"\nfrom = "total"\ntransforms = ["money"]', 'name = "total"\nvalue = "n/a"'),
        '"n/a"',
        r"'n/a' is not an amount",
    ),
    (
        "ledger inline map account",
        "ledger:hledger",
        (
            'transforms = [{ map = "revenue_account", fallback = "Income:Sales" }]',
            'transforms = [{ map = { product = "Revenue:Products" }, fallback = "Income:Sales" }]',
        ),
        "{ product",
        r"map 'product': account 'Revenue:Products' must start with",
    ),
    (
        "ledger currency constant",
        "ledger:hledger",
        (
            'name = "currency"\nfrom = "currency"\ntransforms = ["upper"]\n\n[[tables.transactions',
            'name = "currency"\nvalue = "US dollars"\n\n[[tables.transactions',
        ),
        '"US dollars"',
        r"'US dollars' is not a currency code",
    ),
]


def _position(text: str, snippet: str, start: int) -> tuple[int, int]:
    at = text.index(snippet, start)
    line = text.count("\n", 0, at) + 1
    return line, at - (text.rfind("\n", 0, at) + 1) + 1


def _write(tmp_path: Path, connector: str, edit: str | tuple[str, str]) -> tuple[Path, Path, str, int]:
    name, _, dialect = connector.partition(":")
    text = (MAPPINGS / f"{name}.toml").read_text(encoding="utf-8")
    if isinstance(edit, str):
        start = len(text)
        text += edit
    else:
        assert edit[0] in text, edit[0]
        start = text.index(edit[0])
        text = text.replace(edit[0], edit[1], 1)
    mapping = tmp_path / f"{name}.toml"
    mapping.write_text(text, encoding="utf-8")
    section = (
        f'dialect = "{dialect}"\npath = "{tmp_path / "books.journal"}"\n'
        if dialect
        else f'directory = "{tmp_path / "out"}"\n'
    )
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[invoiced]\nbase_url = "http://127.0.0.1:9"\napi_key = "k"\n[store]\nurl = "sqlite:///{tmp_path / "s.db"}"\n'
        + ("[connectors.csv]\nenabled = false\n" if name != "csv" else "")
        + f'[connectors.{name}]\nenabled = true\nmapping = "{mapping}"\n{section}',
        encoding="utf-8",
    )
    return config, mapping, text, start


@pytest.mark.parametrize(
    ("connector", "edit", "where", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_check_catches_it_at_file_line_column_and_no_record_is_refused(
    tmp_path: Path, connector: str, edit: str | tuple[str, str], where: str, pattern: str
) -> None:
    config, mapping, text, start = _write(tmp_path, connector, edit)
    line, column = _position(text, where, start)
    result = runner.invoke(
        app, ["--config", str(config), "mappings", "check", "--no-against-store"], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 1, result.output
    expected = f"{mapping}:{line}:{column}: "
    hits = [row for row in result.output.splitlines() if row.startswith(expected)]
    assert hits, f"nothing at {expected}\n{result.output}"
    assert any(re.search(pattern, row) for row in hits), result.output
    # A sync refuses the mapping before any record is mapped: no dead letter, no request.
    with pytest.raises(ConfigError, match="invalid mapping"):
        run_sync(load_settings(config))
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    try:
        assert store.count_dead_letters() == 0
    finally:
        store.close()


def test_there_are_at_least_twenty_cases() -> None:
    assert len(CASES) >= 20


def test_the_shipped_mappings_pass_for_every_ledger_dialect(tmp_path: Path) -> None:
    for dialect in ("hledger", "ledger", "beancount"):
        config, *_ = _write(tmp_path, f"ledger:{dialect}", ("\n", "\n"))
        result = runner.invoke(app, ["--config", str(config), "mappings", "check", "--no-against-store"])
        assert result.exit_code == 0, (dialect, result.output)


def test_several_independent_toml_errors_are_all_reported_in_words(tmp_path: Path) -> None:
    from syncd.mapping import check_mapping

    path = tmp_path / "m.toml"
    path.write_text(
        '[tables.t]\nstream = "invoices"\nstream = "customers"\n\n'  # 3: duplicate key
        '[[tables.t.fields]]\nname = "a\nfrom = "id"\n\n'  # 6: unclosed string
        '[[tables.t.fields]]\nname = "b"\ntransforms = ["upper",\n  "strip"\n\n'  # 11: unclosed list
        "[[tables.t.fields]]\nname = { x = 1,\n  y = 2 }\n",  # 15: inline table over two lines
        encoding="utf-8",
    )
    found = [(e.line, e.column, e.reason) for e in check_mapping(path)]
    assert [(line, col) for line, col, _ in found] == [(3, 1), (6, 8), (11, 1), (15, 16)], found
    assert "duplicate key 'stream': already set at line 2" in found[0][2]
    assert "unclosed string: the quote at column 8" in found[1][2]
    assert "unclosed list" in found[2][2]
    assert "unclosed inline table" in found[3][2]
