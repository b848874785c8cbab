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
