"""Real `syncd` processes started together on one store (SQLite and PostgreSQL): they
coordinate through the store's leases and migration lock, or refuse with one line.

The processes are started at once and the assertions are on outcomes (exit codes, files,
transactions), never on which process won.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from syncd.status import outbox_counts
from syncd.store import Store
from syncd.store.lease import EXIT_BUSY
from syncd.store.migrate import head, pending
from tests.daemon.helpers import DaemonProcess, wait_for
from tests.engine.helpers import CSV_MAPPING, assert_csv_matches
from tests.pushback.helpers import open_invoices, pushed, toml, write_inbox

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(240)


def _config(sandbox: Any, store_url: str, tmp: Path, **sections: Any) -> Path:
    data: dict[str, Any] = {
        "invoiced": {"base_url": sandbox.url, "api_key": sandbox.api_key, "retry_budget": 60.0},
        "store": {"url": store_url},
        "connectors": {
            "csv": {
                "enabled": True,
                "directory": str(tmp / "out"),
                "mapping": str(CSV_MAPPING),
                **sections.pop("csv", {}),
            }
        },
        "daemon": {"lock_ttl": 30},
        **sections,
    }
    path = tmp / "syncd.toml"
    path.write_text(toml(data), encoding="utf-8")
    return path


def _start(config: Path, *argv: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    return subprocess.Popen(
        [sys.executable, "-m", "syncd.cli", "--config", str(config), *argv],
        cwd=config.parent,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _together(config: Path, commands: Sequence[Sequence[str]]) -> list[tuple[int, str, str]]:
    """Start every command at once; (exit status, stdout, stderr) of each."""
    procs = [_start(config, *argv) for argv in commands]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        results.append((proc.returncode, out, err))
    return results


def _assert_clean(results: Sequence[tuple[int, str, str]], lease: str, ok: Sequence[int] = (0,)) -> int:
    """Every process succeeded or was refused with one line naming the holder; returns the refusals."""
    refused = 0
    for code, out, err in results:
        assert "Traceback" not in out + err, err[-3000:]
        if code == EXIT_BUSY:
            # One line for the user (JSON log events, e.g. the store's migration, aside).
            lines = [line for line in err.splitlines() if line.strip() and not line.startswith("{")]
            assert len(lines) == 1, err
            assert lines[0].startswith("error: the checkpoint store's")
            assert f"{lease} lease is held by syncd" in lines[0]
            assert "pid " in lines[0] and "since 20" in lines[0]
            refused += 1
        else:
            assert code in ok, f"exit {code}: {err[-3000:]}"
    return refused


def test_syncs_started_together_refuse_or_wait_and_leave_exact_files(
    make_sandbox: Any, store_url: str, tmp_path: Path
) -> None:
    sb = make_sandbox(customers=8, invoices=40, transactions=30)
    config = _config(sb, store_url, tmp_path, streams={"invoices": {"windows": 2}})
    # A fresh store: three processes also race to create it (the migration lock).
    refused = _assert_clean(_together(config, [["sync"]] * 3), "pull")
    assert refused <= 2
    assert_csv_matches(sb, tmp_path / "out")

    for customer in sb.data.list("customers")[:3]:  # renames re-deliver invoices and transactions
        sb.data.update("customers", customer["id"], {"name": f"{customer['name']} renamed"})
    invoice = open_invoices(sb, 1, currency=None)[0]
    sb.data.create(
        "transactions",
        {
            "invoice": invoice["id"],
            "amount": Decimal("1.00"),
            "currency": invoice["currency"],
            "type": "payment",
        },
    )
    # With --wait every one runs, one after the other.
    assert _assert_clean(_together(config, [["sync", "--wait"]] * 2), "pull") == 0
    assert_csv_matches(sb, tmp_path / "out")


def test_processes_starting_on_a_fresh_store_never_race_to_create_it(store_url: str, tmp_path: Path) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text(f'[invoiced]\napi_key = "sk_test"\n[store]\nurl = "{store_url}"\n', encoding="utf-8")
    commands = [["store", "upgrade"], ["store", "upgrade"], ["status"]]
    results = _together(config, commands)
    for code, out, err in results:
        assert code == 0 and "Traceback" not in out + err, err[-3000:]
    applied = [out for _, out, _ in results if "applied 0001" in out]
    assert len(applied) <= 1  # the migration ran once (the status may have been the one to run it)
    store = Store.open(store_url)
    try:
        assert store.get_meta("schema_version") == "2"
        assert pending(store.engine)[0].revision == head()
    finally:
        store.close()


def _payments(sb: Any, invoices: Sequence[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    """Half pay the whole balance (a second POST would overpay: refused), half pay 1.00."""
    rows = []
    for i, inv in enumerate(invoices):
        amount = inv["balance"] if i % 2 else Decimal("1.00")
        rows.append(
            {"external_id": f"{prefix}{i:02d}", "invoice": inv["number"], "amount": amount, "currency": "usd"}
        )
    return rows


def _assert_once(sb: Any, rows: Sequence[dict[str, Any]], store_url: str) -> None:
    txs = pushed(sb)
    assert {ext: len(v) for ext, v in txs.items() if len(v) > 1} == {}  # zero duplicates
    assert set(txs) == {r["external_id"] for r in rows}  # zero false rejections
    store = Store.open(store_url)
    try:
        assert outbox_counts(store) == {"posted": len(rows)}
    finally:
        store.close()


def test_push_processes_at_once_post_every_payment_exactly_once_without_idempotency(
    make_sandbox: Any, store_url: str, tmp_path: Path
) -> None:
    sb = make_sandbox(customers=10, invoices=80, transactions=0, honour_idempotency=False, latency=0.005)
    invoices = open_invoices(sb, 18)
    inbox = tmp_path / "payments.csv"
    config = _config(
        sb, store_url, tmp_path, csv={"inbox": str(inbox)}, pushback={"enabled": True, "lookup_grace": 0.0}
    )
    rows: list[dict[str, Any]] = []
    for round_ in range(3):
        rows += _payments(sb, invoices[round_ * 6 : round_ * 6 + 6], f"R{round_}-")
        write_inbox(inbox, rows)
        results = _together(config, [["push"], ["push", "--wait"]])
        _assert_clean(results, "push")  # exit 3 (rejections) fails here
        assert any(code == 0 for code, _, _ in results)
        _assert_once(sb, rows, store_url)


def test_a_daemon_beside_manual_syncs_and_pushes_leaves_exact_files_and_posts_once(
    make_sandbox: Any, store_url: str, tmp_path: Path
) -> None:
    sb = make_sandbox(customers=6, invoices=40, transactions=10, honour_idempotency=False, latency=0.005)
    invoices = open_invoices(sb, 8)
    inbox = write_inbox(tmp_path / "payments.csv", [])
    every = {f"{name}_every": 2 for name in ("customers", "invoices", "transactions")}
    config = _config(
        sb,
        store_url,
        tmp_path,
        csv={"inbox": str(inbox), "render_every": 0.0},
        pushback={"enabled": True, "lookup_grace": 0.0},
        daemon={"health_port": 0, "lock_ttl": 30, "pushback_every": 1, **every},
    )
    daemon = DaemonProcess(config).started()
    rows = _payments(sb, invoices, "D-")
    try:
        mark = daemon.mark()
        write_inbox(inbox, rows)
        customer = sb.data.list("customers")[0]
        sb.data.update("customers", customer["id"], {"name": f"{customer['name']} renamed"})
        # The daemon's jobs and a manual sync and push, at once; the manual ones wait their turn.
        _assert_clean(_together(config, [["sync", "--wait"], ["push", "--wait"]]), "pull")
        assert_csv_matches(sb, tmp_path / "out")
        daemon.wait_event(
            "job.run", timeout=60, after=mark, where=lambda e: e["job"] == "pushback" and e["outcome"] == "ok"
        )
        want = {r["external_id"] for r in rows}
        wait_for(lambda: set(pushed(sb)) >= want, 60, "every payment posted")
    finally:
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0, daemon.output()[-3000:]
    assert "Traceback" not in daemon.output()
    _assert_once(sb, rows, store_url)
