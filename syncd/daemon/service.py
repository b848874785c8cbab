"""The daemon: scheduled jobs in worker threads, signals, reload, lease, health.

    main thread                     worker threads (one per running job)
    schedule ticks -> launch job -> run_sync(stream) / run_push, then record the outcome
    SIGHUP / file change -> reload (keep the last good config on error)
    SIGTERM / SIGINT -> stop event: jobs finish the page in hand, checkpoint, exit 0
    heartbeat thread: renew the lease; exit non-zero when the store stays unreachable

The daemon never exits because of the API: a failing job backs off and tries again.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import Any

import schedule
import structlog

from syncd import log as syncd_log
from syncd.config import Settings
from syncd.daemon import jobs as jobs_mod
from syncd.daemon import jsonlines
from syncd.daemon import reload as reload_mod
from syncd.daemon.firstrun import FirstRunView
from syncd.daemon.health import HealthServer
from syncd.daemon.jobs import Job, backoff, planned_jobs
from syncd.daemon.metrics import Metrics
from syncd.errors import StoreError, SyncdError
from syncd.invoiced import InvoicedClient
from syncd.pushback.metrics import OutcomeCounter
from syncd.store import Store, redact_url
from syncd.store.lease import PULL, PUSH, Lease, LeaseHeld, LeaseLost, holding
from syncd.store.pacing import share_pacing

log = structlog.get_logger(__name__)

EXIT_OK = 0
EXIT_CONFIG = 2  # invalid configuration at start (or the health port is unusable)
EXIT_STORE = 3  # checkpoint store unreachable longer than daemon.store_unreachable_exit
EXIT_LOCKED = 4  # another daemon holds this store's lease
EXIT_LEASE_LOST = 5  # our lease was taken over while we ran

SHUTDOWN_GRACE = 8.0  # seconds jobs get to finish their page after SIGTERM (exit within 10 s)
RELOAD_POLL = 1.0  # seconds between checks of the config and mapping files' mtimes
TICK = 0.2  # main loop granularity
STORE_RETRY = 5.0  # seconds between attempts to reach the store at start
_API_STATS = ("requests", "retries", "throttled", "server_errors", "transport_errors")
_RESTART_ONLY: tuple[tuple[str, Callable[[Settings], object]], ...] = (
    ("store.url", lambda s: s.store.url),
    ("daemon.health_host", lambda s: s.daemon.health_host),
    ("daemon.health_port", lambda s: s.daemon.health_port),
    ("daemon.lock_ttl", lambda s: s.daemon.lock_ttl),
    ("log_level", lambda s: s.log_level),
    ("state_dir", lambda s: s.state_dir),
)


class DaemonExit(SyncdError):
    """The daemon cannot (keep) running: `code` is the process exit status."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(message)


class Interrupted(SyncdError):
    """Raised inside a job's retry sleep once the daemon is stopping."""


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Daemon:
    """One daemon process. `run()` is the whole life; tests may drive the parts."""

    def __init__(self, settings: Settings, config_path: Path | str | None = None) -> None:
        self.settings = settings
        self.config_path = config_path
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()
        self.wake = threading.Event()
        self.metrics = Metrics(account=settings.account)
        self.push_outcomes = OutcomeCounter()
        self.jobs: dict[str, Job] = {}
        self.exit_code = EXIT_OK
        self.exit_reason: str | None = None
        self.loaded: reload_mod.Loaded | None = None
        self.store: Store | None = None
        self.lease: Lease | None = None
        self.client: InvoicedClient | None = None
        self.health_server: HealthServer | None = None
        self.started_at = time.time()
        self.store_down_since: float | None = None
        self.reload_warning: str | None = None
        self.open_errors = 0  # refused records and payments not ignored (`syncd errors`)
        self.scheduler = schedule.Scheduler()
        self._watcher: reload_mod.Watcher | None = None
        self._threads: dict[str, threading.Thread] = {}
        self._state = threading.Lock()
        self._pull_mutex = threading.Lock()
        self._retired: list[InvoicedClient] = []
        self._api_base = dict.fromkeys(_API_STATS, 0)
        self._heartbeat: threading.Thread | None = None
        self._plan_new: list[str] = []
        # Renew well before the lease expires: three chances per lock_ttl.
        self.heartbeat_every = max(1.0, min(settings.daemon.lock_ttl / 3, 10.0))
        # Monotonic time until which our lease surely holds (last renewal + ttl). No job starts
        # after it: another daemon may have taken the store over while we could not renew.
        self.lease_valid_until = 0.0
        self.first_run: FirstRunView | None = None  # the live view on a terminal (run_daemon)

    # -- life -----------------------------------------------------------------------
    def run(self) -> int:
        """Start, serve until stopped, clean up; returns the process exit status."""
        self.install_signals()
        try:
            self.start()
        except DaemonExit as exc:
            self.exit_code, self.exit_reason = exc.code, str(exc)  # the last event carries them
            if exc.code != EXIT_OK:
                self._say(exc.code, str(exc))
            self.close()
            return exc.code
        try:
            return self.serve()
        finally:
            self.close()

    def start(self) -> None:
        """Validate the config, reach the store, take the lease, listen; DaemonExit on failure."""
        try:
            self.loaded = reload_mod.build(self.settings, self.config_path)
        except SyncdError as exc:
            raise DaemonExit(EXIT_CONFIG, f"invalid configuration: {exc}") from None
        self._watcher = reload_mod.Watcher(self.loaded.files)
        self._open_store()
        assert self.store is not None
        conf = self.settings.daemon
        try:
            self.health_server = HealthServer(
                conf.health_host, conf.health_port, self.health, self.render_metrics
            )
        except OSError as exc:
            raise DaemonExit(
                EXIT_CONFIG,
                f"cannot serve /healthz on {conf.health_host}:{conf.health_port} "
                f"(daemon.health_host/health_port): {exc.strerror or exc}",
            ) from None
        self.client = self._connect(self.settings)
        self.metrics.set("syncd_up", 1)
        self.metrics.set("syncd_start_time_seconds", round(self.started_at, 3))
        self.metrics.set("syncd_store_up", 1)
        self.metrics.set("syncd_config_last_reload_ok", 1)
        self._plan(self.settings)
        for job in self.jobs.values():
            self._refresh_store_facts(job)

    def _open_store(self) -> None:
        url = self.settings.store_url()
        limit = self.settings.daemon.store_unreachable_exit
        first_failure: float | None = None
        while True:
            try:
                if self.store is None:
                    self.store = Store.open(url)
                self.lease = Lease(self.store.engine, ttl=self.settings.daemon.lock_ttl)
                begun = time.monotonic()
                self.lease.acquire()
                self.lease_valid_until = begun + self.settings.daemon.lock_ttl
                return
            except LeaseHeld as exc:
                raise DaemonExit(EXIT_LOCKED, f"refusing to start: {exc}") from None
            except StoreError as exc:
                now = time.monotonic()
                first_failure = first_failure or now
                waited = now - first_failure
                if self.stop_event.is_set():
                    raise DaemonExit(EXIT_OK, "stopped while waiting for the checkpoint store") from None
                if waited >= limit:
                    raise DaemonExit(
                        EXIT_STORE,
                        f"checkpoint store {redact_url(url)} unreachable for {waited:.0f} s "
                        f"(daemon.store_unreachable_exit = {limit}): {exc}",
                    ) from None
                log.warning("store.unreachable", error=str(exc), waited=round(waited, 1))
                self.stop_event.wait(min(STORE_RETRY, limit - waited))

    def serve(self) -> int:
        """The main loop: schedules, reloads, until a stop is requested."""
        assert self.health_server is not None
        assert self.loaded is not None
        self.health_server.start()
        self._heartbeat = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        self._heartbeat.start()
        log.info(
            "daemon.started",
            health=self.health_server.url + "/healthz",
            metrics=self.health_server.url + "/metrics",
            health_port=self.health_server.port,
            store=redact_url(self.settings.store_url()),
            jobs={name: job.every for name, job in self.jobs.items()},
            files=[str(p) for p in self.loaded.files],
        )
        if self.first_run is not None:
            self.first_run.start()
        for name in list(self.jobs):
            self.launch(name)
        next_poll = time.monotonic() + RELOAD_POLL
        while not self.stop_event.is_set():
            self.scheduler.run_pending()
            if self.reload_event.is_set():
                self.reload_event.clear()
                assert self._watcher is not None
                self._watcher.changed()  # a SIGHUP reload covers file edits made so far
                self.reload("SIGHUP")
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + RELOAD_POLL
                assert self._watcher is not None
                changed = self._watcher.changed()
                if changed:
                    self.reload("file changed", changed)
            self._reap()
            self.wake.wait(TICK)
            self.wake.clear()
        log.info("daemon.stopping", reason=self.exit_reason or "signal", exit_code=self.exit_code)
        self._drain()
        return self.exit_code

    def _drain(self) -> None:
        deadline = time.monotonic() + SHUTDOWN_GRACE
        for thread in list(self._threads.values()):
            thread.join(max(0.0, deadline - time.monotonic()))
        abandoned = sorted(name for name, t in self._threads.items() if t.is_alive())
        if abandoned:
            # Safe: cursors only move past records that are durable, like after a kill.
            log.warning("daemon.jobs_abandoned", jobs=abandoned, grace=SHUTDOWN_GRACE)

    def abandoned(self) -> list[str]:
        """Jobs still running (after `serve` returned they were given up on)."""
        return sorted(name for name, t in self._threads.items() if t.is_alive())

    def close(self) -> None:
        """Stop serving, release the lease, close what no running job still uses."""
        self.stop_event.set()
        if self.health_server is not None:
            self.health_server.close()
            self.health_server = None
        if self._heartbeat is not None:
            self._heartbeat.join(5)
            self._heartbeat = None
        busy = bool(self.abandoned())
        if self.lease is not None and self.exit_code != EXIT_LEASE_LOST:
            self.lease.release()
        self.lease = None
        if not busy:
            for client in [*self._retired, *([self.client] if self.client else [])]:
                client.close()
            self._retired.clear()
            self.client = None
            if self.store is not None:
                self.store.close()
                self.store = None
        jsonlines.stopped(self.exit_code, self.exit_reason)

    def request_stop(self, reason: str = "signal") -> None:
        """Ask the main loop to stop (signal handlers, fatal conditions, tests)."""
        if not self.stop_event.is_set():
            self.exit_reason = self.exit_reason or reason
        self.stop_event.set()
        self.wake.set()

    def _fatal(self, code: int, message: str) -> None:
        if self.exit_code == EXIT_OK:
            self.exit_code, self.exit_reason = code, message
        self._say(code, message)
        self.request_stop(message)

    @staticmethod
    def _say(code: int, message: str) -> None:
        log.error("daemon.exit", exit_code=code, reason=message)
        if sys.stderr.isatty():  # off a terminal every stderr line is JSON (the event above)
            sys.stderr.write(f"syncd daemon: {syncd_log.redact_text(message)}\n")
            sys.stderr.flush()

    def install_signals(self) -> None:
        """SIGTERM/SIGINT stop, SIGHUP reloads (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            return

        def stop(signum: int, _frame: FrameType | None) -> None:
            self.request_stop(signal.Signals(signum).name)

        def hup(_signum: int, _frame: FrameType | None) -> None:
            self.reload_event.set()
            self.wake.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, hup)

    # -- the lease and the store -----------------------------------------------------
    def _beat(self) -> None:
        while not self.stop_event.wait(self.heartbeat_every):
            conf = self.settings.daemon
            assert self.lease is not None
            try:
                begun = time.monotonic()
                self.lease.renew()
                self.lease_valid_until = begun + self.settings.daemon.lock_ttl
            except LeaseLost as exc:
                self._fatal(EXIT_LEASE_LOST, f"stopping: {exc}")
                return
            except StoreError as exc:
                now = time.time()
                self.store_down_since = self.store_down_since or now
                down = now - self.store_down_since
                self.metrics.set("syncd_store_up", 0)
                log.warning("store.unreachable", error=str(exc), down_for=round(down, 1))
                if down >= conf.store_unreachable_exit:
                    self._fatal(
                        EXIT_STORE,
                        f"checkpoint store {redact_url(self.settings.store_url())} unreachable for "
                        f"{down:.0f} s (daemon.store_unreachable_exit = {conf.store_unreachable_exit}): {exc}",
                    )
                    return
                continue
            if self.store_down_since is not None:
                log.info("store.reachable", down_for=round(time.time() - self.store_down_since, 1))
            self.store_down_since = None
            self.metrics.set("syncd_store_up", 1)

    # -- the API client --------------------------------------------------------------
    def _sleep(self, seconds: float) -> None:
        # The client's retry waits end early on SIGTERM so shutdown stays within seconds.
        if self.stop_event.wait(seconds):
            raise Interrupted("stopping: retry abandoned")

    def _connect(self, settings: Settings) -> InvoicedClient:
        from syncd.engine import connect

        client = connect(settings, sleep=self._sleep)
        # One pace with the account's other processes (a manual sync, workers), kept by the store.
        if self.store is not None:
            share_pacing(client, self.store.pace_engine)
        return client

    def _retire(self, client: InvoicedClient) -> None:
        for key in _API_STATS:
            self._api_base[key] += int(getattr(client.stats, key, 0))
        self._retired.append(client)

    def api_stats(self) -> dict[str, int]:
        """Client counters over the daemon's life (across client replacements)."""
        totals = dict(self._api_base)
        if self.client is not None:
            for key in _API_STATS:
                totals[key] += int(getattr(self.client.stats, key, 0))
        return totals

    def _reap(self) -> None:
        for name, thread in list(self._threads.items()):
            if not thread.is_alive():
                thread.join()
                del self._threads[name]
        if self._retired and not self._threads:
            for client in self._retired:
                client.close()
            self._retired.clear()

    # -- jobs ------------------------------------------------------------------------
    def _plan(self, settings: Settings) -> None:
        """Create or update the jobs for `settings` and (re)build the schedule."""
        plan = planned_jobs(settings)
        with self._state:
            for name in list(self.jobs):
                if name not in plan or self.jobs[name].kind != plan[name][0]:
                    del self.jobs[name]
            new = []
            for name, (kind, every, stream) in plan.items():
                job = self.jobs.get(name)
                if job is None:
                    job = self.jobs[name] = Job(name, kind, every, stream)
                    new.append(name)
                job.every = every
        self.scheduler.clear()
        for name, job in self.jobs.items():
            self.scheduler.every(job.every).seconds.do(self.launch, name).tag(name)
        self._plan_new = new

    def launch(self, name: str) -> None:
        """Start a run of job `name` in a worker thread unless it is running or backing off."""
        with self._state:
            job = self.jobs.get(name)
            if job is None or self.stop_event.is_set():
                return
            if job.running:
                log.debug("job.skipped", job=name, reason="previous run still going")
                return
            if time.monotonic() < job.not_before:
                return
            if time.monotonic() >= self.lease_valid_until:
                log.warning("job.skipped", job=name, reason="the daemon lease could not be renewed")
                return
            job.running = True
        thread = threading.Thread(target=self.run_job, args=(job,), name=f"job-{name}", daemon=True)
        self._threads[name] = thread
        thread.start()

    @contextmanager
    def _pulling(self) -> Iterator[None]:
        # Pulls share the connectors' output files and the store's delivery tables: one at a time.
        while not self._pull_mutex.acquire(timeout=TICK):
            if self.stop_event.is_set():
                raise Interrupted("stopping before the run started")
        try:
            yield
        finally:
            self._pull_mutex.release()

    def run_job(self, job: Job) -> str:
        """Run `job` once (in the calling thread); record and log the outcome; returns it."""
        loaded, client = self.loaded, self.client
        assert loaded is not None
        assert client is not None
        assert self.store is not None
        started = time.monotonic()
        counts: dict[str, Any] = {}
        error: str | None = None
        busy = False
        with self._state:
            job.running = True
        try:
            with structlog.contextvars.bound_contextvars(job=job.name):
                if job.kind == "pull":
                    counts, error = self._pull(job, loaded, client)
                else:
                    counts, error = self._push(loaded, client)
        except Interrupted as exc:
            error = str(exc)
        except LeaseHeld as exc:  # a manual sync or push has the store: not a failure, next turn
            error, busy = str(exc), True
        except SyncdError as exc:
            error = str(exc)
        except Exception as exc:
            error = f"{exc.__class__.__name__}: {exc}"
            log.exception("job.crashed", job=job.name)
        outcome = "ok" if error is None else ("stopped" if self.stop_event.is_set() else "failed")
        outcome = "busy" if busy else outcome
        self._record(job, outcome, error, counts, time.monotonic() - started)
        return outcome

    def _pull(
        self, job: Job, loaded: reload_mod.Loaded, client: InvoicedClient
    ) -> tuple[dict[str, Any], str | None]:
        from syncd.engine import run_sync

        assert job.stream is not None
        assert self.store is not None
        view = self.first_run.for_stream(job.stream) if self.first_run else None
        try:
            with (
                self._pulling(),
                # Per job, not for the daemon's life: a manual `syncd sync` fits between two pulls.
                holding(
                    self.store.engine,
                    PULL,
                    ttl=loaded.settings.daemon.lock_ttl,
                    role="syncd daemon",
                    on_lost=lambda reason: self._fatal(EXIT_LEASE_LOST, f"stopping: {reason}"),
                ),
            ):
                report = run_sync(
                    loaded.settings,
                    streams=[job.stream],
                    store=self.store,
                    client=client,
                    stop=self.stop_event,
                    mappings=loaded.mappings,
                    progress=view or False,
                )
        finally:
            if view is not None and self.first_run is not None:
                self.first_run.ran(job.stream)
        stream = report.streams.get(job.stream)
        counts: dict[str, Any] = stream.as_dict() if stream else {}
        counts.pop("error", None)
        if stream is not None:
            m, labels = self.metrics, {"stream": job.stream}
            m.inc("syncd_records_pulled_total", stream.fetched, **labels)
            m.inc("syncd_records_changed_total", stream.changed, **labels)
            m.inc("syncd_records_deleted_total", stream.deleted, **labels)
            for connector, n in stream.delivered.items():
                m.inc("syncd_records_delivered_total", n, connector=connector, **labels)
            for connector, n in stream.rejected.items():
                m.inc("syncd_records_rejected_total", n, connector=connector, **labels)
        redelivered = {name: n for name, n in report.redelivered.items() if n}
        for connector, n in redelivered.items():
            self.metrics.inc("syncd_records_redelivered_total", n, connector=connector)
        if redelivered:
            counts["redelivered"] = redelivered
        self._refresh_store_facts(job)
        return counts, ("; ".join(report.errors()) or None) if not report.ok else None

    def _push(self, loaded: reload_mod.Loaded, client: InvoicedClient) -> tuple[dict[str, Any], str | None]:
        from syncd.pushback import run_push

        assert self.store is not None
        with holding(self.store.engine, PUSH, ttl=loaded.settings.daemon.lock_ttl, role="syncd daemon"):
            report = run_push(loaded.settings, store=self.store, client=client)
        counts = {str(k): int(v) for k, v in dict(report.counts).items()}
        for outcome, n in self.push_outcomes.increments(report).items():
            self.metrics.inc("syncd_pushback_payments_total", n, outcome=outcome)
        if report.ok:
            return counts, None
        error = getattr(report, "error", None)
        return counts, str(error) if error else "push-back incomplete: " + ", ".join(
            f"{k}={v}" for k, v in counts.items() if v
        )

    def _refresh_store_facts(self, job: Job) -> None:
        """Cursor position and dead letters, read once per run (never on a scrape)."""
        assert self.store is not None
        try:
            if job.stream is not None:
                rows = [c for c in self.store.all_cursors() if c.stream == job.stream]
                if rows:
                    job.cursor_checkpointed = max(c.advanced_at for c in rows)
                    self.metrics.set(
                        "syncd_cursor_timestamp_seconds", min(c.value for c in rows), stream=job.stream
                    )
            self.metrics.set("syncd_dead_letters", self.store.count_dead_letters())
            from syncd.reconcile import open_count

            self.open_errors = open_count(self.store)
            self.metrics.set("syncd_errors", self.open_errors)
        except Exception as exc:  # the store being down is reported by the heartbeat
            log.debug("store.facts_unavailable", error=str(exc))

    def _record(
        self, job: Job, outcome: str, error: str | None, counts: dict[str, Any], duration: float
    ) -> None:
        now = time.time()
        with self._state:
            job.runs += 1
            job.last_ended, job.last_duration = now, duration
            job.counts = counts
            wait = 0.0
            if outcome == "ok":
                job.failures, job.last_error, job.last_success, job.not_before = 0, None, now, 0.0
            elif outcome == "failed":
                job.failures += 1
                job.last_error = error
                wait = backoff(job.every, job.failures)
                job.not_before = time.monotonic() + wait
            job.running = False
        m, labels = self.metrics, {"job": job.name}
        m.inc("syncd_job_runs_total", 1, outcome=outcome, **labels)
        m.set("syncd_job_last_run_timestamp_seconds", round(now, 3), **labels)
        m.set("syncd_job_last_duration_seconds", round(duration, 3), **labels)
        m.set("syncd_job_consecutive_failures", job.failures, **labels)
        m.set("syncd_job_backoff_seconds", round(wait, 3), **labels)
        if outcome == "ok":
            m.set("syncd_job_last_success_timestamp_seconds", round(now, 3), **labels)
        event = {"job": job.name, "outcome": outcome, "duration": round(duration, 3), **counts}
        if outcome == "failed":
            log.warning(
                "job.run", error=error, consecutive_failures=job.failures, retry_in=round(wait, 1), **event
            )
        else:
            log.info("job.run", **({"error": error} if error else {}), **event)

    # -- reload ----------------------------------------------------------------------
    def reload(self, why: str, files: Sequence[Path] = ()) -> bool:
        """Load the config and mappings again; on any error keep the current ones."""
        changed = [str(p) for p in files]
        try:
            new = reload_mod.load(self.config_path, self.settings.account)
        except SyncdError as exc:
            message = str(exc)
            self.reload_warning = (
                f"config reload refused, running on the last good configuration: {_short(message)}"
            )
            self.metrics.inc("syncd_config_reloads_total", outcome="refused")
            self.metrics.set("syncd_config_last_reload_ok", 0)
            log.error("config.reload_refused", trigger=why, files=changed, error=message)
            return False
        old = self.loaded
        assert old is not None
        self._apply(old, new)
        self.loaded = new
        assert self._watcher is not None
        self._watcher.watch(new.files)
        self.reload_warning = None
        self.metrics.inc("syncd_config_reloads_total", outcome="ok")
        self.metrics.set("syncd_config_last_reload_ok", 1)
        remapped = sorted(
            name
            for name, mapping in new.mappings.items()
            if name not in old.mappings or old.mappings[name].fingerprint != mapping.fingerprint
        )
        log.info("config.reloaded", trigger=why, files=changed, mappings_changed=remapped)
        return True

    def _apply(self, old: reload_mod.Loaded, new: reload_mod.Loaded) -> None:
        before, after = old.settings, new.settings
        restart = [key for key, get in _RESTART_ONLY if get(before) != get(after)]
        if restart:
            log.warning("config.restart_required", keys=restart, note="kept the running values for these")
        if after.invoiced != before.invoiced:
            if self.client is not None:
                self._retire(self.client)
            self.client = self._connect(after)
        if jobs_mod.planned_jobs(after) != jobs_mod.planned_jobs(before):
            self._plan(after)
            for name in self._plan_new:
                self.launch(name)
        # Health thresholds and push-back settings come from the current config.
        self.settings = after.model_copy(
            update={
                "store": before.store,
                "state_dir": before.state_dir,
                "daemon": after.daemon.model_copy(
                    update={
                        "health_host": before.daemon.health_host,
                        "health_port": before.daemon.health_port,
                        "lock_ttl": before.daemon.lock_ttl,
                    }
                ),
            }
        )

    # -- health and metrics ----------------------------------------------------------
    def health(self) -> tuple[bool, list[str], list[str]]:
        """(healthy, reasons it is degraded, warnings)."""
        conf = self.settings.daemon
        now = time.time()
        reasons = []
        with self._state:
            jobs = list(self.jobs.values())
        for job in jobs:
            if job.failures >= conf.failures_degraded:
                reasons.append(
                    f"job {job.name} failed {job.failures} times in a row: {_short(job.last_error or '?', 200)}"
                )
            if job.kind == "pull":
                age = now - max(job.cursor_checkpointed or 0.0, self.started_at)
                if age > conf.stale_cursor_after:
                    reasons.append(
                        f"cursor of {job.stream} has not advanced for {age:.0f} s "
                        f"(daemon.stale_cursor_after = {conf.stale_cursor_after})"
                    )
        if self.store_down_since is not None:
            reasons.append(f"checkpoint store unreachable for {now - self.store_down_since:.0f} s")
        warnings = [self.reload_warning] if self.reload_warning else []
        if self.open_errors:  # a warning, not degraded: the runs go on; ignored ones are left out
            warnings.append(f"{self.open_errors} refused record(s) or payment(s): see `syncd errors`")
        self.metrics.set("syncd_healthy", 0 if reasons else 1)
        return not reasons, reasons, warnings

    def render_metrics(self) -> str:
        """The /metrics body."""
        now = time.time()
        with self._state:
            jobs = list(self.jobs.values())
        for job in jobs:
            if job.stream is not None and job.cursor_checkpointed is not None:
                self.metrics.set(
                    "syncd_cursor_age_seconds", round(now - job.cursor_checkpointed, 3), stream=job.stream
                )
        for key, value in self.api_stats().items():
            self.metrics.set(f"syncd_api_{key}_total", value)
        self.health()
        return self.metrics.render()


def run_daemon(settings: Settings, config_path: Path | str | None = None, *, live: bool = False) -> int:
    """`syncd daemon`: run until SIGTERM/SIGINT; returns the exit status (see EXIT_*).

    With `live` (a terminal; the caller has set up logging), the first pull of every
    stream is drawn as one progress view. Off a terminal every stderr line is JSON.
    """
    if not live:
        syncd_log.configure(json=True, level=settings.log_level)
        jsonlines.install()
    daemon = Daemon(settings, config_path)
    if live:
        daemon.first_run = FirstRunView(s for kind, _, s in planned_jobs(settings).values() if s and kind == "pull")
    try:
        code = daemon.run()
    except Exception:  # a bug: still one JSON event, and the last one names the exit status
        log.exception("daemon.crashed")
        code = 1
        jsonlines.stopped(code, "crashed")
    finally:
        if daemon.first_run is not None:
            daemon.first_run.close()
    if daemon.abandoned():
        # A job stuck in a network call past the grace period: leave without waiting for it.
        with suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        import os

        os._exit(code)
    return code


def refuse_start(exc: SyncdError) -> int:
    """`syncd daemon` with a configuration it cannot read: JSON events, exit status 2."""
    syncd_log.configure(json=True)
    log.error("daemon.exit", exit_code=EXIT_CONFIG, reason=f"invalid configuration: {exc}")
    jsonlines.stopped(EXIT_CONFIG, "invalid configuration")
    return EXIT_CONFIG
