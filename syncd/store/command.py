"""`syncd store upgrade [--dry-run]`: show or apply the store's pending schema migrations."""

from __future__ import annotations

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
