"""The job queue: a procrastinate app on the database of the top-level `[store] url`.

procrastinate (PostgreSQL only, psycopg 3) gives what the workers must not hand-write: jobs
taken with `FOR UPDATE SKIP LOCKED`, a job `lock` no two jobs hold at once, a
`queueing_lock` that keeps one queued job per key, periodic jobs deferred once per cluster
(a unique row per task and timestamp), and worker heartbeats to find the jobs of a dead
worker.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import psycopg
import structlog
from procrastinate import App, PsycopgConnector
from procrastinate.schema import SchemaManager

from syncd.config import Settings
from syncd.errors import ConfigError, StoreError
from syncd.store import redact_url

log = structlog.get_logger(__name__)

JOBS_QUEUE = "syncd"  # pulls and pushes
CONTROL_QUEUE = "syncd-control"  # the tick and the clean-up: never behind a long backfill
PULL_TASK, PUSH_TASK, TICK_TASK, CLEANUP_TASK = "syncd.pull", "syncd.push", "syncd.tick", "syncd.cleanup"
# Held while the job schema is created or checked: workers starting together wait for the
# first one instead of racing to create the same tables.
SCHEMA_LOCK = 0x73796E63646A6F62  # "syncdjob"
SQLITE_REFUSAL = (
    "syncd worker needs a PostgreSQL store ([store] url = postgresql://...); on SQLite run `syncd daemon`"
)


def conninfo(settings: Settings) -> str:
    """The libpq URL of the job database: the top-level store's (PostgreSQL only)."""
    url = settings.store.url
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise ConfigError(SQLITE_REFUSAL, key="store.url")
    return "postgresql://" + rest


def make_app(settings: Settings, **connector: Any) -> App:
    """The procrastinate app of this configuration's job database (not opened)."""
    return App(connector=PsycopgConnector(conninfo=conninfo(settings), **connector))


def lock_of(account: str, kind: str) -> str:
    """The procrastinate `lock` of a job: `{account}/pull` for every stream of an account.

    Not per (account, stream): the store's `pull` lease is one per account store, so a
    second stream of the account could only wait on it, idle, while a worker holds a job.
    One lock per account lets workers take other accounts' jobs instead, and still gives
    at most one job per (account, stream). Push-back has its own lease: `{account}/push`.
    """
    return f"{account}/{kind}"


def queueing_lock_of(account: str, stream: str | None) -> str:
    """At most one queued (not yet running) job per (account, stream) and per push-back."""
    return f"{account}/pull:{stream}" if stream else f"{account}/push"


def _used_functions() -> set[str]:
    text = (resources.files("procrastinate.sql") / "queries.sql").read_text(encoding="utf-8")
    return set(re.findall(r"\b(procrastinate_\w+_v\d+)\s*\(", text))


def ensure_schema(settings: Settings) -> bool:
    """Create the job tables on first use; check them otherwise. True when created.

    Under a PostgreSQL advisory lock, so that workers starting at once apply it once. A
    schema made by an older procrastinate lacks functions this one calls: refused on one
    line rather than failing on the first job.
    """
    info = conninfo(settings)
    try:
        with psycopg.connect(info, autocommit=True, connect_timeout=10) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
            try:
                row = conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()
                if not (row and row[0]):
                    conn.execute(SchemaManager.get_schema())  # one script, one transaction
                    log.info("jobs.schema_applied", store=redact_url(settings.store.url))
                    return True
                found = {
                    r[0]
                    for r in conn.execute(
                        "SELECT proname FROM pg_proc WHERE pronamespace = current_schema()::regnamespace"
                    )
                }
                missing = sorted(_used_functions() - found)
                if missing:
                    raise StoreError(
                        f"the job tables in {redact_url(settings.store.url)} are from an older procrastinate "
                        f"(missing {missing[0]}): apply its migrations (procrastinate schema --migrate)"
                    )
                return False
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))
    except psycopg.Error as exc:
        raise StoreError(
            f"job database {redact_url(settings.store.url)} unreachable: {str(exc).strip().splitlines()[0]}"
        ) from None
