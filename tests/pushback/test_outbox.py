"""The outbox state machine on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

from syncd.plugin import ExternalPayment
from syncd.pushback.outbox import Outbox, fingerprint
from syncd.store import Store


def _payment(ext: str = "P-1", amount: str = "10.00", **kw: object) -> ExternalPayment:
    return ExternalPayment(
        external_id=ext,
        source="csv",
        invoice="INV-1",
        amount=Decimal(amount),
        currency="usd",
        date=dt.date(2024, 1, 2),
        origin="inbox.csv:2",
        **kw,  # type: ignore[arg-type]
    )


def test_register_claim_post_and_change_detection(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        box = Outbox(store.engine)
        p = _payment()
        entry, outcome = box.register(p)
        assert (outcome, entry.state, entry.attempts) == ("new", "pending", 0)
        assert entry.payment == p  # the payload round-trips, amount exact
        assert isinstance(entry.payment.amount, Decimal)
        # Same content read again from another line: same payment.
        again, outcome = box.register(dataclasses.replace(p, origin="inbox.csv:9", amount=Decimal("10")))
        assert outcome == "same" and again.origin == "inbox.csv:9"
        # Changed before posting: the new content replaces the old.
        changed = dataclasses.replace(p, amount=Decimal("12.00"))
        entry, outcome = box.register(changed)
        assert outcome == "updated" and entry.fingerprint == fingerprint(changed)
        # Claim marks posting (committed) and counts the attempt; a stale fingerprint cannot claim.
        assert not box.claim("P-1", fingerprint(p))
        assert box.claim("P-1", fingerprint(changed))
        assert box.get("P-1").state == "posting"  # type: ignore[union-attr]
        # While posting, newer content is not taken over (its outcome is unknown).
        _, outcome = box.register(dataclasses.replace(p, amount=Decimal("13")))
        assert outcome == "changed"
        box.mark_posted("P-1", "555", "77")
        posted = box.get("P-1")
        assert posted is not None
        assert (posted.state, posted.transaction_id, posted.invoice_id, posted.attempts) == (
            "posted",
            "555",
            "77",
            1,
        )
        # After posting: a change is reported, never applied; claims and rejections do nothing.
        entry, outcome = box.register(dataclasses.replace(p, amount=Decimal("99")))
        assert outcome == "changed" and entry.state == "posted"
        assert not box.claim("P-1", fingerprint(changed))
        box.mark_rejected("P-1", "late")
        box.mark_failed("P-1", "late")
        assert not box.reject_unreadable("P-1", "csv", "inbox.csv:2", "bad amount")
        assert box.get("P-1").state == "posted"  # type: ignore[union-attr]
        assert box.counts() == {"posted": 1}
    finally:
        store.close()


def test_open_entries_conflicts_and_unreadable_rows(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        box = Outbox(store.engine)
        box.register(_payment("A"))
        box.register(_payment("B"))
        box.claim("B", fingerprint(_payment("B")))
        box.register(_payment("C"))
        box.mark_failed("C", "Invoiced unavailable")
        box.register(_payment("D"))
        box.mark_rejected("D", "unknown invoice")
        assert [e.external_id for e in box.open_entries()] == ["A", "B", "C"]
        assert [e.external_id for e in box.open_entries(exclude={"A"})] == ["B", "C"]
        # The same id from another source is a conflict, the first one stays.
        other = dataclasses.replace(_payment("A"), source="ledger")
        entry, outcome = box.register(other)
        assert outcome == "conflict" and entry.source == "csv"
        # An unreadable row is recorded as rejected, and a corrected row takes its place.
        assert box.reject_unreadable("E", "csv", "inbox.csv:5", "bad amount 'x'")
        assert box.get("E").state == "rejected"  # type: ignore[union-attr]
        assert box.get("E").payment is None  # type: ignore[union-attr]
        entry, outcome = box.register(_payment("E"))
        assert (outcome, entry.state) == ("updated", "pending")
        assert box.counts() == {"pending": 2, "posting": 1, "failed": 1, "rejected": 1}
    finally:
        store.close()
