"""Deletions survive `syncd sync` killed at any moment, even before any run of a stream finished."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from tests.engine.killing import (
    assert_outputs_match,
    delete_stored,
    finish,
    kill_after_requests,
    syncd,
    touch_one,
    write_config,
)


def test_sync_killed_before_any_run_finished_keeps_outputs_exact(make_sandbox: Any, tmp_path: Path) -> None:
    sandbox = make_sandbox(seed=11, customers=8, invoices=100, transactions=40, edit_rate=4.0, strict_pages=True)
    config = write_config(tmp_path / "syncd.toml", sandbox, tmp_path)
    touch_one(sandbox)  # an account has events: the first run's events position is anchored
    rng = random.Random(17)
    deleted: list[tuple[str, str]] = []
    outcomes = []
    for attempt in range(10):
        run = syncd(config, "sync")
        outcomes.append(kill_after_requests(run, sandbox, rng.randint(4, 16), store=tmp_path / "s.db"))
        if attempt % 3 == 1:  # a bulk edit: one second larger than a page (deep scans)
            sandbox.data.touch_many("invoices", [i["id"] for i in rng.sample(sandbox.data.list("invoices"), 8)])
        # Records already delivered are deleted between runs, while the editor deletes some too.
        deleted += delete_stored(sandbox, tmp_path / "s.db", rng)
    before_any_finished = [*outcomes, False].index(False)
    assert sum(outcomes) >= 7 and before_any_finished >= 4 and len(deleted) >= 5, (outcomes, deleted)
    sandbox.knobs.edit_rate = 0.0
    finish(lambda: syncd(config, "sync").wait(120))
    assert_outputs_match(sandbox, tmp_path)
