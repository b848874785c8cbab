"""The connector behind the engine's delivery step (store, mapping, dead letters), no Invoiced HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from syncd.delivery import Delivery, StreamReport, Target
from syncd.mapping import load_mapping
from syncd.plugin import Record
from syncd.sandbox.data import SandboxData
from syncd.store import Store
from tests.hubspot.fake_hubspot import FakeHubSpot, serve
from tests.hubspot.helpers import MAPPING, assert_hubspot_matches, connector


def _records(stream: str, objects: list[dict[str, Any]]) -> list[Record]:
    return [Record(stream, str(o["id"]), int(o["updated_at"]), o) for o in objects]


def test_sandbox_records_delivered_through_the_engine_match_hubspot(tmp_path: Path) -> None:
    data = SandboxData.seeded(11, 8, 120, 10)
    customers, invoices = data.list("customers"), data.list("invoices")
    # As the API answers with expand=customer (the mapping uses customer.name).
    by_id = {c["id"]: c for c in customers}
    expanded = [{**inv, "customer": by_id[inv["customer"]]} for inv in invoices]
    hub = FakeHubSpot()
    store = Store.open(f"sqlite:///{tmp_path / 'syncd.db'}")
    try:
        with serve(hub) as url:
            conn = connector(url, create_properties=True)
            conn.open()
            delivery = Delivery(store, [Target("hubspot", conn, load_mapping(MAPPING))])
            report = StreamReport()
            # Invoices first: their deals must still land on the right (later completed) companies.
            for start in range(0, len(expanded), 50):
                delivery.deliver("invoices", _records("invoices", expanded[start : start + 50]), report)
            delivery.deliver("customers", _records("customers", customers), report)
            # A second delivery of the same content sends nothing.
            sent = len(hub.requests)
            delivery.deliver("customers", _records("customers", customers), StreamReport())
            assert len(hub.requests) == sent
        assert report.rejected == {}
        assert_hubspot_matches(hub, customers, expanded)
    finally:
        store.close()


def test_rejected_record_goes_to_dead_letters_with_hubspots_message(tmp_path: Path) -> None:
    data = SandboxData.seeded(5, 3, 30, 0)
    customers = data.list("customers")
    bad = str(customers[1]["id"])
    hub = FakeHubSpot()
    hub.add_unique_properties()
    hub.reject = lambda t, p: "INVALID_PHONE: not a phone" if p.get("invoiced_customer_id") == bad else None
    store = Store.open(f"sqlite:///{tmp_path / 'syncd.db'}")
    try:
        with serve(hub) as url:
            conn = connector(url)
            conn.open()
            report = StreamReport()
            Delivery(store, [Target("hubspot", conn, load_mapping(MAPPING))]).deliver(
                "customers", _records("customers", customers), report
            )
        [dead] = store.dead_letters()
        assert (dead.connector, dead.stream, dead.record_id) == ("hubspot", "customers", bad)
        assert "INVALID_PHONE: not a phone" in dead.reason
        assert report.delivered == {"hubspot": len(customers) - 1}
        assert set(hub.by_key("companies", "invoiced_customer_id")) == {str(c["id"]) for c in customers} - {
            bad
        }
    finally:
        store.close()
