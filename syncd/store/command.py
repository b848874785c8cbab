"""`syncd store upgrade [--dry-run]`: show or apply the store's pending schema migrations."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from syncd.store.database import _normalise, make_engine, redact_url
from syncd.store.migrate import BASELINE, head, migrate, pending, upgrade_sql


def upgrade_report(url: str, console: Console, *, dry_run: bool) -> None:
    """Print where the store stands and what would run (or ran)."""
    engine = make_engine(url, upgrade=False)
    try:
        current, todo = pending(engine)
        where = redact_url(_normalise(url))
        if current.legacy:
            state = f"created before migrations (schema version 1): {'would be ' if dry_run else ''}stamped {BASELINE}"
        else:
            state = f"at revision {current.revision}" if current.revision else "empty (new store)"
        console.print(f"checkpoint store {escape(where)}: {escape(state)}", highlight=False, soft_wrap=True)
        if not todo:
            console.print(f"nothing to do: at the newest revision {head()}", highlight=False)
            return
        if dry_run:
            console.print("would apply, in order:", highlight=False)
            for rev, doc in todo:
                console.print(f"  {rev}  {escape(doc)}", highlight=False, soft_wrap=True)
            console.print("SQL it would run:", highlight=False)
            console.print(escape(upgrade_sql(engine).strip()), highlight=False, soft_wrap=True)
            return
        applied = migrate(engine)
        for rev, doc in todo:
            if rev in applied:
                console.print(f"applied {rev}  {escape(doc)}", highlight=False, soft_wrap=True)
        if not applied:
            console.print("another process upgraded the store meanwhile: nothing left to do", highlight=False)
    finally:
        engine.dispose()


def compact_report(url: str, console: Console, *, ttl: float) -> None:
    """`syncd store compact`: give the space a SQLite store no longer uses back to the disk.

    Rows deleted and tables rewritten (migrations 0005 and 0006 rewrote the biggest) leave
    free pages that SQLite reuses but never returns; VACUUM rewrites the file without them.
    It holds the store's write lock while it runs, so it takes the daemon, pull and push
    leases first and refuses (LeaseHeld, exit 4) while a daemon, a sync or a push holds one.
    """
    from syncd.errors import SyncdError
    from syncd.store.lease import DEFAULT_NAME, PULL, PUSH, holding

    engine = make_engine(url, upgrade=True)
    try:
        where = redact_url(_normalise(url))
        if engine.dialect.name != "sqlite":
            console.print(
                f"checkpoint store {escape(where)}: PostgreSQL reclaims space itself (autovacuum); nothing to do",
                highlight=False,
                soft_wrap=True,
            )
            return
        database = engine.url.database
        if not database or database == ":memory:":
            raise SyncdError(f"checkpoint store {where}: not a file; nothing to compact")
        with ExitStack() as leases:
            # The daemon's lease too: a daemon started meanwhile would wait on the lock.
            for name, hint in (
                (DEFAULT_NAME, "stop it, then compact"),
                (PULL, "try again later"),
                (PUSH, "try again later"),
            ):
                leases.enter_context(holding(engine, name, ttl=ttl, role="syncd store compact", hint=hint))
            before = _size(database)
            with engine.connect() as conn:
                driver = conn.connection.driver_connection
                assert driver is not None
                driver.execute("VACUUM")
                # The rewrite went through the WAL: copy it into the file and empty it.
                driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            after = _size(database)
        saved = before - after
        console.print(
            f"checkpoint store {escape(where)}: {_mib(before)} -> {_mib(after)} MiB"
            f" ({_mib(max(saved, 0))} MiB given back)",
            highlight=False,
            soft_wrap=True,
        )
    finally:
        engine.dispose()


def _size(database: str) -> int:
    """Bytes of a SQLite database with its WAL."""
    return sum(p.stat().st_size for p in (Path(database), Path(database + "-wal")) if p.exists())


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f}"
