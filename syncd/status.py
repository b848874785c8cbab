"""`syncd status`: cursors, recent runs, error counts and the push-back outbox."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from sqlalchemy import func, select

from syncd.config import Settings
from syncd.errors import SyncdError
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


def render_error_counts(store: Store, console: Console | _Collect) -> None:
    """Refused records and payments per connector and stream (details: `syncd errors`)."""
    from syncd.reconcile import list_refusals, summarise

    refusals = list_refusals(store, with_held=False)
    counts = summarise(refusals)["connector/stream"]
    console.print(f"errors (refused records and payments): {len(refusals)}", highlight=False)
    if counts:
        table = Table()
        table.add_column("connector/stream")
        table.add_column("errors", justify="right")
        for name, n in counts.items():
            table.add_row(name, str(n))
        console.print(table)
        console.print("details, retry and ignore: syncd errors", highlight=False)


def render_status(settings: Settings | Sequence[Settings], console: Console) -> list[str]:
    """Print the state of the checkpoint store (of each account); the accounts whose store
    could not be read. Credentials are never shown."""
    failed: list[str] = []
    console.print(_view(settings, failed))
    return failed


def accounts_view(accounts: Sequence[Settings], failed: list[str] | None = None) -> Group:
    """The status of several accounts, each under its name (one account: as ever, no heading).
    An account whose store cannot be read shows its error, and its name goes into `failed`."""
    if len(accounts) == 1:
        return status_view(accounts[0])
    parts: list[RenderableType] = []
    for settings in accounts:
        parts.append(Text(f"account {settings.account}", style="bold"))
        try:
            parts.append(status_view(settings))
        except SyncdError as exc:  # one account's store down: still show the others
            parts.append(Text(f"error: {redact_text(str(exc))}", style="red"))
            if failed is not None:
                failed.append(settings.account)
    return Group(*parts)


def _view(settings: Settings | Sequence[Settings], failed: list[str] | None = None) -> Group:
    return status_view(settings) if isinstance(settings, Settings) else accounts_view(settings, failed)


def watch_status(
    settings: Settings | Sequence[Settings],
    console: Console,
    *,
    interval: float = 2.0,
    count: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Redraw the status every `interval` seconds until Ctrl-C (or `count` frames); frames drawn."""
    frames = 0
    try:
        with Live(console=console, auto_refresh=False) as live:
            while True:
                live.update(_view(settings), refresh=True)
                frames += 1
                if count is not None and frames >= count:
                    break
                sleep(interval)
    except KeyboardInterrupt:
        pass  # Ctrl-C is the way to leave a watch: not an error
    return frames


def status_view(settings: Settings) -> Group:
    """The state of the checkpoint store as one renderable."""
    parts: list[RenderableType] = []
    store = Store.open(settings.store_url())
    console = _Collect(parts)
    try:
        console.print(
            Text(f"Invoiced: {redact_text(settings.invoiced.base_url)}   store: {redact_url(settings.store_url())}")
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

        render_error_counts(store, console)

        outbox = outbox_counts(store)
        console.print(
            "push-back outbox: " + (", ".join(f"{k}={v}" for k, v in sorted(outbox.items())) or "empty")
        )
    finally:
        store.close()
    return Group(*parts)


class _Collect:
    """Collects what `status_view` shows, in order (so its body reads like printing)."""

    def __init__(self, parts: list[RenderableType]) -> None:
        self.parts = parts

    def print(self, item: RenderableType, **_: object) -> None:
        self.parts.append(item)
