"""An open payment (failed, pending, confirmed) no longer read from its source is never posted.

The reviewer's case: `PAY-1` fails to post (Invoiced down), the user corrects the id to
`PAY-001`; the next push must not post both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from connectors.ledger import LedgerConnector, LedgerSettings
from syncd.config import Settings
from syncd.errors import RetryableApiError
from syncd.invoiced import InvoicedClient, RetryPolicy
from syncd.plugin import Connector, ConnectorContext
from syncd.pushback import run_push
from syncd.pushback.command import print_report
from syncd.pushback.outbox import retry_payment
from syncd.pushback.push import PushReport
from syncd.store import Store
from tests.pushback.helpers import KEY, open_invoices, outbox_entry, pushed, settings_for, write_inbox
from tests.pushback.test_books_push import ENTRY


@pytest.fixture
def sb(make_sandbox: Any) -> Any:
    return make_sandbox(seed=19, customers=6, invoices=40, transactions=0)


def _push(settings: Settings, sandbox: Any, *, down: bool = False, connectors: list[Connector] | None = None) -> PushReport:
    policy = RetryPolicy(attempts=1, budget=30, sleep=lambda _: None)
    client = InvoicedClient.connect(sandbox.url, sandbox.api_key, policy=policy, timeout=5)
    if down:

        def refuse(*_a: Any, **_k: Any) -> Any:
            raise RetryableApiError("Invoiced unavailable (503)", status=503)  # never applied

        client.post = refuse  # type: ignore[method-assign]
    try:
        return run_push(settings, client=client, connectors=connectors)
    finally:
        client.close()


def _retry(settings: Settings, ext: str) -> str | None:
    """`syncd errors retry ext`."""
    store = Store.open(settings.store_url())
    try:
        return retry_payment(store, ext)
    finally:
        store.close()


def _row(sb: Any) -> dict[str, str]:
    (inv,) = open_invoices(sb, 1)
    return {"invoice": inv["number"], "amount": "10.00", "currency": "usd", "reference": "chk-1450"}


def test_failed_payment_whose_id_was_corrected_is_not_posted_twice(
    sb: Any, store_url: str, tmp_path: Path
) -> None:
    row = _row(sb)
    inbox = write_inbox(tmp_path / "inbox.csv", [{**row, "external_id": "PAY-1"}])
    settings = settings_for(sb, store_url, tmp_path, inbox)
    assert _push(settings, sb, down=True).counts["failed"] == 1
    assert outbox_entry(settings, "PAY-1").state == "failed"

    write_inbox(inbox, [{**row, "external_id": "PAY-001"}])  # the id typo fixed by hand
    report = _push(settings, sb)
    assert pushed(sb) == {} and report.counts["posted"] == 0 and report.counts["held"] == 2
    old, new = outbox_entry(settings, "PAY-1"), outbox_entry(settings, "PAY-001")
    assert old.state == new.state == "held"
    assert (old.reason or "").startswith("changed: review: no longer in its source")
    assert (new.reason or "").startswith("possible duplicate: ") and "payment PAY-1 " in (new.reason or "")

    # The user confirms the new one: posted once; the old one stays held.
    assert _retry(settings, "PAY-001") == "confirmed"
    report = _push(settings, sb)
    assert report.counts["posted"] == 1
    assert list(pushed(sb)) == ["PAY-001"] and outbox_entry(settings, "PAY-1").state == "held"


def test_row_deleted_before_it_was_posted_is_held_even_once_confirmed(
    sb: Any, store_url: str, tmp_path: Path
) -> None:
    row = _row(sb)
    inbox = write_inbox(tmp_path / "inbox.csv", [{**row, "external_id": "PAY-1"}])
    settings = settings_for(sb, store_url, tmp_path, inbox)
    assert _push(settings, sb, down=True).counts["failed"] == 1
    write_inbox(inbox, [])
    for _ in range(2):  # confirming a payment gone from its source does not post it
        report = _push(settings, sb)
        assert pushed(sb) == {} and report.counts["held"] == 1
        assert (outbox_entry(settings, "PAY-1").reason or "").startswith("changed: review: no longer in its source")
        assert _retry(settings, "PAY-1") == "confirmed"
    console = Console(record=True, width=400)
    print_report(report, console)
    text = console.export_text()  # never posted: no advice about correcting a posted transaction
    assert "syncd errors ignore PAY-1" in text and "To correct a payment syncd already posted" not in text
    # Put back in its source, the confirmed payment is posted, once.
    write_inbox(inbox, [{**row, "external_id": "PAY-1"}])
    assert _push(settings, sb).counts["posted"] == 1 and len(pushed(sb)["PAY-1"]) == 1


def test_payment_gone_from_its_source_but_in_invoiced_is_adopted(
    sb: Any, store_url: str, tmp_path: Path
) -> None:
    row = _row(sb)
    inbox = write_inbox(tmp_path / "inbox.csv", [{**row, "external_id": "PAY-1"}])
    settings = settings_for(sb, store_url, tmp_path, inbox)
    assert _push(settings, sb, down=True).counts["failed"] == 1
    (inv,) = open_invoices(sb, 1)
    tx = sb.data.create(  # its POST did reach Invoiced after all
        "transactions",
        {"type": "payment", "invoice": inv["id"], "amount": 10, "currency": "usd", "metadata": {KEY: "PAY-1"}},
    )
    write_inbox(inbox, [])
    report = _push(settings, sb)
    assert report.counts["adopted"] == 1 and report.counts["held"] == 0
    entry = outbox_entry(settings, "PAY-1")
    assert entry.state == "posted" and entry.transaction_id == str(tx["id"])
    assert len(pushed(sb)["PAY-1"]) == 1


def test_book_entry_corrected_while_its_post_failed_is_not_posted_twice(
    sb: Any, store_url: str, tmp_path: Path
) -> None:
    (inv,) = open_invoices(sb, 1)
    books = tmp_path / "books.journal"
    entry = {"date": "2024-03-05", "invoice": inv["number"], "amount": "123.45"}
    books.write_text(ENTRY.format(**entry))
    settings = Settings(
        invoiced={"base_url": sb.url, "api_key": sb.api_key, "retry_budget": 30.0},
        store={"url": store_url},
        connectors={},
    )
    ledger = LedgerConnector(
        LedgerSettings(enabled=True, payments_journal=books),
        ConnectorContext(name="ledger", outputs=None, state_dir=tmp_path),  # type: ignore[arg-type]
    )
    assert _push(settings, sb, down=True, connectors=[ledger]).counts["failed"] == 1
    books.write_text(ENTRY.format(**{**entry, "amount": "132.45"}))  # corrected: a new hashed id
    report = _push(settings, sb, connectors=[ledger])
    assert pushed(sb) == {} and report.counts["posted"] == 0 and report.counts["held"] == 2
    reasons = sorted(reason for _, _, reason in report.held)
    assert all(r.startswith("changed: review: ") for r in reasons)
    assert any(r.startswith("changed: review: no longer in its source") for r in reasons)
