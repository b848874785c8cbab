"""The page contract at the edge: the limits themselves, without a server."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.invoiced.contract import MAX_AHEAD, MAX_DEPTH, MAX_SKEW, ContractError, check_page

NOW = 1_700_000_000


def test_a_good_page_passes_whole() -> None:
    items = [{"id": 1, "updated_at": NOW}, {"id": "in_2", "updated_at": NOW + MAX_SKEW, "date": None}]
    assert check_page("/invoices", items, NOW, dated=True, now=NOW) == items


def test_clock_skew_is_judged_against_the_date_header_only_when_there_is_one() -> None:
    late = [{"id": 1, "updated_at": NOW + MAX_SKEW + 1}]
    with pytest.raises(
        ContractError, match=r"GET /invoices: record 1 of 1 .* 301 s after the response's Date"
    ):
        check_page("/invoices", late, NOW, now=NOW)
    assert check_page("/invoices", late, None, now=NOW) == late


def test_a_date_header_a_day_ahead_of_our_clock_breaks_the_contract_even_on_an_empty_page() -> None:
    assert check_page("/customers", [], NOW + MAX_AHEAD, now=NOW) == []
    with pytest.raises(ContractError, match=r"^GET /customers breaks the API contract: its Date header"):
        check_page("/customers", [], NOW + MAX_AHEAD + 1, now=NOW)


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({"id": True, "updated_at": NOW}, "id True is not"),
        ({"id": "  ", "updated_at": NOW}, "is not a non-empty string"),
        ({"id": 1, "updated_at": -5}, "updated_at -5 is not a unix time"),
        ({"id": 1, "updated_at": False}, "updated_at False is not"),
        ({"id": "x" * 100, "updated_at": None}, "id 'xxxxxxxx"),
    ],
)
def test_every_reason_names_the_record_and_stays_on_one_line(item: dict[str, Any], reason: str) -> None:
    page = [{"id": 9, "updated_at": NOW}, item]
    with pytest.raises(ContractError) as caught:
        check_page("/customers", page, NOW, now=NOW)
    text = str(caught.value)
    assert text.startswith("GET /customers: record 2 of 2 breaks the API contract: ")
    assert reason in text and "\n" not in text and len(text) < 250


def test_nesting_limit_is_exact() -> None:
    def nested(depth: int) -> Any:
        value: Any = 1
        for _ in range(depth):
            value = [value]
        return value

    ok = {"id": 1, "updated_at": NOW, "x": nested(MAX_DEPTH - 1)}
    assert check_page("/invoices", [ok], NOW, now=NOW) == [ok]
    with pytest.raises(ContractError, match="nested deeper"):
        check_page("/invoices", [{**ok, "x": nested(MAX_DEPTH)}], NOW, now=NOW)
