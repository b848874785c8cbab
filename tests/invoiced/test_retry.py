"""The retry policy: Retry-After, backoff with jitter, attempt and time bounds, logging, stats."""

from __future__ import annotations

import httpx
import pytest
from structlog.testing import capture_logs

from syncd.errors import RetryableApiError
from syncd.invoiced import RetryPolicy

from .conftest import BASE, Script, json_response

OK = json_response(200, '[{"id": 1}]')
THROTTLED = '{"type": "api", "message": "Too many requests"}'


def test_429_retry_after_seconds_is_honoured(make_client, sleeps) -> None:
    script = Script(json_response(429, THROTTLED, {"Retry-After": "7"}), OK)
    client = make_client(script)
    assert client.get_page("/invoices", None).items == [{"id": 1}]
    assert sleeps == [7.0]
    assert len(script.requests) == 2
    assert client.stats.snapshot() == {
        "requests": 2,
        "retries": 1,
        "throttled": 1,
        "server_errors": 0,
        "transport_errors": 0,
        "waits": 1,
        "waited": 7.0,
    }


def test_429_retry_after_http_date_is_measured_on_the_server_clock(make_client, sleeps) -> None:
    headers = {"Date": "Wed, 21 Oct 2015 07:28:00 GMT", "Retry-After": "Wed, 21 Oct 2015 07:28:12 GMT"}
    client = make_client(Script(json_response(429, THROTTLED, headers), OK))
    client.get_page("/invoices", None)
    assert sleeps == [12.0]


def test_retry_after_in_the_past_means_no_wait(make_client, sleeps) -> None:
    headers = {"Date": "Wed, 21 Oct 2015 07:28:00 GMT", "Retry-After": "Wed, 21 Oct 2015 07:27:00 GMT"}
    make_client(Script(json_response(429, THROTTLED, headers), OK)).get_page("/invoices", None)
    assert sleeps == [0.0]


def test_503_with_retry_after_is_honoured_too(make_client, sleeps) -> None:
    make_client(Script(json_response(503, "{}", {"Retry-After": "3"}), OK)).get_page("/x", None)
    assert sleeps == [3.0]


@pytest.mark.parametrize(
    "failure",
    [
        json_response(500, '{"type": "api", "message": "Internal error"}'),
        json_response(502, "Bad gateway"),
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("peer closed connection"),
    ],
    ids=["500", "502", "connect", "read-timeout", "protocol"],
)
def test_5xx_and_transport_errors_back_off_exponentially_with_jitter(make_client, sleeps, failure) -> None:
    waits: dict[int, set[float]] = {n: set() for n in range(1, 6)}
    for _ in range(20):
        sleeps.clear()
        client = make_client(Script(failure, failure, failure, failure, failure, OK), base=1.0, max_wait=6.0)
        assert client.get_page("/invoices", None).items == [{"id": 1}]
        assert len(sleeps) == 5
        for attempt, wait in enumerate(sleeps, start=1):
            ceiling = min(2.0 ** (attempt - 1), 6.0)
            assert ceiling / 2 <= wait <= ceiling, (attempt, wait)
            waits[attempt].add(wait)
    # Jitter: twenty runs do not wait the same.
    assert all(len(values) > 1 for values in waits.values())


def test_stats_count_each_kind_of_failure(make_client, sleeps) -> None:
    client = make_client(
        Script(
            json_response(429, THROTTLED, {"Retry-After": "1"}),
            json_response(500, "{}"),
            httpx.ConnectError("refused"),
            OK,
        )
    )
    client.get_page("/invoices", None)
    assert client.stats.snapshot() == {
        "requests": 4,
        "retries": 3,
        "throttled": 1,
        "server_errors": 1,
        "transport_errors": 1,
        "waits": 3,
        "waited": round(sum(sleeps), 3),
    }


def test_gives_up_after_the_attempts_and_raises_the_last_error(make_client, sleeps) -> None:
    script = Script(json_response(500, '{"type": "api", "message": "Internal error"}'))
    client = make_client(script, attempts=4)
    with pytest.raises(RetryableApiError) as info:
        client.get_page("/invoices", {"per_page": "100"})
    assert len(script.requests) == 4
    assert len(sleeps) == 3
    err = info.value
    assert (err.status, err.type, err.message, err.method) == (500, "api", "Internal error", "GET")
    assert err.url == f"{BASE}/invoices?per_page=100"
    assert err.outcome_unknown is False  # type: ignore[attr-defined]


def test_gives_up_before_a_wait_would_exceed_the_budget(make_client, sleeps) -> None:
    script = Script(json_response(503, "{}", {"Retry-After": "3"}))
    client = make_client(script, attempts=100, budget=10.0)
    with pytest.raises(RetryableApiError):
        client.get_page("/invoices", None)
    assert sleeps == [3.0, 3.0, 3.0]  # a fourth wait would end at 12 s > 10 s
    assert len(script.requests) == 4


def test_budget_bounds_jittered_backoff_too(make_client, sleeps) -> None:
    for _ in range(10):
        sleeps.clear()
        with pytest.raises(RetryableApiError):
            make_client(
                Script(httpx.ConnectError("refused")), attempts=100, budget=20.0, base=2.0, max_wait=4.0
            ).get("/x")
        assert 20.0 - 4.0 < sum(sleeps) <= 20.0


def test_retry_after_longer_than_the_rate_limit_budget_raises_at_once_with_the_hint(make_client, sleeps) -> None:
    script = Script(json_response(429, THROTTLED, {"Retry-After": "600"}))
    client = make_client(script, budget=1.0, rate_limit_budget=60.0)
    with pytest.raises(RetryableApiError) as info:
        client.get_page("/invoices", None)
    assert sleeps == []
    assert len(script.requests) == 1
    assert info.value.retry_after == 600.0
    assert info.value.status == 429


def test_each_retry_is_logged(make_client, sleeps) -> None:
    client = make_client(
        Script(json_response(429, THROTTLED, {"Retry-After": "2"}), httpx.ReadTimeout("timed out"), OK)
    )
    with capture_logs() as logs:
        client.get_page("/invoices", {"updated_after": "5"})
    retries = [entry for entry in logs if entry["event"] == "api.retry"]
    assert len(retries) == 2
    first, second = retries
    assert first["log_level"] == "debug"  # a 429: the run logs `api.waiting` instead
    assert second["log_level"] == "warning"
    assert (first["status"], first["attempt"], first["wait"], first["method"]) == (429, 1, 2.0, "GET")
    assert first["url"] == f"{BASE}/invoices?updated_after=5"
    assert (second["status"], second["attempt"], second["wait"]) == (None, 2, round(sleeps[1], 3))
    assert "ReadTimeout" in second["error"]


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
