"""`ref_id`: the id a record names in `customer` / `invoice`, whatever form the API gives it."""

from __future__ import annotations

from collections import UserDict
from decimal import Decimal
from typing import Any

import pytest

from syncd.store.store import ref_id


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (15, "15"),
        ("cus_15", "cus_15"),
        ({"id": 15, "name": "Acme"}, "15"),  # expanded
        (UserDict({"id": "x"}), "x"),  # any mapping, not only dict
        ({"id": None}, None),
        ({"id": True}, None),
        ({}, None),
        (None, None),
        (True, None),  # a bool is not an id, though it is an int
        (False, None),
        (Decimal("7"), "7"),
    ],
)
def test_the_id_a_record_names(value: Any, expected: str | None) -> None:
    assert ref_id({"customer": value}, "customer") == expected


def test_a_missing_field_names_nothing() -> None:
    assert ref_id({"invoice": 3}, "customer") is None
