"""A HubSpot error quoting the token is stored and shown masked (dead letters, `syncd errors`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from connectors.hubspot import HubSpotConnector, HubSpotSettings
from syncd.delivery import Delivery, StreamReport, Target
from syncd.mapping import load_mapping
from syncd.plugin import Record
from syncd.sandbox.data import SandboxData
from syncd.store import Store
from tests.hubspot.fake_hubspot import FakeHubSpot, serve
from tests.hubspot.helpers import MAPPING, context

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "pat-na1-quoted-0042-SECRET"


def test_a_token_quoted_by_hubspot_is_masked_in_dead_letters_and_status(tmp_path: Path) -> None:
    customers = SandboxData.seeded(5, 3, 30, 0).list("customers")
    bad = str(customers[1]["id"])
    hub = FakeHubSpot(token=TOKEN)
    hub.add_unique_properties()
    hub.reject = lambda _t, p: (
        f"token {TOKEN} lacks a scope (sent Bearer {TOKEN})" if p.get("invoiced_customer_id") == bad else None
    )
    db = tmp_path / "syncd.db"
    store = Store.open(f"sqlite:///{db}")
    try:
        with serve(hub) as url:
            conn = HubSpotConnector(HubSpotSettings(enabled=True, token=TOKEN, base_url=url), context())
            conn.open()
            records = [Record("customers", str(c["id"]), int(c["updated_at"]), c) for c in customers]
            Delivery(store, [Target("hubspot", conn, load_mapping(MAPPING))]).deliver(
                "customers", records, StreamReport()
            )
        [dead] = store.dead_letters()
    finally:
        store.close()
    assert "lacks a scope" in dead.reason and TOKEN not in dead.reason

    # `syncd errors` (which shows the reasons) in its own process, which never opened the connector.
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{db}"\n'
        f'[connectors.hubspot]\nenabled = true\ntoken = "{TOKEN}"\nmapping = "{MAPPING}"\n'
    )
    out = subprocess.run(
        [sys.executable, "-m", "syncd.cli", "--config", str(config), "errors"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "300", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert "lacks a scope" in out.stdout and TOKEN not in out.stdout + out.stderr
