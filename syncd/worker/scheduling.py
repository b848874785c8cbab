"""The cluster's tick: one periodic procrastinate job every `[worker] tick` seconds.

procrastinate defers a periodic job once per timestamp for the whole cluster (a unique row
in `procrastinate_periodic_defers`), however many workers run, and its `queueing_lock`
keeps at most one tick queued. Each tick:

- reads the configuration again (new accounts are picked up, removed ones no longer queued);
- queues every (account, stream) pull and every account's push-back that is due: none of
  its jobs queued or running, and its last start at least `[daemon] *_every` seconds ago
  (longer after failures: the daemon's back-off). Only due jobs are queued, never jobs for
  later: a queued job holds its lock's place in line, and would hold up the account's
  other streams until its time came. The `queueing_lock` turns a race between two ticks
  into one queued job;
- hands the jobs of workers whose heartbeat is older than `[worker] stall_timeout` back to
  the queue (procrastinate's stalled-job recovery): a live worker takes them up and
  resumes from the store's checkpoint.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from procrastinate import App
from procrastinate.exceptions import AlreadyEnqueued

from syncd.config import Settings
from syncd.daemon.jobs import backoff, planned_jobs
from syncd.worker.queue import (
    CLEANUP_TASK,
    CONTROL_QUEUE,
    PULL_TASK,
    PUSH_TASK,
    TICK_TASK,
    lock_of,
    queueing_lock_of,
)

log = structlog.get_logger("syncd.worker")

# Per key (account/pull:stream, account/push): is one queued or running, seconds since the
# last start, and failed runs since the last success.
HISTORY = """
WITH keyed AS (
    SELECT id, status, queueing_lock AS key
      FROM procrastinate_jobs
     WHERE task_name IN (%(pull)s, %(push)s) AND queueing_lock IS NOT NULL
), last_ok AS (
    SELECT key, max(id) AS id FROM keyed WHERE status = 'succeeded' GROUP BY key
)
SELECT k.key,
       bool_or(k.status IN ('todo', 'doing')) AS open,
       count(*) FILTER (WHERE k.status = 'failed' AND k.id > coalesce(o.id, 0)) AS failures,
       (SELECT extract(epoch FROM now() - max(e.at))
          FROM procrastinate_events e JOIN keyed k2 ON k2.id = e.job_id
         WHERE k2.key = k.key AND e.type = 'started') AS since_start
  FROM keyed k LEFT JOIN last_ok o ON o.key = k.key
 GROUP BY k.key, o.id
"""


@dataclass(frozen=True)
class Due:
    """A job to queue now."""

    account: str
    stream: str | None  # None: push-back

    @property
    def task(self) -> str:
        return PULL_TASK if self.stream else PUSH_TASK

    @property
    def kwargs(self) -> dict[str, str]:
        return {"account": self.account, **({"stream": self.stream} if self.stream else {})}


def due_jobs(accounts: Mapping[str, Settings], history: Mapping[str, Mapping[str, Any]]) -> list[Due]:
    """The jobs to queue now, given each key's history (pure: tested on its own)."""
    due = []
    for account, settings in sorted(accounts.items()):
        for _name, (_kind, every, stream) in planned_jobs(settings).items():
            key = queueing_lock_of(account, stream)
            seen = history.get(key)
            if seen is not None:
                if seen["open"]:
                    continue
                since = seen["since_start"]
                failures = int(seen["failures"] or 0)
                # The daemon's back-off, with a jitter fixed per key so the due time is stable.
                wait = backoff(every, failures, rand=random.Random(key)) if failures else every
                if since is not None and float(since) < wait:
                    continue
            due.append(Due(account, stream))
    return due


async def tick(app: App, accounts: Mapping[str, Settings], top: Settings) -> list[Due]:
    """One pass: recover stalled jobs, then queue what is due. Returns what it queued."""
    await recover_stalled(app, top.worker.stall_timeout)
    rows = await app.connector.execute_query_all_async(HISTORY, pull=PULL_TASK, push=PUSH_TASK)
    history = {row["key"]: row for row in rows}
    queued = []
    for job in due_jobs(accounts, history):
        kind = "pull" if job.stream else "push"
        try:
            await app.configure_task(
                name=job.task,
                lock=lock_of(job.account, kind),
                queueing_lock=queueing_lock_of(job.account, job.stream),
                task_kwargs=job.kwargs,
            ).defer_async()
        except AlreadyEnqueued:
            continue  # another tick queued it meanwhile
        queued.append(job)
    if queued:
        log.info("jobs.queued", jobs=[f"{j.account}/{j.stream or 'push'}" for j in queued])
    return queued


async def recover_stalled(app: App, stall_timeout: float) -> None:
    """Jobs running on workers silent for `stall_timeout` go back to the queue, and those
    workers are forgotten."""
    manager = app.job_manager
    for job in await manager.get_stalled_jobs(seconds_since_heartbeat=stall_timeout):
        await manager.retry_job(job)
        log.warning(
            "job.stalled",
            account=job.task_kwargs.get("account"),
            task=job.task_name,
            stream=job.task_kwargs.get("stream"),
            job_id=job.id,
            note="its worker stopped sending heartbeats: queued again",
        )
    pruned = await manager.prune_stalled_workers(stall_timeout)
    if pruned:
        log.warning("worker.stalled", workers=pruned, stall_timeout=stall_timeout)


def register(app: App, top: Settings) -> None:
    """The tick as a periodic task (control queue), and procrastinate's clean-up of jobs
    finished more than `[worker] keep_hours` ago, hourly."""
    from procrastinate import JobContext

    from syncd.worker.tasks import runner_of

    async def tick_task(context: JobContext, timestamp: int) -> None:
        runner = runner_of(context)
        accounts = await asyncio.to_thread(runner.accounts)
        await tick(context.app, accounts, top)

    task = app.task(name=TICK_TASK, queue=CONTROL_QUEUE, pass_context=True)(tick_task)
    app.periodic(cron=f"* * * * * */{top.worker.tick}", periodic_id="tick", queueing_lock="syncd/tick")(task)

    async def cleanup_task(context: JobContext, timestamp: int) -> None:
        await context.app.job_manager.delete_old_jobs(
            nb_hours=top.worker.keep_hours, include_failed=True, include_cancelled=True, include_aborted=True
        )

    cleanup = app.task(name=CLEANUP_TASK, queue=CONTROL_QUEUE, pass_context=True)(cleanup_task)
    app.periodic(cron="17 * * * *", periodic_id="cleanup", queueing_lock="syncd/cleanup")(cleanup)
