"""The API key never shows in an error, a log line or a URL the client reports."""

from __future__ import annotations

import io
import json
import socket

import pytest
from structlog.testing import capture_logs

from syncd import log
from syncd.errors import ApiError, RetryableApiError
from syncd.invoiced import InvoicedClient, RetryPolicy
from syncd.invoiced.decode import safe_url

SECRET = "sk_live_T0pSecretValue9"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_no_secret_in_errors_or_retry_logs_even_with_userinfo_in_the_url(sleeps) -> None:
    port = _closed_port()
    client = InvoicedClient.connect(
        f"http://{SECRET}:@127.0.0.1:{port}", SECRET, policy=RetryPolicy(attempts=3, sleep=sleeps)
    )
    try:
        with capture_logs() as logs, pytest.raises(RetryableApiError) as info:
            client.get_page("/customers", {"api_key": SECRET, "per_page": "1"})
    finally:
        client.close()
    err = info.value
    assert err.url is not None
    assert err.url.startswith(f"http://127.0.0.1:{port}/customers?")
    assert client.stats.transport_errors == 3
    texts = [str(err), repr(err), err.url, err.message, json.dumps(logs, default=str)]
    assert len([e for e in logs if e["event"] == "api.retry"]) == 2
    for text in texts:
        assert SECRET not in text


def test_connect_registers_the_key_with_the_log_redactor() -> None:
    InvoicedClient.connect("http://127.0.0.1:9", SECRET).close()
    out = io.StringIO()
    log.configure(json=True, stream=out)
    try:
        log_line = f"server said: invalid key {SECRET}"
        import structlog

        structlog.get_logger("t").warning("api.error", message=log_line)
    finally:
        structlog.reset_defaults()
    assert SECRET not in out.getvalue()
    assert "invalid key ***" in out.getvalue()


def test_error_body_echoing_the_key_is_redacted(make_client) -> None:
    import httpx

    log.register_secret(SECRET)
    client = make_client(
        lambda _: httpx.Response(401, json={"type": "invalid_request", "message": f"bad key {SECRET}"})
    )
    with pytest.raises(ApiError) as info:
        client.get("/customers/1")
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://key123:@api.invoiced.com/customers?page=2", "https://api.invoiced.com/customers?page=2"),
        ("https://api.invoiced.com/x?token=abc&page=2", "https://api.invoiced.com/x?token=%2A%2A%2A&page=2"),
        (
            "https://api.invoiced.com/x?page=2&sort=updated_at+asc",
            "https://api.invoiced.com/x?page=2&sort=updated_at+asc",
        ),
    ],
)
def test_safe_url(url: str, expected: str) -> None:
    assert safe_url(url) == expected
