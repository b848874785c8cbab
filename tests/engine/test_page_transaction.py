"""A delivered page is one store transaction, and a connector's requests hold no store lock."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import text

from syncd import registry
from syncd.delivery import Delivery
from syncd.engine import run_sync
from syncd.plugin import Connector, MappedRecord, Record, Rejection
from syncd.store import Store
from tests.engine.helpers import CSV_MAPPING, assert_csv_matches, settings_for


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


class RemoteConnector(Connector):
    """Stands for HubSpot: while it "sends" a page, another process (the lease heartbeat)
    writes to the store, waiting at most 50 ms for the write lock."""

    name: ClassVar[str] = "remote"
    store_path: ClassVar[Path]
    beats: ClassVar[int] = 0

    def write(self, stream: str, records: Sequence[MappedRecord]) -> list[Rejection]:
        with sqlite3.connect(self.store_path, timeout=0.05) as heartbeat:
            heartbeat.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('beat', ?)", (str(self.beats),))
        RemoteConnector.beats += 1
        return []

    def flush(self) -> None:
        pass


def test_a_remote_connector_writes_while_no_store_lock_is_held(
    make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = make_sandbox(customers=5, invoices=250, transactions=20)
    path = tmp_path / "s.db"
    settings = settings_for(
        sandbox,
        f"sqlite:///{path}",
        tmp_path / "out",
        connectors={"remote": {"enabled": True, "mapping": str(CSV_MAPPING)}},
    )
    real = registry.connector_class

    def lookup(name: str, *, config_path: str | None = None) -> type[Connector]:
        return RemoteConnector if name == "remote" else real(name, config_path=config_path)

    monkeypatch.setattr(registry, "connector_class", lookup)
    RemoteConnector.store_path, RemoteConnector.beats = path, 0
    report = run_sync(settings)
    assert report.ok, report.as_dict() if hasattr(report, "as_dict") else report
    assert RemoteConnector.beats >= 3  # a write per page, the csv connector's page open beside it
    assert report.streams["invoices"].delivered == {"csv": 250, "remote": 250}
    assert_csv_matches(sandbox, tmp_path / "out")


def test_a_kill_before_the_page_commits_leaves_nothing_of_it(
    make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = make_sandbox(customers=4, invoices=250, transactions=0)
    url = f"sqlite:///{tmp_path / 's.db'}"
    settings = settings_for(sandbox, url, tmp_path / "out")
    pages: list[set[str]] = []
    deliver, commit = Delivery.deliver, Store.commit_deliveries

    def deliver_page(self: Delivery, stream: str, records: Sequence[Record], *args: Any, **kw: Any) -> None:
        if stream == "invoices":
            pages.append({r.id for r in records})
        deliver(self, stream, records, *args, **kw)

    def killed_in_the_second_page(self: Store, connector: str, stream: str, *args: Any, **kw: Any) -> None:
        if len(pages) == 2:
            raise Killed  # its raw rows and csv rows are written in the page's transaction
        commit(self, connector, stream, *args, **kw)

    monkeypatch.setattr(Delivery, "deliver", deliver_page)
    monkeypatch.setattr(Store, "commit_deliveries", killed_in_the_second_page)
    with pytest.raises(Killed):
        run_sync(settings, streams=["customers", "invoices"])
    monkeypatch.setattr(Store, "commit_deliveries", commit)
    store = Store.open(url)
    try:
        with store.engine.connect() as conn:
            raw = {r for (r,) in conn.execute(text("SELECT record_id FROM rawrecord WHERE stream = 'invoices'"))}
            held = {r for (r,) in conn.execute(text("SELECT record_id FROM delivery WHERE stream = 'invoices'"))}
            rows = {
                r for (r,) in conn.execute(text("SELECT DISTINCT record_id FROM outputrow WHERE stream = 'invoices'"))
            }
        assert raw == held == rows == pages[0]  # the first page, whole; nothing of the second
        assert pages[1] - pages[0]
    finally:
        store.close()
    assert run_sync(settings).ok
    assert_csv_matches(sandbox, tmp_path / "out")
