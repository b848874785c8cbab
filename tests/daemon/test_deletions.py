"""Per-stream jobs must not lose deletions of the streams they do not pull."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import structlog

from syncd import log
from syncd.config import Settings
from syncd.daemon import Daemon
from tests.daemon.helpers import read_csv, write_mapping


def test_an_invoice_deleted_before_a_customers_run_still_leaves_invoices_csv(
    make_sandbox: Any, tmp_path: Path
) -> None:
    sb = make_sandbox(customers=4, invoices=8, transactions=4)
    mapping = tmp_path / "map.toml"
    write_mapping(mapping)
    settings = Settings(
        invoiced={"base_url": sb.url, "api_key": sb.api_key},
        store={"url": f"sqlite:///{tmp_path / 's.db'}"},
        streams={"invoices": {"windows": 1}, "transactions": {"windows": 1}},
        connectors={"csv": {"enabled": True, "directory": str(tmp_path / "out"), "mapping": str(mapping)}},
        pushback={"enabled": False},
        daemon={"health_port": 0},
    )
    with open(os.devnull, "w") as devnull:
        log.configure(json=True, stream=devnull)
        daemon = Daemon(settings)
        daemon.start()
        try:
            for name in ("customers", "invoices"):
                assert daemon.run_job(daemon.jobs[name]) == "ok"
            paid = {t.get("invoice") for t in sb.data.list("transactions")}
            victim = next(i["id"] for i in sb.data.list("invoices") if i["id"] not in paid)
            time.sleep(1.1)
            sb.data.delete("invoices", victim)
            time.sleep(2.1)  # a later event, seconds after the deletion
            sb.data.update("customers", sb.data.list("customers")[0]["id"], {"name": "Later Edit"})
            assert daemon.run_job(daemon.jobs["customers"]) == "ok"
            assert daemon.run_job(daemon.jobs["invoices"]) == "ok"
        finally:
            daemon.close()
            structlog.reset_defaults()
    ids = [row[0] for row in read_csv(tmp_path / "out" / "invoices.csv")[1:]]
    assert str(victim) not in ids
