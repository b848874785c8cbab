"""Dead letters, re-delivery after a mapping edit, and no rewrite of unchanged records."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from syncd.engine import run_sync
from syncd.plugin import Connector, MappedRecord, Rejection
from syncd.store import Store
from tests.engine.helpers import CSV_MAPPING, install_connector, read_csv_dir, settings_for


class PickyConnector(Connector):
    """Refuses invoices whose id is divisible by 7; remembers what it got."""

    name: ClassVar[str] = "picky"
    received: ClassVar[list[str]] = []

    def write(self, stream: str, records: Sequence[MappedRecord]) -> list[Rejection]:
        refused = []
        for mapped in records:
            if stream == "invoices" and int(mapped.record.id) % 7 == 0:
                refused.append(Rejection(stream, mapped.record.id, "ids divisible by 7 are not welcome"))
            else:
                self.received.append(f"{stream}:{mapped.record.id}")
        return refused

    def flush(self) -> None:
        pass


@pytest.fixture
def picky(monkeypatch: pytest.MonkeyPatch) -> type[PickyConnector]:
    install_connector(monkeypatch, "picky", PickyConnector)
    PickyConnector.received = []
    return PickyConnector


def test_rejected_records_go_to_dead_letters_and_the_run_goes_on(
    make_sandbox: Any, tmp_path: Path, picky: type[PickyConnector]
) -> None:
    sandbox = make_sandbox(customers=5, invoices=80, transactions=0)
    settings = settings_for(
        sandbox,
        f"sqlite:///{tmp_path / 's.db'}",
        tmp_path / "out",
        connectors={"picky": {"enabled": True, "mapping": str(CSV_MAPPING)}},
    )
    report = run_sync(settings)
    ids = [str(i["id"]) for i in sandbox.data.list("invoices")]
    bad = {i for i in ids if int(i) % 7 == 0}
    assert bad, "the sandbox must produce some ids divisible by 7"
    assert report.ok
    assert report.streams["invoices"].rejected == {"picky": len(bad)}
    assert report.streams["invoices"].delivered["picky"] == len(ids) - len(bad)
    assert report.streams["invoices"].delivered["csv"] == len(ids)  # other connectors unaffected
    store = Store.open(settings.store_url())
    dead = store.dead_letters(1000)
    assert {d.record_id for d in dead} == bad
    assert all(d.connector == "picky" and "divisible by 7" in d.reason for d in dead)
    store.close()


def test_mapping_edit_redelivers_from_the_store_without_requests(make_sandbox: Any, tmp_path: Path) -> None:
    sandbox = make_sandbox(customers=6, invoices=40, transactions=10)
    mapping = tmp_path / "csv.toml"
    shutil.copy(CSV_MAPPING, mapping)
    settings = settings_for(
        sandbox,
        f"sqlite:///{tmp_path / 's.db'}",
        tmp_path / "out",
        connectors={"csv": {"mapping": str(mapping)}},
    )
    assert run_sync(settings).ok
    before = read_csv_dir(tmp_path / "out")
    text = mapping.read_text(encoding="utf-8")
    # Rename the customers table's first column: only customers.csv changes.
    header = before["customers"][0]
    assert f'"{header[1]}"' in text
    mapping.write_text(text.replace(f'"{header[1]}"', '"renamed_column"', 1), encoding="utf-8")
    sandbox.stats.reset()
    report = run_sync(settings, streams=[])  # re-delivery only, no stream pulled
    assert sandbox.stats.total == 0
    assert report.redelivered["csv"] > 0
    after = read_csv_dir(tmp_path / "out")
    assert "renamed_column" in after["customers"][0]
    assert after["customers"][1:] == before["customers"][1:]
    # the next normal sync has nothing left to deliver
    report = run_sync(settings)
    assert report.redelivered == {}
    assert all(r.delivered == {} for r in report.streams.values())
    assert_csv_matches_with(sandbox, tmp_path / "out", mapping)


def assert_csv_matches_with(sandbox: Any, out: Path, mapping: Path) -> None:
    from tests.engine import helpers

    original = helpers.CSV_MAPPING
    helpers.CSV_MAPPING = mapping
    try:
        actual, expected = helpers.read_csv_dir(out), helpers.expected_csv(sandbox, mapping)
        assert actual == expected
    finally:
        helpers.CSV_MAPPING = original


def test_invalid_mapping_refuses_to_start_with_file_line_column(make_sandbox: Any, tmp_path: Path) -> None:
    from syncd.errors import ConfigError

    sandbox = make_sandbox(customers=2, invoices=2, transactions=0)
    mapping = tmp_path / "csv.toml"
    mapping.write_text(CSV_MAPPING.read_text(encoding="utf-8") + '\n[tables.broken]\nstream = "invoicez"\n')
    settings = settings_for(
        sandbox, f"sqlite:///{tmp_path / 's.db'}", tmp_path / "out", connectors={"csv": {"mapping": str(mapping)}}
    )
    sandbox.stats.reset()
    with pytest.raises(ConfigError, match=rf"{mapping.name}:\d+:\d+"):
        run_sync(settings)
    assert sandbox.stats.total == 0


def test_an_older_copy_arriving_after_a_newer_one_is_not_delivered_over_it(
    make_sandbox: Any, tmp_path: Path
) -> None:
    from syncd.delivery import Delivery, StreamReport, close_targets, open_targets
    from syncd.plugin import Record

    sandbox = make_sandbox(customers=1, invoices=0, transactions=0)
    out = tmp_path / "out"
    settings = settings_for(sandbox, f"sqlite:///{tmp_path / 's.db'}", out)
    customer = sandbox.data.list("customers")[0]
    newer = Record("customers", str(customer["id"]), 200, {**customer, "name": "Newer Name", "updated_at": 200})
    older = Record("customers", str(customer["id"]), 100, {**customer, "name": "Older Name", "updated_at": 100})
    store = Store.open(settings.store_url())
    targets = open_targets(settings, store)
    try:
        delivery = Delivery(store, targets)
        report = StreamReport()
        delivery.deliver("customers", [newer], report)
        # A page answered before the edit but taken after the newer copy's page.
        delivery.deliver("customers", [older], report)
        assert store.get_raw("customers", newer.id)["name"] == "Newer Name"  # type: ignore[index]
        assert report.delivered == {"csv": 1}
    finally:
        close_targets(targets)
        store.close()
    rows = str(read_csv_dir(out)["customers"])
    assert "Newer Name" in rows
    assert "Older Name" not in rows


class CopyConnector(Connector):
    """Keeps every mapped table row it is given (a second target reading the same references)."""

    name: ClassVar[str] = "copy"
    rows: ClassVar[dict[tuple[str, str], list[dict[str, Any]]]] = {}

    def write(self, stream: str, records: Sequence[MappedRecord]) -> list[Rejection]:
        for mapped in records:
            for table, rows in mapped.tables.items():
                self.rows[(table, mapped.record.id)] = [dict(r) for r in rows]
        return []

    def flush(self) -> None:
        pass


def _customer_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts `Store.get_raw_many` calls for customers (one per page and reference set)."""
    calls: list[int] = []
    real = Store.get_raw_many

    def counted(self: Store, stream: str, ids: Any) -> Any:
        if stream == "customers":
            calls.append(1)
        return real(self, stream, ids)

    monkeypatch.setattr(Store, "get_raw_many", counted)
    return calls


def test_targets_reading_the_same_references_share_one_read_a_page(
    make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = make_sandbox(customers=6, invoices=60, transactions=20)
    install_connector(monkeypatch, "copy", CopyConnector)
    CopyConnector.rows = {}
    calls = _customer_reads(monkeypatch)
    alone = settings_for(sandbox, f"sqlite:///{tmp_path / 'a.db'}", tmp_path / "a")
    assert run_sync(alone).ok
    one_target = len(calls)
    assert one_target > 0

    calls.clear()
    both = settings_for(
        sandbox,
        f"sqlite:///{tmp_path / 'b.db'}",
        tmp_path / "b",
        connectors={"copy": {"enabled": True, "mapping": str(CSV_MAPPING)}},
    )
    assert run_sync(both).ok
    assert len(calls) == one_target  # not once per target
    # Both targets got each invoice with its customer's name (what the shared read holds).
    names = {str(c["id"]): c["name"] for c in sandbox.data.list("customers")}
    invoices = sandbox.data.list("invoices")
    for invoice in invoices:
        rows = CopyConnector.rows[("invoices", str(invoice["id"]))]
        assert rows[0]["customer_name"] == names[str(invoice["customer"])]
    assert read_csv_dir(tmp_path / "b") == read_csv_dir(tmp_path / "a")
