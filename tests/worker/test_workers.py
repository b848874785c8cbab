"""Two real `syncd worker` processes, two accounts (a sandbox each), one PostgreSQL database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.helpers import wait_for
from tests.worker.helpers import (
    WorkerProcess,
    create_schemas,
    env_for,
    jobs,
    overlaps,
    query,
    runs,
    synced,
    write_config,
)

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

ACCOUNTS = ("acme", "globex")
STREAM_JOBS = {"pull:customers", "pull:invoices", "pull:transactions"}


@pytest.fixture
def cluster(job_db: str, make_sandbox: Any, tmp_path: Path) -> Any:
    create_schemas(job_db, list(ACCOUNTS))
    sandboxes = {
        name: make_sandbox(seed=seed, customers=8, invoices=40, transactions=10)
        for seed, name in enumerate(ACCOUNTS, 1)
    }
    config = write_config(tmp_path, job_db, sandboxes)
    return sandboxes, config, env_for(sandboxes)


def test_two_workers_sync_every_account_once_per_tick_and_never_overlap(
    job_db: str, cluster: Any, tmp_path: Path
) -> None:
    sandboxes, config, env = cluster
    workers = [WorkerProcess(config, env, f"w{i}") for i in (1, 2)]
    try:
        for w in workers:
            w.started()
        for name, sb in sandboxes.items():
            wait_for(lambda name=name, sb=sb: synced(tmp_path, name, sb), 120, f"{name}'s outputs")
        # Both workers ran jobs, and every stream of every account ran.
        wait_for(
            lambda: (
                len(
                    {
                        r["holder"].split("@")[0]
                        for n in ACCOUNTS
                        for r in runs(job_db, n)
                        if r["status"] == "ok"
                    }
                )
                == 2
            ),
            120,
            "jobs run by both workers",
        )
        for name in ACCOUNTS:
            wait_for(
                lambda name=name: (
                    {r["job"] for r in runs(job_db, name) if r["status"] == "ok"} == STREAM_JOBS
                ),
                120,
                f"every stream of {name}",
            )
        series = set()
        for w in workers:
            status, body = w.get("/healthz")
            assert (status, body.splitlines()[0]) == (200, "ok")
            metrics = w.metrics()
            assert metrics["syncd_up"] == 1
            series |= {k for k in metrics if k.startswith("syncd_job_runs_total")}
        for name in ACCOUNTS:  # labelled by account
            assert any(f'account="{name}"' in k and 'job="pull:invoices"' in k for k in series), series
        # Let both workers live through a few ticks (on a fast machine the sync is done in two).
        wait_for(
            lambda: len(query(job_db, "SELECT 1 FROM procrastinate_jobs WHERE task_name = 'syncd.tick'")) >= 4,
            60,
            "four ticks",
        )
    finally:
        for w in workers:
            w.kill()
    # Every line a job logs names its account (the engine's fetcher threads included).
    job_lines = [e for w in workers for e in w.events if "job_id" in e]
    assert {e["event"] for e in job_lines} >= {"job.run"}
    assert {e.get("account") for e in job_lines} == set(ACCOUNTS)
    for name in ACCOUNTS:
        log = runs(job_db, name)
        assert {r["job"] for r in log} == STREAM_JOBS
        assert all(r["holder"].startswith(("w1@", "w2@")) for r in log)
        assert overlaps(log) == []
    # Every worker's requests for an account went through that account's one shared pace.
    for name in ACCOUNTS:
        assert query(job_db, f"SELECT key FROM syncd_{name}.pace") == [{"key": name}]
    # Periodic ticks: deferred once per timestamp for the cluster, with two workers deferring.
    ticks = query(
        job_db,
        "SELECT args->>'timestamp' AS ts, count(*) AS n FROM procrastinate_jobs "
        "WHERE task_name = 'syncd.tick' GROUP BY 1",
    )
    assert len(ticks) >= 3
    assert {t["n"] for t in ticks} == {1}
    # Pull jobs carry their account's lock and one queueing lock per (account, stream).
    pulls = query(
        job_db, "SELECT lock, queueing_lock, args FROM procrastinate_jobs WHERE task_name = 'syncd.pull'"
    )
    assert pulls
    for p in pulls:
        assert p["lock"] == f"{p['args']['account']}/pull"
        assert p["queueing_lock"] == f"{p['args']['account']}/pull:{p['args']['stream']}"
    assert not [j for j in jobs(job_db) if j["status"] == "failed"], json.dumps(jobs(job_db), default=str)
