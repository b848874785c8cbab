"""`syncd errors`: list, show, retry and ignore reconciliation errors (see syncd.reconcile)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from syncd.errors import SyncdError

if TYPE_CHECKING:  # the store's machinery is imported when a subcommand runs, not for `syncd --help`
    from syncd.reconcile import Refusal
    from syncd.store import Store

errors_app = typer.Typer(
    help="Records and payments that were refused: list, show, retry, ignore.",
    invoke_without_command=True,
)
console = Console()
err = Console(stderr=True)

# Set by syncd.cli: loads the configuration (honouring --config) of an account (None: the
# only one) and sets up logging.
load_settings: Callable[[str | None], Any] | None = None
ROWS_SHOWN = 200  # rows printed after the counts; --limit changes it, --json prints all

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
AccountOpt = Annotated[
    str | None, typer.Option("--account", "-a", help="The account ([accounts.NAME]) whose errors these are.")
]


class _Chosen:
    account: str | None = None  # `syncd errors --account NAME <subcommand>` (before the subcommand)


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _fail(exc: BaseException) -> None:
    from syncd import log

    err.print(f"[bold red]error:[/] {escape(log.redact_text(str(exc)))}", highlight=False, soft_wrap=True)
    raise typer.Exit(getattr(exc, "exit_code", 2))


@contextmanager
def _store(account: str | None = None) -> Iterator[tuple[Any, Store]]:
    from syncd.store import Store

    assert load_settings is not None
    settings = load_settings(account or _Chosen.account)
    store = Store.open(settings.store_url())
    try:
        yield settings, store
    finally:
        store.close()


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


@errors_app.callback()
def list_errors(
    ctx: typer.Context,
    connector: Annotated[
        str | None, typer.Option("--connector", "-c", help="Only this connector (or payment source).")
    ] = None,
    stream: Annotated[
        str | None, typer.Option("--stream", "-s", help="customers, invoices, transactions or payments.")
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="Reason contains this text.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Seen since a date (2024-03-01) or an age (12h, 7d).")
    ] = None,
    ignored: Annotated[
        bool, typer.Option("--ignored", help="Include ignored errors and dismissed payments.")
    ] = False,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=0, help="Rows shown after the counts.")
    ] = ROWS_SHOWN,
    as_json: JsonOpt = False,
    account: AccountOpt = None,
) -> None:
    """List refused records and payments: counts by connector, stream and reason, then rows."""
    _Chosen.account = account
    if ctx.invoked_subcommand is not None:
        return
    from syncd import reconcile

    try:
        with _store() as (_, store):
            refusals = reconcile.list_refusals(
                store,
                connector=connector,
                stream=stream,
                reason=reason,
                since=reconcile.parse_since(since) if since else None,
                include_ignored=ignored,
            )
    except SyncdError as exc:
        _fail(exc)
        return
    counts = reconcile.summarise(refusals)
    if as_json:
        _print_json({"total": len(refusals), "counts": counts, "errors": [r.as_dict() for r in refusals]})
        return
    if not refusals:
        console.print(
            "no errors" + (" matching the filters" if connector or stream or reason or since else "")
        )
        return
    console.print(f"{len(refusals)} error(s)", highlight=False)
    for title, key in (("by connector/stream", "connector/stream"), ("by reason", "reason")):
        table = Table(title=title, title_justify="left")
        table.add_column(key)
        table.add_column("count", justify="right")
        for name, n in counts[key].items():
            table.add_row(escape(name), str(n))
        console.print(table)
    rows = Table(title="errors (newest first)", title_justify="left")
    for col in ("id", "connector", "stream", "record", "holds", "attempts", "last seen", "reason"):
        rows.add_column(col, overflow="fold")
    for r in refusals[:limit]:
        rows.add_row(
            r.id,
            r.connector,
            r.stream,
            escape(r.record),
            ("ignored, " if r.ignored else "") + r.state,
            str(r.attempts),
            _when(r.last_seen),
            escape(r.reason),
        )
    console.print(rows)
    if len(refusals) > limit:
        console.print(f"… {len(refusals) - limit} more: --limit, filters or --json", highlight=False)
    console.print(
        "holds: what the connector has instead: 'older version' (the record's last good state), "
        "'earlier mapping' (a row made by the previous mapping: its columns may differ), 'nothing'.",
        highlight=False,
    )


@errors_app.command("show")
def show(
    ids: Annotated[list[str], typer.Argument(help="Error ids (d…, p…) or unique prefixes.")],
    as_json: JsonOpt = False,
    account: AccountOpt = None,
) -> None:
    """Everything known about some errors, with the stored record they concern."""
    from syncd import reconcile

    try:
        with _store(account) as (_, store):
            found = reconcile.find(store, ids)
            records = {r.id: _source(store, r) for r in found}
    except SyncdError as exc:
        _fail(exc)
        return
    if as_json:
        _print_json([{**r.as_dict(), "source": records[r.id]} for r in found])
        return
    for r in found:
        table = Table(show_header=False, title=r.id, title_justify="left")
        table.add_column("key")
        table.add_column("value", overflow="fold")
        for key, value in (
            ("connector", r.connector),
            ("stream", r.stream),
            ("record", r.record),
            ("state" if r.is_payment else "holds", r.state),
            ("ignored", "yes" if r.ignored else "no"),
            ("attempts", str(r.attempts)),
            ("first seen", _when(r.first_seen)),
            ("last seen", _when(r.last_seen)),
            ("reason", r.reason),
            *((k, str(v)) for k, v in r.extra.items() if v),
            (
                "source",
                json.dumps(records[r.id], default=str, sort_keys=True)[:2000] if records[r.id] else "-",
            ),
        ):
            table.add_row(key, escape(value))
        console.print(table)


def _source(store: Store, r: Refusal) -> Any:
    if r.is_payment:
        from syncd.pushback.outbox import Outbox, payment_payload

        entry = Outbox(store.engine).get(r.record)
        return payment_payload(entry.payment) if entry and entry.payment else None
    return store.get_raw(r.stream, r.record)


def _select(store: Store, ids: Sequence[str], every: bool, connector: str | None) -> list[Refusal]:
    from syncd import reconcile

    if ids and (every or connector):
        raise SyncdError("give error ids, or --all, or --connector, not several")
    if ids:
        return reconcile.find(store, ids)
    if every or connector:
        return reconcile.list_refusals(store, connector=connector)
    raise SyncdError("say which errors: ids (see `syncd errors`), --all or --connector NAME")


@errors_app.command("retry")
def retry(
    ids: Annotated[list[str] | None, typer.Argument(help="Error ids or unique prefixes.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every error that is not ignored.")] = False,
    connector: Annotated[
        str | None, typer.Option("--connector", "-c", help="Every error of this connector.")
    ] = None,
    as_json: JsonOpt = False,
    account: AccountOpt = None,
) -> None:
    """Deliver refused records again from the store (no request to Invoiced); re-queue payments.

    Records go through each connector's current mapping; a rejected payment goes back to the
    outbox and a held one is confirmed: the next `syncd push` sends them.
    """
    from syncd import reconcile
    from syncd.store.lease import PULL, holding

    try:
        with _store(account) as (settings, store):
            chosen = _select(store, ids or [], every, connector)
            # Re-delivery writes connector files: only under the pull lease, like a sync.
            with holding(store.engine, PULL, ttl=settings.daemon.lock_ttl, role="syncd errors retry", hint="try again later"):
                report = reconcile.retry(settings, store, chosen)
    except SyncdError as exc:
        _fail(exc)
        return
    if as_json:
        _print_json({"retried": len(chosen), **report.as_dict()})
    else:
        if report.redelivered:
            console.print(
                "mapping changed: re-delivered "
                + ", ".join(f"{k}={v}" for k, v in report.redelivered.items()),
                highlight=False,
            )
        delivered = sum(report.delivered.values())
        console.print(
            f"retried {len(chosen)}: {len(chosen) - len(report.refused) - len(report.unchanged)} cleared"
            + (f" ({', '.join(f'{k}={v}' for k, v in report.delivered.items())})" if delivered else ""),
            highlight=False,
        )
        for ext, state in report.payments.items():
            console.print(f"payment {escape(ext)}: {state} (sent by the next `syncd push`)", highlight=False)
        for r in report.refused:
            console.print(
                f"still refused: {r.id} {r.connector} {r.stream} {escape(r.record)}: {escape(r.reason)}",
                highlight=False,
            )
        for i in report.unchanged:
            console.print(
                f"{i}: nothing to retry (not rejected or held, or unreadable at its source)", highlight=False
            )
    if report.refused:
        raise typer.Exit(1)


@errors_app.command("ignore")
def ignore(
    ids: Annotated[list[str], typer.Argument(help="Error ids or unique prefixes.")],
    as_json: JsonOpt = False,
    account: AccountOpt = None,
) -> None:
    """Leave errors out of the counts and /healthz until their record changes (payments: dismissed)."""
    from syncd import reconcile

    try:
        with _store(account) as (_, store):
            done = reconcile.ignore(store, reconcile.find(store, ids))
    except SyncdError as exc:
        _fail(exc)
        return
    if as_json:
        _print_json({"ignored": [r.id for r in done]})
        return
    for r in done:
        console.print(f"ignored {r.id} ({r.connector} {r.stream} {escape(r.record)})", highlight=False)
