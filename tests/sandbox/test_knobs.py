"""Fault knobs: latency, token bucket 429, random 429/500, dropped connections, strict pages, concurrent edits."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from syncd.sandbox import Sandbox
from tests.sandbox.helpers import assert_error, body, client


def wait_for(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    event = threading.Event()
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        event.wait(0.02)
    raise AssertionError("condition not reached")


def test_latency_sleeps_before_every_request(sandbox: Sandbox) -> None:
    slept: list[float] = []
    sandbox.sleep = slept.append
    sandbox.knobs.latency = 0.25
    with client(sandbox) as c:
        c.get("/customers")
        c.get("/invoices/1")
    assert slept == [0.25, 0.25]


def test_token_bucket_answers_429_with_retry_after(sandbox: Sandbox) -> None:
    sandbox.knobs.rate_limit = 0.05  # one token every 20 s: the burst runs out at once
    sandbox.knobs.burst = 3
    with client(sandbox) as c:
        codes = [c.get("/customers").status_code for _ in range(6)]
        limited = c.get("/customers")
    assert codes[:3] == [200, 200, 200] and 429 in codes[3:]
    assert_error(limited, 429, None)
    assert limited.json()["type"] == "api" and int(limited.headers["Retry-After"]) >= 1
    assert sandbox.stats.served_429 >= 2
    sandbox.knobs.rate_limit = None
    with client(sandbox) as c:
        assert c.get("/customers").status_code == 200


def test_random_429_and_500_and_stats(sandbox: Sandbox) -> None:
    sandbox.stats.reset()
    sandbox.knobs.p429 = 1.0
    with client(sandbox) as c:
        r = c.get("/invoices")
        assert r.status_code == 429 and "Retry-After" not in r.headers
        sandbox.knobs.p429, sandbox.knobs.p500 = 0.0, 1.0
        assert_error(c.post("/customers", json={"name": "never"}), 500, None)
        sandbox.knobs.p500 = 0.5
        codes = {c.get("/invoices").status_code for _ in range(60)}
    assert codes == {200, 500}
    assert sandbox.stats.served_429 == 1 and sandbox.stats.served_500 >= 2
    assert sandbox.stats.count("GET", "/invoices") == 61 and sandbox.stats.count("POST", "/customers") == 1
    assert sandbox.stats.total == 62
    assert not [c for c in sandbox.data.list("customers") if c["name"] == "never"]
    sandbox.stats.reset()
    assert sandbox.stats.total == 0 and sandbox.stats.count("GET", "/invoices") == 0


def test_drop_before_apply_changes_nothing(sandbox: Sandbox) -> None:
    sandbox.knobs.p_drop = 1.0
    with client(sandbox) as c, pytest.raises(httpx.TransportError):
        c.post("/customers", json={"name": "Dropped Ltd"})
    assert sandbox.stats.dropped == 1
    assert not [c for c in sandbox.data.list("customers") if c["name"] == "Dropped Ltd"]


def test_drop_after_apply_loses_the_response_but_the_key_replays_it(sandbox: Sandbox) -> None:
    inv = next(
        i
        for i in sandbox.data.list("invoices")
        if i["balance"] > 5 and i["status"] not in ("draft", "voided")
    )
    payload = {
        "invoice": inv["id"],
        "type": "payment",
        "amount": 5,
        "method": "check",
        "metadata": {"ext": "p-1"},
    }
    sandbox.knobs.p_drop_after = 1.0
    with client(sandbox) as c:
        with pytest.raises(httpx.TransportError):
            c.post("/transactions", json=payload, headers={"Idempotency-Key": "p-1"})
        assert c.get("/invoices").status_code == 200  # reads are never dropped after the fact
    applied = body(
        httpx.get(f"{sandbox.url}/transactions", params={"metadata[ext]": "p-1"}, auth=(sandbox.api_key, ""))
    )
    assert len(applied) == 1 and sandbox.stats.dropped == 1
    sandbox.knobs.p_drop_after = 0.0
    with client(sandbox) as c:
        retry = c.post("/transactions", json=payload, headers={"Idempotency-Key": "p-1"})
    assert retry.status_code == 201 and retry.json()["id"] == applied[0]["id"]
    assert sandbox.data.get("invoices", inv["id"])["balance"] == inv["balance"] - 5  # type: ignore[index]


def test_concurrent_edits_move_data_within_shared_seconds(make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(customers=20, invoices=300, transactions=80, edit_rate=400.0)
    wait_for(lambda: sb.stats.edits >= 150)
    sb.knobs.edit_rate = 0.0
    # A burst under way when the knob drops goes on: read one consistent snapshot (each edit
    # is atomic under the data lock), or a payment could land between the two lists below.
    with sb.data.lock:
        events = sb.data.list("events")
        invoices, transactions = sb.data.list("invoices"), sb.data.list("transactions")
    kinds = {e["type"] for e in events}
    assert {"invoice.updated", "customer.updated", "invoice.created"} <= kinds
    assert any(k.endswith(".deleted") for k in kinds)
    per_second: dict[int, int] = {}
    for e in events:
        per_second[e["timestamp"]] = per_second.get(e["timestamp"], 0) + 1
    assert max(per_second.values()) >= 20  # bursts: many edits in one second
    for inv in invoices:  # amounts still add up
        paid = sum(
            (t["amount"] if t["type"] == "payment" else -t["amount"])
            for t in transactions
            if t["invoice"] == inv["id"] and t["status"] == "succeeded"
        )
        assert inv["balance"] == inv["total"] - paid, inv["id"]


def test_touch_many_puts_a_bulk_edit_in_one_second(sandbox: Sandbox) -> None:
    ids = [i["id"] for i in sandbox.data.list("invoices")[:40]]
    before = {i["id"]: i for i in sandbox.data.list("invoices")}
    sandbox.data.touch_many("invoices", ids)
    after = {i["id"]: i for i in sandbox.data.list("invoices")}
    stamps = {after[i]["updated_at"] for i in ids}
    assert len(stamps) == 1 and stamps.pop() > max(before[i]["updated_at"] for i in ids)
    assert all({**after[i], "updated_at": 0} == {**before[i], "updated_at": 0} for i in ids)
    assert sum(1 for e in sandbox.data.list("events") if e["type"] == "invoice.updated") == 40


def test_32_concurrent_connections(make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(customers=20, invoices=400, transactions=0)
    errors: list[Any] = []
    totals: list[int] = []

    def worker() -> None:
        try:
            with client(sb) as c:
                for page in range(1, 5):
                    r = c.get("/invoices", params={"page": str(page), "per_page": "100"})
                    assert r.status_code == 200
                    totals.append(len(r.json()))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and totals == [100] * 128
    assert sb.stats.count("GET", "/invoices") == 128


def test_a_body_cut_short_by_a_dying_client_is_not_applied(sandbox: Any) -> None:
    """A client killed mid-request sends fewer bytes than its Content-Length: nothing happens."""
    import base64
    import socket
    from urllib.parse import urlsplit

    before = len(sandbox.data.list("customers"))
    url = urlsplit(sandbox.url)
    body = b'{"name": "Half Written Ltd"}'
    auth = base64.b64encode(f"{sandbox.api_key}:".encode()).decode()
    with socket.create_connection((url.hostname, url.port)) as conn:
        conn.sendall(
            b"POST /customers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Basic {auth}\r\nIdempotency-Key: cut-1\r\n".encode()
            + f"Content-Length: {len(body) + 40}\r\n\r\n".encode()
            + body
        )
        conn.shutdown(socket.SHUT_WR)
        assert conn.recv(100) == b""  # no answer: the connection is just closed
    assert len(sandbox.data.list("customers")) == before
