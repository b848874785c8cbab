"""Bookkeeping a killed run leaves behind: never a half-stored plan of date windows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from syncd.engine import run_sync
from syncd.store import Store
from tests.engine.helpers import assert_csv_matches, settings_for


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


def test_a_plan_of_date_windows_cut_short_stores_no_window(
    make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = make_sandbox(customers=4, invoices=40, transactions=10)
    url = f"sqlite:///{tmp_path / 's.db'}"
    settings = settings_for(sandbox, url, tmp_path / "out", streams={"invoices": {"windows": 4}})
    written: list[tuple[str, str]] = []
    original = Store._set_cursor

    def dies_on_the_second_window(self: Store, conn: Any, stream: str, partition: str, value: int) -> None:
        if partition.startswith("w:"):
            written.append((stream, partition))
            if len(written) == 2:
                raise Killed
        original(self, conn, stream, partition, value)

    monkeypatch.setattr(Store, "_set_cursor", dies_on_the_second_window)
    with pytest.raises(Killed):
        run_sync(settings, streams=["invoices"])
    monkeypatch.setattr(Store, "_set_cursor", original)
    store = Store.open(url)
    stored = store.cursors("invoices")
    store.close()
    assert run_sync(settings).ok
    assert_csv_matches(sandbox, tmp_path / "out")  # the windows never stored were walked too
    assert stored == {}  # not one window of four: the next run planned again


def test_a_deletion_reaches_rows_written_by_a_run_killed_before_it_recorded_them(
    make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = make_sandbox(customers=4, invoices=12, transactions=4)
    sandbox.data.update("customers", sandbox.data.list("customers")[0]["id"], {"name": "Anchor"})
    url = f"sqlite:///{tmp_path / 's.db'}"
    settings = settings_for(sandbox, url, tmp_path / "out", streams={"invoices": {"windows": 1}})
    assert run_sync(settings).ok
    customer = sandbox.data.list("customers")[0]["id"]
    new = sandbox.data.create("invoices", {"customer": customer, "items": [{"name": "X", "unit_cost": 5}]})
    original = Store.commit_deliveries

    def killed_after_the_write(self: Store, connector: str, stream: str, *args: Any, **kw: Any) -> None:
        if stream == "invoices":
            raise Killed  # the connector has written and flushed; the store has not recorded it
        original(self, connector, stream, *args, **kw)

    monkeypatch.setattr(Store, "commit_deliveries", killed_after_the_write)
    with pytest.raises(Killed):
        run_sync(settings, streams=["invoices"])
    monkeypatch.setattr(Store, "commit_deliveries", original)
    sandbox.data.delete("invoices", new["id"])
    assert run_sync(settings).ok
    assert_csv_matches(sandbox, tmp_path / "out")
