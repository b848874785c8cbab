"""A record that leaves the scope, or is found deleted by reconciliation, is marked deleted in
the store only after every connector took the deletion: a failure in between leaves the row
live, and the next run removes it. Failures of a scope exit or of the store fail one stream."""

from __future__ import annotations

import errno
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete
from sqlalchemy.exc import OperationalError

from connectors.csv import CsvConnector
from syncd.config import Settings
from syncd.deletions import EVENTS
from syncd.engine import run_sync
from syncd.errors import ConnectorError
from syncd.plugin import MappedRecord, Rejection
from syncd.store import Store
from syncd.store.models import Cursor
from tests.engine.helpers import assert_csv_matches, settings_for
from tests.engine.killing import touch_one

EMEA = {"metadata": {"region": "emea"}}


def _settings(sandbox: Any, tmp_path: Path, customers: dict[str, Any], invoices: bool = False) -> Settings:
    return settings_for(
        sandbox,
        f"sqlite:///{tmp_path / 's.db'}",
        tmp_path / "out",
        invoiced={"per_page": 10},
        streams={"customers": customers, "invoices": {"enabled": invoices}, "transactions": {"enabled": False}},
    )


def _fail_deletions_once(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> list[int]:
    """The CSV connector raises `error` on its first write holding a deletion; the list counts it."""
    real = CsvConnector.write
    failed: list[int] = []

    def write(self: CsvConnector, stream: str, records: Sequence[MappedRecord]) -> list[Rejection]:
        if not failed and any(m.record.deleted for m in records):
            failed.append(1)
            raise error
        return real(self, stream, records)

    monkeypatch.setattr(CsvConnector, "write", write)
    return failed


def _emea(customer: Any) -> bool:
    return bool(customer["metadata"].get("region") == "emea")


def _only_emea() -> dict[str, Any]:
    return {"customers": _emea, "invoices": lambda _: False, "transactions": lambda _: False}


def test_a_failed_scope_exit_removes_the_rows_next_run(
    make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = make_sandbox(customers=30, invoices=0, transactions=0)
    assert 0 < sum(map(_emea, sandbox.data.list("customers"))) < 30
    assert run_sync(_settings(sandbox, tmp_path, {})).ok
    failed = _fail_deletions_once(monkeypatch, ConnectorError("disk full while removing rows", connector="csv"))
    report = run_sync(_settings(sandbox, tmp_path, EMEA))
    assert failed and not report.ok
    assert report.errors() == ["customers: csv: disk full while removing rows"]
    report = run_sync(_settings(sandbox, tmp_path, EMEA))
    assert report.ok, report.errors()
    assert_csv_matches(sandbox, tmp_path / "out", _only_emea())


def test_a_full_disk_in_a_narrowed_scope_exit_fails_only_that_stream(
    make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = make_sandbox(customers=30, invoices=10, transactions=0)
    assert run_sync(_settings(sandbox, tmp_path, {}, invoices=True)).ok
    disk = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out"))
    failed = _fail_deletions_once(monkeypatch, disk)
    report = run_sync(_settings(sandbox, tmp_path, EMEA, invoices=True))
    assert failed
    assert report.streams["customers"].error == f"cannot write {tmp_path / 'out'}: No space left on device"
    assert report.streams["invoices"].error is None
    report = run_sync(_settings(sandbox, tmp_path, EMEA, invoices=True))
    assert report.ok, report.errors()
    assert_csv_matches(sandbox, tmp_path / "out", {"customers": _emea, "transactions": lambda _: False})


def test_a_full_disk_when_a_backfill_ends_fails_only_that_stream(
    make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = make_sandbox(customers=30, invoices=10, transactions=0)
    assert run_sync(_settings(sandbox, tmp_path, {"metadata": {"region": "amer"}}, invoices=True)).ok
    disk = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out"))
    failed = _fail_deletions_once(monkeypatch, disk)
    # Changed: emea is backfilled, then amer's records leave when the backfill ends (`_finish`).
    report = run_sync(_settings(sandbox, tmp_path, EMEA, invoices=True))
    assert failed
    assert report.streams["customers"].error == f"cannot write {tmp_path / 'out'}: No space left on device"
    assert report.streams["invoices"].error is None
    report = run_sync(_settings(sandbox, tmp_path, EMEA, invoices=True))
    assert report.ok, report.errors()
    assert_csv_matches(sandbox, tmp_path / "out", {"customers": _emea, "transactions": lambda _: False})


def test_a_store_error_moving_a_cursor_fails_the_stream_in_one_line(
    make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = make_sandbox(customers=30, invoices=10, transactions=0)
    real = Store.set_cursor

    def set_cursor(self: Store, stream: str, partition: str, value: int, *rest: Any) -> None:
        if stream == "customers":
            raise OperationalError("UPDATE cursor", {}, Exception("database is locked"))
        real(self, stream, partition, value, *rest)

    monkeypatch.setattr(Store, "set_cursor", set_cursor)
    report = run_sync(_settings(sandbox, tmp_path, {}, invoices=True))
    assert report.streams["customers"].error == "checkpoint store: database is locked"
    assert report.streams["invoices"].error is None


def test_a_failed_reconciled_deletion_is_delivered_next_run(
    make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = make_sandbox(customers=4, invoices=15, transactions=0)
    touch_one(sandbox)
    url = f"sqlite:///{tmp_path / 's.db'}"
    settings = settings_for(sandbox, url, tmp_path / "out", streams={"invoices": {"windows": 1}})
    assert run_sync(settings).ok
    sandbox.data.delete("invoices", sandbox.data.list("invoices")[0]["id"])
    # No events position: the deletion is found by the listing of ids (reconciliation).
    store = Store.open(url)
    with store.engine.begin() as conn:
        conn.execute(delete(Cursor).where(Cursor.stream == EVENTS))  # type: ignore[arg-type]
    store.close()
    time.sleep(1.1)
    touch_one(sandbox)
    monkeypatch.setattr("syncd.deletions.SETTLE_SECONDS", 0)
    failed = _fail_deletions_once(monkeypatch, ConnectorError("disk full while removing rows", connector="csv"))
    report = run_sync(settings)
    assert failed and report.streams["invoices"].error == "csv: disk full while removing rows"
    report = run_sync(settings)
    assert report.ok, report.errors()
    assert_csv_matches(sandbox, tmp_path / "out")
