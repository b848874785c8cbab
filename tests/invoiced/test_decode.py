"""Header and body decoding at the API edge."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from syncd.invoiced.decode import dumps, http_date, loads, retry_after, total_count


def response(**headers: str) -> httpx.Response:
    return httpx.Response(429, headers=headers)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "5"}, 5.0),
        ({"Retry-After": " 2.5 "}, 2.5),
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({}, None),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT", "Date": "Wed, 21 Oct 2015 07:28:00 GMT"}, 30.0),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after(response(**headers)) == expected


def test_retry_after_date_without_server_date_uses_local_clock() -> None:
    # A date long past: no wait rather than a negative one.
    assert retry_after(response(**{"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT"})) == 0.0


def test_http_date_and_total_count_tolerate_junk() -> None:
    assert http_date("Wed, 21 Oct 2015 07:28:00 GMT") == 1445412480
    assert http_date("yesterday") is None
    assert http_date(None) is None
    assert total_count(httpx.Response(200, headers={"X-Total-Count": "42"})) == 42
    assert total_count(httpx.Response(200, headers={"X-Total-Count": "many"})) is None
    assert total_count(httpx.Response(200)) is None


def test_loads_keeps_money_exact_and_refuses_nan() -> None:
    assert loads(b'{"a": 0.1, "b": 1e2, "c": 7}') == {"a": Decimal("0.1"), "b": Decimal("1E+2"), "c": 7}
    with pytest.raises(ValueError, match="NaN"):
        loads(b'{"amount": NaN}')


def test_dumps_writes_decimal_as_exact_number() -> None:
    assert (
        dumps({"amount": Decimal("1234567890.123456789"), "n": 1}) == b'{"amount":1234567890.123456789,"n":1}'
    )
