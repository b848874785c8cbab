"""The push-back outbox: one `PushedPayment` row per external payment, and its state machine.

    pending -> posting -> posted (transaction id) | failed (retried by a later run)
    pending -> rejected (reason; re-checked when the payment is read again)
    pending -> held (`possible duplicate: ...` or `changed: review: ...`; waits for the user)
    held -> confirmed (`syncd errors retry`: posted next run without the duplicate check)
    pending | posting | failed | confirmed -> held (no longer read from its source and not
        found in Invoiced: never posted from the outbox alone)
    held -> dismissed (`syncd errors ignore`: never posted while its content stays the same)

`posting` is committed before the request is sent: a payment found in `posting` (or
`failed`) has an unknown outcome and is looked up in Invoiced before any repost. A
payment whose content changes after it was posted is never posted again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, func, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from syncd.errors import StoreError
from syncd.log import redact_text
from syncd.plugin import ExternalPayment
from syncd.store import dumps, loads
from syncd.store.models import PushedPayment

OUTBOX: Table = PushedPayment.__table__  # type: ignore[attr-defined]

PENDING, POSTING, POSTED, FAILED, REJECTED = "pending", "posting", "posted", "failed", "rejected"
HELD, CONFIRMED, DISMISSED = "held", "confirmed", "dismissed"
OPEN_STATES = (PENDING, POSTING, FAILED, CONFIRMED)
_CHUNK = 500  # ids per IN (...) query


def payment_payload(payment: ExternalPayment) -> dict[str, Any]:
    """The payment as stored in the outbox (JSON-ready; the amount stays a Decimal)."""
    return {
        "external_id": payment.external_id,
        "source": payment.source,
        "invoice": payment.invoice,
        "customer": payment.customer,
        "amount": payment.amount,
        "currency": payment.currency,
        "date": payment.date.isoformat(),
        "method": payment.method,
        "reference": payment.reference,
        "notes": payment.notes,
        "origin": payment.origin,
        "extra": dict(payment.extra),
    }


def payment_from_payload(data: Mapping[str, Any]) -> ExternalPayment:
    """Inverse of `payment_payload`."""
    return ExternalPayment(
        external_id=data["external_id"],
        source=data["source"],
        invoice=data["invoice"],
        amount=Decimal(str(data["amount"])),
        currency=data["currency"],
        date=dt.date.fromisoformat(data["date"]),
        method=data.get("method") or "other",
        customer=data.get("customer"),
        reference=data.get("reference"),
        notes=data.get("notes"),
        origin=data.get("origin") or "",
        extra=data.get("extra") or {},
    )


def fingerprint(payment: ExternalPayment) -> str:
    """What the payment says, hashed: where it was read (origin) does not count, 100 == 100.00."""
    p = payment
    amount = format(p.amount.normalize(), "f") if p.amount.is_finite() else str(p.amount)
    content = [p.external_id, p.invoice, p.customer, amount, p.currency.lower(), p.date.isoformat()]
    content += [p.method, p.reference, p.notes]
    return hashlib.sha256(dumps(content).encode()).hexdigest()[:40]


@dataclass(slots=True)
class OutboxEntry:
    """One outbox row, with its payment decoded (None for an unreadable row)."""

    external_id: str
    source: str
    fingerprint: str
    state: str
    payment: ExternalPayment | None
    origin: str
    invoice_id: str | None
    transaction_id: str | None
    reason: str | None
    attempts: int
    # Bumped after each definite refusal (4xx) of a POST: the next POST needs a fresh
    # Idempotency-Key, or the API would replay the refusal. Kept in the payload, not hashed.
    generation: int = 0
    # The user confirmed this content (`confirmed`, kept in the payload once claimed): no
    # duplicate or changed check, even when a crash leaves it to be settled by a later run.
    confirmed: bool = False

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> OutboxEntry:
        data = loads(row["payload"]) if row["payload"] else {}
        return cls(
            external_id=row["external_id"],
            source=row["source"],
            fingerprint=row["fingerprint"],
            state=row["state"],
            payment=payment_from_payload(data) if data else None,
            origin=row["origin"],
            invoice_id=row["invoice_id"],
            transaction_id=row["transaction_id"],
            reason=row["reason"],
            attempts=int(row["attempts"]),
            generation=int(data.get("key_generation") or 0),
            confirmed=row["state"] == CONFIRMED
            or bool(data.get("confirmed") and data.get("confirmed") == row["fingerprint"]),
        )


class Outbox:
    """Reads and state changes of the outbox; every change is its own committed transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, external_id: str) -> OutboxEntry | None:
        """The entry of one external payment, if any."""
        with self.engine.connect() as conn:
            return self._get(conn, external_id)

    def _get(self, conn: Connection, external_id: str) -> OutboxEntry | None:
        row = conn.execute(select(OUTBOX).where(OUTBOX.c.external_id == external_id)).mappings().first()
        return OutboxEntry.from_row(row) if row is not None else None

    def register(self, payment: ExternalPayment) -> tuple[OutboxEntry, str]:
        """Record one payment read from a source; see `register_many`."""
        return self.register_many([payment])[0]

    def register_many(self, payments: Sequence[ExternalPayment]) -> list[tuple[OutboxEntry, str]]:
        """Record payments read from a source, in one transaction; per payment the entry and:

        `new`, `same` (already known, unchanged), `updated` (changed before it was posted:
        the new content replaces the old), `changed` (changed after posting or while its
        outcome is unknown: kept as it was), `conflict` (the id belongs to another source).
        """
        for _ in range(3):  # a concurrent insert of the same id: read again and decide again
            try:
                with self.engine.begin() as conn:
                    return self._register(conn, payments)
            except IntegrityError:
                continue
        raise StoreError("outbox: payments keep being registered concurrently; try again")  # pragma: no cover

    def _register(
        self, conn: Connection, payments: Sequence[ExternalPayment]
    ) -> list[tuple[OutboxEntry, str]]:
        ids = list({p.external_id for p in payments})
        known: dict[str, OutboxEntry] = {}
        for start in range(0, len(ids), _CHUNK):
            rows = conn.execute(select(OUTBOX).where(OUTBOX.c.external_id.in_(ids[start : start + _CHUNK])))
            known.update((r["external_id"], OutboxEntry.from_row(r)) for r in rows.mappings())
        now = time.time()
        inserts: list[dict[str, Any]] = []
        results: list[tuple[OutboxEntry, str]] = []
        for payment in payments:
            ext, fp = payment.external_id, fingerprint(payment)
            entry = known.get(ext)
            if entry is None:
                inserts.append({**self._values(payment, fp, PENDING, now), "created_at": now})
                entry = OutboxEntry(
                    ext, payment.source, fp, PENDING, payment, payment.origin, None, None, None, 0
                )
                known[ext] = entry
                results.append((entry, "new"))
            elif entry.source != payment.source:
                results.append((entry, "conflict"))
            elif entry.fingerprint == fp:
                if entry.origin != payment.origin and entry.state != POSTED:
                    conn.execute(
                        update(OUTBOX).where(OUTBOX.c.external_id == ext).values(origin=payment.origin[:300])
                    )
                    entry.origin = payment.origin
                results.append((entry, "same"))
            elif entry.state in (POSTED, POSTING):
                results.append((entry, "changed"))
            else:
                conn.execute(
                    update(OUTBOX)
                    .where(OUTBOX.c.external_id == ext)
                    .where(OUTBOX.c.fingerprint == entry.fingerprint)
                    .values(**self._values(payment, fp, PENDING, now, entry.generation), reason=None)
                )
                entry.fingerprint, entry.state, entry.payment, entry.origin = (
                    fp,
                    PENDING,
                    payment,
                    payment.origin,
                )
                entry.reason, entry.confirmed = None, False
                results.append((entry, "updated"))
        if inserts:
            conn.execute(OUTBOX.insert(), inserts)
        return results

    @staticmethod
    def _values(
        payment: ExternalPayment, fp: str, state: str, now: float, generation: int = 0
    ) -> dict[str, Any]:
        payload = payment_payload(payment)
        if generation:
            payload["key_generation"] = generation
        return {
            "external_id": payment.external_id,
            "source": payment.source,
            "fingerprint": fp,
            "state": state,
            "payload": dumps(payload),
            "origin": payment.origin[:300],
            "updated_at": now,
        }

    def replace(self, payment: ExternalPayment, old_fingerprint: str, generation: int = 0) -> bool:
        """Take newer content for a payment whose earlier version proved absent from Invoiced."""
        values = self._values(payment, fingerprint(payment), PENDING, time.time(), generation)
        with self.engine.begin() as conn:
            result = conn.execute(
                update(OUTBOX)
                .where(OUTBOX.c.external_id == payment.external_id)
                .where(OUTBOX.c.fingerprint == old_fingerprint)
                .where(OUTBOX.c.state != POSTED)
                .values(**values, reason=None)
            )
            return bool(result.rowcount)

    def bump_generation(self, external_id: str) -> int:
        """After a definite refusal: the next POST of this payment gets a fresh Idempotency-Key."""
        with self.engine.begin() as conn:
            row = conn.execute(
                select(OUTBOX.c.payload).where(OUTBOX.c.external_id == external_id).with_for_update()
            ).first()
            if row is None or not row[0]:
                return 0
            payload = loads(row[0])
            payload["key_generation"] = int(payload.get("key_generation") or 0) + 1
            conn.execute(
                update(OUTBOX)
                .where(OUTBOX.c.external_id == external_id)
                .where(OUTBOX.c.state != POSTED)
                .values(payload=dumps(payload))
            )
            return int(payload["key_generation"])

    def reject_unreadable(self, external_id: str, source: str, origin: str, reason: str) -> bool:
        """Record a row that could not be read; never touches a posted or posting payment."""
        now = time.time()
        reason = redact_text(reason)
        try:
            with self.engine.begin() as conn:
                entry = self._get(conn, external_id)
                if entry is None:
                    conn.execute(
                        OUTBOX.insert().values(
                            external_id=external_id,
                            source=source,
                            fingerprint="",
                            state=REJECTED,
                            payload="",
                            origin=origin[:300],
                            reason=reason,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                    return True
                if entry.source != source or entry.state in (POSTED, POSTING):
                    return False
                conn.execute(
                    update(OUTBOX)
                    .where(OUTBOX.c.external_id == external_id)
                    .where(OUTBOX.c.state.in_((PENDING, FAILED, REJECTED, HELD, CONFIRMED)))
                    .values(
                        state=REJECTED,
                        fingerprint="",
                        payload="",
                        origin=origin[:300],
                        reason=reason,
                        updated_at=now,
                    )
                )
                return True
        except IntegrityError:
            return False

    def open_entries(self, exclude: Iterable[str] = ()) -> list[OutboxEntry]:
        """Entries still to be pushed (pending, posting, failed), oldest first."""
        skip = set(exclude)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(OUTBOX)
                .where(OUTBOX.c.state.in_(OPEN_STATES))
                .order_by(OUTBOX.c.created_at, OUTBOX.c.external_id)
            ).mappings()
            return [OutboxEntry.from_row(r) for r in rows if r["external_id"] not in skip]

    def claim(self, external_id: str, fp: str, attempts: int | None = None) -> int | None:
        """Mark a payment `posting` (committed) before its POST is sent; returns the claim's
        number (the row's new `attempts`), or None if the payment moved on.

        With `attempts` (the value this run last saw) the claim is a compare-and-swap in one
        conditional UPDATE: of two runs that read the same row, exactly one claims it, on
        SQLite and PostgreSQL alike, whatever the API does with Idempotency-Key.
        """
        stmt = (
            update(OUTBOX)
            .where(OUTBOX.c.external_id == external_id)
            .where(OUTBOX.c.fingerprint == fp)
            .where(OUTBOX.c.state.in_((PENDING, POSTING, FAILED, REJECTED, CONFIRMED)))
        )
        if attempts is not None:
            stmt = stmt.where(OUTBOX.c.attempts == attempts)
        with self.engine.begin() as conn:
            result = conn.execute(
                stmt.values(
                    state=POSTING, attempts=OUTBOX.c.attempts + 1, reason=None, updated_at=time.time()
                )
            )
            if result.rowcount != 1:
                return None
            if attempts is not None:
                return attempts + 1
            row = conn.execute(select(OUTBOX.c.attempts).where(OUTBOX.c.external_id == external_id)).first()
            return int(row[0]) if row is not None else None

    def mark_posted(self, external_id: str, transaction_id: str, invoice_id: str | None) -> None:
        """The payment is in Invoiced as `transaction_id` (posted or adopted)."""
        self._set(
            external_id, state=POSTED, transaction_id=transaction_id, invoice_id=invoice_id, reason=None
        )

    def mark_failed(self, external_id: str, reason: str) -> None:
        """The outcome could not be settled this run; a later run looks it up first."""
        self._set(external_id, state=FAILED, reason=reason, only_open=True)

    def mark_rejected(self, external_id: str, reason: str, invoice_id: str | None = None) -> None:
        """The payment is invalid as given; it is re-checked when read again."""
        self._set(external_id, state=REJECTED, reason=reason, invoice_id=invoice_id, only_open=True)

    def mark_held(self, external_id: str, reason: str, invoice_id: str | None = None) -> None:
        """Not posted until the user confirms (`syncd errors retry`) or dismisses it (`ignore`)."""
        self._set(external_id, state=HELD, reason=reason, invoice_id=invoice_id, only_open=True)

    def hold_unread(self, external_id: str, fp: str, attempts: int, reason: str) -> bool:
        """Hold an open payment no longer read from its source; a compare-and-swap like `claim`,
        so that a payment another run claimed or settled meanwhile is left to that run."""
        stmt = (
            update(OUTBOX)
            .where(OUTBOX.c.external_id == external_id)
            .where(OUTBOX.c.fingerprint == fp)
            .where(OUTBOX.c.attempts == attempts)
            .where(OUTBOX.c.state.in_(OPEN_STATES))
        )
        with self.engine.begin() as conn:
            result = conn.execute(stmt.values(state=HELD, reason=redact_text(reason), updated_at=time.time()))
            return result.rowcount == 1

    def remember_confirmed(self, external_id: str, fp: str) -> None:
        """Keep the user's confirmation of this content in the payload, beyond the `confirmed` state."""
        with self.engine.begin() as conn:
            row = conn.execute(
                select(OUTBOX.c.payload).where(OUTBOX.c.external_id == external_id).with_for_update()
            ).first()
            if row is None or not row[0]:
                return
            payload = loads(row[0])
            payload["confirmed"] = fp
            conn.execute(
                update(OUTBOX)
                .where(OUTBOX.c.external_id == external_id)
                .where(OUTBOX.c.fingerprint == fp)
                .values(payload=dumps(payload))
            )

    def _set(self, external_id: str, *, only_open: bool = False, **values: Any) -> None:
        if values.get("reason"):
            values["reason"] = redact_text(values["reason"])  # shown by `syncd status` and logs
        stmt = update(OUTBOX).where(OUTBOX.c.external_id == external_id)
        if only_open:
            # A posted payment stays posted whatever a late, confused caller says.
            stmt = stmt.where(OUTBOX.c.state != POSTED)
        with self.engine.begin() as conn:
            conn.execute(stmt.values(**values, updated_at=time.time()))

    def counts(self) -> dict[str, int]:
        """Entries per state."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(OUTBOX.c.state, func.count()).group_by(OUTBOX.c.state))
            return {state: int(n) for state, n in rows}


# -- what `syncd errors` does to a refused payment --------------------------------------
# Held payments (`held`: a possible duplicate or a change after posting, waiting for a
# person) are set by the push-back; `confirmed` lets it go on, `dismissed` sets it aside.
_RETRY = {REJECTED: PENDING, HELD: CONFIRMED}


def retry_payment(store: Any, external_id: str) -> str | None:
    """`syncd errors retry`: rejected -> pending, held -> confirmed. The new state, or None
    when nothing changed (another state, or a row that could not be read from its source)."""
    return _move(store, external_id, _RETRY)


def ignore_payment(store: Any, external_id: str) -> str | None:
    """`syncd errors ignore`: rejected or held -> dismissed. The new state, or None."""
    return _move(store, external_id, {REJECTED: DISMISSED, HELD: DISMISSED})


def _move(store: Any, external_id: str, moves: Mapping[str, str]) -> str | None:
    engine: Engine = store.engine
    with engine.begin() as conn:
        row = conn.execute(
            select(OUTBOX.c.state, OUTBOX.c.payload)
            .where(OUTBOX.c.external_id == external_id)
            .with_for_update()
        ).first()
        if row is None or row[0] not in moves:
            return None
        state, new = row[0], moves[row[0]]
        if new == PENDING and not row[1]:
            return None  # an unreadable row: only fixing it in its source helps
        conn.execute(
            update(OUTBOX)
            .where(OUTBOX.c.external_id == external_id, OUTBOX.c.state == state)
            .values(state=new, updated_at=time.time())
        )
        return new
