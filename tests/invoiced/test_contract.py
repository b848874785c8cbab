"""Contract tests: cassettes built by hand from the documented requests and responses.

Each cassette (tests/cassettes/) says in its header which part of the reference it comes
from. `record_mode="none"`: nothing is ever recorded or sent; a request the docs do not
describe fails the test. Matching also requires every header a cassette request lists.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import vcr
from vcr.errors import CannotOverwriteExistingCassetteException

from syncd.errors import FatalApiError
from syncd.invoiced import InvoicedClient, RetryPolicy

from .conftest import Sleeps

API = "https://api.invoiced.com"
KEY = "sk_contract_key_0001"


def _json_body(r1: Any, r2: Any) -> None:
    def parse(body: Any) -> Any:
        if not body:
            return None
        return json.loads(body, parse_float=Decimal)

    assert parse(r1.body) == parse(r2.body)


def _declared_headers(r1: Any, r2: Any) -> None:
    # r2 is the cassette's request: the headers it lists are those the docs require.
    for name, value in r2.headers.items():
        assert r1.headers.get(name) == value, name


recorder = vcr.VCR(
    cassette_library_dir=str(Path(__file__).parent.parent / "cassettes"),
    record_mode="none",
    filter_headers=["authorization"],
    match_on=["method", "scheme", "host", "port", "path", "query", "json_body", "declared_headers"],
)
recorder.register_matcher("json_body", _json_body)
recorder.register_matcher("declared_headers", _declared_headers)


@pytest.fixture
def client(sleeps: Sleeps) -> Iterator[InvoicedClient]:
    client = InvoicedClient.connect(API, KEY, policy=RetryPolicy(sleep=sleeps))
    auth: list[str] = []
    client.http.event_hooks["request"].append(lambda request: auth.append(request.headers["authorization"]))
    yield client
    client.close()
    # Documented auth: HTTP Basic, the key as user name and an empty password.
    assert auth
    assert set(auth) == {"Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}


def test_list_customers_follows_the_documented_link_header(client: InvoicedClient) -> None:
    with recorder.use_cassette("customers_list.yaml") as cassette:
        params = {"per_page": "2", "sort": "updated_at asc", "updated_after": "1415222000"}
        pages = list(client.iter_pages("/customers", params))
        assert cassette.all_played
    assert [[c["id"] for c in p.items] for p in pages] == [[15444, 15445], [15446]]
    assert [p.total for p in pages] == [3, 3]
    assert (
        pages[0].next_url == f"{API}/customers?page=2&per_page=2&sort=updated_at+asc&updated_after=1415222000"
    )
    assert pages[1].next_url is None
    first = pages[0].items[0]
    assert (first["name"], first["number"], first["updated_at"]) == ("Acme", "CUST-0001", 1415222128)
    assert pages[0].server_time == 1795417200


def test_retrieve_invoice_parses_money_as_decimal(client: InvoicedClient) -> None:
    with recorder.use_cassette("invoice_retrieve.yaml") as cassette:
        invoice = client.get("/invoices/46225")
        assert cassette.all_played
    assert invoice["number"] == "INV-0016"
    assert invoice["total"] == Decimal("51.15")
    assert invoice["balance"] == Decimal("51.15")
    assert invoice["taxes"][0]["amount"] == Decimal("3.85")
    assert invoice["subtotal"] == 55
    assert sum(item["amount"] for item in invoice["items"]) == invoice["subtotal"]


def test_create_transaction_sends_json_with_idempotency_key(client: InvoicedClient) -> None:
    external = "bank:2026-11-20:1450"
    with recorder.use_cassette("transaction_create.yaml") as cassette:
        created = client.post(
            "/transactions",
            {
                "type": "payment",
                "invoice": 44648,
                "method": "check",
                "gateway_id": "1450",
                "amount": Decimal("800"),
                "metadata": {"syncd_external_id": external},
            },
            idempotency_key=f"syncd-{external}",
        )
        assert cassette.all_played
    assert (created["id"], created["object"], created["status"]) == (20939, "transaction", "succeeded")
    assert created["amount"] == 800
    assert created["metadata"] == {"syncd_external_id": external}


def test_documented_error_bodies_become_typed_errors(client: InvoicedClient, sleeps: Sleeps) -> None:
    with recorder.use_cassette("errors.yaml") as cassette:
        with pytest.raises(FatalApiError) as missing:
            client.get("/invoices/999999")
        with pytest.raises(FatalApiError) as invalid:
            client.post(
                "/transactions", {"type": "payment", "invoice": 44648, "method": "check", "amount": -5}
            )
        # 429 (Retry-After: 2), then 500, then the page: retried under the policy.
        page = client.get_page("/customers", {"per_page": "100"})
        assert cassette.all_played
    assert (missing.value.status, missing.value.type, missing.value.param) == (404, "invalid_request", "id")
    assert missing.value.message == "No such invoice: 999999"
    assert (invalid.value.status, invalid.value.param) == (400, "amount")
    assert str(invalid.value) == (
        f"HTTP 400 POST {API}/transactions: Amount must be a positive number (param: amount)"
    )
    assert page.items == []
    assert page.total == 0
    assert sleeps[0] == 2.0
    assert len(sleeps) == 2
    assert client.stats.throttled == 1
    assert client.stats.server_errors == 1


def test_an_undocumented_request_is_refused_not_sent(client: InvoicedClient) -> None:
    with (
        recorder.use_cassette("invoice_retrieve.yaml"),
        pytest.raises(CannotOverwriteExistingCassetteException),
    ):
        client.get("/invoices/46226")
