"""The `syncd` command line: sync, status, push, daemon, mappings, sandbox, demo."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from syncd import log
from syncd.config import Settings, load_settings
from syncd.errors import SyncdError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Keep your books, spreadsheets and CRM in step with Invoiced.",
)
mappings_app = typer.Typer(no_args_is_help=True, help="Check and preview field mappings.")
app.add_typer(mappings_app, name="mappings")
store_app = typer.Typer(no_args_is_help=True, help="The checkpoint store: schema upgrades.")
app.add_typer(store_app, name="store")
console = Console()
err = Console(stderr=True)


class State:
    config: Path | None = None


def _settings() -> Settings:
    settings = load_settings(State.config)
    log.configure(level=settings.log_level)
    return settings


def _fail(exc: BaseException) -> None:
    err.print(f"[bold red]error:[/] {escape(log.redact_text(str(exc)))}", highlight=False, soft_wrap=True)
    raise typer.Exit(getattr(exc, "exit_code", 2) if isinstance(exc, SyncdError) else 1)


@app.callback()
def main_options(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Configuration file (default ./syncd.toml).")
    ] = None,
) -> None:
    """syncd: sync Invoiced into CSV, ledgers and CRMs; push external payments back."""
    State.config = config


@app.command()
def sync(
    stream: Annotated[
        list[str] | None, typer.Option("--stream", "-s", help="Only this stream (repeatable).")
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Ignore cursors: read everything again.")] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="If another sync or a daemon's pull is running, wait for it.")
    ] = False,
) -> None:
    """Run every enabled stream once (exit 4 if another sync or the daemon is pulling)."""
    from syncd.engine import run_sync

    try:
        settings = _settings()
        report = run_sync(
            settings, streams=stream or None, full=full, progress=sys.stderr.isatty(), wait=wait
        )
    except SyncdError as exc:
        _fail(exc)
        return
    _print_report(report.as_dict())
    if not report.ok:
        err.print("[bold red]sync failed:[/] " + escape("; ".join(report.errors())), highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _print_report(report: dict[str, Any]) -> None:
    table = Table(title=f"sync ({report['duration']} s)")
    for col in ("stream", "fetched", "changed", "deleted", "delivered", "rejected", "requests"):
        table.add_column(col)
    for name, r in report["streams"].items():
        table.add_row(
            name,
            str(r["fetched"]),
            str(r["changed"]),
            str(r["deleted"]),
            ", ".join(f"{k}={v}" for k, v in r["delivered"].items()) or "0",
            ", ".join(f"{k}={v}" for k, v in r["rejected"].items()) or "0",
            str(r["requests"]),
        )
    console.print(table)
    if report["redelivered"]:
        console.print(
            "re-delivered after a mapping change: "
            + ", ".join(f"{k}={v}" for k, v in report["redelivered"].items())
        )


@app.command()
def status() -> None:
    """Show cursors, recent runs, dead letters and the push-back outbox."""
    from syncd.status import render_status

    try:
        render_status(_settings(), console)
    except SyncdError as exc:
        _fail(exc)


@mappings_app.command("check")
def mappings_check() -> None:
    """Validate every configured mapping file; exit non-zero on any error."""
    from syncd import registry
    from syncd.mapping import check_mapping

    try:
        specs = registry.configured(_settings(), only_enabled=False)
    except SyncdError as exc:
        _fail(exc)
        return
    problems = 0
    for spec in specs:
        errors = check_mapping(spec.mapping_path, dict(spec.cls.tables) or None)
        for error in errors:
            err.print(str(error), highlight=False, markup=False, soft_wrap=True)
        problems += len(errors)
        if not errors:
            console.print(
                f"{spec.mapping_path}: ok (connector {spec.name})",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
    if problems:
        err.print(f"{problems} error(s)", highlight=False)
        raise typer.Exit(1)


@mappings_app.command("preview")
def mappings_preview(
    connector: str,
    stream: str,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Records to show.")] = 10,
) -> None:
    """Show mapped output for stored records next to their source values."""
    import difflib

    from syncd import registry
    from syncd.engine import iter_records
    from syncd.mapping import render_preview
    from syncd.plugin import STREAMS
    from syncd.store import Store

    try:
        settings = _settings()
        if stream not in STREAMS:
            near = difflib.get_close_matches(stream, STREAMS, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise SyncdError(f"unknown stream {stream!r}; streams: {', '.join(STREAMS)}{hint}")
        specs = {s.name: s for s in registry.configured(settings, only_enabled=False)}
        if connector not in specs:
            near = difflib.get_close_matches(connector, list(specs), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise SyncdError(
                f"connector {connector!r} is not configured; configured: {', '.join(specs) or 'none'}{hint}"
            )
        mapping = registry.load_mappings([specs[connector]])[connector]
        tables = mapping.tables_for(stream)
        if not tables:
            raise SyncdError(f"{specs[connector].mapping_path} maps no table from stream {stream!r}")
        store = Store.open(settings.store_url())
        try:
            records = list(iter_records(store, stream, limit))
            # render while the store is open: references (an invoice's customer) are read from it
            rendered = [render_preview(mapping, table, records, limit, store.get_raw) for table in tables]
        finally:
            store.close()
    except SyncdError as exc:
        _fail(exc)
        return
    if not records:
        err.print(f"no {stream} in the checkpoint store yet: run `syncd sync` first", highlight=False)
        return
    for grid in rendered:
        console.print(grid)


@app.command()
def push(
    wait: Annotated[
        bool, typer.Option("--wait", help="If another push (or the daemon's) is running, wait for it.")
    ] = False,
) -> None:
    """Push external payments to Invoiced once and print a summary (exit 4 if another push runs)."""
    from syncd.pushback import run_push_command

    try:
        code = run_push_command(_settings(), console, wait=wait)
    except SyncdError as exc:
        _fail(exc)
        return
    raise typer.Exit(code)


@store_app.command("upgrade")
def store_upgrade(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the revisions and SQL that would run; change nothing.")
    ] = False,
) -> None:
    """Migrate the store's schema to this syncd's newest revision (every command does at start)."""
    from syncd.store.command import upgrade_report

    try:
        upgrade_report(_settings().store_url(), console, dry_run=dry_run)
    except SyncdError as exc:
        _fail(exc)


@app.command()
def daemon() -> None:
    """Run the long-running service: scheduled pulls, push-back, /healthz and /metrics."""
    from syncd.daemon import run_daemon

    try:
        settings = load_settings(State.config)
    except SyncdError as exc:
        _fail(exc)
        return
    raise typer.Exit(run_daemon(settings, State.config))


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Where the CSV files go.")] = Path("out"),
    invoices: Annotated[int, typer.Option(help="Invoices in the sandbox.")] = 2000,
) -> None:
    """Start the sandbox, sync it into ./out/, and show what happened."""
    from syncd.demo import run_demo

    try:
        run_demo(out, invoices, console)
    except SyncdError as exc:
        _fail(exc)


def _register_sandbox() -> None:
    try:
        from syncd.sandbox.command import sandbox
    except ImportError:  # pragma: no cover - the sandbox ships with syncd
        return
    app.command("sandbox", help="Serve a local Invoiced-compatible API (for demos and tests).")(sandbox)


_register_sandbox()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
