"""Pushing payments to the sandbox: posting, validation, adoption, unknown outcomes."""

from __future__ import annotations

import csv
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console
from structlog.testing import capture_logs

from syncd.config import Settings
from syncd.invoiced import InvoicedClient, RetryPolicy
from syncd.pushback import idempotency_key, run_push, run_push_command
from syncd.pushback.outbox import Outbox
from syncd.pushback.validate import Checked, Validator
from syncd.store import Store
from tests.pushback.helpers import KEY, open_invoices, pushed, settings_for, write_inbox


def _client(sandbox: Any, sleeps: list[float] | None = None, api_key: str | None = None) -> InvoicedClient:
    policy = RetryPolicy(
        attempts=8, budget=60, sleep=(sleeps.append if sleeps is not None else lambda _: None)
    )
    return InvoicedClient.connect(sandbox.url, api_key or sandbox.api_key, policy=policy, timeout=5)


def _push(settings: Settings, sandbox: Any, **kw: Any) -> Any:
    client = kw.pop("client", None) or _client(sandbox)
    try:
        return run_push(settings, client=client, **kw)
    finally:
        client.close()


def _outbox(settings: Settings) -> dict[str, Any]:
    """Every outbox entry, by external id."""
    from sqlalchemy import select

    from syncd.pushback.outbox import OUTBOX

    store = Store.open(settings.store_url())
    try:
        box = Outbox(store.engine)
        with store.engine.connect() as conn:
            ids = [r[0] for r in conn.execute(select(OUTBOX.c.external_id))]
        return {ext: box.get(ext) for ext in ids}
    finally:
        store.close()


@pytest.fixture
def sb(make_sandbox: Any) -> Any:
    return make_sandbox(seed=11, customers=10, invoices=80, transactions=0)


def test_payments_post_and_invoices_become_paid_or_partly_paid(
    sb: Any, store_url: str, tmp_path: Path
) -> None:
    full, part, two = open_invoices(sb, 3)
    half = (part["balance"] / 2).quantize(Decimal("0.01"))
    inbox = write_inbox(
        tmp_path / "payments.csv",
        [
            {
                "external_id": "FULL",
                "invoice": full["number"],
                "amount": full["balance"],
                "currency": "usd",
                "reference": "1450",
            },
            {
                "external_id": "PART",
                "invoice": str(part["id"]),
                "amount": half,
                "currency": "USD",
                "method": "wire",
            },
            {
                "external_id": "TWO-a",
                "invoice": two["number"],
                "amount": "1.00",
                "currency": "usd",
                "notes": "first",
            },
            {"external_id": "TWO-b", "invoice": two["number"], "amount": "0.50", "currency": "usd"},
        ],
    )
    settings = settings_for(sb, store_url, tmp_path, inbox)
    report = _push(settings, sb)
    assert report.ok, report
    assert report.counts["posted"] == 4 and report.rejections == []

    txs = pushed(sb)
    assert sorted(txs) == ["FULL", "PART", "TWO-a", "TWO-b"]
    assert all(len(v) == 1 for v in txs.values())
    t = txs["FULL"][0]
    assert (t["type"], t["invoice"], t["amount"], t["method"], t["gateway_id"], t["currency"]) == (
        "payment",
        full["id"],
        full["balance"],
        "check",
        "1450",
        "usd",
    )
    assert t["metadata"] == {KEY: "FULL", "syncd_source": "csv"}
    assert t["date"] == 1717243200  # 2024-06-01 12:00 UTC: the same calendar day from UTC-11 to UTC+11
    assert txs["TWO-a"][0]["notes"] == "first"
    assert txs["PART"][0]["method"] == "wire"

    paid = sb.data.get("invoices", full["id"])
    assert paid["paid"] is True and paid["balance"] == 0 and paid["status"] == "paid"
    partly = sb.data.get("invoices", part["id"])
    assert partly["paid"] is False and partly["balance"] == part["balance"] - half
    assert partly["amount_paid"] == part["amount_paid"] + half
    assert sb.data.get("invoices", two["id"])["balance"] == two["balance"] - Decimal("1.50")

    outbox = _outbox(settings)
    assert {e.state for e in outbox.values()} == {"posted"}
    assert outbox["FULL"].transaction_id == str(t["id"])

    # A second run posts nothing again.
    again = _push(settings, sb)
    assert again.counts["already_posted"] == 4 and again.counts["posted"] == 0
    assert sum(len(v) for v in pushed(sb).values()) == 4


def test_invalid_payments_are_rejected_with_reasons_and_never_block_the_rest(
    sb: Any, store_url: str, tmp_path: Path
) -> None:
    good, other, small = open_invoices(sb, 3)
    eur = (
        open_invoices(sb, 1, currency="eur")[0]
        if any(
            i["currency"] == "eur"
            and not i["draft"]
            and i["balance"] > 1
            and i["status"] not in ("paid", "voided")
            for i in sb.data.list("invoices")
        )
        else None
    )
    customers = {c["id"]: c for c in sb.data.list("customers")}
    stranger = next(c for cid, c in customers.items() if cid != good["customer"] and c.get("number"))
    rows = [
        {
            "external_id": "OK",
            "invoice": good["number"],
            "amount": "1.00",
            "currency": "usd",
            "customer": customers[good["customer"]]["number"],
        },
        {"external_id": "NO-INVOICE", "invoice": "INV-DOES-NOT-EXIST", "amount": "1", "currency": "usd"},
        {"external_id": "WRONG-CUR", "invoice": other["number"], "amount": "1", "currency": "gbp"},
        {
            "external_id": "WRONG-CUSTOMER",
            "invoice": other["number"],
            "amount": "1",
            "currency": "usd",
            "customer": stranger["number"],
        },
        {
            "external_id": "TOO-MUCH",
            "invoice": small["number"],
            "amount": small["balance"] + 1,
            "currency": "usd",
        },
        {"external_id": "ZERO", "invoice": other["number"], "amount": "0", "currency": "usd"},
        {"external_id": "CENTS", "invoice": other["number"], "amount": "1.001", "currency": "usd"},
        {"external_id": "BAD-AMOUNT", "invoice": other["number"], "amount": "12abc", "currency": "usd"},
        {"external_id": "OK-2", "invoice": other["number"], "amount": "2.00", "currency": "usd"},
    ]
    if eur is not None:
        rows.append({"external_id": "EUR-ON-USD", "invoice": eur["number"], "amount": "1", "currency": "usd"})
    inbox = write_inbox(tmp_path / "payments.csv", rows)
    settings = settings_for(sb, store_url, tmp_path, inbox)
    report = _push(settings, sb)

    assert report.ok
    assert report.counts["posted"] == 2
    assert sorted(pushed(sb)) == ["OK", "OK-2"]
    reasons = {ext: (origin, reason) for ext, origin, reason in report.rejections}
    expected = {
        "NO-INVOICE": (3, "unknown invoice INV-DOES-NOT-EXIST"),
        "WRONG-CUR": (4, "currency GBP does not match invoice"),
        "WRONG-CUSTOMER": (5, f"customer {stranger['number']} does not match invoice"),
        "TOO-MUCH": (6, "above invoice"),
        "ZERO": (7, "not above zero"),
        "CENTS": (8, "more than 2 decimals"),
        "BAD-AMOUNT": (9, "bad amount '12abc'"),
    }
    if eur is not None:
        expected["EUR-ON-USD"] = (11, "currency USD does not match invoice")
    assert set(reasons) == set(expected)
    for ext, (line, text) in expected.items():
        origin, reason = reasons[ext]
        assert origin == f"{inbox}:{line}", (ext, origin)
        assert text in reason, (ext, reason)
    assert report.counts["rejected"] == len(expected)

    # The rejects CSV beside the inbox lists each rejected row as read, with its reason.
    rejects = tmp_path / "payments.rejects.csv"
    assert report.rejects_files == [rejects]
    with rejects.open(encoding="utf-8", newline="") as fh:
        listed = {r["external_id"]: r for r in csv.DictReader(fh)}
    assert set(listed) == set(expected)
    assert listed["BAD-AMOUNT"]["amount"] == "12abc" and listed["BAD-AMOUNT"]["line"] == "9"
    assert "unknown invoice" in listed["NO-INVOICE"]["reason"]

    states = {ext: e.state for ext, e in _outbox(settings).items()}
    assert states == {"OK": "posted", "OK-2": "posted", **dict.fromkeys(expected, "rejected")}

    # Overpayment allowed by configuration: the same row is posted on the next run.
    allowed = settings_for(sb, store_url, tmp_path, inbox, allow_overpayment=True)
    report = _push(allowed, sb)
    assert report.counts["posted"] == 1 and "TOO-MUCH" in pushed(sb)
    assert sb.data.get("invoices", small["id"])["balance"] == Decimal(-1)


def test_lost_response_is_adopted_not_posted_twice(sb: Any, store_url: str, tmp_path: Path) -> None:
    a, b = open_invoices(sb, 2)
    inbox = write_inbox(
        tmp_path / "p.csv",
        [
            {"external_id": "LOST-1", "invoice": a["number"], "amount": "3.00", "currency": "usd"},
            {"external_id": "LOST-2", "invoice": b["number"], "amount": "4.00", "currency": "usd"},
        ],
    )
    settings = settings_for(sb, store_url, tmp_path, inbox)
    sb.knobs.p_drop_after = 1.0  # every POST is applied, then the connection drops unanswered
    report = _push(settings, sb)
    sb.knobs.p_drop_after = 0.0
    assert report.counts["adopted"] == 2 and report.counts["posted"] == 0, report
    txs = pushed(sb)
    assert {k: len(v) for k, v in txs.items()} == {"LOST-1": 1, "LOST-2": 1}
    outbox = _outbox(settings)
    assert outbox["LOST-1"].state == "posted" and outbox["LOST-1"].transaction_id == str(
        txs["LOST-1"][0]["id"]
    )
    assert sb.data.get("invoices", a["id"])["balance"] == a["balance"] - 3


class _Killed(BaseException):
    """Stands for the process dying between sending a POST and recording its answer."""


class _DyingClient:
    """Dies at a POST: after sending it (`sent=True`) or just before."""

    def __init__(self, inner: InvoicedClient, *, sent: bool = True) -> None:
        self.inner, self.policy, self.sent = inner, inner.policy, sent

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def post(self, *args: Any, **kwargs: Any) -> Any:
        if self.sent:
            self.inner.post(*args, **kwargs)
        raise _Killed


def test_next_run_adopts_a_payment_whose_answer_was_lost_in_a_crash(
    sb: Any, store_url: str, tmp_path: Path
) -> None:
    (inv,) = open_invoices(sb, 1)
    inbox = write_inbox(
        tmp_path / "p.csv",
        [{"external_id": "CRASH", "invoice": inv["number"], "amount": "5", "currency": "usd"}],
    )
    settings = settings_for(sb, store_url, tmp_path, inbox)
    client = _client(sb)
    with pytest.raises(_Killed):
        run_push(settings, client=_DyingClient(client))  # type: ignore[arg-type]
    assert _outbox(settings)["CRASH"].state == "posting"
    assert len(pushed(sb)["CRASH"]) == 1
    posts_before = sb.stats.count("POST", "/transactions")
    report = _push(settings, sb)
    assert report.counts["adopted"] == 1 and report.counts["posted"] == 0
    assert sb.stats.count("POST", "/transactions") == posts_before  # looked up, never reposted
    assert len(pushed(sb)["CRASH"]) == 1
    assert _outbox(settings)["CRASH"].state == "posted"


def test_payment_entered_by_hand_with_the_metadata_is_adopted(
    sb: Any, store_url: str, tmp_path: Path
) -> None:
    (inv,) = open_invoices(sb, 1)
    by_hand = sb.data.create(
        "transactions",
        {"type": "payment", "invoice": inv["id"], "amount": Decimal("7.00"), "metadata": {KEY: "HAND-1"}},
    )
    inbox = write_inbox(
        tmp_path / "p.csv",
        [{"external_id": "HAND-1", "invoice": inv["number"], "amount": "7.00", "currency": "usd"}],
    )
    settings = settings_for(sb, store_url, tmp_path, inbox)
    report = _push(settings, sb)
    assert report.counts["adopted"] == 1 and report.counts["posted"] == 0
    assert [t["id"] for t in pushed(sb)["HAND-1"]] == [by_hand["id"]]
    assert _outbox(settings)["HAND-1"].transaction_id == str(by_hand["id"])


def test_payment_changed_after_posting_is_reported_not_reposted(
    sb: Any, store_url: str, tmp_path: Path
) -> None:
    (inv,) = open_invoices(sb, 1)
    inbox = tmp_path / "p.csv"
    write_inbox(
        inbox, [{"external_id": "CHG", "invoice": inv["number"], "amount": "1.00", "currency": "usd"}]
    )
    settings = settings_for(sb, store_url, tmp_path, inbox)
    assert _push(settings, sb).counts["posted"] == 1
    write_inbox(
        inbox, [{"external_id": "CHG", "invoice": inv["number"], "amount": "2.00", "currency": "usd"}]
    )
    report = _push(settings, sb)
    assert report.counts["changed"] == 1 and report.counts["posted"] == 0
    assert any(
        ext == "CHG" and "changed after it was posted" in reason for ext, _, reason in report.rejections
    )
    assert [t["amount"] for t in pushed(sb)["CHG"]] == [Decimal("1.00")]


def test_throttling_and_server_errors_are_retried_honouring_retry_after(
    make_sandbox: Any, store_url: str, tmp_path: Path
) -> None:
    # The token bucket answers 429 with Retry-After (>= 1 s); p429/p500 add bare 429s and 500s,
    # the 500s on POST too (an unknown outcome: looked up, then reposted). The bucket starts
    # with one token refilled every 10 s, so the second request is throttled however slow the
    # machine (at 100/s a starved machine never emptied it); once that wait is asked, it
    # refills at 100/s.
    sb = make_sandbox(
        seed=5, customers=10, invoices=60, transactions=0, p429=0.2, p500=0.2, rate_limit=0.1, burst=1
    )
    invoices = open_invoices(sb, 16)
    inbox = write_inbox(
        tmp_path / "p.csv",
        [
            {"external_id": f"R-{i}", "invoice": inv["number"], "amount": "1.00", "currency": "usd"}
            for i, inv in enumerate(invoices)
        ],
    )
    settings = settings_for(sb, store_url, tmp_path, inbox)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if seconds >= 1.0:
            sb.knobs.rate_limit, sb.knobs.burst = 100, 3
        time.sleep(0.02)  # enough for the bucket to refill a token; the asked wait is recorded

    policy = RetryPolicy(attempts=10, budget=600, sleep=sleep)
    client = InvoicedClient.connect(sb.url, sb.api_key, policy=policy, timeout=5)
    with capture_logs() as logs:
        report = _push(settings, sb, client=client)
    assert report.ok, report
    assert report.counts["posted"] + report.counts["adopted"] == 16
    assert {k: len(v) for k, v in pushed(sb).items()} == {f"R-{i}": 1 for i in range(16)}
    assert sb.stats.served_429 > 0 and sb.stats.served_500 > 0
    retried = {(e.get("method"), e.get("status")) for e in logs if e["event"] == "api.retry"}
    assert {("POST", 500), ("GET", 429), ("GET", 500)} <= retried
    assert any(s >= 1.0 for s in sleeps), "Retry-After must be honoured"
    assert all(s <= 60 for s in sleeps)


def test_wrong_api_key_stops_the_run_and_posts_nothing(sb: Any, store_url: str, tmp_path: Path) -> None:
    a, b = open_invoices(sb, 2)
    inbox = write_inbox(
        tmp_path / "p.csv",
        [
            {"external_id": f"K-{i}", "invoice": inv["number"], "amount": "1", "currency": "usd"}
            for i, inv in enumerate((a, b))
        ],
    )
    settings = settings_for(sb, store_url, tmp_path, inbox)
    report = _push(settings, sb, client=_client(sb, api_key="sk_wrong_key_123"))
    assert not report.ok and "credentials" in (report.error or "")
    assert report.counts["failed"] == 1 and report.counts["deferred"] == 1
    assert pushed(sb) == {}
    assert "sk_wrong_key_123" not in str(report)
    # With the right key the next run posts both.
    assert _push(settings, sb).counts["posted"] == 2


def test_push_command_prints_every_rejection_and_exits_3(sb: Any, store_url: str, tmp_path: Path) -> None:
    (inv,) = open_invoices(sb, 1)
    inbox = write_inbox(
        tmp_path / "p.csv",
        [
            {"external_id": "GOOD", "invoice": inv["number"], "amount": "1", "currency": "usd"},
            {"external_id": "NOPE", "invoice": "INV-404", "amount": "1", "currency": "usd"},
            {"external_id": "BAD", "invoice": inv["number"], "amount": "x", "currency": "usd"},
        ],
    )
    settings = settings_for(sb, store_url, tmp_path, inbox)
    console = Console(record=True, width=200)
    code = run_push_command(settings, console)
    text = console.export_text()
    assert code == 3
    assert "unknown invoice INV-404" in text and "bad amount 'x'" in text
    assert f"{inbox}:3" in text and f"{inbox}:4" in text
    assert "payments.rejects.csv" in text or "p.rejects.csv" in text
    assert sb.api_key not in text
    assert len(pushed(sb)) == 1


def test_a_replayed_refusal_gets_a_fresh_idempotency_key(sb: Any, store_url: str, tmp_path: Path) -> None:
    """A client killed mid-request can leave the API holding a 400 under the payment's key."""
    (inv,) = open_invoices(sb, 1)
    inbox = write_inbox(
        tmp_path / "p.csv",
        [{"external_id": "REPLAY", "invoice": inv["number"], "amount": "2.00", "currency": "usd"}],
    )
    settings = settings_for(sb, store_url, tmp_path, inbox)
    key = idempotency_key(KEY, "REPLAY")
    stale = httpx.post(
        f"{sb.url}/transactions", json={}, auth=(sb.api_key, ""), headers={"Idempotency-Key": key}
    )
    assert stale.status_code == 400  # the API now answers 400 to this key, whatever is sent
    report = _push(settings, sb)
    assert report.counts["posted"] == 1 and report.rejections == []
    assert len(pushed(sb)["REPLAY"]) == 1
    assert _outbox(settings)["REPLAY"].generation == 1


def test_a_payment_the_api_refuses_is_rejected_with_its_message(
    sb: Any, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (inv,) = open_invoices(sb, 1)
    inbox = write_inbox(
        tmp_path / "p.csv",
        [{"external_id": "REFUSED", "invoice": inv["number"], "amount": "2.00", "currency": "gbp"}],
    )
    settings = settings_for(sb, store_url, tmp_path, inbox)
    # Let an invalid payment through our own checks, so that Invoiced is the one refusing it.
    monkeypatch.setattr(Validator, "check", lambda self, p: Checked(self.find_invoice(p.invoice)[0]))
    report = _push(settings, sb)
    assert report.counts["rejected"] == 1 and report.counts["posted"] == 0
    ((ext, origin, reason),) = report.rejections
    assert (ext, origin) == ("REFUSED", f"{inbox}:2")
    assert reason.startswith("Invoiced refused the payment:") and "(param currency)" in reason
    assert pushed(sb) == {}
    entry = _outbox(settings)["REFUSED"]
    assert entry.state == "rejected" and entry.generation == 2  # tried under two keys


@pytest.mark.parametrize("sent", [True, False], ids=["applied", "never-sent"])
def test_content_changed_while_the_outcome_is_unknown(
    sb: Any, store_url: str, tmp_path: Path, sent: bool
) -> None:
    """Applied: the first version is adopted and the change reported. Never sent: the new one is posted."""
    (inv,) = open_invoices(sb, 1)
    inbox = tmp_path / "p.csv"
    row = {"external_id": "FLUX", "invoice": inv["number"], "currency": "usd"}
    write_inbox(inbox, [{**row, "amount": "1.00"}])
    settings = settings_for(sb, store_url, tmp_path, inbox)
    with pytest.raises(_Killed):
        run_push(settings, client=_DyingClient(_client(sb), sent=sent))  # type: ignore[arg-type]
    assert _outbox(settings)["FLUX"].state == "posting"
    write_inbox(inbox, [{**row, "amount": "3.00"}])
    report = _push(settings, sb)
    amounts = [t["amount"] for t in pushed(sb).get("FLUX", [])]
    if sent:
        assert amounts == [Decimal("1.00")]
        assert (report.counts["adopted"], report.counts["changed"], report.counts["posted"]) == (1, 1, 0)
        assert "changed after it was posted" in report.rejections[0][2]
    else:
        assert amounts == [Decimal("3.00")]
        assert (report.counts["adopted"], report.counts["changed"], report.counts["posted"]) == (0, 0, 1)
    assert _outbox(settings)["FLUX"].state == "posted"


def test_each_push_run_starts_a_fresh_rate_limit_budget(sb: Any, tmp_path: Path) -> None:
    """A daemon's client outlives its runs: the budget spent by one push must not fail the next."""
    [invoice] = open_invoices(sb, 1)
    inbox = write_inbox(
        tmp_path / "payments.csv",
        [{"external_id": "B1", "invoice": invoice["number"], "amount": "1.00", "currency": "usd"}],
    )
    settings = settings_for(sb, f"sqlite:///{tmp_path / 's.db'}", tmp_path, inbox)
    client = InvoicedClient.connect(sb.url, sb.api_key, policy=RetryPolicy(attempts=8, budget=60), timeout=5)
    client.pacer.limited = 10 * settings.invoiced.rate_limit_budget  # spent by earlier runs
    sb.knobs.rate_limit, sb.knobs.burst = 5.0, 1  # lookups and post meet 429s (waits of ~0.2 s)
    try:
        report = _push(settings, sb, client=client)
    finally:
        sb.knobs.rate_limit = None
    assert report.ok, report.error
    assert len(pushed(sb)["B1"]) == 1
