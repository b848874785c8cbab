"""Deletions whose events the account no longer keeps are found by a listing of ids; a
malformed `/events` item fails the read with one line and moves no position."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import delete
from structlog.testing import capture_logs

from syncd.deletions import EVENTS, Deletions
from syncd.engine import run_sync
from syncd.errors import SyncdError
from syncd.invoiced import InvoicedClient
from syncd.store import Store
from syncd.store.models import Cursor
from tests.engine.helpers import assert_csv_matches, settings_for
from tests.engine.killing import touch_one


def test_deletions_older_than_the_events_retention_are_reconciled_by_ids(
    make_sandbox: Any, tmp_path: Path
) -> None:
    sandbox = make_sandbox(customers=5, invoices=24, transactions=10)
    touch_one(sandbox)
    settings = settings_for(sandbox, f"sqlite:///{tmp_path / 's.db'}", tmp_path / "out", invoiced={"per_page": 5})
    assert run_sync(settings).ok
    paid = {t["invoice"] for t in sandbox.data.list("transactions")}
    victim = next(i["id"] for i in sandbox.data.list("invoices") if i["id"] not in paid)
    sandbox.data.delete("invoices", victim)
    sandbox.data.delete("transactions", sandbox.data.list("transactions")[0]["id"])
    time.sleep(2.1)  # the clock must pass the retention for the deletions' events to go
    touch_one(sandbox)
    sandbox.knobs.events_retention = 1.0
    with capture_logs() as logs:
        report = run_sync(settings)
    assert report.ok, report.errors()
    gaps = {e["stream"] for e in logs if e["event"] == "events.gap"}
    assert gaps == {"customers", "invoices", "transactions"}
    assert_csv_matches(sandbox, tmp_path / "out")
    assert report.streams["invoices"].deleted >= 1 and report.streams["transactions"].deleted >= 1

    # Anchored again on a kept event: the next run reads events only.
    sandbox.knobs.events_retention = None
    before = sandbox.stats.count("GET", "/invoices")
    with capture_logs() as logs:
        assert run_sync(settings).ok
    assert not [e for e in logs if e["event"] == "events.gap"]
    assert sandbox.stats.count("GET", "/invoices") - before == 1


def test_gap_rule() -> None:
    gap = Deletions._gap
    assert not gap(100, True, 95) and not gap(100, True, 100)
    assert gap(100, True, 101) and gap(100, True, None)  # the anchor is gone
    assert not gap(100, False, None) and not gap(100, False, 100)
    assert gap(100, False, 101)  # only later events: earlier ones may be gone


def _fake(events: list[Any]) -> InvoicedClient:
    def handle(request: httpx.Request) -> httpx.Response:
        body = events if request.url.path == "/events" else []
        return httpx.Response(200, content=json.dumps(body).encode(), headers={"Date": "Tue, 01 Dec 2026 10:00:00 GMT"})

    return InvoicedClient(httpx.Client(base_url="http://fake.test", transport=httpx.MockTransport(handle)))


GOOD = {"id": 1, "type": "customer.updated", "timestamp": 1_000, "data": {"object": {"id": 3}}}


def _run(tmp_path: Path, events: list[Any], store: Store) -> Any:
    fake = SimpleNamespace(url="http://fake.test", api_key="sk_test")
    settings = settings_for(fake, "sqlite://", tmp_path / "out", streams={"invoices": {"windows": 1}})
    return run_sync(settings, streams=["customers"], client=_fake(events), store=store)


def test_a_malformed_event_fails_the_first_read_before_any_page(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    report = _run(tmp_path, ["not an event"], store)
    assert report.errors() == [
        "customers: events: GET /events: item 1 of page 1 is not a valid event: expected an object, got str"
    ]
    assert store.cursors(EVENTS) == {} and store.cursors("customers") == {}
    store.close()


def test_a_malformed_event_fails_the_read_and_moves_no_position(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    store.set_cursor(EVENTS, "customers", 900)
    bad = [GOOD, {"id": 2, "type": "invoice.deleted", "timestamp": 1_001, "data": {"object": {}}}]
    report = _run(tmp_path, bad, store)
    assert report.errors() == [
        "customers: events: GET /events: item 2 of page 1 is not a valid event: invoice.deleted without data.object.id"
    ]
    assert store.cursors(EVENTS) == {"customers": 900}
    for item, why in [
        ({**GOOD, "timestamp": "1000"}, "timestamp is missing or not an integer"),
        ({**GOOD, "type": None}, "type is missing"),
        (7, "expected an object, got int"),
        # Stamped in 2100: as the events position it would skip every deletion until then.
        ({**GOOD, "timestamp": 4_102_444_800}, "timestamp 4102444800 is 2306325600 s after the response's Date"),
    ]:
        report = _run(tmp_path, [GOOD, GOOD, item], store)
        assert f"item 3 of page 1 is not a valid event: {why}" in report.errors()[0]
        assert store.cursors(EVENTS) == {"customers": 900}
    store.close()


def test_records_stored_before_the_stream_had_an_events_position_are_reconciled(
    make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = make_sandbox(customers=4, invoices=15, transactions=5)
    touch_one(sandbox)
    url = f"sqlite:///{tmp_path / 's.db'}"
    settings = settings_for(sandbox, url, tmp_path / "out", streams={"invoices": {"windows": 1}})
    assert run_sync(settings).ok
    paid = {t["invoice"] for t in sandbox.data.list("transactions")}
    sandbox.data.delete("invoices", next(i["id"] for i in sandbox.data.list("invoices") if i["id"] not in paid))
    # A store left by an earlier syncd whose runs were all killed: records, no events position.
    store = Store.open(url)
    with store.engine.begin() as conn:
        conn.execute(delete(Cursor).where(Cursor.stream == EVENTS))  # type: ignore[arg-type]
    store.close()
    time.sleep(1.1)
    touch_one(sandbox)  # the position fixed now is this event's second, after the deletion
    monkeypatch.setattr("syncd.deletions.SETTLE_SECONDS", 0)
    with capture_logs() as logs:
        assert run_sync(settings).ok
    assert {e["stream"] for e in logs if e["event"] == "events.reconciled"} == {
        "customers",
        "invoices",
        "transactions",
    }
    assert_csv_matches(sandbox, tmp_path / "out")
    with capture_logs() as logs:
        assert run_sync(settings).ok
    assert not [e for e in logs if e["event"] == "events.reconciled"]


def test_the_listing_of_ids_is_held_to_the_page_contract(tmp_path: Path) -> None:
    """One record stamped in the future would end the listing early and make every stored
    record after it look deleted: the reconciliation fails instead, deleting nothing."""
    listing = [
        {"id": 1, "updated_at": 1_000},
        {"id": 2, "updated_at": 4_102_444_800},  # 2100: past the response's Date
        {"id": 3, "updated_at": 1_001},
    ]

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=json.dumps(listing).encode(), headers={"Date": "Tue, 01 Dec 2026 10:00:00 GMT"}
        )

    client = InvoicedClient(httpx.Client(base_url="http://fake.test", transport=httpx.MockTransport(handle)))
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    try:
        with pytest.raises(SyncdError, match="record 2 of 3 breaks the API contract"):
            Deletions(store, client).reconcile("customers")
    finally:
        store.close()
