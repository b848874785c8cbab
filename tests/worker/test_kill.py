"""Locks, SIGKILL and SIGTERM of `syncd worker`, tied to pages served by the sandbox."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.helpers import wait_for
from tests.gate import RequestGate
from tests.worker.helpers import (
    WorkerProcess,
    create_schemas,
    env_for,
    overlaps,
    query,
    runs,
    synced,
    write_config,
)

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

INVOICES = 300
PER_PAGE = 10


def _start(
    job_db: str, make_sandbox: Any, tmp_path: Path, account: str, seen: list[str] | None = None
) -> tuple[Any, RequestGate, Any]:
    create_schemas(job_db, [account])
    sb = make_sandbox(customers=5, invoices=INVOICES, transactions=5)

    def invoice_pages(method: str, path: str, query: str) -> bool:
        if method == "GET" and path == "/invoices":
            if seen is not None:
                seen.append(query)
            return True
        return False

    gate = RequestGate(sb, counts=invoice_pages)
    gate.allow(6)  # the first run of invoices is held after a few pages
    config = write_config(tmp_path, job_db, {account: sb}, per_page=PER_PAGE)
    workers = [WorkerProcess(config, env_for({account: sb}), f"{account}-w{i}") for i in (1, 2)]
    for w in workers:
        w.started()
    return sb, gate, workers


def _running(job_db: str, account: str, job: str) -> dict[str, Any] | None:
    rows = [r for r in runs(job_db, account) if r["job"] == job and r["status"] == "running"]
    return rows[0] if rows else None


def _doing(job_db: str, account: str, stream: str) -> list[dict[str, Any]]:
    return query(
        job_db,
        "SELECT id, status, attempts FROM procrastinate_jobs WHERE task_name = 'syncd.pull' "
        "AND args->>'account' = %s AND args->>'stream' = %s AND status = 'doing'",
        account,
        stream,
    )


def _fetched(run: dict[str, Any]) -> int:
    return int(json.loads(run["counts"])["streams"]["invoices"]["fetched"])


def test_a_second_job_of_the_same_account_stream_waits_while_one_runs(
    job_db: str, make_sandbox: Any, tmp_path: Path
) -> None:
    account = "lock"
    sb, gate, workers = _start(job_db, make_sandbox, tmp_path, account)
    try:
        wait_for(gate.reached, 120, "the invoices run held mid-way")
        [running] = wait_for(lambda: _doing(job_db, account, "invoices"), 60, "the running invoices job")
        # A second job of the same (account, stream), beside the one the tick keeps queued.
        [extra] = query(
            job_db,
            "INSERT INTO procrastinate_jobs (queue_name, task_name, lock, args) "
            "VALUES ('syncd', 'syncd.pull', %s, %s) RETURNING id",
            f"{account}/pull",
            json.dumps({"account": account, "stream": "invoices"}),
        )
        # The other worker is idle and polling: it runs ticks meanwhile, never the extra job.
        first_tick = query(
            job_db, "SELECT max(id) AS id FROM procrastinate_jobs WHERE task_name = 'syncd.tick'"
        )[0]["id"]
        wait_for(
            lambda: (
                query(
                    job_db,
                    "SELECT count(*) AS n FROM procrastinate_jobs WHERE task_name = 'syncd.tick' "
                    "AND status = 'succeeded' AND id > %s",
                    first_tick,
                )[0]["n"]
                >= 3
            ),
            60,
            "three ticks while the invoices job runs",
        )
        status = query(job_db, "SELECT status FROM procrastinate_jobs WHERE id = %s", extra["id"])[0][
            "status"
        ]
        assert status == "todo"
        assert [r["id"] for r in _doing(job_db, account, "invoices")] == [running["id"]]
        gate.release()
        wait_for(
            lambda: (
                query(job_db, "SELECT status FROM procrastinate_jobs WHERE id = %s", extra["id"])[0]["status"]
                == "succeeded"
            ),
            120,
            "the extra job to run after the first",
        )
        wait_for(lambda: synced(tmp_path, account, sb), 120, "the outputs")
    finally:
        gate.release()
        for w in workers:
            w.kill()
    assert overlaps(runs(job_db, account)) == []


def test_a_killed_workers_job_is_finished_by_another_from_the_checkpoint(
    job_db: str, make_sandbox: Any, tmp_path: Path
) -> None:
    account = "killed"
    seen: list[str] = []
    sb, gate, workers = _start(job_db, make_sandbox, tmp_path, account, seen)
    try:
        wait_for(gate.reached, 120, "the invoices run held mid-way")
        run = wait_for(lambda: _running(job_db, account, "pull:invoices"), 60, "the running invoices run")
        [job] = _doing(job_db, account, "invoices")
        victim = next(w for w in workers if run["holder"].startswith(f"{w.name}@"))
        survivor = next(w for w in workers if w is not victim)
        assert run["holder"].endswith(f":{victim.pid}")
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        [checkpoint] = query(
            job_db,
            f"SELECT value FROM \"syncd_{account}\".cursor WHERE stream = 'invoices' AND partition = ''",
        )
        assert checkpoint["value"] > 0  # pages were checkpointed before the kill
        seen.clear()
        gate.release()
        # After stall_timeout (3 s) without a heartbeat, the same job runs on the survivor.
        wait_for(
            lambda: (
                query(job_db, "SELECT status FROM procrastinate_jobs WHERE id = %s", job["id"])[0]["status"]
                == "succeeded"
            ),
            120,
            "the killed worker's job to succeed elsewhere",
        )
        survivor.wait_event("job.stalled", 30, where=lambda e: e.get("job_id") == job["id"])
        wait_for(lambda: synced(tmp_path, account, sb), 120, "the outputs")
    finally:
        gate.release()
        for w in workers:
            w.kill()
    log = [r for r in runs(job_db, account) if r["job"] == "pull:invoices"]
    assert overlaps(runs(job_db, account)) == []
    killed = next(r for r in log if r["id"] == run["id"])
    assert killed["status"] == "interrupted"
    after = [r for r in log if r["started_at"] > killed["started_at"] and r["status"] == "ok"]
    assert after[0]["holder"].startswith(f"{survivor.name}@")
    # It resumed from the checkpoint: no invoice listing asked for records before it again
    # (the held requests of the killed run were answered to a closed socket, or not at all).
    since = [int(q.split("updated_after=")[1].split("&")[0]) for q in seen if "updated_after=" in q]
    assert since
    assert min(since) >= checkpoint["value"] - 1


def test_sigterm_finishes_the_page_requeues_the_job_and_exits_0(
    job_db: str, make_sandbox: Any, tmp_path: Path
) -> None:
    account = "stopped"
    sb, gate, workers = _start(job_db, make_sandbox, tmp_path, account)
    try:
        wait_for(gate.reached, 120, "the invoices run held mid-way")
        run = wait_for(lambda: _running(job_db, account, "pull:invoices"), 60, "the running invoices run")
        [job] = _doing(job_db, account, "invoices")
        leaving = next(w for w in workers if run["holder"].startswith(f"{w.name}@"))
        staying = next(w for w in workers if w is not leaving)
        leaving.signal(signal.SIGTERM)
        leaving.wait_event("worker.stopping", 30)
        gate.release()  # the page in hand is answered, then the job stops
        assert leaving.wait(30) == 0
        assert leaving.events[-1]["event"] == "daemon.stopped" or any(
            e.get("event") == "daemon.stopped" and e.get("exit_code") == 0 for e in leaving.events
        )
        wait_for(
            lambda: (
                query(job_db, "SELECT status FROM procrastinate_jobs WHERE id = %s", job["id"])[0]["status"]
                == "succeeded"
            ),
            120,
            "the stopped job to be taken up by the other worker",
        )
        wait_for(lambda: synced(tmp_path, account, sb), 120, "the outputs")
    finally:
        gate.release()
        for w in workers:
            w.kill()
    log = [r for r in runs(job_db, account) if r["job"] == "pull:invoices"]
    stopped = next(r for r in log if r["id"] == run["id"])
    assert stopped["status"] == "failed" and "stopped" in (stopped["error"] or "")
    assert _fetched(stopped) > 0  # it checkpointed what it had read
    after = [r for r in log if r["started_at"] > stopped["started_at"] and r["status"] == "ok"]
    assert after[0]["holder"].startswith(f"{staying.name}@")
    assert overlaps(runs(job_db, account)) == []
