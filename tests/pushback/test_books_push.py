"""Payments recorded by hand in ledger books: a corrected entry is held, never posted twice."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import select

from connectors.ledger import LedgerConnector, LedgerSettings
from syncd.config import Settings
from syncd.invoiced import InvoicedClient, RetryPolicy
from syncd.plugin import ConnectorContext
from syncd.pushback import run_push
from syncd.pushback.command import print_report
from syncd.pushback.outbox import OUTBOX, Outbox
from syncd.pushback.push import PushReport
from syncd.store import Store
from tests.pushback.helpers import open_invoices

ENTRY = """\
{date} * (1450) Acme | Check 1450 deposited
    ; invoice: {invoice}
    ; method: check
    Assets:Bank:Checking                    {amount} USD
    Assets:Accounts Receivable:Acme
"""


@pytest.fixture
def sb(make_sandbox: Any) -> Any:
    return make_sandbox(seed=17, customers=6, invoices=40, transactions=0)


def _settings(sb: Any, store_url: str) -> Settings:
    return Settings(
        invoiced={"base_url": sb.url, "api_key": sb.api_key, "retry_budget": 30.0},
        store={"url": store_url},
        connectors={},
    )


def _push(sb: Any, store_url: str, books: Path) -> PushReport:
    ledger = LedgerConnector(
        LedgerSettings(enabled=True, payments_journal=books),
        ConnectorContext(name="ledger", outputs=None, state_dir=books.parent),  # type: ignore[arg-type]
    )
    policy = RetryPolicy(attempts=4, budget=30, sleep=lambda _: None)
    client = InvoicedClient.connect(sb.url, sb.api_key, policy=policy, timeout=5)
    try:
        return run_push(_settings(sb, store_url), client=client, connectors=[ledger])
    finally:
        client.close()


def _payments(sb: Any, *invoices: dict[str, Any]) -> list[dict[str, Any]]:
    ids = {inv["id"] for inv in invoices}
    return [t for t in sb.data.list("transactions") if t["invoice"] in ids]


def _state(store_url: str, ext: str) -> str | None:
    store = Store.open(store_url)
    try:
        entry = Outbox(store.engine).get(ext)
        return entry.state if entry is not None else None
    finally:
        store.close()


def _outbox_ids(store_url: str) -> list[str]:
    store = Store.open(store_url)
    try:
        with store.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(OUTBOX.c.external_id))]
    finally:
        store.close()


@pytest.mark.parametrize(
    "correction",
    [{"amount": "132.45"}, {"date": "2024-03-07"}, {"invoice": "second"}],
    ids=["amount", "date", "invoice"],
)
def test_corrected_book_payment_is_held_not_posted_again(
    sb: Any, store_url: str, tmp_path: Path, correction: dict[str, str]
) -> None:
    first, second = open_invoices(sb, 2)
    entry = {"date": "2024-03-05", "invoice": first["number"], "amount": "123.45"}
    books = tmp_path / "books.journal"
    books.write_text(ENTRY.format(**entry))
    assert _push(sb, store_url, books).counts["posted"] == 1
    (posted,) = _payments(sb, first, second)

    fixed = {**entry, **correction}
    if fixed["invoice"] == "second":
        fixed["invoice"] = second["number"]
    books.write_text(ENTRY.format(**fixed))
    for _ in range(2):  # and stays held run after run
        report = _push(sb, store_url, books)
        assert report.counts["posted"] == 0 and report.counts["held"] == 1
        assert _payments(sb, first, second) == [posted]
    [(ext, origin, reason)] = report.held
    assert origin == f"{books}:5"
    assert reason.startswith("changed: review: ")
    # The posted one is named as no longer matching the books, with its transaction.
    assert f"posted as transaction {posted['id']}" in reason and "no longer matches the books" in reason
    assert "(2024-03-05, 123.45 USD" in reason
    assert _state(store_url, ext) == "held"
    console = Console(record=True, width=400)
    print_report(report, console)
    text = console.export_text()
    assert f"syncd errors retry {ext}" in text and "To correct a payment syncd already posted" in text


def test_a_new_payment_beside_a_posted_one_is_posted(sb: Any, store_url: str, tmp_path: Path) -> None:
    (inv,) = open_invoices(sb, 1)
    books = tmp_path / "books.journal"
    old = ENTRY.format(date="2024-03-05", invoice=inv["number"], amount="1.00")
    books.write_text(old)
    assert _push(sb, store_url, books).counts["posted"] == 1
    books.write_text(old + "\n" + ENTRY.format(date="2024-03-06", invoice=inv["number"], amount="1.00"))
    report = _push(sb, store_url, books)
    assert report.counts["posted"] == 1 and report.counts["held"] == 0
    assert sorted(t["amount"] for t in _payments(sb, inv)) == [Decimal("1.00"), Decimal("1.00")]


def test_book_rejections_name_file_and_line_and_key_no_outbox_row_by_path(
    sb: Any, store_url: str, tmp_path: Path
) -> None:
    (inv,) = open_invoices(sb, 1)
    books = tmp_path / "books.journal"
    books.write_text(
        "2024-03-08 * Mistake: debits the receivable\n"
        f"    ; invoice: {inv['number']}\n"
        "    Assets:Accounts Receivable:Zoe        10.00 USD\n"
        "    Assets:Bank:Checking                 -10.00 USD\n"
    )
    report = _push(sb, store_url, books)
    [(ext, origin, reason)] = report.rejections
    assert (ext, origin) == ("", f"{books}:3") and "must credit the receivable" in reason
    assert _outbox_ids(store_url) == []


def test_books_not_in_utf8_are_refused_naming_the_byte_offset(
    sb: Any, store_url: str, tmp_path: Path
) -> None:
    (inv,) = open_invoices(sb, 1)
    books = tmp_path / "books.journal"
    text = ENTRY.format(date="2024-03-05", invoice=inv["number"], amount="1.00").replace("Acme", "Café")
    books.write_bytes(text.encode("latin-1"))
    report = _push(sb, store_url, books)
    [(_, origin, reason)] = report.rejections
    offset = text.encode("latin-1").index(b"\xe9")
    assert origin == str(books) and f"byte offset {offset}" in reason and report.counts["posted"] == 0
    books.write_bytes(text.encode("utf-16"))  # with a byte-order mark: read
    assert _push(sb, store_url, books).counts["posted"] == 1
