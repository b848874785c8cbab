"""`syncd status`: cursors, recent runs, dead letters and the push-back outbox."""

from __future__ import annotations

import datetime as dt

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import func, select

from syncd.config import Settings
from syncd.log import redact_text
from syncd.scope import cursor_scope
from syncd.store import Store, loads, redact_url
from syncd.store.models import PushedPayment


def _when(ts: float | None) -> str:
    if not ts:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def outbox_counts(store: Store) -> dict[str, int]:
    """Push-back payments per state."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(PushedPayment.state, func.count()).group_by(PushedPayment.state))  # type: ignore[call-overload]
        return {state: int(n) for state, n in rows}


def render_status(settings: Settings, console: Console) -> None:
    """Print the state of the checkpoint store. Credentials are never shown."""
    store = Store.open(settings.store_url())
    try:
        console.print(
            f"Invoiced: {redact_text(settings.invoiced.base_url)}   store: {redact_url(settings.store_url())}",
            highlight=False,
        )
        cursors = Table(title="cursors")
        for col in ("stream", "partition", "synced up to", "advanced", "scope"):
            cursors.add_column(col)
        for c in sorted(store.all_cursors(), key=lambda c: (c.stream, c.partition)):
            scope = cursor_scope(settings, store, c.stream, c.partition)
            cursors.add_row(c.stream, c.partition or "-", _when(c.value), _when(c.advanced_at), escape(scope))
        console.print(cursors)

        runs = Table(title="recent runs")
        for col in ("id", "kind", "started", "status", "counts", "error"):
            runs.add_column(col)
        for run in store.recent_runs(10):
            counts = loads(run.counts) if run.counts else {}
            summary = ", ".join(
                f"{name}: {s.get('fetched', 0)} fetched/{s.get('changed', 0)} changed"
                for name, s in (counts.get("streams") or {}).items()
            ) or ", ".join(f"{k}={v}" for k, v in counts.items() if not isinstance(v, dict))
            runs.add_row(str(run.id), run.kind, _when(run.started_at), run.status, summary, redact_text(run.error or ""))
        console.print(runs)

        dead = store.dead_letters(20)
        console.print(f"dead letters: {store.count_dead_letters()}")
        if dead:
            table = Table()
            for col in ("connector", "stream", "record", "attempts", "last seen", "reason"):
                table.add_column(col)
            for d in dead:
                table.add_row(
                    d.connector, d.stream, d.record_id, str(d.attempts), _when(d.last_seen), redact_text(d.reason)
                )
            console.print(table)

        outbox = outbox_counts(store)
        console.print(
            "push-back outbox: " + (", ".join(f"{k}={v}" for k, v in sorted(outbox.items())) or "empty")
        )
    finally:
        store.close()
