"""On a terminal, a daemon's first pull of every stream is drawn as one live view."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import structlog
from rich.console import Console

from syncd import log
from syncd.config import Settings
from syncd.daemon import Daemon
from syncd.daemon.firstrun import FirstRunView
from tests.daemon.helpers import write_mapping


def test_the_first_pulls_share_one_view_that_closes_after_the_last(make_sandbox: Any, tmp_path: Path) -> None:
    sb = make_sandbox(customers=4, invoices=30, transactions=10)
    mapping = tmp_path / "map.toml"
    write_mapping(mapping)
    settings = Settings(
        invoiced={"base_url": sb.url, "api_key": sb.api_key, "per_page": 10},
        store={"url": f"sqlite:///{tmp_path / 's.db'}"},
        connectors={"csv": {"enabled": True, "directory": str(tmp_path / "out"), "mapping": str(mapping)}},
        pushback={"enabled": False},
        daemon={"health_port": 0},
    )
    console = Console(file=io.StringIO(), width=100, record=True, force_terminal=True, color_system=None)
    log.configure(json=False, level="info", logfile=tmp_path / "syncd.log", console_level="warning")
    daemon = Daemon(settings)
    daemon.first_run = view = FirstRunView(["customers", "invoices", "transactions"], console=console)
    daemon.start()
    try:
        view.start()
        assert daemon.run_job(daemon.jobs["customers"]) == "ok"
        assert daemon.run_job(daemon.jobs["invoices"]) == "ok"
        assert view.for_stream("transactions") is view.progress  # still open for the last one
        assert daemon.run_job(daemon.jobs["transactions"]) == "ok"
        assert view.for_stream("customers") is None  # closed: later runs draw nothing
        drawn = console.export_text()
        assert daemon.run_job(daemon.jobs["customers"]) == "ok"
        assert console.export_text() == ""  # export_text clears: nothing since
    finally:
        daemon.close()
        structlog.reset_defaults()
    for name, total in (("customers", 4), ("invoices", 30), ("transactions", 10)):
        line = drawn[drawn.rindex(f"{name} ") :].splitlines()[0]
        match = re.search(r"(\d+)/(\d+)", line)
        assert match and match[1] == match[2] and int(match[1]) >= total, line
        assert "100%" in line and "done" in line
    assert "stream.synced" not in drawn
