"""Payments held for review: entered by hand in Invoiced, or an inbox row whose id was changed."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import update

from syncd.config import Settings
from syncd.invoiced import InvoicedClient, RetryPolicy
from syncd.pushback import run_push
from syncd.pushback.command import exit_code, print_report
from syncd.pushback.outbox import OUTBOX, Outbox
from syncd.pushback.push import PushReport
from syncd.store import Store
from tests.pushback.helpers import open_invoices, outbox_entry, pushed, settings_for, write_inbox


@pytest.fixture
def sb(make_sandbox: Any) -> Any:
    return make_sandbox(seed=13, customers=6, invoices=40, transactions=0)


def _push(settings: Settings, sandbox: Any) -> PushReport:
    policy = RetryPolicy(attempts=4, budget=30, sleep=lambda _: None)
    client = InvoicedClient.connect(sandbox.url, sandbox.api_key, policy=policy, timeout=5)
    try:
        return run_push(settings, client=client)
    finally:
        client.close()


def _set_state(settings: Settings, ext: str, state: str) -> None:
    """What `syncd errors retry` / `ignore` do to a held payment."""
    store = Store.open(settings.store_url())
    try:
        with store.engine.begin() as conn:
            conn.execute(update(OUTBOX).where(OUTBOX.c.external_id == ext).values(state=state))
    finally:
        store.close()


def _by_hand(sandbox: Any, inv: dict[str, Any], amount: str, day: str, reference: str | None = None) -> Any:
    """A payment an accountant typed into Invoiced: no syncd metadata."""
    fields: dict[str, Any] = {
        "type": "payment",
        "invoice": inv["id"],
        "amount": Decimal(amount),
        "currency": inv["currency"],
        "method": "check",
        "date": int(dt.datetime.fromisoformat(day + "T12:00:00+00:00").timestamp()),
    }
    if reference:
        fields["gateway_id"] = reference
    return sandbox.data.create("transactions", fields)


def _on_invoice(sandbox: Any, inv: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in sandbox.data.list("transactions") if t["invoice"] == inv["id"]]


def _printed(report: PushReport) -> str:
    console = Console(record=True, width=400)
    print_report(report, console)
    return console.export_text()


def test_payment_entered_by_hand_is_held_until_confirmed(sb: Any, store_url: str, tmp_path: Path) -> None:
    (inv,) = open_invoices(sb, 1)
    hand = _by_hand(sb, inv, "50.00", "2024-06-02", "1450")
    row = {"external_id": "HAND", "invoice": inv["number"], "amount": "50.00", "currency": "usd"}
    inbox = write_inbox(tmp_path / "p.csv", [{**row, "reference": "1450"}])
    settings = settings_for(sb, store_url, tmp_path, inbox)

    report = _push(settings, sb)
    assert "HAND" not in pushed(sb) and len(_on_invoice(sb, inv)) == 1
    assert report.counts["held"] == 1 and report.counts["posted"] == 0
    entry = outbox_entry(settings, "HAND")
    assert entry.state == "held" and entry.reason is not None
    assert entry.reason.startswith("possible duplicate: ")
    # Both sides: the external payment and the transaction found in Invoiced.
    assert "payment HAND (2024-06-01, 50.00 USD" in entry.reason
    assert f"transaction {hand['id']} (2024-06-02, 50" in entry.reason and "reference 1450" in entry.reason
    text = _printed(report)
    assert "syncd errors retry HAND" in text and "syncd errors ignore HAND" in text
    assert exit_code(report) == 3
    assert "HAND" not in pushed(sb)

    again = _push(settings, sb)  # still held: it waits for the user, no second look needed
    assert again.counts["held"] == 1 and again.counts["posted"] == 0 and "HAND" not in pushed(sb)

    _set_state(settings, "HAND", "confirmed")  # `syncd errors retry HAND`
    confirmed = _push(settings, sb)
    assert confirmed.counts["posted"] == 1 and confirmed.counts["held"] == 0
    assert len(pushed(sb)["HAND"]) == 1 and outbox_entry(settings, "HAND").state == "posted"
    assert len(_on_invoice(sb, inv)) == 2


def test_confirmed_payment_is_still_validated(sb: Any, store_url: str, tmp_path: Path) -> None:
    (inv,) = open_invoices(sb, 1)
    _by_hand(sb, inv, "5.00", "2024-06-01")
    inbox = write_inbox(
        tmp_path / "p.csv",
        [{"external_id": "C", "invoice": inv["number"], "amount": "5.00", "currency": "usd"}],
    )
    settings = settings_for(sb, store_url, tmp_path, inbox)
    _push(settings, sb)
    assert "C" not in pushed(sb) and outbox_entry(settings, "C").state == "held"
    sb.data.void_invoice(inv["id"])
    _set_state(settings, "C", "confirmed")
    report = _push(settings, sb)
    assert report.counts["rejected"] == 1 and report.counts["posted"] == 0
    assert "voided" in report.rejections[0][2]


def test_dismissed_payment_is_never_posted_until_its_content_changes(
    sb: Any, store_url: str, tmp_path: Path
) -> None:
    (inv,) = open_invoices(sb, 1)
    _by_hand(sb, inv, "20.00", "2024-06-01")
    row = {"external_id": "DIS", "invoice": inv["number"], "amount": "20.00", "currency": "usd"}
    inbox = write_inbox(tmp_path / "p.csv", [row])
    settings = settings_for(sb, store_url, tmp_path, inbox)
    _push(settings, sb)
    assert "DIS" not in pushed(sb) and outbox_entry(settings, "DIS").state == "held"

    _set_state(settings, "DIS", "dismissed")  # `syncd errors ignore DIS`
    for _ in range(2):
        report = _push(settings, sb)
        assert report.counts["posted"] == report.counts["held"] == report.counts["rejected"] == 0
        assert report.counts["dismissed"] == 1 and report.ok and exit_code(report) == 0
        assert outbox_entry(settings, "DIS").state == "dismissed" and "DIS" not in pushed(sb)

    write_inbox(inbox, [{**row, "amount": "21.00"}])  # edited: considered again
    report = _push(settings, sb)
    assert report.counts["posted"] == 1 and [t["amount"] for t in pushed(sb)["DIS"]] == [Decimal("21.00")]


def test_near_misses_are_posted_and_the_check_can_be_switched_off(
    sb: Any, store_url: str, tmp_path: Path
) -> None:
    ref, far, amount, off = open_invoices(sb, 4)
    _by_hand(sb, ref, "10.00", "2024-06-01", "CHK-1")
    _by_hand(sb, far, "10.00", "2024-05-20")  # 12 days before
    _by_hand(sb, amount, "10.01", "2024-06-01")
    rows = [
        {"external_id": "REF", "invoice": ref["number"], "amount": "10.00", "reference": "CHK-2"},
        {"external_id": "FAR", "invoice": far["number"], "amount": "10.00"},
        {"external_id": "AMOUNT", "invoice": amount["number"], "amount": "10.00"},
    ]
    inbox = write_inbox(tmp_path / "p.csv", [{**r, "currency": "usd"} for r in rows])
    report = _push(settings_for(sb, store_url, tmp_path, inbox), sb)
    assert report.counts["posted"] == 3 and report.counts["held"] == 0

    _by_hand(sb, off, "10.00", "2024-06-01")
    inbox2 = write_inbox(
        tmp_path / "q.csv",
        [{"external_id": "OFF", "invoice": off["number"], "amount": "10.00", "currency": "usd"}],
    )
    settings = settings_for(sb, store_url, tmp_path, inbox2, duplicate_check=False)
    assert _push(settings, sb).counts["posted"] == 1


def test_window_is_configurable(sb: Any, store_url: str, tmp_path: Path) -> None:
    (inv,) = open_invoices(sb, 1)
    _by_hand(sb, inv, "10.00", "2024-05-20")
    inbox = write_inbox(
        tmp_path / "p.csv",
        [{"external_id": "W", "invoice": inv["number"], "amount": "10.00", "currency": "usd"}],
    )
    settings = settings_for(sb, store_url, tmp_path, inbox, duplicate_window_days=14)
    assert _push(settings, sb).counts["held"] == 1


def test_inbox_row_whose_id_was_changed_is_held_as_possible_duplicate(
    sb: Any, store_url: str, tmp_path: Path
) -> None:
    (inv,) = open_invoices(sb, 1)
    row = {"invoice": inv["number"], "amount": "30.00", "currency": "usd", "reference": "77"}
    inbox = write_inbox(tmp_path / "p.csv", [{**row, "external_id": "OLD"}])
    settings = settings_for(sb, store_url, tmp_path, inbox)
    assert _push(settings, sb).counts["posted"] == 1
    (posted,) = pushed(sb)["OLD"]

    write_inbox(inbox, [{**row, "external_id": "NEW"}])  # the id edited by hand
    report = _push(settings, sb)
    assert len(_on_invoice(sb, inv)) == 1 and "NEW" not in pushed(sb)
    assert report.counts["held"] == 1 and report.counts["posted"] == 0
    reason = outbox_entry(settings, "NEW").reason or ""
    assert reason.startswith("possible duplicate: ") and "payment OLD" in reason
    assert f"transaction {posted['id']}" in reason and f"{tmp_path / 'p.csv'}:2" in reason
    assert len(_on_invoice(sb, inv)) == 1


def test_a_second_payment_of_the_same_amount_with_its_own_row_is_posted(
    sb: Any, store_url: str, tmp_path: Path
) -> None:
    (inv,) = open_invoices(sb, 1)
    row = {"invoice": inv["number"], "amount": "1.00", "currency": "usd"}
    inbox = write_inbox(tmp_path / "p.csv", [{**row, "external_id": "A"}])
    settings = settings_for(sb, store_url, tmp_path, inbox)
    assert _push(settings, sb).counts["posted"] == 1
    write_inbox(inbox, [{**row, "external_id": "A"}, {**row, "external_id": "B"}])
    assert _push(settings, sb).counts["posted"] == 1
    assert len(_on_invoice(sb, inv)) == 2


def test_a_confirmed_payment_claimed_before_a_crash_is_not_held_again(
    sb: Any, store_url: str, tmp_path: Path
) -> None:
    (inv,) = open_invoices(sb, 1)
    _by_hand(sb, inv, "8.00", "2024-06-01")
    inbox = write_inbox(
        tmp_path / "p.csv",
        [{"external_id": "K", "invoice": inv["number"], "amount": "8.00", "currency": "usd"}],
    )
    settings = settings_for(sb, store_url, tmp_path, inbox)
    _push(settings, sb)
    _set_state(settings, "K", "confirmed")
    # A push that confirmed and claimed it, then died before its POST reached Invoiced.
    store = Store.open(settings.store_url())
    try:
        box, fp = Outbox(store.engine), outbox_entry(settings, "K").fingerprint
        box.remember_confirmed("K", fp)
        assert box.claim("K", fp)
    finally:
        store.close()
    assert outbox_entry(settings, "K").state == "posting"
    report = _push(settings, sb)
    assert report.counts["posted"] == 1 and report.counts["held"] == 0 and len(pushed(sb)["K"]) == 1


def test_a_confirmed_row_that_became_unreadable_is_not_posted(
    sb: Any, store_url: str, tmp_path: Path
) -> None:
    (inv,) = open_invoices(sb, 1)
    _by_hand(sb, inv, "9.00", "2024-06-01")
    row = {"external_id": "U", "invoice": inv["number"], "amount": "9.00", "currency": "usd"}
    inbox = write_inbox(tmp_path / "p.csv", [row])
    settings = settings_for(sb, store_url, tmp_path, inbox)
    _push(settings, sb)
    _set_state(settings, "U", "confirmed")
    write_inbox(inbox, [{**row, "amount": "9,0.0"}])
    report = _push(settings, sb)
    assert "U" not in pushed(sb) and report.counts["rejected"] == 1
    assert outbox_entry(settings, "U").state == "rejected"
