"""Telling an edited payment from a new one, when its id did not survive the edit.

A book payment without an `external_id` tag is known by a hash of its date, invoice,
amount, currency and account, so correcting any of these gives it a new id; a CSV row whose
id is changed by hand does the same. Seen alone, the edited payment looks new and would be
posted a second time. So, per source, the payments syncd posted, or still means to post
(pending, posting, failed, confirmed: these are only looked up, never posted, while they
are not read; see push.py), that are no longer read (`vanished`) are compared with each new
one before it is posted:

- books: same currency and at least two of invoice, amount and date equal (one of them was
  corrected) -> held as `changed: review: ...`;
- other sources (the CSV inbox): everything but the id equal -> held as `possible duplicate: ...`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.engine import Engine

from syncd.plugin import ExternalPayment
from syncd.pushback.duplicates import HOW_TO_ACT, describe_payment
from syncd.pushback.outbox import OPEN_STATES, OUTBOX, POSTED, OutboxEntry

BOOKS_SOURCE = "ledger"
CORRECT_POSTED = (
    "to correct a posted payment, change or delete transaction {tx} in Invoiced yourself "
    "(syncd never changes a posted payment)"
)


def vanished(engine: Engine, source: str, read_ids: Iterable[str]) -> list[OutboxEntry]:
    """Posted or still open payments of `source` whose ids were not read this time."""
    seen = set(read_ids)
    with engine.connect() as conn:
        rows = conn.execute(
            select(OUTBOX).where(OUTBOX.c.source == source).where(OUTBOX.c.state.in_((POSTED, *OPEN_STATES)))
        ).mappings()
        entries = [OutboxEntry.from_row(r) for r in rows if r["external_id"] not in seen]
    return [e for e in entries if e.payment is not None]


def _same(a: ExternalPayment, b: ExternalPayment) -> tuple[bool, bool, bool]:
    """(invoice, amount, date) equal."""
    return (a.invoice.strip().lower() == b.invoice.strip().lower(), a.amount == b.amount, a.date == b.date)


def _looks_corrected(new: ExternalPayment, old: ExternalPayment) -> bool:
    return new.currency.lower() == old.currency.lower() and sum(_same(new, old)) >= 2


def _same_but_id(new: ExternalPayment, old: ExternalPayment) -> bool:
    def content(p: ExternalPayment) -> tuple[object, ...]:
        return (p.customer, p.currency.lower(), p.method, (p.reference or "").strip())

    return all(_same(new, old)) and content(new) == content(old)


def vanished_match(payment: ExternalPayment, candidates: Sequence[OutboxEntry]) -> str | None:
    """The hold reason when `payment` looks like an edited version of a vanished posted payment."""
    books = payment.source == BOOKS_SOURCE
    test = _looks_corrected if books else _same_but_id
    matches = [e for e in candidates if e.payment is not None and test(payment, e.payment)]
    if not matches:
        return None
    olds = "; ".join(f"{describe_payment(e.payment)} {_where(e)}" for e in matches if e.payment is not None)
    ext = payment.external_id
    txs = ", ".join(str(e.transaction_id) for e in matches if e.state == POSTED)
    if books and not txs:
        return (
            f"changed: review: {olds} no longer matches the books, and {describe_payment(payment)} "
            f"at {payment.origin} looks like its correction; {HOW_TO_ACT.format(ext=ext)}"
        )
    if books:
        return (
            f"changed: review: {olds} no longer matches the books, and {describe_payment(payment)} "
            f"at {payment.origin} looks like its correction; {CORRECT_POSTED.format(tx=txs)}, "
            f"then {HOW_TO_ACT.format(ext=ext)}"
        )
    return (
        f"possible duplicate: {describe_payment(payment)} at {payment.origin} is the same as {olds}, "
        f"which is no longer in the inbox (was its external_id changed?); {HOW_TO_ACT.format(ext=ext)}"
    )


def _where(entry: OutboxEntry) -> str:
    if entry.state == POSTED:
        return f"posted as transaction {entry.transaction_id}"
    return f"(not posted by syncd: {entry.state} when it left its source)"
