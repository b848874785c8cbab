"""Pushing external payments to Invoiced as payment transactions, exactly once.

For each payment read from a source (and each one left open by an earlier run):

1. look it up: `GET /transactions?metadata[<key>]=<external id>`; one already there
   (posted by an earlier run whose answer was lost, or entered by hand with the same
   metadata) is adopted, never posted again;
2. validate it against the live invoice (see `validate.py`); an invalid one is rejected
   with its reason and never blocks the others; one that looks already in Invoiced by
   another way (see `duplicates.py`, `identity.py`) is held until the user confirms it;
3. mark it `posting` in the outbox (committed), then `POST /transactions` with an
   `Idempotency-Key` derived from the external id (a new one only after Invoiced definitely
   refused a POST, so that a refusal is not replayed to the corrected payment);
4. on an unknown outcome (5xx, timeout, dropped connection) wait `lookup_grace`, look it
   up again and only then repost; 429s and 5xx are retried under the client's tenacity
   policy parts, honouring Retry-After.

A crash anywhere leaves the payment `pending`, `posting` or `failed`; the next run starts
at step 1, so the lookup decides before anything is sent again.

An open payment (pending, posting, failed, confirmed) that is no longer read from its source
(its row deleted, its id edited, its book entry corrected) only gets step 1: adopted if
Invoiced has it, else held as `changed: review: no longer in its source ...` (see
`_vanished`). Its stored content is never posted: the source no longer says it is owed, and
its edited version, read under a new id, is posted (or held by `identity.py`) on its own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import structlog
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from syncd.config import PushbackSettings
from syncd.errors import FatalApiError, RetryableApiError, SyncdError
from syncd.invoiced import InvoicedClient, RetryPolicy
from syncd.invoiced.retry import StopOverBudget, WaitRetryAfter, backoff, log_retry
from syncd.plugin import ExternalPayment, Rejection
from syncd.pushback import duplicates, identity
from syncd.pushback.outbox import (
    CONFIRMED,
    DISMISSED,
    FAILED,
    HELD,
    PENDING,
    POSTED,
    POSTING,
    Outbox,
    OutboxEntry,
    fingerprint,
)
from syncd.pushback.validate import Validator, money

log = structlog.get_logger("syncd.pushback")

OUTCOMES = (
    "posted",
    "adopted",
    "rejected",
    "held",
    "failed",
    "already_posted",
    "changed",
    "dismissed",
    "deferred",
)
# Outcomes a payment keeps run after run: metrics count each payment once (`PushReport.ids`).
STANDING = ("already_posted", "held", "dismissed")
SOURCE_METADATA_KEY = "syncd_source"
_AUTH_STATUSES = (401, 403)
_BREAKER = 3  # consecutive failed payments after which the run stops: Invoiced is unwell


@runtime_checkable
class RejectsSink(Protocol):
    """A source that can write its rejected payments back beside its input (the CSV inbox)."""

    def write_rejects(self, rejections: Sequence[tuple[str, str, str]]) -> Path | None: ...


@dataclass
class PushReport:
    """What one push did: counts per outcome, every rejection with its reason."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    rejections: list[tuple[str, str, str]] = field(default_factory=list)  # (external id, origin, reason)
    warnings: list[str] = field(default_factory=list)
    rejects_files: list[Path] = field(default_factory=list)
    error: str | None = None
    held: list[tuple[str, str, str]] = field(default_factory=list)  # (external id, origin, reason)
    ids: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in STANDING})

    @property
    def ok(self) -> bool:
        """No payment failed or was left for later, and the run was not stopped."""
        return self.error is None and not self.counts["failed"] and not self.counts["deferred"]

    @property
    def posted(self) -> int:
        return self.counts["posted"]

    @property
    def adopted(self) -> int:
        return self.counts["adopted"]

    @property
    def rejected(self) -> int:
        return self.counts["rejected"]

    @property
    def failed(self) -> int:
        return self.counts["failed"]

    @property
    def already_posted(self) -> int:
        return self.counts["already_posted"]

    def reject(self, external_id: str, origin: str, reason: str) -> None:
        self.counts["rejected"] += 1
        self.rejections.append((external_id, origin, reason))

    def hold(self, external_id: str, origin: str, reason: str) -> None:
        self.count("held", external_id)
        self.held.append((external_id, origin, reason))

    def count(self, outcome: str, external_id: str) -> None:
        self.counts[outcome] += 1
        if outcome in self.ids:
            self.ids[outcome].add(external_id)


class _Stop(Exception):
    """Stop the run: credentials refused, or Invoiced failing for payment after payment."""


def idempotency_key(metadata_key: str, external_id: str, generation: int = 0) -> str:
    """The Idempotency-Key of a payment: the same for every attempt at the same external id.

    `generation` moves on only after Invoiced definitely refused a POST (a 4xx: nothing was
    applied), so that a corrected payment is not answered with a replay of that refusal.
    """
    seed = f"{metadata_key}:{external_id}" + (f":{generation}" if generation else "")
    return "syncd-" + hashlib.sha256(seed.encode()).hexdigest()[:48]


def payment_timestamp(date: dt.date) -> int:
    """The payment date as a unix timestamp: noon UTC keeps the calendar day in UTC-11..UTC+11."""
    return int(dt.datetime.combine(date, dt.time(12), tzinfo=dt.UTC).timestamp())


def transaction_body(
    payment: ExternalPayment, invoice: Mapping[str, Any], metadata_key: str
) -> dict[str, Any]:
    """The `POST /transactions` body for a validated payment."""
    customer = invoice.get("customer")
    body: dict[str, Any] = {
        "type": "payment",
        "invoice": invoice["id"],
        "amount": payment.amount,
        "currency": payment.currency.lower(),
        "method": payment.method,
        "date": payment_timestamp(payment.date),
        "metadata": {SOURCE_METADATA_KEY: payment.source, metadata_key: payment.external_id},
    }
    if customer is not None:
        body["customer"] = customer["id"] if isinstance(customer, Mapping) else customer
    if payment.reference:
        body["gateway_id"] = payment.reference
    if payment.notes:
        body["notes"] = payment.notes
    return body


def _strip_origin(reason: str, origin: str) -> str:
    prefix = f"{origin}: "
    return reason[len(prefix) :] if origin and reason.startswith(prefix) else reason


@dataclass(slots=True)
class _Work:
    entry: OutboxEntry
    payment: ExternalPayment
    newer: ExternalPayment | None = None  # read while the outcome was unknown: settle first, then take it
    unread: bool = False  # open in the outbox but not read from its source this run: look up only


class Pusher:
    """One push run over some payment sources; see the module doc for the steps."""

    def __init__(
        self,
        settings: PushbackSettings,
        outbox: Outbox,
        client: InvoicedClient,
        *,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.settings = settings
        self.outbox = outbox
        self.client = client
        policy: RetryPolicy = getattr(client, "policy", None) or RetryPolicy()
        self.policy = policy
        self.sleep = sleep or policy.sleep
        self.validator = Validator(
            client,
            allow_overpayment=settings.allow_overpayment,
            max_days_past=settings.max_days_past,
            max_days_future=settings.max_days_future,
        )
        self.report = PushReport()
        # Per payment source: posted payments no longer read (see identity.py), read when needed.
        self.vanished: dict[str, list[OutboxEntry]] = {}
        self._read_ids: set[str] = set()

    # -- the run -----------------------------------------------------------------------------

    def run(self, sources: Sequence[tuple[str, Iterable[ExternalPayment | Rejection]]]) -> PushReport:
        """Read every (name, payments) source, push every open payment, write rejects files."""
        queue: list[_Work] = []
        seen: set[str] = set()
        for name, source in sources:
            payments: list[ExternalPayment] = []
            try:
                for item in source:
                    if isinstance(item, Rejection):
                        self._unreadable(name, item)
                    else:
                        payments.append(item)
            except (OSError, SyncdError) as exc:
                # One unreadable source must not hold back the payments of the others.
                self.report.error = f"cannot read payments from {name}: {exc}"
                log.error("push.source_failed", connector=name, error=str(exc))
                continue
            seen.update(p.external_id for p in payments)
            for payment, (entry, outcome) in zip(payments, self.outbox.register_many(payments), strict=True):
                work = self._classify(payment, entry, outcome)
                if work is not None:
                    queue.append(work)
        self._read_ids = seen
        # After a source could not be read, "not read" does not mean "gone": leave them for next run.
        for entry in [] if self.report.error else self.outbox.open_entries(exclude=seen):
            if entry.payment is not None:
                queue.append(_Work(entry, entry.payment, unread=True))
        failures, stopped = 0, False
        for i, work in enumerate(queue):
            try:
                failed = self._push(work)
                failures = failures + 1 if failed else 0
                if failures >= _BREAKER:
                    raise _Stop(f"{failures} payments in a row failed; last: {self.report.warnings[-1]}")
            except _Stop as stop:
                stopped = True
                self.report.error = str(stop)
                self.report.counts["deferred"] += len(queue) - i - 1
                log.error("push.stopped", reason=str(stop), deferred=len(queue) - i - 1)
                break
        for name, source in sources:
            if isinstance(source, RejectsSink) and stopped:
                # Not every payment was checked: the last full rejects file stays until one is.
                self._warn(f"the rejects file of {name} is kept from the last complete run")
            elif isinstance(source, RejectsSink):
                try:
                    path = source.write_rejects(self.report.rejections)
                except OSError as exc:
                    self._warn(f"cannot write the rejects file of {name}: {exc}")
                    continue
                if path is not None:
                    self.report.rejects_files.append(path)
        return self.report

    def _unreadable(self, source: str, rejection: Rejection) -> None:
        origin = str(getattr(rejection, "origin", "") or "")
        reason = _strip_origin(rejection.reason, origin)
        external_id = rejection.record_id if rejection.record_id != origin else ""
        if external_id:
            self.outbox.reject_unreadable(external_id, source, origin, reason)
        log.warning("push.rejected", external_id=external_id, origin=origin, reason=reason)
        self.report.reject(external_id, origin, reason)

    def _classify(self, payment: ExternalPayment, entry: OutboxEntry, outcome: str) -> _Work | None:
        ext, origin = payment.external_id, payment.origin
        if outcome == "conflict":
            self.report.reject(
                ext, origin, f"external id {ext} already belongs to a payment from {entry.source}"
            )
            return None
        if outcome == "changed" and entry.state == POSTED:
            self._changed(payment, entry.transaction_id)
            return None
        if entry.state == POSTED:
            self.report.count("already_posted", ext)
            return None
        if entry.state == DISMISSED and outcome == "same":
            self.report.count("dismissed", ext)
            return None
        if entry.state == HELD and outcome == "same":
            self.report.hold(ext, origin, entry.reason or "held")
            return None
        if outcome == "changed":  # POSTING: its earlier version may be in Invoiced already
            assert entry.payment is not None  # a posting entry was registered from a payment
            return _Work(entry, entry.payment, newer=payment)
        return _Work(entry, payment)

    def _changed(self, payment: ExternalPayment, transaction_id: str | None) -> None:
        ext = payment.external_id
        reason = f"changed after it was posted as transaction {transaction_id}; not posted again"
        log.warning("push.changed_after_post", external_id=ext, transaction_id=transaction_id)
        self.report.counts["changed"] += 1
        self.report.rejections.append((ext, payment.origin, reason))

    # -- one payment ---------------------------------------------------------------------------

    def _push(self, work: _Work) -> bool:
        """Settle one payment; True when it failed (the API, not the payment, was at fault)."""
        payment = work.payment
        ext = payment.external_id
        with structlog.contextvars.bound_contextvars(external_id=ext):
            try:
                if work.entry.state == POSTING and self.settings.lookup_grace:
                    self.sleep(self.settings.lookup_grace)
                found = self._lookup(ext)
                if found is not None:
                    self._adopt(work.entry, payment, found)
                    if work.newer is not None:
                        self._changed(work.newer, str(found["id"]))
                    return False
                if work.unread:
                    self._vanished(work.entry, payment)
                    return False
                if work.newer is not None:
                    self.outbox.replace(work.newer, work.entry.fingerprint, work.entry.generation)
                    work = _Work(work.entry, work.newer)
                self._validate_and_post(work)
                return False
            except RetryableApiError as exc:
                self._failed(ext, f"Invoiced unavailable: {exc}")
                return True
            except FatalApiError as exc:
                if exc.status in _AUTH_STATUSES:
                    self._failed(ext, f"Invoiced refused the credentials: {exc}")
                    raise _Stop(
                        f"Invoiced refused the credentials ({exc.status}): check [invoiced] api_key"
                    ) from None
                self._failed(ext, f"unexpected answer from Invoiced: {exc}")
                return True

    def _vanished(self, entry: OutboxEntry, payment: ExternalPayment) -> None:
        """Hold an open payment no longer read from its source and not found in Invoiced."""
        ext = payment.external_id
        reason = (
            f"changed: review: no longer in its source (last read at {payment.origin or entry.source}): "
            f"{duplicates.describe_payment(payment)}, left {entry.state}, was never posted and no "
            f"transaction in Invoiced carries it; syncd does not post it. If it is still owed, put it back in its "
            f"source and run `syncd errors retry {ext}`; else `syncd errors ignore {ext}` drops it"
        )
        if not self.outbox.hold_unread(ext, entry.fingerprint, entry.attempts, reason):
            return  # another run moved it on meanwhile: that run settles it
        log.warning("push.held", origin=payment.origin, reason=reason)
        self.report.hold(ext, payment.origin, reason)

    def _validate_and_post(self, work: _Work) -> None:
        payment, ext = work.payment, work.payment.external_id
        checked = self.validator.check(payment)
        if checked.reason is not None:
            self.outbox.mark_rejected(ext, checked.reason, checked.invoice_id)
            log.warning("push.rejected", origin=payment.origin, reason=checked.reason)
            self.report.reject(ext, payment.origin, checked.reason)
            return
        assert checked.invoice is not None
        fp = fingerprint(payment)
        if work.entry.confirmed:
            if work.entry.state == CONFIRMED:
                self.outbox.remember_confirmed(ext, fp)
        elif self._held(payment, checked.invoice):
            return
        body = transaction_body(payment, checked.invoice, self.settings.metadata_key)
        generation = work.entry.generation
        for second_try in (False, True):
            key = idempotency_key(self.settings.metadata_key, ext, generation)
            try:
                tx, found = self._post(ext, fp, body, key, work.entry)
                break
            except FatalApiError as exc:
                if exc.status in _AUTH_STATUSES or exc.status == 409:
                    raise
                # A 4xx means nothing was applied. It may replay the answer to an earlier request
                # with this key that the server never completed (a client killed mid-request):
                # try once more under a fresh key before believing it.
                generation = self.outbox.bump_generation(ext)
                if not second_try:
                    continue
                reason = f"Invoiced refused the payment: {exc.message}" + (
                    f" (param {exc.param})" if exc.param else ""
                )
                self.outbox.mark_rejected(ext, reason, checked.invoice_id)
                log.warning("push.rejected", origin=payment.origin, reason=reason)
                self.report.reject(ext, payment.origin, reason)
                return
        if tx is None:
            current = self.outbox.get(ext)
            if current is not None and current.state == POSTED:
                self.report.count("already_posted", ext)
            return
        if found:
            self._adopt(work.entry, payment, tx)
            return
        self.outbox.mark_posted(ext, str(tx["id"]), checked.invoice_id)
        log.info(
            "push.posted", transaction_id=tx.get("id"), invoice=checked.invoice_id, amount=str(payment.amount)
        )
        self.report.counts["posted"] += 1

    def _held(self, payment: ExternalPayment, invoice: Mapping[str, Any]) -> bool:
        """Hold a payment that looks already in Invoiced (edited, or entered by hand)."""
        if payment.source not in self.vanished:
            self.vanished[payment.source] = identity.vanished(
                self.outbox.engine, payment.source, self._read_ids
            )
        reason = identity.vanished_match(payment, self.vanished[payment.source])
        if reason is None and self.settings.duplicate_check:
            reason = duplicates.hand_entered(
                self.client,
                payment,
                invoice,
                metadata_key=self.settings.metadata_key,
                window_days=self.settings.duplicate_window_days,
            )
        if reason is None:
            return False
        self.outbox.mark_held(payment.external_id, reason, str(invoice["id"]))
        log.warning("push.held", origin=payment.origin, reason=reason)
        self.report.hold(payment.external_id, payment.origin, reason)
        return True

    def _post(
        self, ext: str, fp: str, body: Mapping[str, Any], key: str, entry: OutboxEntry
    ) -> tuple[dict[str, Any] | None, bool]:
        """Claim and POST under the retry policy: (transaction, found by lookup), or (None, False)
        when the payment moved on meanwhile (another run claimed or settled it). Each claim
        compares the row's `attempts` with what this run last saw (see `Outbox.claim`)."""
        state = {"unknown": False}

        def attempt() -> tuple[dict[str, Any] | None, bool]:
            if state["unknown"]:
                # The last POST may have been applied: only the lookup may decide to repost.
                if self.settings.lookup_grace:
                    self.sleep(self.settings.lookup_grace)
                found = self._lookup(ext)
                if found is not None:
                    return found, True
                state["unknown"] = False
            claimed = self.outbox.claim(ext, fp, entry.attempts)
            if claimed is None:
                return None, False
            entry.attempts = claimed
            try:
                return self.client.post("/transactions", body, idempotency_key=key), False
            except RetryableApiError as exc:
                state["unknown"] = bool(getattr(exc, "outcome_unknown", False))
                raise

        return self._retrying()(attempt)

    def _retrying(self) -> Retrying:
        """The client's policy parts, but retrying unknown outcomes too: the attempt looks up first."""
        p = self.policy
        return Retrying(
            retry=retry_if_exception_type(RetryableApiError),
            wait=WaitRetryAfter(backoff(p.base, p.max_wait)),
            stop=stop_after_attempt(p.attempts) | StopOverBudget(p.budget),
            before_sleep=log_retry,
            sleep=self.sleep,
            reraise=True,
        )

    def _lookup(self, external_id: str) -> dict[str, Any] | None:
        """The transaction carrying this external id in its metadata, if Invoiced has one."""
        key = self.settings.metadata_key
        page = self.client.get_page("/transactions", {f"metadata[{key}]": external_id, "per_page": "100"})
        matches = [t for t in page.items if str((t.get("metadata") or {}).get(key)) == external_id]
        if not matches:
            return None
        matches.sort(key=lambda t: (len(str(t.get("id"))), str(t.get("id"))))  # the oldest id first
        if len(matches) > 1:
            ids = ", ".join(str(t.get("id")) for t in matches)
            self._warn(
                f"payment {external_id}: {len(matches)} transactions carry it ({ids}); adopted {matches[0]['id']}"
            )
        return matches[0]

    def _adopt(self, entry: OutboxEntry, payment: ExternalPayment, tx: Mapping[str, Any]) -> None:
        ext = payment.external_id
        invoice = tx.get("invoice")
        invoice_id = (
            str(invoice["id"] if isinstance(invoice, Mapping) else invoice) if invoice is not None else None
        )
        self.outbox.mark_posted(ext, str(tx["id"]), invoice_id)
        if "amount" in tx and money(tx["amount"]) != payment.amount:
            self._warn(
                f"payment {ext}: adopted transaction {tx['id']} has amount {tx['amount']}, the source says {payment.amount}"
            )
        log.info("push.adopted", transaction_id=tx.get("id"), invoice=invoice_id)
        self.report.counts["adopted"] += 1

    def _failed(self, external_id: str, reason: str) -> None:
        current = self.outbox.get(external_id)
        if current is not None and current.state in (PENDING, POSTING, FAILED):
            self.outbox.mark_failed(external_id, reason)
        log.warning("push.failed", reason=reason)
        self._warn(f"payment {external_id}: {reason}")
        self.report.counts["failed"] += 1

    def _warn(self, text: str) -> None:
        self.report.warnings.append(text)
