"""`syncd worker`: one worker process of the cluster.

    event loop (asyncio)                     job threads (--concurrency)
    procrastinate worker on `syncd`       -> pull / push jobs (blocking: run_sync, run_push)
    procrastinate worker on `syncd-control` -> the tick, the clean-up: never behind a backfill
    heartbeats, periodic deferrer, LISTEN for new jobs (procrastinate)
    SIGTERM / SIGINT -> jobs finish the page in hand, checkpoint, go back to the queue; exit 0

/healthz and /metrics are served per worker (`--health-host`, `--health-port`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import structlog

from syncd import log as syncd_log
from syncd.config import Settings, load_settings
from syncd.daemon import jsonlines
from syncd.daemon.health import HealthServer
from syncd.errors import ConfigError, StoreError, SyncdError
from syncd.store import redact_url
from syncd.worker import scheduling, tasks
from syncd.worker.queue import CONTROL_QUEUE, JOBS_QUEUE, conninfo, ensure_schema, make_app

log = structlog.get_logger("syncd.worker")

EXIT_OK, EXIT_CONFIG, EXIT_STORE = 0, 2, 3
SHUTDOWN_GRACE = 8.0  # seconds jobs get to finish their page after SIGTERM (as the daemon)
DB_CHECK_EVERY = 5.0  # /healthz asks the job database at most this often


class Health:
    """/healthz and /metrics of one worker."""

    def __init__(self, runner: tasks.Runner, top: Settings) -> None:
        self.runner = runner
        self.top = top
        self.started = time.time()
        self._checked = 0.0
        self._db_error: str | None = None
        self._lock = threading.Lock()

    def _db(self) -> str | None:
        with self._lock:
            if time.monotonic() - self._checked >= DB_CHECK_EVERY:
                self._checked = time.monotonic()
                try:
                    with psycopg.connect(conninfo(self.top), connect_timeout=3) as conn:
                        conn.execute("SELECT 1")
                    self._db_error = None
                except psycopg.Error as exc:
                    self._db_error = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreachable"
            return self._db_error

    def health(self) -> tuple[bool, list[str], list[str]]:
        reasons = []
        error = self._db()
        if error:
            reasons.append(f"job database {redact_url(self.top.store.url)} unreachable: {error}")
        limit = self.top.daemon.failures_degraded
        for account, job, track in self.runner.failing():
            if track.failures >= limit:
                reasons.append(f"{account} {job} failed {track.failures} times in a row: {track.last_error}")
        warnings = [self.runner.config_warning] if self.runner.config_warning else []
        self.runner.metrics.set("syncd_healthy", 0 if reasons else 1)
        self.runner.metrics.set("syncd_store_up", 0 if error else 1)
        return not reasons, reasons, warnings

    def metrics(self) -> str:
        self.health()
        return self.runner.metrics.render()


def run_worker(
    config_path: Path | str | None,
    *,
    concurrency: int | None = None,
    health_host: str | None = None,
    health_port: int | None = None,
    name: str | None = None,
) -> int:
    """`syncd worker`: run jobs until SIGTERM/SIGINT; returns the exit status."""
    try:
        top = load_settings(config_path)
        conninfo(top)  # PostgreSQL only
    except SyncdError as exc:
        sys.stderr.write(f"syncd worker: {syncd_log.redact_text(str(exc))}\n")
        return EXIT_CONFIG
    syncd_log.configure(json=True, level=top.log_level)
    jsonlines.install()
    name = name or socket.gethostname()
    runner = tasks.Runner(config_path, name)
    try:
        runner.accounts()
        ensure_schema(top)
    except ConfigError as exc:
        return _exit(EXIT_CONFIG, f"invalid configuration: {exc}")
    except StoreError as exc:
        return _exit(EXIT_STORE, str(exc))
    host = health_host or top.daemon.health_host
    port = top.daemon.health_port if health_port is None else health_port
    health = Health(runner, top)
    try:
        server = HealthServer(host, port, health.health, health.metrics)
    except OSError as exc:
        return _exit(
            EXIT_CONFIG,
            f"cannot serve /healthz on {host}:{port} (--health-host/--health-port): {exc.strerror or exc}",
        )
    server.start()
    m = runner.metrics
    m.set("syncd_up", 1)
    m.set("syncd_start_time_seconds", round(health.started, 3))
    slots = concurrency or top.worker.concurrency
    log.info(
        "worker.started",
        name=name,
        holder=runner.holder,
        concurrency=slots,
        health=server.url + "/healthz",
        metrics=server.url + "/metrics",
        health_port=server.port,
        store=redact_url(top.store.url),
    )
    code, reason = EXIT_OK, "signal"
    try:
        code, reason = asyncio.run(_serve(top, runner, slots))
    except Exception as exc:  # a bug: one JSON event, and the last names the exit status
        log.exception("worker.crashed")
        code, reason = 1, f"crashed: {exc.__class__.__name__}"
    finally:
        server.close()
    runner.close()
    jsonlines.stopped(code, reason)
    return code


def _exit(code: int, message: str) -> int:
    log.error("worker.exit", exit_code=code, reason=message)
    jsonlines.stopped(code, message)
    return code


async def _serve(top: Settings, runner: tasks.Runner, concurrency: int) -> tuple[int, str]:
    loop = asyncio.get_running_loop()
    # Jobs are blocking: procrastinate runs each in the loop's default executor.
    loop.set_default_executor(ThreadPoolExecutor(max_workers=concurrency + 2, thread_name_prefix="job"))
    app = make_app(top, min_size=2, max_size=concurrency + 6)
    tasks.register(app)
    scheduling.register(app, top)
    stall = float(top.worker.stall_timeout)
    common: dict[str, Any] = {
        "name": runner.name,
        "install_signal_handlers": False,
        "additional_context": {"runner": runner},
        # Three heartbeats per stall_timeout: a live worker is never taken for a dead one.
        "update_heartbeat_interval": max(0.5, stall / 4),
        "stalled_worker_timeout": stall,
        "fetch_job_polling_interval": float(min(top.worker.tick, 5)),
        "shutdown_graceful_timeout": SHUTDOWN_GRACE,
    }
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    async with app.open_async():
        workers = [
            asyncio.create_task(app.run_worker_async(queues=[JOBS_QUEUE], concurrency=concurrency, **common)),
            asyncio.create_task(app.run_worker_async(queues=[CONTROL_QUEUE], concurrency=1, **common)),
        ]
        stop_wait = asyncio.create_task(stopping.wait())
        done, _ = await asyncio.wait([*workers, stop_wait], return_when=asyncio.FIRST_COMPLETED)
        code, reason = EXIT_OK, "signal"
        if stop_wait not in done:
            failed = next(t for t in workers if t in done)
            error = failed.exception() if not failed.cancelled() else None
            code, reason = EXIT_STORE, f"the job queue stopped: {error or 'cancelled'}"
            log.error("worker.exit", exit_code=code, reason=reason)
        log.info("worker.stopping", reason=reason)
        # Jobs see the stop first (they end at a page boundary and re-queue themselves),
        # then procrastinate stops fetching and waits for them (SHUTDOWN_GRACE).
        runner.request_stop()
        stop_wait.cancel()
        for task in workers:
            task.cancel()
        ended = asyncio.gather(*workers, return_exceptions=True)
        try:
            await asyncio.wait_for(ended, SHUTDOWN_GRACE + 2)
        except TimeoutError:
            # A job stuck in a network call: leave without it. Its worker's heartbeat stops,
            # so another worker takes the job after stall_timeout, from the checkpoint.
            log.warning("worker.jobs_abandoned", grace=SHUTDOWN_GRACE)
            jsonlines.stopped(code, reason)
            sys.stderr.flush()
            os._exit(code)
    return code, reason
