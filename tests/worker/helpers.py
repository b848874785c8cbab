"""`syncd worker` processes against sandboxes, one sandbox per account."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from tests.daemon.helpers import DaemonProcess, read_csv, write_mapping


def libpq(url: str) -> str:
    return url.replace("+psycopg", "")


def create_schemas(url: str, accounts: list[str]) -> None:
    """Each account's store schema (`syncd_NAME`), until accounts create their own."""
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        for name in accounts:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "syncd_{name}"')


def key_variable(account: str) -> str:
    return f"SYNCD_TEST_KEY_{account.upper()}"


def write_config(
    tmp: Path,
    url: str,
    sandboxes: dict[str, Any],
    *,
    every: int = 1,
    worker: dict[str, Any] | None = None,
    pushback: bool = False,
    per_page: int = 100,
) -> Path:
    """A multi-account config: account NAME reads `sandboxes[NAME]`, writes CSV to
    tmp/accounts/NAME/out; 1-second schedules; a small stall timeout."""
    mapping = tmp / "map.toml"
    write_mapping(mapping)
    conf = {"tick": 1, "stall_timeout": 3, **(worker or {})}
    lines = [
        f'state_dir = "{tmp}"',
        "[store]",
        f'url = "{url}"',
        "[invoiced]",
        "retry_attempts = 2",
        "retry_budget = 3.0",
        "timeout = 20.0",
        f"per_page = {per_page}",
        "[streams.invoices]",
        "windows = 1",
        "[streams.transactions]",
        "windows = 1",
        "[connectors.csv]",
        "enabled = true",
        'directory = "out"',
        f'mapping = "{mapping}"',
        "render_every = 0.0",
        "[pushback]",
        f"enabled = {'true' if pushback else 'false'}",
        "[daemon]",
        f"customers_every = {every}",
        f"invoices_every = {every}",
        f"transactions_every = {every}",
        f"pushback_every = {every}",
        "lock_ttl = 5",
        "[worker]",
        *(f"{k} = {json.dumps(v)}" for k, v in conf.items()),
    ]
    for name, sandbox in sandboxes.items():
        lines += [
            f"[accounts.{name}.invoiced]",
            f'base_url = "{sandbox.url}"',
            f'api_key_env = "{key_variable(name)}"',
        ]
    path = tmp / "syncd.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name in sandboxes:
        (tmp / "accounts" / name / "out").mkdir(parents=True, exist_ok=True)
    return path


def env_for(sandboxes: dict[str, Any]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update({key_variable(name): sb.api_key for name, sb in sandboxes.items()})
    return env


class WorkerProcess(DaemonProcess):
    """`syncd worker --config X --health-port 0 --name NAME` as a subprocess."""

    STARTED = "worker.started"

    def __init__(self, config: Path, env: dict[str, str], name: str, *extra: str) -> None:
        self.name = name
        args = ["worker", "--config", str(config), "--health-port", "0", "--name", name, *extra]
        super().__init__(config, args, env)


def query(url: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(libpq(url), row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def runs(url: str, account: str) -> list[dict[str, Any]]:
    """The run log of one account's store."""
    return query(url, f'SELECT * FROM "syncd_{account}".run ORDER BY started_at')


def jobs(url: str) -> list[dict[str, Any]]:
    return query(
        url, "SELECT id, task_name, status, args, attempts, worker_id FROM procrastinate_jobs ORDER BY id"
    )


def ids_in(path: Path) -> set[str]:
    rows = read_csv(path)
    return {row[0] for row in rows[1:]}


def synced(tmp: Path, account: str, sandbox: Any) -> bool:
    """The account's CSV files hold exactly the sandbox's customers and invoices."""
    out = tmp / "accounts" / account / "out"
    for stream in ("customers", "invoices"):
        if not (out / f"{stream}.csv").exists():
            return False
        want = {str(r["id"]) for r in sandbox.data.list(stream)}
        if ids_in(out / f"{stream}.csv") != want:
            return False
    return True


def overlaps(rows: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """Pairs of runs of one job whose times overlap (a run still running ends at +inf)."""
    found = []
    by_job: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_job.setdefault(row["job"], []).append(row)
    for same in by_job.values():
        same.sort(key=lambda r: r["started_at"])
        for a, b in itertools.pairwise(same):
            if a["ended_at"] is None or a["ended_at"] > b["started_at"]:
                found.append((a["id"], b["id"]))
    return found
