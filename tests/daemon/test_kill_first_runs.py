"""A daemon SIGKILLed during its first runs, while records are edited and deleted, still ends
with CSV files and a journal equal to the sandbox."""

from __future__ import annotations

import random
import signal
from pathlib import Path
from typing import Any

from sqlalchemy import delete

from syncd.store import Store
from syncd.store.models import Lock
from tests.daemon.helpers import DaemonProcess
from tests.engine.killing import (
    assert_outputs_match,
    delete_stored,
    kill_after_requests,
    syncd,
    touch_one,
    write_config,
)

DAEMON = {
    "customers_every": 1,
    "invoices_every": 1,
    "transactions_every": 1,
    "health_port": 0,
    "lock_ttl": 5,
}


def _forget_dead_lease(db: Path) -> None:
    # The killed daemon cannot release its lease; the test knows it is dead (a new daemon
    # would otherwise wait for the lease to expire, which this test is not about).
    store = Store.open(f"sqlite:///{db}")
    try:
        with store.engine.begin() as conn:
            conn.execute(delete(Lock))
    finally:
        store.close()


def _finished(db: Path, stream: str) -> bool:
    store = Store.open(f"sqlite:///{db}")
    try:
        return set(store.cursors(stream)) == {""}
    finally:
        store.close()


def test_daemon_killed_in_its_first_runs_keeps_outputs_exact(make_sandbox: Any, tmp_path: Path) -> None:
    sandbox = make_sandbox(seed=5, customers=8, invoices=200, transactions=30, edit_rate=4.0)
    touch_one(sandbox)
    config = write_config(tmp_path / "syncd.toml", sandbox, tmp_path, daemon=DAEMON)
    rng = random.Random(29)
    deleted: list[tuple[str, str]] = []
    kills = 0
    for _ in range(6):
        kills += kill_after_requests(syncd(config, "daemon"), sandbox, rng.randint(4, 14), store=tmp_path / "s.db")
        _forget_dead_lease(tmp_path / "s.db")
        deleted += delete_stored(sandbox, tmp_path / "s.db", rng)
    assert kills == 6 and len(deleted) >= 4, deleted
    assert not _finished(tmp_path / "s.db", "invoices"), "the test needs invoices' first pass unfinished"
    sandbox.knobs.edit_rate = 0.0

    daemon = DaemonProcess(config)
    try:
        daemon.started()
        for job in ("customers", "invoices", "transactions"):
            daemon.wait_event("job.run", 120, where=lambda e, j=job: e.get("job") == j and e.get("outcome") == "ok")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    finally:
        daemon.kill()
    assert_outputs_match(sandbox, tmp_path)
