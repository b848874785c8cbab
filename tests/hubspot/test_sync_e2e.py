"""End to end: sync the sandbox into the loopback HubSpot stand-in; check every company and deal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from syncd.config import Settings
from syncd.engine import run_sync
from tests.hubspot.fake_hubspot import TOKEN, FakeHubSpot, serve
from tests.hubspot.helpers import MAPPING, assert_hubspot_matches


def _settings(sandbox: Any, hub_url: str, tmp_path: Path) -> Settings:
    return Settings(
        invoiced={"base_url": sandbox.url, "api_key": sandbox.api_key, "retry_budget": 120.0},
        store={"url": f"sqlite:///{tmp_path / 'syncd.db'}"},
        connectors={
            "hubspot": {
                "enabled": True,
                "token": TOKEN,
                "base_url": hub_url,
                "create_properties": True,
                "mapping": str(MAPPING),
            },
            "csv": {"enabled": False},
        },
    )


def test_sync_sandbox_into_hubspot_then_changes_follow(make_sandbox: Any, tmp_path: Path) -> None:
    sandbox = make_sandbox(customers=12, invoices=180, transactions=30)
    hub = FakeHubSpot()  # no properties yet: the connector creates them (create_properties)
    with serve(hub) as hub_url:
        settings = _settings(sandbox, hub_url, tmp_path)
        hub.fail_429 = 1  # the first request is rate limited: honoured, nothing lost
        report = run_sync(settings)
        assert report.ok, report.errors()
        assert_hubspot_matches(hub, sandbox.data.list("customers"), sandbox.data.list("invoices"))
        upserts = hub.calls("POST", r"/crm/v3/objects/\w+/batch/upsert")
        assert upserts and all(len(b["inputs"]) <= 100 for b in upserts)

        customers = sandbox.data.list("customers")
        invoices = [i for i in sandbox.data.list("invoices") if not i["draft"] and i["status"] != "voided"]
        sandbox.data.update("customers", customers[0]["id"], {"name": "Renamed & Co"})
        sandbox.data.delete("invoices", invoices[0]["id"])
        sandbox.data.create("customers", {"name": "Brand New Ltd", "email": "ap@brandnew.test"})
        report = run_sync(settings)
        assert report.ok, report.errors()
        assert_hubspot_matches(hub, sandbox.data.list("customers"), sandbox.data.list("invoices"))
        assert str(invoices[0]["id"]) not in hub.by_key("deals", "invoiced_invoice_id")

        before = {t: len(hub.objects[t]) for t in hub.objects}
        assert run_sync(settings).ok  # nothing changed: nothing new in HubSpot
        assert {t: len(hub.objects[t]) for t in hub.objects} == before
