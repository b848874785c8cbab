"""Each transform of the vocabulary, applied through a real mapping file."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from syncd.errors import MappingError
from tests.mapping.helpers import apply, example, load, one_field, value

TS = 1_700_000_000  # 2023-11-14 22:13:20 UTC = 2023-11-14 17:13:20 in New York, 2023-11-15 07:13 in Tokyo


# -- dates ---------------------------------------------------------------------------------


def test_date_defaults_to_iso_date_in_utc(tmp_path: Path) -> None:
    m = one_field(tmp_path, "invoices", 'from = "date"\ntransforms = ["date"]')
    assert value(m, "invoices", {"date": TS}) == "2023-11-14"


def test_date_uses_the_step_timezone_over_the_file_default(tmp_path: Path) -> None:
    m = one_field(
        tmp_path,
        "invoices",
        'from = "date"\ntransforms = [{ date = "%d/%m/%Y %H:%M", tz = "Asia/Tokyo" }]',
        extra='[defaults]\ntimezone = "America/New_York"\n',
    )
    assert value(m, "invoices", {"date": TS}) == "15/11/2023 07:13"


def test_file_default_timezone_and_date_format_apply_to_bare_steps(tmp_path: Path) -> None:
    m = one_field(
        tmp_path,
        "invoices",
        'from = "date"\ntransforms = ["date"]',
        extra='[defaults]\ntimezone = "Asia/Tokyo"\ndate_format = "%Y%m%d"\n',
    )
    assert value(m, "invoices", {"date": TS}) == "20231115"


def test_datetime_is_iso_with_offset_by_default(tmp_path: Path) -> None:
    m = one_field(
        tmp_path, "invoices", 'from = "date"\ntransforms = [{ datetime = "iso", tz = "America/New_York" }]'
    )
    assert value(m, "invoices", {"date": TS}) == "2023-11-14T17:13:20-05:00"


def test_date_of_a_missing_value_stays_missing(tmp_path: Path) -> None:
    m = one_field(tmp_path, "invoices", 'from = "due_date"\ntransforms = ["date"]')
    assert value(m, "invoices", {"due_date": None}) is None
    assert value(m, "invoices", {}) is None


def test_date_of_text_fails_the_record_naming_table_column_and_line(tmp_path: Path) -> None:
    m = one_field(tmp_path, "invoices", 'from = "date"\ntransforms = ["date"]')
    with pytest.raises(MappingError, match=r"m\.toml:5: invoices 1: t\.v: expected a unix timestamp"):
        apply(m, "invoices", {"id": 1, "date": "yesterday"})


# -- money and decimals --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "amount", "expected"),
    [
        ("usd", Decimal("45"), "45.00"),
        ("eur", Decimal("51.15"), "51.15"),
        ("jpy", Decimal("1200"), "1200"),
        ("JPY", Decimal("1200.5"), "1201"),
        ("bhd", Decimal("1.2345"), "1.235"),
        ("kwd", Decimal("10"), "10.000"),
        (None, Decimal("3.005"), "3.01"),  # unknown currency: 2 digits
        ("usd", 12, "12.00"),
        ("usd", "7.1", "7.10"),
    ],
)
def test_money_rounds_to_the_currency_minor_unit(
    tmp_path: Path, currency: str | None, amount: object, expected: str
) -> None:
    m = one_field(tmp_path, "invoices", 'from = "total"\ntransforms = ["money"]')
    out = value(m, "invoices", {"total": amount, "currency": currency})
    assert isinstance(out, Decimal)
    assert str(out) == expected


def test_money_rounding_half_up_by_default_half_even_by_choice(tmp_path: Path) -> None:
    up = one_field(tmp_path, "invoices", 'from = "total"\ntransforms = ["money"]')
    assert str(value(up, "invoices", {"total": Decimal("0.125"), "currency": "usd"})) == "0.13"
    even = one_field(
        tmp_path,
        "invoices",
        'from = "total"\ntransforms = ["money"]',
        extra='[defaults]\nrounding = "half_even"\n',
    )
    assert str(value(even, "invoices", {"total": Decimal("0.125"), "currency": "usd"})) == "0.12"
    step = one_field(
        tmp_path, "invoices", 'from = "total"\ntransforms = [{ money = "currency", rounding = "half_even" }]'
    )
    assert str(value(step, "invoices", {"total": Decimal("0.135"), "currency": "usd"})) == "0.14"
    assert str(value(step, "invoices", {"total": Decimal("0.125"), "currency": "usd"})) == "0.12"


def test_money_reads_the_currency_from_another_path_and_digit_overrides(tmp_path: Path) -> None:
    m = one_field(
        tmp_path,
        "invoices",
        'from = "total"\ntransforms = [{ money = "metadata.ccy" }]',
        extra="[defaults]\ncurrency_digits = { XTS = 4 }\n",
    )
    assert (
        str(
            value(m, "invoices", {"total": Decimal("1.23456"), "currency": "usd", "metadata": {"ccy": "xts"}})
        )
        == "1.2346"
    )


def test_money_of_huge_amounts_is_exact(tmp_path: Path) -> None:
    m = one_field(tmp_path, "invoices", 'from = "total"\ntransforms = ["money"]')
    big = Decimal("123456789012345678901234567890.12")
    assert value(m, "invoices", {"total": big, "currency": "usd"}) == big


def test_money_on_line_rows_uses_the_invoice_currency(tmp_path: Path) -> None:
    m = one_field(tmp_path, "invoices", 'from = "items[].amount"\ntransforms = ["money"]', rows="items")
    rows = apply(m, "invoices", {"currency": "jpy", "items": [{"amount": Decimal("1000")}, {"amount": 5}]})[
        "t"
    ]
    assert [str(r["v"]) for r in rows] == ["1000", "5"]


def test_decimal_keeps_exact_value_or_rounds_to_given_digits(tmp_path: Path) -> None:
    exact = one_field(
        tmp_path, "invoices", 'from = "items[].unit_cost"\ntransforms = ["decimal"]', rows="items"
    )
    assert apply(exact, "invoices", {"items": [{"unit_cost": Decimal("0.1250")}]})["t"][0]["v"] == Decimal(
        "0.1250"
    )
    rounded = one_field(tmp_path, "invoices", 'from = "total"\ntransforms = [{ decimal = 1 }]')
    assert str(value(rounded, "invoices", {"total": Decimal("2.25")})) == "2.3"


def test_money_of_non_numbers_fails_the_record(tmp_path: Path) -> None:
    m = one_field(tmp_path, "invoices", 'from = "total"\ntransforms = ["money"]')
    with pytest.raises(MappingError, match=r"expected a number, got \"abc\""):
        apply(m, "invoices", {"total": "abc", "currency": "usd"})
    with pytest.raises(MappingError, match="expected a number"):
        apply(m, "invoices", {"total": True, "currency": "usd"})


# -- text --------------------------------------------------------------------------------------


def test_text_steps_chain_left_to_right(tmp_path: Path) -> None:
    m = one_field(tmp_path, "customers", 'from = "name"\ntransforms = ["strip", "upper", { truncate = 4 }]')
    assert value(m, "customers", {"name": "  acme corp  "}) == "ACME"
    low = one_field(tmp_path, "customers", 'from = "name"\ntransforms = ["lower"]')
    assert value(low, "customers", {"name": "ACME"}) == "acme"


def test_text_renders_decimals_and_booleans_plainly(tmp_path: Path) -> None:
    m = one_field(tmp_path, "invoices", 'from = "total"\ntransforms = ["text"]')
    assert value(m, "invoices", {"total": Decimal("1E+2")}) == "100"
    b = one_field(tmp_path, "invoices", 'from = "paid"\ntransforms = ["text", "upper"]')
    assert value(b, "invoices", {"paid": True}) == "TRUE"


def test_default_replaces_missing_and_empty_but_keeps_zero(tmp_path: Path) -> None:
    m = one_field(
        tmp_path, "invoices", 'from = "metadata.region"\ntransforms = ["strip", { default = "none" }]'
    )
    assert value(m, "invoices", {"metadata": {}}) == "none"
    assert value(m, "invoices", {"metadata": {"region": "   "}}) == "none"
    assert value(m, "invoices", {"metadata": {"region": " EU "}}) == "EU"
    zero = one_field(tmp_path, "invoices", 'from = "balance"\ntransforms = [{ default = 99 }]')
    assert value(zero, "invoices", {"balance": 0}) == 0
    assert value(zero, "invoices", {"balance": None}) == 99


def test_steps_after_a_missing_value_leave_it_missing(tmp_path: Path) -> None:
    m = one_field(tmp_path, "customers", 'from = "email"\ntransforms = ["strip", "upper", { truncate = 3 }]')
    assert value(m, "customers", {"email": None}) is None


# -- value tables --------------------------------------------------------------------------


def test_map_through_a_named_value_table_with_fallback(tmp_path: Path) -> None:
    m = one_field(
        tmp_path,
        "invoices",
        'from = "status"\ntransforms = [{ map = "stage", fallback = "qualifiedtobuy" }]',
        extra='[values.stage]\npaid = "closedwon"\nvoided = "closedlost"\n',
    )
    assert value(m, "invoices", {"status": "paid"}) == "closedwon"
    assert value(m, "invoices", {"status": "past_due"}) == "qualifiedtobuy"
    assert value(m, "invoices", {"status": None}) is None


def test_map_with_an_inline_table_matches_text_of_numbers_and_booleans(tmp_path: Path) -> None:
    m = one_field(
        tmp_path, "invoices", 'from = "paid"\ntransforms = [{ map = { true = "yes", false = "no" } }]'
    )
    assert value(m, "invoices", {"paid": True}) == "yes"
    assert value(m, "invoices", {"paid": False}) == "no"


def test_map_without_fallback_fails_the_record_naming_the_value(tmp_path: Path) -> None:
    m = one_field(
        tmp_path,
        "transactions",
        'from = "method"\ntransforms = [{ map = "accounts" }]',
        extra='[values.accounts]\ncheck = "Assets:Bank:Checks"\n',
    )
    assert value(m, "transactions", {"method": "check"}) == "Assets:Bank:Checks"
    with pytest.raises(
        MappingError, match=r"\"wire\" is not in \[values\.accounts\] and the step has no fallback"
    ):
        apply(m, "transactions", {"method": "wire"})


# -- lists -------------------------------------------------------------------------------------


def test_join_lists_skipping_missing_elements(tmp_path: Path) -> None:
    m = one_field(tmp_path, "invoices", 'from = "items[].name"\ntransforms = [{ join = " | " }]')
    assert value(m, "invoices", {"items": [{"name": "a"}, {"name": None}, {"name": "c"}]}) == "a | c"
    assert value(m, "invoices", {"items": []}) == ""
    assert value(m, "invoices", {}) == ""


def test_sum_is_exact_decimal(tmp_path: Path) -> None:
    m = one_field(tmp_path, "invoices", 'from = "taxes[].amount"\ntransforms = ["sum", "money"]')
    taxes = [{"amount": Decimal("0.1")}, {"amount": Decimal("0.2")}, {"amount": None}]
    assert value(m, "invoices", {"taxes": taxes, "currency": "usd"}) == Decimal("0.30")
    assert value(m, "invoices", {"taxes": [], "currency": "usd"}) == Decimal("0.00")


def test_nested_lists_flatten(tmp_path: Path) -> None:
    m = one_field(tmp_path, "invoices", 'from = "items[].taxes[].amount"\ntransforms = ["sum"]')
    items = [
        {"taxes": [{"amount": Decimal("1.10")}, {"amount": 2}]},
        {"taxes": [{"amount": Decimal("0.01")}]},
        {},
    ]
    assert value(m, "invoices", {"items": items}) == Decimal("3.11")


# -- sources -----------------------------------------------------------------------------------


def test_constant_values_keep_their_type_and_toml_floats_are_exact(tmp_path: Path) -> None:
    m = one_field(tmp_path, "invoices", "value = 0.1")
    out = value(m, "invoices", {})
    assert out == Decimal("0.1") and isinstance(out, Decimal)
    s = one_field(tmp_path, "invoices", 'value = "invoiced"\ntransforms = ["upper"]')
    assert value(s, "invoices", {}) == "INVOICED"


def test_template_fills_paths_and_keeps_literal_braces(tmp_path: Path) -> None:
    m = one_field(tmp_path, "invoices", 'template = "{number} – {customer.name} {{ref}} {metadata.po}"')
    inv = {"number": "INV-1", "customer": 9, "metadata": {}}
    assert value(m, "invoices", inv, others={("customers", "9"): {"name": "Acme"}}) == "INV-1 – Acme {ref} "


def test_example_invoice_through_every_kind_of_source(tmp_path: Path) -> None:
    inv, cust = example("invoicing/invoices/object.json"), example("customers/object.json")
    m = load(
        tmp_path,
        """
[tables.t]
stream = "invoices"
[[tables.t.fields]]
name = "who"
from = "customer.name"
[[tables.t.fields]]
name = "total"
from = "total"
transforms = ["money"]
[[tables.t.fields]]
name = "label"
template = "{number}/{customer.number}"
""",
    )
    row = apply(m, "invoices", inv, others={("customers", str(cust["id"])): cust})["t"][0]
    assert row == {"who": "Acme", "total": Decimal("51.15"), "label": "INV-0016/CUST-0001"}
    assert list(row) == ["who", "total", "label"]
