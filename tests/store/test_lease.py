"""Leases per concern (daemon, pull, push), and the outbox's compare-and-swap claim."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
from decimal import Decimal

import httpx
import pytest

from syncd.plugin import ExternalPayment
from syncd.pushback.outbox import Outbox, fingerprint
from syncd.sandbox import Sandbox
from syncd.store import Store
from syncd.store.lease import EXIT_BUSY, PULL, PUSH, Lease, LeaseHeld, holding


def test_each_concern_has_its_own_lease_and_a_refusal_names_the_holder(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        with holding(store.engine, PULL, ttl=30, role="syncd sync"):
            with (
                holding(store.engine, PUSH, ttl=30, role="syncd daemon"),  # another concern: free
                pytest.raises(LeaseHeld) as held,
            ):
                Lease(store.engine, ttl=30, name=PUSH, role="syncd push").acquire()
            text = str(held.value)
            assert text.startswith("the checkpoint store's push lease is held by syncd daemon (host ")
            assert f"pid {os.getpid()}, since 20" in text and "\n" not in text
            assert held.value.exit_code == EXIT_BUSY
            with (
                pytest.raises(LeaseHeld, match=r"pull lease is held by syncd sync .*; pass --wait"),
                holding(store.engine, PULL, ttl=30, role="syncd sync", hint="pass --wait"),
            ):
                pass
        with holding(store.engine, PULL, ttl=30, role="syncd sync"):  # released: free again
            pass
    finally:
        store.close()


def test_a_waiting_process_takes_the_lease_once_it_is_released(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        first = Lease(store.engine, ttl=30, name=PULL, role="syncd daemon")
        first.acquire()
        got = threading.Event()

        def wait_for_it() -> None:
            with holding(store.engine, PULL, ttl=30, role="syncd sync", wait=True):
                got.set()

        waiter = threading.Thread(target=wait_for_it)
        waiter.start()
        # The waiter cannot have it while the first holds it, whatever the timing.
        current = first.current()
        assert current is not None and current.role == "syncd daemon" and not got.is_set()
        first.release()
        waiter.join(60)
        assert got.is_set()
    finally:
        store.close()


def _payment(ext: str) -> ExternalPayment:
    return ExternalPayment(
        external_id=ext,
        source="csv",
        invoice="INV-1",
        amount=Decimal("10.00"),
        currency="usd",
        date=dt.date(2024, 1, 2),
        origin="inbox.csv:2",
    )


def test_of_two_runs_that_read_the_same_payment_exactly_one_claims_it(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        box = Outbox(store.engine)
        box.register(_payment("P-1"))
        fp = fingerprint(_payment("P-1"))
        seen_by_a = box.get("P-1")
        seen_by_b = box.get("P-1")
        assert seen_by_a is not None and seen_by_b is not None
        assert box.claim("P-1", fp, seen_by_a.attempts) == 1
        assert box.claim("P-1", fp, seen_by_b.attempts) is None  # B lost: it must not POST
        # A re-claims after its lookup found nothing (the number it holds is its own claim's).
        assert box.claim("P-1", fp, 1) == 2
        # A crash left it `posting`: a later run that read it then may claim it (after a lookup).
        later = box.get("P-1")
        assert later is not None and later.state == "posting"
        assert box.claim("P-1", fp, later.attempts) == 3
    finally:
        store.close()


def test_the_sandbox_can_ignore_idempotency_keys(make_sandbox: type[Sandbox]) -> None:
    for honour, expected in ((True, 1), (False, 2)):
        sb = make_sandbox(honour_idempotency=honour)  # type: ignore[call-arg]
        inv = next(
            i for i in sb.data.list("invoices") if i["balance"] > 2 and i["status"] not in ("draft", "voided")
        )
        payload = {"invoice": inv["id"], "type": "payment", "amount": 1, "method": "wire"}
        with httpx.Client(base_url=sb.url, auth=(sb.api_key, "")) as client:
            for _ in range(2):
                assert (
                    client.post("/transactions", json=payload, headers={"Idempotency-Key": "k-1"}).status_code
                    == 201
                )
        made = [
            t for t in sb.data.list("transactions") if t["invoice"] == inv["id"] and t["method"] == "wire"
        ]
        assert len(made) == expected


def test_a_lease_left_by_a_killed_local_run_is_taken_over_at_once(store_url: str) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # reaped: its pid no longer exists
    store = Store.open(store_url)
    try:
        for name in (PULL, PUSH, "daemon"):
            Lease(store.engine, ttl=600, name=name, pid=gone.pid, role="syncd sync").acquire()
        with holding(store.engine, PULL, ttl=30, role="syncd sync"):  # the dead run's lease: taken
            pass
        with pytest.raises(LeaseHeld):  # the daemon lease keeps its documented lock_ttl take-over
            Lease(store.engine, ttl=30).acquire()
        alive = Lease(store.engine, ttl=600, name="other", role="syncd sync")
        alive.acquire()  # a live process (this one) is never taken over before expiry
        with pytest.raises(LeaseHeld):
            Lease(store.engine, ttl=30, name="other", reclaim_dead=True).acquire()
    finally:
        store.close()


def test_a_daemon_job_that_finds_a_manual_run_holding_the_lease_is_busy_not_failed(store_url: str) -> None:
    from syncd.config import Settings
    from syncd.daemon import Daemon
    from syncd.daemon import reload as reload_mod
    from syncd.daemon.jobs import Job

    settings = Settings(store={"url": store_url}, pushback={"enabled": True})
    d = Daemon(settings)
    d.loaded = reload_mod.Loaded(settings, {}, ())
    d.store = Store.open(store_url)
    d.client = object()  # type: ignore[assignment]  # never used: the job stops at the lease
    try:
        jobs = [Job("invoices", "pull", 60, "invoices"), Job("pushback", "push", 60)]
        with (
            holding(d.store.engine, PULL, ttl=30, role="syncd sync"),
            holding(d.store.engine, PUSH, ttl=30, role="syncd push"),
        ):
            for job in jobs:
                assert d.run_job(job) == "busy"
                assert job.failures == 0 and job.not_before == 0.0  # no back-off: next turn
        assert d.metrics.get("syncd_job_runs_total", outcome="busy", job="invoices") == 1
    finally:
        d.store.close()
