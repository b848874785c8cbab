"""The jobs a worker runs, and what one worker process keeps between them.

    pull(account, stream)  run_sync of one stream of one account, under the store's pull lease
    push(account)          run_push of one account, under the store's push lease

A job ends in one of four ways: done; failed (the next tick queues the next run after a
back-off); `Stopped` (SIGTERM: the page in hand was finished and checkpointed, the job goes
back to the queue at once for another worker); `LeaseHeld` (a manual `syncd sync`, or a dead
worker of another host whose lease has not run out yet: retried when the lease expires, so
no worker sits waiting on it).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from procrastinate import App, JobContext, RetryDecision
from procrastinate.jobs import Job
from procrastinate.retry import BaseRetryStrategy

from syncd.accounts import load_accounts
from syncd.config import Settings
from syncd.daemon import reload as reload_mod
from syncd.daemon.metrics import Metrics
from syncd.errors import SyncdError
from syncd.invoiced import InvoicedClient
from syncd.pushback.metrics import OutcomeCounter
from syncd.store import Store
from syncd.store.lease import PULL, PUSH, LeaseHeld, holding
from syncd.worker.queue import JOBS_QUEUE, PULL_TASK, PUSH_TASK

log = structlog.get_logger("syncd.worker")


class Stopped(SyncdError):
    """The worker is stopping: the job checkpointed and goes back to the queue."""


class JobFailed(SyncdError):
    """A run that ended with errors (recorded in the account's run log)."""


class Requeue(BaseRetryStrategy):
    """Stopped: queued again at once. LeaseHeld: queued for when the lease runs out.
    Anything else is a failure; the tick queues the next run after a back-off."""

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if isinstance(exception, Stopped):
            return RetryDecision(retry_in={"seconds": 0})
        if isinstance(exception, LeaseHeld):
            wait = min(max(exception.current.expires_at - time.time(), 1.0), 600.0)
            return RetryDecision(retry_in={"seconds": round(wait) + 1})
        return None


@dataclass
class Account:
    """One account as this process runs it: its config and mappings, store and client."""

    loaded: reload_mod.Loaded
    watcher: reload_mod.Watcher
    store: Store
    store_url: str
    client: InvoicedClient
    outcomes: OutcomeCounter = field(default_factory=OutcomeCounter)


@dataclass
class Track:
    """What this process saw of one (account, job): for /healthz."""

    failures: int = 0
    last_error: str | None = None


class Runner:
    """The state of one worker process, shared by its job threads."""

    def __init__(self, config_path: Path | str | None, name: str, metrics: Metrics | None = None) -> None:
        self.config_path = config_path
        self.name = name
        self.holder = f"{name}@{socket.gethostname()}:{os.getpid()}"
        self.metrics = metrics or Metrics()
        self.stop = threading.Event()
        self.config_warning: str | None = None
        self.tracks: dict[tuple[str, str], Track] = {}
        self._accounts: dict[str, Account] = {}
        self._settings: dict[str, Settings] = {}
        self._stamp: reload_mod.FileStamp | None = None
        self._retired: list[Store | InvoicedClient] = []
        self._halts: set[threading.Event] = set()
        self._jobs_of: Counter[int] = Counter()  # jobs running here, by id() of their store
        self._lock = threading.Lock()

    def failing(self) -> list[tuple[str, str, Track]]:
        """(account, job, track) of every job this process has seen, sorted."""
        with self._lock:
            return [(a, j, Track(t.failures, t.last_error)) for (a, j), t in sorted(self.tracks.items())]

    # -- configuration ---------------------------------------------------------------
    def accounts(self) -> dict[str, Settings]:
        """Every account of the configuration, read again when its file changed; on an
        invalid file the last good accounts stay in use (and /healthz warns)."""
        stamp = reload_mod.stamp(reload_mod.config_file(self.config_path))
        with self._lock:
            if self._settings and stamp == self._stamp:
                return dict(self._settings)
            try:
                settings = load_accounts(self.config_path)
            except SyncdError as exc:
                if not self._settings:
                    raise
                if self.config_warning is None:
                    log.error("config.reload_refused", error=str(exc))
                self.config_warning = f"config reload refused, running on the last good configuration: {exc}"
                return dict(self._settings)
            if self._settings:
                log.info("config.reloaded", accounts=sorted(settings))
            self._settings, self._stamp, self.config_warning = settings, stamp, None
            return dict(settings)

    def account(self, name: str) -> Account | None:
        """The account `name` ready to run (None when the configuration no longer has it)."""
        settings = self.accounts().get(name)
        if settings is None:
            return None
        with self._lock:
            current = self._accounts.get(name)
            if current is not None and current.loaded.settings == settings and not current.watcher.changed():
                return current
            loaded = reload_mod.build(settings, self.config_path)
            if current is not None and current.store_url == settings.store_url():
                store = current.store
            else:
                store = Store.open(settings.store_url())
                if current is not None:
                    self._retired.append(current.store)
            if current is not None and current.loaded.settings.invoiced == settings.invoiced:
                client = current.client
            else:
                client = self._connect(settings)
                if current is not None:
                    self._retired.append(current.client)
            account = Account(loaded, reload_mod.Watcher(loaded.files), store, settings.store_url(), client)
            if current is not None:
                account.outcomes = current.outcomes
            self._accounts[name] = account
            return account

    def _sleep(self, seconds: float) -> None:
        # A client's retry wait ends early on SIGTERM, as in the daemon.
        if self.stop.wait(seconds):
            raise Stopped("stopping: retry abandoned")

    def _connect(self, settings: Settings) -> InvoicedClient:
        from syncd.engine import connect

        # Its pace is the account's, shared with the account's jobs on other workers once
        # run_sync / run_push attach the account's store (syncd.store.pacing).
        return connect(settings, sleep=self._sleep)

    # -- stopping --------------------------------------------------------------------
    def request_stop(self) -> None:
        """SIGTERM: every running job finishes its page, checkpoints and is queued again."""
        with self._lock:
            self.stop.set()
            for halt in self._halts:
                halt.set()

    def _halt(self, store: Store) -> threading.Event:
        halt = threading.Event()
        with self._lock:
            if self.stop.is_set():
                raise Stopped("stopping before the job started")
            self._halts.add(halt)
            self._jobs_of[id(store)] += 1
        return halt

    def _done(self, halt: threading.Event, store: Store) -> None:
        """The job ended. When no other job of its store runs here, the store's pooled
        connections are closed: a worker serves every account, and an idle pool kept per
        account in every worker would take accounts x workers connections, past
        PostgreSQL's max_connections (100 by default) at 20 accounts and 3 workers. A
        job costs one connect instead."""
        with self._lock:
            self._halts.discard(halt)
            self._jobs_of[id(store)] -= 1
            if self._jobs_of[id(store)] <= 0:
                del self._jobs_of[id(store)]
                store.engine.dispose()

    def close(self) -> None:
        """Close stores and clients (after the jobs ended)."""
        with self._lock:
            for account in self._accounts.values():
                self._retired += [account.store, account.client]
            self._accounts.clear()
            for thing in self._retired:
                try:
                    thing.close()
                except Exception as exc:  # closing must not hide the exit status
                    log.warning("worker.close_failed", error=str(exc))
            self._retired.clear()

    # -- jobs ------------------------------------------------------------------------
    def pull(self, account: str, stream: str, job_id: int | None = None) -> dict[str, Any]:
        """One run of one stream of one account."""
        job = f"pull:{stream}"
        with structlog.contextvars.bound_contextvars(
            account=account, job=job, job_id=job_id, worker=self.name
        ):
            acc = self.account(account)
            settings = acc.loaded.settings if acc else None
            if acc is None or settings is None or stream not in settings.streams.enabled():
                log.info("job.skipped", reason="no longer in the configuration")
                return {}
            from syncd.engine import run_sync

            started = time.monotonic()
            halt = self._halt(acc.store)
            try:
                with holding(
                    acc.store.engine,
                    PULL,
                    ttl=settings.daemon.lock_ttl,
                    role=f"syncd worker {self.name}",
                    on_lost=lambda _reason: halt.set(),
                ):
                    report = run_sync(
                        settings,
                        streams=[stream],
                        store=acc.store,
                        client=acc.client,
                        stop=halt,
                        mappings=acc.loaded.mappings,
                        holder=self.holder,
                    )
            except LeaseHeld as exc:
                self._record(account, job, "busy", str(exc), {}, time.monotonic() - started)
                raise
            except SyncdError as exc:
                self._record(account, job, "failed", str(exc), {}, time.monotonic() - started)
                raise
            finally:
                self._done(halt, acc.store)
            result = report.streams.get(stream)
            counts: dict[str, Any] = result.as_dict() if result else {}
            counts.pop("error", None)
            labels = {"account": account, "stream": stream}
            if result is not None:
                m = self.metrics
                m.inc("syncd_records_pulled_total", result.fetched, **labels)
                m.inc("syncd_records_changed_total", result.changed, **labels)
                m.inc("syncd_records_deleted_total", result.deleted, **labels)
                for connector, n in result.delivered.items():
                    m.inc("syncd_records_delivered_total", n, connector=connector, **labels)
                for connector, n in result.rejected.items():
                    m.inc("syncd_records_rejected_total", n, connector=connector, **labels)
            duration = time.monotonic() - started
            if not report.ok:
                error = "; ".join(report.errors())
                if halt.is_set():
                    self._record(account, job, "stopped", error, counts, duration)
                    raise Stopped(f"{account} {job}: {error}")
                self._record(account, job, "failed", error, counts, duration)
                raise JobFailed(f"{account} {job}: {error}")
            self._record(account, job, "ok", None, counts, duration)
            return counts

    def push(self, account: str, job_id: int | None = None) -> dict[str, Any]:
        """One push-back run of one account."""
        with structlog.contextvars.bound_contextvars(
            account=account, job="push", job_id=job_id, worker=self.name
        ):
            acc = self.account(account)
            settings = acc.loaded.settings if acc else None
            if acc is None or settings is None or not settings.pushback.enabled:
                log.info("job.skipped", reason="no longer in the configuration")
                return {}
            from syncd.pushback import run_push

            started = time.monotonic()
            halt = self._halt(acc.store)  # push has no page to stop at: it ends its payments, then the worker
            try:
                with holding(
                    acc.store.engine, PUSH, ttl=settings.daemon.lock_ttl, role=f"syncd worker {self.name}"
                ):
                    report = run_push(settings, store=acc.store, client=acc.client, holder=self.holder)
            except LeaseHeld as exc:
                self._record(account, "push", "busy", str(exc), {}, time.monotonic() - started)
                raise
            except SyncdError as exc:
                self._record(account, "push", "failed", str(exc), {}, time.monotonic() - started)
                raise
            finally:
                self._done(halt, acc.store)
            counts = {str(k): int(v) for k, v in dict(report.counts).items()}
            for outcome, n in acc.outcomes.increments(report).items():
                self.metrics.inc("syncd_pushback_payments_total", n, outcome=outcome, account=account)
            duration = time.monotonic() - started
            if not report.ok:
                error = str(getattr(report, "error", None) or "push-back incomplete")
                self._record(account, "push", "failed", error, counts, duration)
                raise JobFailed(f"{account} push: {error}")
            self._record(account, "push", "ok", None, counts, duration)
            return counts

    def _record(
        self, account: str, job: str, outcome: str, error: str | None, counts: dict[str, Any], duration: float
    ) -> None:
        now = time.time()
        with self._lock:
            track = self.tracks.setdefault((account, job), Track())
            if outcome == "ok":
                track.failures, track.last_error = 0, None
            elif outcome == "failed":
                track.failures += 1
                track.last_error = error
            failures = track.failures
        m, labels = self.metrics, {"job": job, "account": account}
        m.inc("syncd_job_runs_total", 1, outcome=outcome, **labels)
        m.set("syncd_job_last_run_timestamp_seconds", round(now, 3), **labels)
        m.set("syncd_job_last_duration_seconds", round(duration, 3), **labels)
        m.set("syncd_job_consecutive_failures", failures, **labels)
        if outcome == "ok":
            m.set("syncd_job_last_success_timestamp_seconds", round(now, 3), **labels)
        event = {"outcome": outcome, "duration": round(duration, 3), **counts}
        if outcome == "failed":
            log.warning("job.run", error=error, consecutive_failures=failures, **event)
        else:
            log.info("job.run", **({"error": error} if error else {}), **event)


def runner_of(context: JobContext) -> Runner:
    runner = context.additional_context["runner"]
    assert isinstance(runner, Runner)
    return runner


def register(app: App) -> None:
    """The pull and push tasks on `app` (run in the worker's threads: they are blocking)."""
    requeue = Requeue()

    def pull(context: JobContext, account: str, stream: str) -> dict[str, Any]:
        return runner_of(context).pull(account, stream, context.job.id)

    def push(context: JobContext, account: str) -> dict[str, Any]:
        return runner_of(context).push(account, context.job.id)

    app.task(name=PULL_TASK, queue=JOBS_QUEUE, pass_context=True, retry=requeue)(pull)
    app.task(name=PUSH_TASK, queue=JOBS_QUEUE, pass_context=True, retry=requeue)(push)
