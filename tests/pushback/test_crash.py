"""Crash test: SIGKILL `syncd push` at random points, restart, and never post a payment twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from syncd.status import outbox_counts
from syncd.store import Store
from tests.gate import RequestGate
from tests.pushback.helpers import open_invoices, pushed, settings_data, toml, write_inbox

KILLS = 50
MOST = 10
SEED = int(os.environ.get("SYNCD_CRASH_SEED", "20240601"))


def _rows(sandbox: Any, rng: random.Random) -> tuple[list[dict[str, Any]], set[str], dict[int, Decimal]]:
    """200 payments: 170 valid (40 invoices paid twice), 30 invalid; and the expected paid amount per invoice."""
    invoices = open_invoices(sandbox, 150)
    rows: list[dict[str, Any]] = []
    paid: dict[int, Decimal] = {}

    def pay(ext: str, inv: dict[str, Any], amount: Decimal) -> None:
        rows.append({"external_id": ext, "invoice": inv["number"], "amount": amount, "currency": "usd"})
        paid[inv["id"]] = paid.get(inv["id"], Decimal(0)) + amount

    for i, inv in enumerate(invoices[:130]):
        pay(f"V{i:03d}", inv, (inv["balance"] / 3).quantize(Decimal("0.01")))
    for i, inv in enumerate(invoices[:40]):
        pay(f"W{i:03d}", inv, (inv["balance"] / 3).quantize(Decimal("0.01")))
    valid = {r["external_id"] for r in rows}
    for i in range(10):
        rows.append(
            {"external_id": f"X-UNKNOWN-{i}", "invoice": f"NOPE-{i}", "amount": "1", "currency": "usd"}
        )
    for i, inv in enumerate(invoices[130:140]):
        rows.append(
            {
                "external_id": f"X-OVER-{i}",
                "invoice": inv["number"],
                "amount": inv["balance"] * 2,
                "currency": "usd",
            }
        )
    for i, inv in enumerate(invoices[140:145]):
        rows.append({"external_id": f"X-CUR-{i}", "invoice": inv["number"], "amount": "1", "currency": "eur"})
    for i, inv in enumerate(invoices[145:150]):
        rows.append(
            {"external_id": f"X-AMOUNT-{i}", "invoice": inv["number"], "amount": "1.2.3", "currency": "usd"}
        )
    rng.shuffle(rows)
    assert len(rows) == 200 and len(valid) == 170
    return rows, valid, paid


@pytest.mark.slow
def test_sigkill_at_random_points_never_loses_or_duplicates_a_payment(
    make_sandbox: Any, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    sb = make_sandbox(seed=SEED % 1000, customers=30, invoices=400, transactions=0, p429=0.02, p500=0.02)
    rows, valid, paid = _rows(sb, rng)
    before = {inv["id"]: inv["balance"] for inv in sb.data.list("invoices")}
    inbox = write_inbox(tmp_path / "payments.csv", rows)
    store_url = f"sqlite:///{tmp_path / 'syncd.db'}"
    config = tmp_path / "syncd.toml"
    config.write_text(toml(settings_data(sb, store_url, tmp_path, inbox)), encoding="utf-8")
    argv = [sys.executable, "-m", "syncd.cli", "--config", str(config), "push"]
    log = (tmp_path / "push.log").open("ab")

    # Requests answered before each kill; the sandbox holds the rest until the kill, so fifty
    # runs answer at most 50 x MOST = 500 requests, fewer than the ~590 an uninterrupted push
    # of these payments takes: no run can finish early, on a fast machine or a slow one.
    gate = RequestGate(sb)
    kills = 0
    while kills < KILLS:
        gate.allow(rng.randint(1, MOST))  # lands anywhere in a payment: lookup, check, post
        proc = subprocess.Popen(argv, cwd=tmp_path, stdout=log, stderr=log)
        deadline = time.monotonic() + 120  # only for a starved machine: the kill point is the count
        while proc.poll() is None and not gate.reached() and time.monotonic() < deadline:
            time.sleep(0.001)
        if proc.poll() is not None:
            break  # a run finished on its own: reported below
        if rng.random() < 0.3:
            time.sleep(rng.random() * 0.02)  # sometimes while the last answer is being handled
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        gate.release()
        kills += 1
    gate.release()

    assert kills >= KILLS, f"only {kills} kills before a run finished on its own; see {tmp_path / 'push.log'}"
    codes = []
    for _ in range(3):
        codes.append(subprocess.run(argv, cwd=tmp_path, stdout=log, stderr=log, check=False).returncode)
        if codes[-1] in (0, 3):
            break
    assert codes[-1] == 3, f"final push exited {codes}; see {tmp_path / 'push.log'}"

    txs = pushed(sb)
    duplicates = {ext: len(v) for ext, v in txs.items() if len(v) > 1}
    assert duplicates == {}
    assert set(txs) == valid  # every valid payment once, no rejected one
    assert len(sb.data.list("transactions")) == len(valid)
    for invoice_id, amount in paid.items():
        assert sb.data.get("invoices", invoice_id)["balance"] == before[invoice_id] - amount
    assert sb.stats.served_429 > 0 and sb.stats.served_500 > 0

    store = Store.open(store_url)
    try:
        assert outbox_counts(store) == {"posted": 170, "rejected": 30}
    finally:
        store.close()
