"""429s are the server pacing the client: no failure attempt used, waits visible; request deadlines."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest
from structlog.testing import capture_logs

from syncd.errors import RetryableApiError
from syncd.invoiced import InvoicedClient, RetryPolicy

from .conftest import Script, json_response

OK = json_response(200, '[{"id": 1}]')
SLOW_DOWN = '{"type": "api", "message": "Too many requests"}'


def throttled(retry_after: str | None = "1") -> httpx.Response:
    return json_response(429, SLOW_DOWN, {"Retry-After": retry_after} if retry_after else None)


def test_a_429_storm_uses_none_of_the_attempts_meant_for_failures(make_client, sleeps) -> None:
    answers = [throttled() for _ in range(12)] + [throttled(None) for _ in range(4)]
    answers += [json_response(503, "{}"), OK]
    script = Script(*answers)
    client = make_client(script, attempts=2)
    assert client.get_page("/invoices", None).items == [{"id": 1}]
    assert len(script.requests) == 18
    stats = client.stats.snapshot()
    assert (stats["throttled"], stats["server_errors"], stats["retries"], stats["waits"]) == (16, 1, 17, 17)
    assert stats["waited"] == pytest.approx(sum(sleeps), abs=0.001)
    # Backoff counts each kind apart: the bare 429s start over from 0.5 s, so does the 503.
    assert sleeps[:12] == [1.0] * 12
    assert [0.25 <= s <= 0.5 for s in (sleeps[12], sleeps[16])] == [True, True]
    # The two attempts are for failures: a second 503 gives up.
    client = make_client(Script(throttled(), json_response(503, "{}")), attempts=2)
    with pytest.raises(RetryableApiError) as info:
        client.get_page("/invoices", None)
    assert info.value.status == 503


def test_rate_limit_waits_end_at_the_run_budget_with_a_one_line_error(make_client, sleeps) -> None:
    script = Script(throttled("5"))
    client = make_client(script, attempts=2, rate_limit_budget=20)
    with pytest.raises(RetryableApiError) as info:
        client.get_page("/invoices", {"per_page": "100"})
    assert sleeps == [5.0, 5.0, 5.0, 5.0]
    assert client.stats.throttled == 5
    assert info.value.status == 429 and "\n" not in str(info.value)
    # The budget is the run's, not the request's: the next request gives up at once.
    with pytest.raises(RetryableApiError):
        client.get_page("/customers", None)
    assert client.stats.throttled == 6
    client.pacer.reset_budget()  # a new run
    script.answers = [OK]
    assert client.get_page("/customers", None).items == [{"id": 1}]


def test_every_wait_is_announced_with_seconds_and_reason(make_client, sleeps) -> None:
    client = make_client(
        Script(throttled("2"), json_response(503, "{}", {"Retry-After": "1.5"}), httpx.ReadTimeout("slow"), OK)
    )
    seen: list[tuple[float, str]] = []
    client.on_wait = lambda seconds, reason: seen.append((seconds, reason))
    client.get_page("/invoices", None)
    assert seen[:2] == [(2.0, "rate limited"), (1.5, "server error 503")]
    assert seen[2][1] == "network error (ReadTimeout)"
    assert len(seen) == 3


def test_a_failing_wait_hook_does_not_fail_the_request(make_client) -> None:
    client = make_client(Script(throttled(), OK))

    def broken(seconds: float, reason: str) -> None:
        raise RuntimeError("display gone")

    client.on_wait = broken
    assert client.get_page("/invoices", None).items == [{"id": 1}]


def test_rate_limit_waits_are_logged_once_per_few_seconds_not_per_request(make_client, sleeps) -> None:
    client = make_client(Script(*[throttled("1") for _ in range(20)], OK))
    with capture_logs() as logs:
        client.get_page("/invoices", None)
    waiting = [e for e in logs if e["event"] == "api.waiting"]
    assert 1 <= len(waiting) <= 5  # twenty 1 s waits, one line per 5 s at most
    first = waiting[0]
    assert (first["seconds"], first["reason"], first["log_level"]) == (1.0, "rate limited", "info")
    assert not [e for e in logs if e["event"] == "api.retry" and e["log_level"] != "debug"]


def test_threads_of_one_client_share_the_pause_of_a_429(make_client, sleeps) -> None:
    # Another thread just drew a 429 asking for 30 s: this thread's request waits those
    # 30 s before it is sent, instead of drawing a 429 of its own.
    script = Script(OK)
    client = make_client(script)
    other: list[Any] = []
    client.pacer.throttled(client.pacer.clock(), 30.0)
    thread = threading.Thread(target=lambda: other.append(client.get_page("/customers", None)))
    thread.start()
    thread.join()
    assert other and len(sleeps) == 1 and sleeps[0] == pytest.approx(30.0, abs=0.5)
    assert len(script.requests) == 1 and client.stats.throttled == 0


def test_a_429_without_retry_after_pauses_the_whole_client(make_client) -> None:
    # The pacer hears of a bare 429 too, with the pause of a first backoff (policy.base): a
    # request another thread sends meanwhile waits it out instead of drawing a 429 of its own.
    script = Script(throttled(None), OK, OK)
    waits: dict[str, list[float]] = {"first": [], "other": []}
    other: list[Any] = []

    def sleep(seconds: float) -> None:
        waits[threading.current_thread().name].append(seconds)
        if threading.current_thread().name == "first" and not other:  # during the first's backoff
            thread = threading.Thread(
                target=lambda: other.append(client.get_page("/customers", None)), name="other"
            )
            thread.start()
            thread.join()

    client = make_client(script, sleep=sleep)
    first = threading.Thread(target=lambda: client.get_page("/invoices", None), name="first")
    first.start()
    first.join()
    assert other and len(script.requests) == 3 and client.stats.throttled == 1
    assert len(waits["other"]) == 1 and waits["other"][0] == pytest.approx(0.5, abs=0.2), waits


def test_bare_429s_pause_but_never_lower_the_pace(make_client) -> None:
    # A 429 without Retry-After says nothing of the server's rate: a lower pace on each one
    # ratcheted a long push under sporadic 429s down to a sixth of its speed.
    script = Script(OK, OK, OK, throttled(None), OK, OK, throttled(None), OK)
    client = make_client(script)
    for _ in range(6):
        client.get_page("/invoices", None)
    assert client.stats.throttled == 2 and len(script.requests) == 8
    assert client.pacer.rate is None and client.pacer.episodes == 0


# -- the request deadline -----------------------------------------------------------------


class _Drip(BaseHTTPRequestHandler):
    """Headers at once, then the body one byte every 50 ms, for as long as anyone listens."""

    protocol_version = "HTTP/1.1"
    served: ClassVar[list[str]] = []

    def _drip(self) -> None:
        type(self).served.append(self.command)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(10**6))
        self.end_headers()
        try:
            self.wfile.write(b"[")
            for _ in range(10**6):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:  # the client gave up: what the test expects
            return

    do_GET = do_POST = _drip

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def drip_url() -> Iterator[str]:
    _Drip.served = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Drip)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_dripped_response_fails_at_the_request_deadline_then_retries(drip_url: str, sleeps) -> None:
    policy = RetryPolicy(attempts=2, request_deadline=0.5, sleep=sleeps)
    client = InvoicedClient.connect(drip_url, "sk_test_drip", timeout=5.0, policy=policy)
    with client, pytest.raises(RetryableApiError) as info:
        client.get_page("/invoices", None)
    message = str(info.value)
    assert "request deadline (0.5 s)" in message and "GET" in message and "\n" not in message
    assert _Drip.served == ["GET", "GET"]  # a deadline is a retryable failure: one attempt each
    assert client.stats.transport_errors == 2


def test_a_dripped_answer_to_a_post_is_an_unknown_outcome(drip_url: str, sleeps) -> None:
    policy = RetryPolicy(attempts=3, request_deadline=0.5, sleep=sleeps)
    client = InvoicedClient.connect(drip_url, "sk_test_drip", timeout=5.0, policy=policy)
    with client, pytest.raises(RetryableApiError) as info:
        client.post("/transactions", {"amount": 1})
    assert info.value.outcome_unknown is True
    assert _Drip.served == ["POST"]  # never reposted blindly: the caller looks it up first


def test_policy_rejects_a_nonpositive_deadline() -> None:
    with pytest.raises(ValueError, match="request_deadline"):
        RetryPolicy(request_deadline=0)


@pytest.mark.parametrize("key", ["rate_limit_budget", "request_deadline"])
def test_config_keys_are_validated_and_reach_the_client(tmp_path, key: str) -> None:
    from syncd.config import load_settings
    from syncd.engine import connect
    from syncd.errors import ConfigError

    config = tmp_path / "syncd.toml"
    config.write_text(f'[invoiced]\nbase_url = "http://127.0.0.1:9"\n{key} = 0\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert f"invoiced.{key}" in str(info.value) and str(config) in str(info.value)
    config.write_text(f'[invoiced]\nbase_url = "http://127.0.0.1:9"\n{key} = 42.5\n', encoding="utf-8")
    with connect(load_settings(config)) as client:
        assert getattr(client.policy, key) == 42.5
        if key == "rate_limit_budget":
            assert client.pacer.budget == 42.5
