"""End to end against the sandbox: the CSV files equal the sandbox's data, whatever happens."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from syncd.engine import run_sync
from syncd.store import Store
from tests.engine.helpers import assert_csv_matches, read_csv_dir, settings_for


def test_sync_writes_csv_equal_to_sandbox_on_both_stores(make_sandbox: Any, store_url: str, tmp_path: Path) -> None:
    sandbox = make_sandbox(customers=15, invoices=250, transactions=120)
    settings = settings_for(sandbox, store_url, tmp_path / "out")
    report = run_sync(settings)
    assert report.ok, report.errors()
    assert report.streams["invoices"].fetched >= 250
    assert_csv_matches(sandbox, tmp_path / "out")


def test_second_sync_without_changes_makes_one_list_request_per_stream_and_writes_nothing(
    make_sandbox: Any, tmp_path: Path
) -> None:
    sandbox = make_sandbox(customers=10, invoices=150, transactions=60)
    settings = settings_for(sandbox, f"sqlite:///{tmp_path / 's.db'}", tmp_path / "out")
    assert run_sync(settings).ok
    mtimes = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("*.csv")}
    sandbox.stats.reset()
    report = run_sync(settings)
    assert report.ok
    for name in ("customers", "invoices", "transactions"):
        assert sandbox.stats.count("GET", f"/{name}") == 1, name
        assert report.streams[name].requests == 1
        assert report.streams[name].changed == 0
        assert report.streams[name].delivered == {}
    # One list request per stream and one read of the events, nothing else (no planning probe,
    # no second events page, no lookup).
    assert sandbox.stats.count("GET", "/events") == 1
    assert sandbox.stats.total == 3 + 1
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("*.csv")} == mtimes


def test_updates_creates_and_deletes_reach_the_files(make_sandbox: Any, tmp_path: Path) -> None:
    sandbox = make_sandbox(customers=8, invoices=60, transactions=20)
    settings = settings_for(sandbox, f"sqlite:///{tmp_path / 's.db'}", tmp_path / "out")
    assert run_sync(settings).ok
    invoices = sandbox.data.list("invoices")
    paid = {str(t.get("invoice")) for t in sandbox.data.list("transactions")}
    doomed = next(i for i in invoices if str(i["id"]) not in paid)
    # A customer with invoices: its invoices' rows name it, and must follow the rename
    # although the invoices themselves did not change.
    renamed = next(i["customer"] for i in invoices if i["id"] != doomed["id"])
    sandbox.data.update("customers", renamed, {"name": "Renamed & Co"})
    sandbox.data.delete("invoices", doomed["id"])
    sandbox.data.create("customers", {"name": "Brand New Ltd"})
    report = run_sync(settings)
    assert report.ok, report.errors()
    assert report.streams["invoices"].deleted == 1
    assert report.streams["invoices"].changed == 0
    rows = read_csv_dir(tmp_path / "out")["invoices"]
    assert any("Renamed & Co" in row for row in rows[1:])
    assert_csv_matches(sandbox, tmp_path / "out")


def test_concurrent_edits_during_sync_then_one_more_sync_is_exact(make_sandbox: Any, tmp_path: Path) -> None:
    import random

    sandbox = make_sandbox(customers=30, invoices=1500, transactions=400, latency=0.001)
    settings = settings_for(sandbox, f"sqlite:///{tmp_path / 's.db'}", tmp_path / "out")
    rng, edits = random.Random(7), [0]

    def edit_then_wait(seconds: float) -> None:
        # Edits tied to requests, not to time: every page of the sync is served amid edits,
        # however fast the machine (a timed editor made none when the sync beat its first tick).
        for _ in range(4):
            edits[0] += sandbox.edit(rng)
        time.sleep(seconds)

    sandbox.sleep = edit_then_wait
    run_sync(settings)
    sandbox.sleep = time.sleep
    report = run_sync(settings)
    assert report.ok, report.errors()
    assert edits[0] > 20
    assert_csv_matches(sandbox, tmp_path / "out")


def test_rate_limits_server_errors_and_strict_pages(make_sandbox: Any, tmp_path: Path) -> None:
    sandbox = make_sandbox(customers=10, invoices=400, transactions=100, strict_pages=True, p429=0.3, p500=0.05)
    settings = settings_for(
        sandbox, f"sqlite:///{tmp_path / 's.db'}", tmp_path / "out", invoiced={"retry_attempts": 30}
    )
    report = run_sync(settings)
    assert report.ok, report.errors()
    assert sandbox.stats.served_429 > 0 and sandbox.stats.served_500 > 0
    assert_csv_matches(sandbox, tmp_path / "out")


def test_full_ignores_cursors(make_sandbox: Any, tmp_path: Path) -> None:
    sandbox = make_sandbox(customers=5, invoices=30, transactions=10)
    settings = settings_for(sandbox, f"sqlite:///{tmp_path / 's.db'}", tmp_path / "out")
    assert run_sync(settings).ok
    report = run_sync(settings, streams=["customers"], full=True)
    assert report.ok and list(report.streams) == ["customers"]
    assert report.streams["customers"].fetched == len(sandbox.data.list("customers"))
    assert report.streams["customers"].changed == 0


def test_stream_scope_sends_metadata_and_filter(make_sandbox: Any, tmp_path: Path) -> None:
    sandbox = make_sandbox(customers=20, invoices=200, transactions=10)
    region = next(c["metadata"]["region"] for c in sandbox.data.list("customers") if c["metadata"].get("region"))
    settings = settings_for(
        sandbox,
        f"sqlite:///{tmp_path / 's.db'}",
        tmp_path / "out",
        streams={"customers": {"metadata": {"region": region}}, "transactions": {"enabled": False}},
    )
    assert run_sync(settings).ok
    rows = read_csv_dir(tmp_path / "out")["customers"][1:]
    want = {str(c["id"]) for c in sandbox.data.list("customers") if c["metadata"].get("region") == region}
    assert {r[0] for r in rows} == want and 0 < len(want) < 20


@pytest.mark.slow
def test_sigkill_at_random_moments_then_restart_converges(make_sandbox: Any, tmp_path: Path) -> None:
    """Kill `syncd sync` (SIGKILL) at random moments many times; the final output is exact.

    A kill comes after a random number of answered requests, not after a random delay (a fast
    machine finished the sync before most delays). The sandbox holds any request beyond that
    number until the kill, so a killed run reads at most `most` pages, some of them planning:
    twenty runs cannot read the ~200 pages there are (1,500 invoices, 400 transactions and 40
    customers, 10 a page), and every run is killed before it ends, on any machine. The moment
    of the kill within the run's work (delivering, rendering) is left to chance.
    """
    import random
    import signal
    import subprocess
    import sys

    from tests.gate import RequestGate

    kills_wanted, most = 20, 8
    sandbox = make_sandbox(customers=40, invoices=1500, transactions=400, latency=0.002)
    gate = RequestGate(sandbox)
    out, config = tmp_path / "out", tmp_path / "syncd.toml"
    config.write_text(
        f"""
[invoiced]
base_url = "{sandbox.url}"
api_key = "{sandbox.api_key}"
per_page = 10
[store]
url = "sqlite:///{tmp_path / "s.db"}"
[connectors.csv]
enabled = true
directory = "{out}"
mapping = "{Path(__file__).resolve().parents[2] / "mappings" / "csv.toml"}"
render_every = 0.2
"""
    )
    rng = random.Random(1234)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    kills = 0
    for attempt in range(kills_wanted):
        gate.allow(rng.randint(1, most))
        proc = subprocess.Popen(
            [sys.executable, "-m", "syncd.cli", "--config", str(config), "sync"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + 120  # only for a starved machine: the kill point is the count
        while proc.poll() is None and not gate.reached() and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.3))  # the run works on what it got, then waits for more
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        gate.release()
        if attempt % 4 == 3:  # data keeps moving between kills
            for inv in rng.sample(sandbox.data.list("invoices"), 5):
                sandbox.data.update("invoices", inv["id"], {"notes": f"edit {attempt}"})
    assert kills == kills_wanted
    final = subprocess.run(
        [sys.executable, "-m", "syncd.cli", "--config", str(config), "sync"], env=env, check=False
    )
    assert final.returncode == 0
    assert_csv_matches(sandbox, out)
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    assert store.count_raw("invoices") == len(sandbox.data.list("invoices"))
    store.close()
