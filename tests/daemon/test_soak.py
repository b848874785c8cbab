"""Memory stays flat: many fast job runs in-process against a tiny sandbox.

The sandbox runs in a subprocess so that its own growth (it keeps every event) does
not count: what is measured is the daemon's memory alone.
"""

from __future__ import annotations

import gc
import os
import re
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import structlog

from syncd import log
from syncd.config import Settings
from syncd.daemon import Daemon
from tests.daemon.helpers import ROOT, write_mapping

CYCLES = 200


@pytest.fixture
def sandbox_process() -> Iterator[tuple[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd.sandbox", "--host", "127.0.0.1", "--port", "0", "--seed", "3",
         "--customers", "4", "--invoices", "8", "--transactions", "4"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        banner = re.search(r"serving (\S+) api_key=(\S+)", proc.stdout.readline())
        assert banner, "no sandbox banner"
        yield banner[1], banner[2]
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.timeout(600)  # a hang guard only: a starved machine is slow, not wrong
def test_two_hundred_job_runs_do_not_grow_memory(sandbox_process: tuple[str, str], tmp_path: Path) -> None:
    url, key = sandbox_process
    mapping = tmp_path / "map.toml"
    write_mapping(mapping)
    settings = Settings(
        invoiced={"base_url": url, "api_key": key, "retry_attempts": 2, "retry_budget": 5.0},
        store={"url": f"sqlite:///{tmp_path / 's.db'}"},
        streams={"invoices": {"windows": 1}, "transactions": {"windows": 1}},
        connectors={"csv": {"enabled": True, "directory": str(tmp_path / "out"), "mapping": str(mapping)}},
        pushback={"enabled": True},  # no payment source configured: the job runs and finds nothing
        daemon={"health_port": 0},
    )
    api = httpx.Client(base_url=url, auth=(key, ""))
    customer = api.get("/customers").json()[0]["id"]
    objects: list[int] = []
    rss: list[int] = []
    process = psutil.Process()
    with open(os.devnull, "w") as devnull:
        log.configure(json=True, stream=devnull)
        daemon = Daemon(settings)
        daemon.start()
        try:
            jobs = list(daemon.jobs.values())
            for i in range(CYCLES):
                if i % 5 == 0:  # keep a record changing so runs deliver something
                    api.patch(f"/customers/{customer}", json={"name": f"Churn {i}"}).raise_for_status()
                assert daemon.run_job(jobs[i % len(jobs)]) == "ok", jobs[i % len(jobs)].last_error
                daemon.render_metrics()
                daemon.health()
                if i % 8 == 0:
                    gc.collect()
                    objects.append(len(gc.get_objects()))
                    rss.append(process.memory_info().rss)
        finally:
            daemon.close()
            api.close()
            structlog.reset_defaults()
    assert daemon.jobs["customers"].runs == CYCLES // len(jobs)
    assert (
        daemon.metrics.get("syncd_records_delivered_total", stream="customers", connector="csv") or 0
    ) >= 40
    quarter = len(objects) // 4
    first, last = statistics.mean(objects[:quarter]), statistics.mean(objects[-quarter:])
    # A leak of one object per run would add ~150 between the quarters; allow for noise.
    assert last - first < 500, f"live objects grew from {first:.0f} to {last:.0f}"
    first_rss, last_rss = statistics.mean(rss[:quarter]), statistics.mean(rss[-quarter:])
    assert last_rss - first_rss < 4 * 2**20, f"RSS grew from {first_rss:.0f} to {last_rss:.0f} bytes"
