"""Push-back details: rejects file on a stopped run, inbox encodings, the metric, the date window."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from connectors.csv.inbox import read_inbox
from syncd.config import Settings
from syncd.daemon import Daemon
from syncd.daemon.reload import Loaded
from syncd.invoiced import InvoicedClient, RetryPolicy
from syncd.plugin import ExternalPayment, Rejection
from syncd.pushback import run_push
from syncd.pushback.push import PushReport
from syncd.store import Store
from tests.pushback.helpers import open_invoices, pushed, settings_for, write_inbox


@pytest.fixture
def sb(make_sandbox: Any) -> Any:
    return make_sandbox(seed=19, customers=6, invoices=40, transactions=0)


def _client(sb: Any, api_key: str | None = None) -> InvoicedClient:
    policy = RetryPolicy(attempts=4, budget=30, sleep=lambda _: None)
    return InvoicedClient.connect(sb.url, api_key or sb.api_key, policy=policy, timeout=5)


def _push(settings: Settings, sb: Any, api_key: str | None = None) -> PushReport:
    client = _client(sb, api_key)
    try:
        return run_push(settings, client=client)
    finally:
        client.close()


def _rejects(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_stopped_run_keeps_the_last_full_rejects_file(sb: Any, store_url: str, tmp_path: Path) -> None:
    (inv,) = open_invoices(sb, 1)
    inbox = write_inbox(
        tmp_path / "p.csv",
        [
            {"external_id": "NOPE", "invoice": "INV-404", "amount": "1", "currency": "usd"},
            {"external_id": "BAD", "invoice": inv["number"], "amount": "x", "currency": "usd"},
        ],
    )
    settings = settings_for(sb, store_url, tmp_path, inbox)
    first = _push(settings, sb)
    [rejects] = first.rejects_files
    assert sorted(r["external_id"] for r in _rejects(rejects)) == ["BAD", "NOPE"]
    stopped = _push(settings, sb, api_key="sk_wrong_key_123")  # the run stops before re-checking
    assert not stopped.ok and stopped.rejects_files == []
    assert sorted(r["external_id"] for r in _rejects(rejects)) == ["BAD", "NOPE"]
    assert any("kept from the last complete run" in w for w in stopped.warnings)
    assert sorted(r["external_id"] for r in _rejects(_push(settings, sb).rejects_files[0])) == ["BAD", "NOPE"]


ROWS = "external_id,invoice,amount,currency,date,notes\nE-1,INV-1,12.50,usd,2024-05-05,Café Crème\n"


def _payments(path: Path) -> tuple[list[ExternalPayment], list[Rejection]]:
    items = read_inbox(path)
    return (
        [p for p in items if isinstance(p, ExternalPayment)],
        [r for r in items if isinstance(r, Rejection)],
    )


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le-bom", "utf-32"])
def test_inbox_in_utf8_or_with_a_byte_order_mark_is_read(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "p.csv"
    if encoding == "utf-16-le-bom":
        path.write_bytes(b"\xff\xfe" + ROWS.encode("utf-16-le"))
    else:
        path.write_bytes(ROWS.encode(encoding))
    payments, rejections = _payments(path)
    assert rejections == []
    assert [(p.external_id, p.notes) for p in payments] == [("E-1", "Café Crème")]


def test_inbox_in_another_encoding_is_refused_naming_file_and_byte_offset(tmp_path: Path) -> None:
    latin = tmp_path / "latin.csv"
    latin.write_bytes(ROWS.encode("latin-1"))
    payments, [rejection] = _payments(latin)
    offset = ROWS.encode("latin-1").index(b"\xe9")
    assert payments == []
    assert str(latin) in rejection.reason and f"byte offset {offset}" in rejection.reason
    assert "0xe9" in rejection.reason
    bare16 = tmp_path / "bare16.csv"  # UTF-16 without a byte-order mark: no NULs copied anywhere
    bare16.write_bytes(ROWS.encode("utf-16-le"))
    payments, [rejection] = _payments(bare16)
    assert payments == [] and "byte offset 1" in rejection.reason and "\x00" not in rejection.reason


def test_already_posted_metric_counts_payments_not_runs(sb: Any, store_url: str, tmp_path: Path) -> None:
    a, b, c = open_invoices(sb, 3)
    inbox = write_inbox(
        tmp_path / "p.csv",
        [
            {"external_id": f"M-{i}", "invoice": inv["number"], "amount": "1", "currency": "usd"}
            for i, inv in enumerate((a, b, c))
        ],
    )
    settings = settings_for(sb, store_url, tmp_path, inbox)
    daemon = Daemon(settings)
    daemon.store = Store.open(settings.store_url())
    client = _client(sb)
    try:
        for _ in range(5):
            daemon._push(Loaded(settings, {}, ()), client)
    finally:
        client.close()
        daemon.store.close()
    metric = "syncd_pushback_payments_total"
    assert daemon.metrics.get(metric, outcome="posted") == 3
    assert daemon.metrics.get(metric, outcome="already_posted") == 3


def test_dates_outside_the_window_are_refused_naming_the_row(sb: Any, store_url: str, tmp_path: Path) -> None:
    a, b, c = open_invoices(sb, 3)
    today = dt.date.today()
    rows = [
        {"external_id": "FUTURE", "invoice": a["number"], "date": "2099-01-01"},
        {"external_id": "PAST", "invoice": b["number"], "date": "1900-01-01"},
        {"external_id": "OK", "invoice": c["number"], "date": (today - dt.timedelta(days=40)).isoformat()},
    ]
    inbox = write_inbox(tmp_path / "p.csv", [{**r, "amount": "1", "currency": "usd"} for r in rows])
    report = _push(settings_for(sb, store_url, tmp_path, inbox), sb)  # the defaults
    assert list(pushed(sb)) == ["OK"]
    reasons = {ext: (origin, reason) for ext, origin, reason in report.rejections}
    assert reasons["FUTURE"][0] == f"{inbox}:2" and "max_days_future" in reasons["FUTURE"][1]
    assert "2099-01-01 is more than 7 days in the future" in reasons["FUTURE"][1]
    assert reasons["PAST"][0] == f"{inbox}:3" and "max_days_past" in reasons["PAST"][1]
    assert "1900-01-01 is more than 3650 days in the past" in reasons["PAST"][1]
    (d,) = open_invoices(sb, 1)
    late = write_inbox(
        tmp_path / "late.csv",
        [
            {
                "external_id": "LATE",
                "invoice": d["number"],
                "amount": "1",
                "currency": "usd",
                "date": rows[2]["date"],
            }
        ],
    )
    report = _push(settings_for(sb, store_url, tmp_path, late, max_days_past=30), sb)
    [(ext, origin, reason)] = report.rejections
    assert ext == "LATE" and origin == f"{late}:2" and "more than 30 days in the past" in reason
    assert "LATE" not in pushed(sb)
