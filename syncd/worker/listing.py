"""`syncd jobs`: running, queued, failed and stalled jobs per account, from procrastinate's tables.

running  `doing` on a worker whose heartbeat is recent
stalled  `doing` on a worker silent for `[worker] stall_timeout` (or forgotten): the next
         tick queues it again
queued   `todo` (with the time it may start when it waits for a lease to run out)
failed   the last run of its (account, job) failed: nothing succeeded since
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from rich.console import Console
from rich.table import Table

from syncd.config import Settings
from syncd.errors import StoreError
from syncd.store import redact_url
from syncd.worker.queue import PULL_TASK, PUSH_TASK, conninfo

STATES = ("running", "queued", "stalled", "failed")

QUERY = """
WITH keyed AS (
    SELECT j.*, (SELECT max(e.at) FROM procrastinate_events e WHERE e.job_id = j.id) AS changed_at
      FROM procrastinate_jobs j
     WHERE j.task_name IN (%(pull)s, %(push)s)
), last_ok AS (
    SELECT queueing_lock, max(id) AS id FROM keyed WHERE status = 'succeeded' GROUP BY queueing_lock
), last_failed AS (
    SELECT queueing_lock, max(id) AS id FROM keyed WHERE status = 'failed' GROUP BY queueing_lock
)
SELECT k.id, k.task_name, k.status, k.args, k.attempts, k.worker_id, k.scheduled_at, k.changed_at,
       (k.status = 'doing' AND (w.id IS NULL
            OR w.last_heartbeat < now() - make_interval(secs => %(stall)s))) AS stalled
  FROM keyed k
  LEFT JOIN procrastinate_workers w ON w.id = k.worker_id
  LEFT JOIN last_ok o ON o.queueing_lock = k.queueing_lock
  LEFT JOIN last_failed f ON f.queueing_lock = k.queueing_lock
 WHERE k.status IN ('todo', 'doing')
    OR (k.status = 'failed' AND k.id = f.id AND k.id > coalesce(o.id, 0))
 ORDER BY k.args->>'account', k.id
"""


@dataclass
class JobRow:
    id: int
    account: str
    job: str  # pull:<stream> or push
    state: str  # one of STATES
    since: str | None  # when it entered this state (UTC, ISO)
    attempts: int
    worker: int | None
    not_before: str | None  # a queued job that waits for a lease to run out


def list_jobs(top: Settings, account: str | None = None) -> list[JobRow]:
    """The jobs `syncd jobs` shows (none when no worker ever started on this database)."""
    try:
        with psycopg.connect(conninfo(top), connect_timeout=10, row_factory=dict_row) as conn:
            exists = conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS ok").fetchone()
            if not (exists and exists["ok"]):
                return []
            rows = conn.execute(
                QUERY, {"pull": PULL_TASK, "push": PUSH_TASK, "stall": float(top.worker.stall_timeout)}
            ).fetchall()
    except psycopg.Error as exc:
        raise StoreError(
            f"job database {redact_url(top.store.url)} unreachable: {str(exc).strip().splitlines()[0]}"
        ) from None
    out = []
    for row in rows:
        args: dict[str, Any] = row["args"] or {}
        name = str(args.get("account", "?"))
        if account is not None and name != account:
            continue
        state = {"todo": "queued", "doing": "running", "failed": "failed"}[row["status"]]
        if row["stalled"]:
            state = "stalled"
        scheduled = row["scheduled_at"]
        out.append(
            JobRow(
                id=int(row["id"]),
                account=name,
                job=f"pull:{args['stream']}" if row["task_name"] == PULL_TASK else "push",
                state=state,
                since=row["changed_at"].isoformat(timespec="seconds") if row["changed_at"] else None,
                attempts=int(row["attempts"]),
                worker=row["worker_id"],
                not_before=scheduled.isoformat(timespec="seconds")
                if scheduled and state == "queued"
                else None,
            )
        )
    return out


def summary(rows: list[JobRow], accounts: list[str]) -> dict[str, dict[str, int]]:
    """Counts per account and state (every configured account, idle ones too)."""
    counts = {name: dict.fromkeys(STATES, 0) for name in accounts}
    for row in rows:
        counts.setdefault(row.account, dict.fromkeys(STATES, 0))[row.state] += 1
    return counts


def render(rows: list[JobRow], accounts: list[str], console: Console, *, as_json: bool) -> None:
    counts = summary(rows, accounts)
    if as_json:
        console.print_json(json.dumps({"accounts": counts, "jobs": [asdict(r) for r in rows]}))
        return
    table = Table(title="jobs per account", title_justify="left")
    table.add_column("account")
    for state in STATES:
        table.add_column(state, justify="right")
    for name, per in sorted(counts.items()):
        table.add_row(name, *(str(per[s]) for s in STATES))
    console.print(table)
    if not rows:
        console.print("no job running, queued, stalled or failing")
        return
    jobs = Table(title="jobs", title_justify="left")
    for column in ("id", "account", "job", "state", "since", "attempts", "worker"):
        jobs.add_column(column)
    for r in rows:
        since = r.since or ""
        if r.not_before:
            since = f"{since} (starts {r.not_before})"
        jobs.add_row(str(r.id), r.account, r.job, r.state, since, str(r.attempts), str(r.worker or ""))
    console.print(jobs)
