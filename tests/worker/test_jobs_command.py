"""`syncd jobs`, the SQLite refusal of `syncd worker`, and which jobs a tick finds due."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from syncd.accounts import load_accounts
from syncd.cli import app
from syncd.config import load_settings
from syncd.worker.queue import ensure_schema
from syncd.worker.scheduling import Due, due_jobs
from tests.daemon.helpers import ROOT
from tests.worker.helpers import create_schemas, env_for, query, write_config


class _Sandbox:
    url = "http://127.0.0.1:9"
    api_key = "sk_test_not_used"


def _config(
    tmp_path: Path, url: str, names: tuple[str, ...] = ("acme", "globex")
) -> tuple[Path, dict[str, str]]:
    sandboxes = {n: _Sandbox() for n in names}
    return write_config(tmp_path, url, sandboxes, every=60), env_for(sandboxes)


def test_worker_refuses_a_sqlite_store_on_one_line(tmp_path: Path) -> None:
    config, env = _config(tmp_path, f"sqlite:///{tmp_path / 's.db'}")
    done = subprocess.run(
        [sys.executable, "-m", "syncd.cli", "worker", "--config", str(config)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "PostgreSQL" in lines[0] and "syncd daemon" in lines[0]


def test_due_jobs_skip_open_and_recent_keys_and_back_off_after_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, env = _config(tmp_path, "postgresql://x@127.0.0.1/db")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    accounts = load_accounts(config)
    history: dict[str, dict[str, Any]] = {
        "acme/pull:customers": {"open": True, "since_start": 999.0, "failures": 0},
        "acme/pull:invoices": {"open": False, "since_start": 30.0, "failures": 0},  # every = 60
        "acme/pull:transactions": {"open": False, "since_start": 61.0, "failures": 0},
        "globex/pull:customers": {"open": False, "since_start": 61.0, "failures": 3},  # backing off
    }
    assert due_jobs(accounts, history) == [
        Due("acme", "transactions"),
        Due("globex", "invoices"),
        Due("globex", "transactions"),
    ]


@pytest.mark.postgres
def test_jobs_lists_running_queued_failed_and_stalled_per_account(
    job_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, env = _config(tmp_path, job_db)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    create_schemas(job_db, ["acme", "globex"])
    top = load_settings(config)
    runner = CliRunner()
    result = runner.invoke(app, ["jobs", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output  # no job tables yet: nothing to list
    assert json.loads(result.output)["jobs"] == []

    assert ensure_schema(top) is True
    assert ensure_schema(top) is False  # a second start finds it and checks it

    def add(account: str, stream: str, status: str, worker: int | None = None) -> int:
        [row] = query(
            job_db,
            "INSERT INTO procrastinate_jobs (queue_name, task_name, lock, queueing_lock, args, status, worker_id) "
            "VALUES ('syncd', 'syncd.pull', %s, %s, %s, 'todo', NULL) RETURNING id",
            f"{account}/pull",
            f"{account}/pull:{stream}",
            json.dumps({"account": account, "stream": stream}),
        )
        if status != "todo":
            query(
                job_db,
                "UPDATE procrastinate_jobs SET status = %s, worker_id = %s WHERE id = %s RETURNING id",
                status,
                worker,
                row["id"],
            )
        return int(row["id"])

    [alive] = query(job_db, "INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id")
    [dead] = query(
        job_db,
        "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '1 hour') RETURNING id",
    )
    running = add("acme", "invoices", "doing", alive["id"])
    stalled = add("globex", "invoices", "doing", dead["id"])
    queued = add("acme", "customers", "todo")
    add("globex", "customers", "succeeded")
    failed = add("globex", "customers", "failed")  # the last run of its key failed
    add("acme", "transactions", "failed")
    add("acme", "transactions", "succeeded")  # ... not this one: it succeeded since

    result = runner.invoke(app, ["jobs", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert listed["accounts"] == {
        "acme": {"running": 1, "queued": 1, "stalled": 0, "failed": 0},
        "globex": {"running": 0, "queued": 0, "stalled": 1, "failed": 1},
    }
    states = {(j["id"], j["account"], j["job"], j["state"]) for j in listed["jobs"]}
    assert states == {
        (running, "acme", "pull:invoices", "running"),
        (queued, "acme", "pull:customers", "queued"),
        (stalled, "globex", "pull:invoices", "stalled"),
        (failed, "globex", "pull:customers", "failed"),
    }

    result = runner.invoke(app, ["jobs", "--config", str(config), "--account", "globex"])
    assert result.exit_code == 0, result.output
    assert "globex" in result.output and "stalled" in result.output and "acme" not in result.output

    result = runner.invoke(app, ["jobs", "--config", str(config), "--account", "nobody"])
    assert result.exit_code == 2
    assert "no account 'nobody'" in result.output
