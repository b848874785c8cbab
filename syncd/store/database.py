"""Engine set-up: SQLite (WAL) by default, PostgreSQL by URL; schema migrated (see migrate.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.schema import CreateTable
from sqlmodel import create_engine

from syncd.errors import StoreError
from syncd.store.migrate import migrate
from syncd.store.models import Pace


def _normalise(url: str) -> str:
    # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    # First: a process that opens a fresh file beside another one waits instead of failing.
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a commit survives a killed process; a power cut can only roll the
    # database back to an earlier consistent state. Cursors are committed after the data
    # they cover, in the same database, so a rollback means re-reading, never losing.
    cur.execute("PRAGMA synchronous=NORMAL")
    # A checkpoint copies every page the WAL holds into the database file: at the default
    # 1,000 pages it ran every few delivered pages and, as random-order indexes spread the
    # writes, cost most of each commit (a first sync's CPU per record grew with the store).
    # At 16,384 pages (64 MiB of WAL at most) a page changed by many commits is copied once.
    cur.execute("PRAGMA wal_autocheckpoint=16384")
    cur.close()


# The page cache of a connection that delivers pages (`Store.page`): each page reads index
# pages of every table, which SQLite's default 2 MiB re-read from the file (4.7 reads a record
# at 20,000 invoices; 2.0 with 8 MiB, 1.3 with 16 MiB, which took the peak RSS at 200,000
# invoices past 150 MiB). Only those connections: the others (renders, heartbeats) would hold
# as much for little. The cache lasts only while no other connection writes, hence the pace
# row in a file of its own (`pace_engine`).
PAGE_CACHE_KIB = 8192


def _migrate_waiting(engine: Engine, patience: float = 30.0, *, setup: Callable[[Engine], object] | None = None) -> None:
    """`migrate` (or `setup`), waiting out a SQLite "database is locked" that no busy timeout covers.

    The last connection to close a WAL database takes an exclusive lock while it checkpoints
    and removes the WAL; a process opening the file meanwhile gets SQLITE_BUSY at once
    (https://sqlite.org/wal.html). Two `syncd` commands started together meet exactly that.
    """
    deadline = time.monotonic() + patience
    pause = 0.05
    while True:
        try:
            (setup or migrate)(engine)
            return
        except OperationalError as exc:
            locked = engine.dialect.name == "sqlite" and "database is locked" in str(exc.orig)
            if not locked or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


def make_engine(url: str, *, upgrade: bool = True) -> Engine:
    """Create the SQLAlchemy engine for a store URL, its schema migrated to the newest revision
    (left as it is with `upgrade=False`: `syncd store upgrade --dry-run`)."""
    url = _normalise(url)
    try:
        if url.startswith("sqlite"):
            # LIFO: the delivery thread gets back the connection it just used. SQLite keeps a page
            # cache per connection and drops it when another connection wrote since; handed
            # round the pool (FIFO), every transaction started with a cold cache.
            engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 30}, pool_use_lifo=True
            )
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)
        try:
            if upgrade:
                _migrate_waiting(engine)
        except BaseException:
            engine.dispose()
            raise
    except SQLAlchemyError as exc:
        cause = " ".join(str(exc.orig if hasattr(exc, "orig") else exc).split())  # one line
        raise StoreError(
            f"store.url: checkpoint store {redact_url(url)} unusable: {exc.__class__.__name__}: {cause}"
        ) from None
    return engine


def pace_engine(store: Engine) -> Engine | None:
    """An engine on the file beside a SQLite store that holds its `pace` row, or None (the
    store keeps the row: PostgreSQL, or SQLite in memory).

    The shared pacer writes that row every fraction of a second during a sync, and every
    write by another connection empties the page cache of the delivery's connection (SQLite
    keeps one per connection and trusts it only while nobody else wrote). In a file of its
    own, `<store>-pace`, the row costs the store nothing. The file holds only the pace, so
    losing it loses nothing: it is made again, and the pace learnt again.
    """
    if store.dialect.name != "sqlite":
        return None
    database = store.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    url = store.url.set(database=database + "-pace")
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    event.listen(engine, "connect", _sqlite_pragmas)
    try:
        _migrate_waiting(engine, setup=_create_pace_table)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _create_pace_table(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(CreateTable(Pace.__table__, if_not_exists=True))  # type: ignore[attr-defined]


def redact_url(url: str) -> str:
    """A store URL with any password replaced, fit for logs and errors."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url
