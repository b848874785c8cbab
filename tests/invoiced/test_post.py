"""POSTs: exact JSON, Idempotency-Key, retried only when surely not applied."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from syncd.errors import FatalApiError, RetryableApiError

from .conftest import BASE, Script, json_response

CREATED = json_response(201, '{"id": 20939, "object": "transaction", "amount": 800.10, "invoice": 44648}')
PAYMENT = {
    "type": "payment",
    "invoice": 44648,
    "method": "check",
    "gateway_id": "1450",
    "amount": Decimal("800.10"),
}


def test_post_sends_exact_json_and_the_idempotency_key(make_client) -> None:
    script = Script(CREATED)
    created = make_client(script).post("/transactions", PAYMENT, idempotency_key="syncd-pay-42")
    assert created["id"] == 20939
    assert created["amount"] == Decimal("800.10")
    request = script.requests[0]
    assert request.method == "POST"
    assert request.url == f"{BASE}/transactions"
    assert request.headers["idempotency-key"] == "syncd-pay-42"
    assert request.headers["content-type"] == "application/json"
    assert b'"amount":800.10' in request.content  # a JSON number, digits as given
    assert json.loads(request.content, parse_float=Decimal) == PAYMENT


def test_post_without_key_sends_no_idempotency_header(make_client) -> None:
    script = Script(CREATED)
    make_client(script).post("/transactions", {"amount": Decimal("1")})
    assert "idempotency-key" not in script.requests[0].headers


@pytest.mark.parametrize(
    "failure",
    [
        json_response(500, '{"type": "api", "message": "Internal error"}'),
        json_response(503, "{}", {"Retry-After": "1"}),
        httpx.ReadTimeout("timed out"),
        httpx.WriteError("broken pipe"),
        httpx.RemoteProtocolError("peer closed connection"),
    ],
    ids=["500", "503", "read-timeout", "write-error", "protocol"],
)
def test_post_is_not_retried_when_it_may_have_been_applied(make_client, sleeps, failure) -> None:
    script = Script(failure, CREATED)
    client = make_client(script)
    with pytest.raises(RetryableApiError) as info:
        client.post("/transactions", PAYMENT, idempotency_key="k1")
    assert len(script.requests) == 1
    assert sleeps == []
    assert info.value.outcome_unknown is True  # type: ignore[attr-defined]
    assert info.value.method == "POST"
    assert info.value.url == f"{BASE}/transactions"


def test_post_is_retried_on_429_honouring_retry_after(make_client, sleeps) -> None:
    script = Script(
        json_response(429, '{"type": "api", "message": "slow down"}', {"Retry-After": "4"}), CREATED
    )
    client = make_client(script)
    assert client.post("/transactions", PAYMENT, idempotency_key="k1")["id"] == 20939
    assert sleeps == [4.0]
    assert len(script.requests) == 2
    assert [r.headers["idempotency-key"] for r in script.requests] == ["k1", "k1"]
    assert script.requests[0].content == script.requests[1].content


def test_post_is_retried_when_the_connection_never_opened(make_client, sleeps) -> None:
    script = Script(httpx.ConnectError("connection refused"), CREATED)
    assert make_client(script).post("/transactions", PAYMENT)["id"] == 20939
    assert len(script.requests) == 2
    assert len(sleeps) == 1


def test_post_throttled_past_the_rate_limit_budget_is_known_not_applied(make_client) -> None:
    # 429s use no attempt: only the rate-limit budget ends them (3 s of 1 s waits: 4 tries).
    client = make_client(Script(json_response(429, "{}", {"Retry-After": "1"})), attempts=2, rate_limit_budget=3)
    with pytest.raises(RetryableApiError) as info:
        client.post("/transactions", PAYMENT)
    assert info.value.outcome_unknown is False  # type: ignore[attr-defined]
    assert client.stats.throttled == 4


def test_post_4xx_is_fatal_with_the_param(make_client, sleeps) -> None:
    body = '{"type": "invalid_request", "message": "Amount must be greater than 0", "param": "amount"}'
    script = Script(json_response(400, body))
    with pytest.raises(FatalApiError) as info:
        make_client(script).post("/transactions", {**PAYMENT, "amount": Decimal("0")})
    assert (info.value.status, info.value.type, info.value.param) == (400, "invalid_request", "amount")
    assert "Amount must be greater than 0 (param: amount)" in str(info.value)
    assert len(script.requests) == 1


def test_garbled_answer_to_a_post_is_outcome_unknown(make_client) -> None:
    script = Script(httpx.Response(201, content=b'{"id": 209'))
    with pytest.raises(RetryableApiError) as info:
        make_client(script).post("/transactions", PAYMENT)
    assert info.value.outcome_unknown is True  # type: ignore[attr-defined]
    assert len(script.requests) == 1
