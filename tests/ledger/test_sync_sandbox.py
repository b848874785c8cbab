"""A real sync against the sandbox: the journal passes hledger and its AR equals what Invoiced says is owed."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from syncd.config import Settings
from syncd.engine import run_sync
from tests.ledger.helpers import ROOT, ar_balances, hledger_check
from tests.ledger.test_default_mapping import expected_ar


def _settings(sandbox: Any, tmp_path: Path, **ledger: Any) -> Settings:
    return Settings(
        invoiced={"base_url": sandbox.url, "api_key": sandbox.api_key, "retry_budget": 60.0},
        store={"url": f"sqlite:///{tmp_path / 'syncd.db'}"},
        connectors={
            "ledger": {
                "enabled": True,
                "path": str(tmp_path / "invoiced.journal"),
                "mapping": str(ROOT / "mappings" / "ledger.toml"),
                **ledger,
            }
        },
    )


def test_sync_then_edits_keep_ar_equal_to_sandbox(make_sandbox: Callable[..., Any], tmp_path: Path) -> None:
    sb = make_sandbox(seed=3, customers=15, invoices=120, transactions=90)
    settings = _settings(sb, tmp_path)
    path = tmp_path / "invoiced.journal"

    report = run_sync(settings)
    assert report.ok, report.errors()
    assert not any(s.rejected for s in report.streams.values())
    hledger_check(path)
    assert len(expected_ar(sb.data)) > 5
    assert ar_balances(path) == expected_ar(sb.data)
    first = path.read_bytes()

    # Nothing changed: a second run leaves the file byte-identical.
    assert run_sync(settings).ok
    assert path.read_bytes() == first

    invoices = sb.data.list("invoices")
    open_ = [i for i in invoices if i["status"] in ("past_due", "sent", "viewed", "not_sent")]
    paid = [i for i in invoices if i["status"] == "paid"]
    unit = lambda inv: Decimal(100) if inv["currency"] == "jpy" else Decimal(1)  # noqa: E731
    a, b = open_[0], open_[1]
    sb.data.create(
        "transactions", {"type": "payment", "invoice": a["id"], "amount": unit(a), "method": "check"}
    )
    sb.data.create(
        "transactions", {"type": "refund", "invoice": paid[0]["id"], "amount": unit(paid[0]), "method": "ach"}
    )
    sb.data.create(
        "transactions", {"type": "adjustment", "invoice": b["id"], "amount": -unit(b), "method": "balance"}
    )
    sb.data.void_invoice(next(i for i in open_[2:] if not i["amount_paid"])["id"])
    gone = next(t for t in sb.data.list("transactions") if t["invoice"] == paid[1]["id"])
    sb.data.delete("transactions", gone["id"])
    sb.data.update(
        "invoices", open_[3]["id"], {"items": [{"name": "Rework", "quantity": 2, "unit_cost": unit(a) * 7}]}
    )
    sb.data.update("customers", a["customer"], {"name": "Renamed Holdings"})

    assert run_sync(settings).ok
    hledger_check(path)
    assert ar_balances(path) == expected_ar(sb.data)
    text = path.read_text()
    assert f"; invoiced_type: transaction\n    ; invoiced_id: {gone['id']}\n" not in text
    assert "Renamed Holdings" in text


def test_payment_from_the_books_is_pushed_once_and_not_counted_twice(
    make_sandbox: Callable[..., Any], tmp_path: Path
) -> None:
    from syncd.pushback.run import run_push

    sb = make_sandbox(seed=4, customers=8, invoices=40, transactions=20)
    main = tmp_path / "main.journal"
    main.write_text("include invoiced.journal\n\naccount Assets:Bank:Checking\n")
    settings = _settings(sb, tmp_path, main_journal=str(main))
    assert run_sync(settings).ok

    inv = next(i for i in sb.data.list("invoices") if i["status"] == "past_due" and i["currency"] != "jpy")
    customer = sb.data.get("customers", inv["customer"])
    account = f"Assets:Accounts Receivable:{customer['name']} ({customer['number']})"
    main.write_text(
        main.read_text() + f"\n2025-05-30 * {customer['name']} | check deposited\n"
        f"    ; invoice: {inv['number']}\n    ; method: check\n"
        f"    Assets:Bank:Checking  10.00 {inv['currency'].upper()}\n    {account}\n"
    )
    before = len(sb.data.list("transactions"))
    report = run_push(settings)
    assert report.ok and report.counts.get("posted") == 1, report.counts
    [pushed] = sb.data.list("transactions")[before:]
    assert pushed["amount"] == Decimal("10.00") and pushed["invoice"] == inv["id"]

    assert run_sync(settings).ok
    hledger_check(main)
    # The books hold the payment once (the hand-written entry), and AR equals Invoiced.
    assert ar_balances(main) == expected_ar(sb.data)
    generated = (tmp_path / "invoiced.journal").read_text()
    assert f"; invoiced_type: transaction\n    ; invoiced_id: {pushed['id']}\n" not in generated
    # Pushing again posts nothing: the payment's id is stable.
    assert run_push(settings).counts.get("posted", 0) == 0
    assert len(sb.data.list("transactions")) == before + 1


def test_ledger_dialect_sync_is_accepted_by_ledger_cli(
    make_sandbox: Callable[..., Any], tmp_path: Path
) -> None:
    from tests.ledger.helpers import ledger_ar, ledger_check

    sb = make_sandbox(seed=7, customers=8, invoices=50, transactions=40)
    settings = _settings(sb, tmp_path, dialect="ledger", path=str(tmp_path / "books.ledger"))
    sb.data.void_invoice(
        next(
            i
            for i in sb.data.list("invoices")
            if i["status"] in ("past_due", "sent", "viewed", "not_sent") and not i["amount_paid"]
        )["id"]
    )
    assert run_sync(settings).ok
    path = tmp_path / "books.ledger"
    ledger_check(path)  # --pedantic and --strict: every account, commodity and tag declared
    assert ledger_ar(path) == expected_ar(sb.data)
    hledger_check(path)
