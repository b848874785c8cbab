"""The client against the local sandbox (loopback): paging under faults, idempotent create."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from syncd.errors import FatalApiError
from syncd.invoiced import InvoicedClient, RetryPolicy

from .conftest import Sleeps


def test_full_listing_under_429s_and_500s_is_complete(
    make_sandbox: Callable[..., Any], sleeps: Sleeps
) -> None:
    sandbox = make_sandbox(customers=40, invoices=0, transactions=0, seed=3)
    sandbox.knobs.p429, sandbox.knobs.p500 = 0.3, 0.05
    with InvoicedClient.connect(
        sandbox.url, sandbox.api_key, policy=RetryPolicy(attempts=30, sleep=sleeps)
    ) as client:
        pages = list(client.iter_pages("/customers", {"per_page": "2", "sort": "id asc"}))
    ids = [c["id"] for p in pages for c in p.items]
    assert len(ids) == len(set(ids)) == 40
    assert pages[0].total == 40
    assert client.stats.throttled > 0  # 20 pages at 30%: all but certain
    assert client.stats.retries == client.stats.waits
    # Its 429s carry no Retry-After: the pacer still slows the client (spacing sleeps).
    assert len(sleeps) >= client.stats.retries
    assert client.stats.requests == len(pages) + client.stats.retries


def test_create_with_the_same_idempotency_key_creates_once(make_sandbox: Callable[..., Any]) -> None:
    sandbox = make_sandbox(customers=3, invoices=5, transactions=0, seed=4)
    with InvoicedClient.connect(sandbox.url, sandbox.api_key) as client:
        invoice = next(i for i in client.get_page("/invoices", {"per_page": "5"}).items if i["balance"] > 0)
        payment = {
            "type": "payment",
            "invoice": invoice["id"],
            "amount": Decimal("0.01"),
            "method": "check",
            "currency": invoice["currency"],
        }
        first = client.post("/transactions", payment, idempotency_key="syncd-test-1")
        again = client.post("/transactions", payment, idempotency_key="syncd-test-1")
        assert first["id"] == again["id"]
        assert first["amount"] == Decimal("0.01")
        assert client.get(f"/invoices/{invoice['id']}")["balance"] == invoice["balance"] - Decimal("0.01")
        with pytest.raises(FatalApiError) as info:
            client.get("/invoices/99999999")
    assert (info.value.status, info.value.type) == (404, "invalid_request")
