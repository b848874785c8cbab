"""Applying a mapping: tables per stream, line rows, filters, references and expansion."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from syncd.mapping import load_mapping
from syncd.plugin import Record
from tests.mapping.helpers import MAPPINGS, apply, example, load

LINES = """
[streams.invoices]
skip = [{ path = "draft", equals = true }]

[tables.invoices]
stream = "invoices"
skip = [{ path = "status", in = ["voided", "pending"] }]
fields = [{ name = "id", from = "id" }, { name = "customer", from = "customer" }]

[tables.lines]
stream = "invoices"
rows = "items"
skip = [{ path = "items[].amount", equals = 0 }]
fields = [
  { name = "invoice", from = "number" },
  { name = "line", from = "items[].id" },
  { name = "amount", from = "items[].amount", transforms = ["money"] },
  { name = "taxes", from = "items[].taxes[].amount", transforms = ["sum"] },
]

[tables.people]
stream = "customers"
skip = [{ path = "metadata.region", not_in = ["EU", "US"] }, { path = "type", not_equals = "company" }]
fields = [{ name = "id", from = "id" }]
"""


def test_tables_columns_and_stream_routing(tmp_path: Path) -> None:
    m = load(tmp_path, LINES)
    assert m.tables_for("invoices") == ["invoices", "lines"]
    assert m.tables_for("customers") == ["people"]
    assert m.tables_for("transactions") == []
    assert m.columns() == {
        "invoices": ["id", "customer"],
        "lines": ["invoice", "line", "amount", "taxes"],
        "people": ["id"],
    }


def test_line_table_gives_one_row_per_item_with_invoice_fields(tmp_path: Path) -> None:
    m = load(tmp_path, LINES)
    inv = example("invoicing/invoices/object.json")
    out = apply(m, "invoices", inv)
    assert out["invoices"] == [{"id": 46225, "customer": 15444}]
    assert out["lines"] == [
        {"invoice": "INV-0016", "line": 7, "amount": Decimal("45.00"), "taxes": Decimal(0)},
        {"invoice": "INV-0016", "line": 8, "amount": Decimal("10.00"), "taxes": Decimal(0)},
    ]


def test_row_filter_skips_single_lines_and_record_without_items_has_no_rows(tmp_path: Path) -> None:
    m = load(tmp_path, LINES)
    inv = {
        "id": 1,
        "number": "I",
        "currency": "usd",
        "items": [{"id": 1, "amount": 0}, {"id": 2, "amount": 3}],
    }
    assert [r["line"] for r in apply(m, "invoices", inv)["lines"]] == [2]
    assert apply(m, "invoices", {"id": 2, "items": []})["lines"] == []
    assert apply(m, "invoices", {"id": 3})["lines"] == []


def test_stream_filter_skips_every_table_of_the_stream_and_table_filters_add(tmp_path: Path) -> None:
    m = load(tmp_path, LINES)
    draft = {"id": 1, "draft": True, "items": [{"id": 1, "amount": 5}]}
    assert apply(m, "invoices", draft) == {"invoices": [], "lines": []}
    voided = {"id": 2, "draft": False, "status": "voided", "items": [{"id": 1, "amount": 5}]}
    out = apply(m, "invoices", voided)
    assert out["invoices"] == [] and len(out["lines"]) == 1
    # draft = 1 is not the boolean true: booleans only match booleans
    assert len(apply(m, "invoices", {"id": 3, "draft": 1})["invoices"]) == 1


def test_not_in_and_not_equals_skip_missing_values(tmp_path: Path) -> None:
    m = load(tmp_path, LINES)
    keep = {"id": 1, "type": "company", "metadata": {"region": "EU"}}
    assert apply(m, "customers", keep)["people"] == [{"id": 1}]
    assert apply(m, "customers", {**keep, "metadata": {}})["people"] == []
    assert apply(m, "customers", {**keep, "type": "person"})["people"] == []
    assert apply(m, "customers", {"id": 1, "metadata": {"region": "EU"}})["people"] == []


def test_numbers_compare_by_value_and_text_compares_to_numbers(tmp_path: Path) -> None:
    m = load(
        tmp_path,
        '[tables.t]\nstream = "transactions"\nskip = [{ path = "amount", equals = 0 }, { path = "invoice", in = ["12"] }]\n'
        'fields = [{ name = "id", from = "id" }]\n',
    )
    assert apply(m, "transactions", {"id": 1, "amount": Decimal("0.00")})["t"] == []
    assert apply(m, "transactions", {"id": 1, "amount": 1, "invoice": 12})["t"] == []
    assert apply(m, "transactions", {"id": 1, "amount": 1, "invoice": 13})["t"] == [{"id": 1}]


REFS = """
[tables.t]
stream = "transactions"
fields = [
  { name = "customer", from = "customer" },
  { name = "customer_id", from = "customer.id" },
  { name = "customer_name", from = "customer.name" },
  { name = "invoice_number", from = "invoice.number" },
  { name = "invoice_customer", from = "invoice.customer.name" },
]
"""


def test_references_read_the_expanded_object_or_the_stored_record(tmp_path: Path) -> None:
    m = load(tmp_path, REFS)
    assert m.expands("transactions") == {"customer", "invoice"}
    calls: list[tuple[str, str]] = []
    stored: dict[tuple[str, str], dict[str, Any]] = {
        ("customers", "5"): {"id": 5, "name": "Acme"},
        ("invoices", "9"): {"id": 9, "number": "INV-9", "customer": 5},
    }

    def resolve(stream: str, rid: str) -> dict[str, Any] | None:
        calls.append((stream, rid))
        return stored.get((stream, rid))

    by_id = m.apply(Record("transactions", "1", 0, {"id": 1, "customer": 5, "invoice": 9}), resolve)["t"][0]
    assert by_id == {
        "customer": 5,
        "customer_id": 5,
        "customer_name": "Acme",
        "invoice_number": "INV-9",
        "invoice_customer": "Acme",
    }
    calls.clear()
    expanded = {
        "id": 1,
        "customer": {"id": 5, "name": "Acme (expanded)"},
        "invoice": {"id": 9, "number": "INV-9", "customer": {"id": 5, "name": "X"}},
    }
    row = m.apply(Record("transactions", "1", 0, expanded), resolve)["t"][0]
    assert row == {
        "customer": 5,
        "customer_id": 5,
        "customer_name": "Acme (expanded)",
        "invoice_number": "INV-9",
        "invoice_customer": "X",
    }
    assert calls == []  # nothing looked up when the API expanded the references


def test_unknown_references_are_missing_not_errors(tmp_path: Path) -> None:
    m = load(tmp_path, REFS)
    row = apply(m, "transactions", {"id": 1, "customer": 404, "invoice": None})["t"][0]
    assert row == {
        "customer": 404,
        "customer_id": 404,
        "customer_name": None,
        "invoice_number": None,
        "invoice_customer": None,
    }


def test_expands_only_what_paths_need(tmp_path: Path) -> None:
    m = load(
        tmp_path,
        '[tables.t]\nstream = "invoices"\nfields = [{ name = "c", from = "customer" }, { name = "i", from = "customer.id" }]\n',
    )
    assert m.expands("invoices") == set()
    shipped = load_mapping(MAPPINGS / "csv.toml")
    assert shipped.expands("invoices") == {"customer"}
    assert shipped.expands("customers") == set()


def test_shipped_csv_mapping_has_the_documented_tables(tmp_path: Path) -> None:
    m = load_mapping(MAPPINGS / "csv.toml")
    columns = m.columns()
    assert list(columns) == ["customers", "invoices", "invoice_lines", "transactions"]
    assert columns["customers"][0] == "id"
    assert {"invoice_id", "invoice_number", "amount"} <= set(columns["invoice_lines"])
    inv, cust = example("invoicing/invoices/object.json"), example("customers/object.json")
    out = apply(m, "invoices", inv, others={("customers", "15444"): cust})
    assert out["invoices"][0]["customer_name"] == "Acme"
    assert out["invoices"][0]["date"] == "2014-11-18"
    assert out["invoices"][0]["taxes"] == Decimal("3.85")
    assert [r["amount"] for r in out["invoice_lines"]] == [Decimal("45.00"), Decimal("10.00")]
