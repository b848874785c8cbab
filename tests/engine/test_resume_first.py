"""A first sync killed after bulk-edit seconds resumes where it stopped, not at those seconds."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from syncd.engine import run_sync
from syncd.store import Store
from tests.engine.helpers import assert_csv_matches, settings_for


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


def _bulk_edited_sandbox(make_sandbox: Any) -> Any:
    """400 invoices; early in the listing one second holds 60 of them (a bulk edit before the
    sync): with 10 a page, every date window deep-scans it."""
    sandbox = make_sandbox(seed=11, customers=10, invoices=400, transactions=0)
    table = sandbox.data.tables["invoices"]
    with sandbox.data.lock:
        stamps = sorted(u for u, _ in table.index)
        second = stamps[len(stamps) // 10]
        for oid in random.Random(3).sample(sorted(table.rows), 60):
            table.put({**table.rows[oid], "updated_at": second})
    return sandbox


def _settings(sandbox: Any, tmp: Path) -> Any:
    tmp.mkdir()
    return settings_for(
        sandbox,
        f"sqlite:///{tmp / 's.db'}",
        tmp / "out",
        invoiced={"per_page": 10},
        streams={"invoices": {"windows": 2}, "transactions": {"enabled": False}},
    )


def test_a_killed_first_sync_resumes_without_reading_pages_again(
    make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same data twice: a first sync that runs through, and one killed and run again.
    whole = run_sync(_settings(_bulk_edited_sandbox(make_sandbox), tmp_path / "whole"))
    assert whole.ok
    pages = whole.streams["invoices"].requests  # list pages of the walks (the planning probes aside)
    sandbox = _bulk_edited_sandbox(make_sandbox)
    settings = _settings(sandbox, tmp_path / "killed")
    written = [0]
    original = Store.set_cursor
    kill_at = pages * 6 // 10  # well past the bulk second in both windows

    def dies_after_pages(self: Store, stream: str, partition: str, *rest: Any) -> None:
        original(self, stream, partition, *rest)
        if stream == "invoices" and partition.startswith("w:"):
            written[0] += 1  # one page written, and its cursor stored
            if written[0] == kill_at:
                raise Killed

    monkeypatch.setattr(Store, "set_cursor", dies_after_pages)
    with pytest.raises(Killed):
        run_sync(settings)
    monkeypatch.setattr(Store, "set_cursor", original)
    resumed = run_sync(settings)
    assert resumed.ok
    # Each window goes on from its last written page: the pages left, and at most one more
    # per window when the kill fell inside a deep scan (it is read again from its start).
    assert resumed.streams["invoices"].requests <= pages - kill_at + 2, (pages, kill_at)
    assert_csv_matches(sandbox, tmp_path / "killed" / "out")
