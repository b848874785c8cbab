"""The `syncd` command line: sync, status, push, daemon, mappings, sandbox, demo."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from syncd.errors import SyncdError
from syncd.terminal import Output, configure_logging

# A command imports its own machinery when it runs (the configuration's pydantic-settings,
# the store's SQLAlchemy, the worker's procrastinate...): `--help`, a mistyped option or
# `syncd status` do not pay for what `syncd sync` or `syncd worker` need.
# tests/cli/test_lazy_imports.py checks it.
if TYPE_CHECKING:
    from syncd.config import Settings

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Keep your books, spreadsheets and CRM in step with Invoiced.",
)
mappings_app = typer.Typer(no_args_is_help=True, help="Check and preview field mappings.")
app.add_typer(mappings_app, name="mappings")
store_app = typer.Typer(no_args_is_help=True, help="The checkpoint store: schema upgrades, compaction.")
app.add_typer(store_app, name="store")
console = Console()
err = Console(stderr=True)


AccountOpt = Annotated[
    str | None,
    typer.Option("--account", "-a", help="Only this account ([accounts.NAME]); default: every account."),
]


class State:
    config: Path | None = None
    output = Output()


def _settings(account: str | None = None) -> Settings:
    """The settings of `--account NAME`, or of the only account (refused when there are several)."""
    from syncd import accounts

    settings = accounts.select_account(State.config, account)
    accounts.state_folder(settings)
    configure_logging(settings, State.output)
    return settings


def _each_account(account: str | None) -> list[Settings]:
    """`--account NAME`, else every account of the configuration (for most, the only one)."""
    from syncd import accounts
    from syncd.config import load_settings

    top = load_settings(State.config)
    every = accounts.accounts_of(top)
    return [accounts.pick(top, every, account)] if account is not None else list(every.values())


@contextmanager
def _as_account(settings: Settings, several: bool) -> Iterator[None]:
    """Set up logging for one account; with several, head its output and name it in every log line."""
    import structlog

    from syncd import accounts

    accounts.state_folder(settings)
    configure_logging(settings, State.output)
    if not several:
        yield
        return
    console.print(f"[bold]account {escape(settings.account)}[/]", highlight=False)
    with structlog.contextvars.bound_contextvars(account=settings.account):
        yield


def _run_accounts(chosen: list[Settings], run: Callable[[Settings], int]) -> None:
    """Run a command for every chosen account in turn: one failing does not stop the others;
    the exit status is the highest of theirs. One account: exactly as without accounts."""
    from syncd import log

    several = len(chosen) > 1
    codes: dict[str, int] = {}
    for settings in chosen:
        try:
            with _as_account(settings, several):
                codes[settings.account] = run(settings)
        except SyncdError as exc:
            if not several:
                _fail(exc)
            err.print(
                f"[bold red]error:[/] account {escape(settings.account)}: {escape(log.redact_text(str(exc)))}",
                highlight=False,
                soft_wrap=True,
            )
            codes[settings.account] = getattr(exc, "exit_code", 2)
    failed = [name for name, code in codes.items() if code]
    if several and failed:
        err.print(f"[bold red]{len(failed)} of {len(codes)} accounts failed:[/] {', '.join(failed)}", highlight=False)
    raise typer.Exit(max(codes.values(), default=0))


def _of(settings: Settings) -> str:
    """` (account NAME)` in a message about one account of several; nothing without accounts."""
    from syncd import accounts

    return "" if settings.account == accounts.DEFAULT else f" (account {escape(settings.account)})"


def _fail(exc: BaseException) -> None:
    from syncd import log

    err.print(f"[bold red]error:[/] {escape(log.redact_text(str(exc)))}", highlight=False, soft_wrap=True)
    raise typer.Exit(getattr(exc, "exit_code", 2) if isinstance(exc, SyncdError) else 1)


def _print_version(wanted: bool) -> None:
    if wanted:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("syncd")
        except PackageNotFoundError:  # run from a checkout that was never installed
            number = "unknown (not installed)"
        console.print(f"syncd {number}", highlight=False)
        raise typer.Exit(0)


@app.callback()
def main_options(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Configuration file (default ./syncd.toml).")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show every log line on the terminal (no log file).")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the summary and errors.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_print_version),
    ] = False,
) -> None:
    """syncd: sync Invoiced into CSV, ledgers and CRMs; push external payments back."""
    State.config = config
    State.output = Output(verbose=verbose, quiet=quiet)


@app.command()
def sync(
    stream: Annotated[
        list[str] | None, typer.Option("--stream", "-s", help="Only this stream (repeatable).")
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Ignore cursors: read everything again.")] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="If another sync or a daemon's pull is running, wait for it.")
    ] = False,
    account: AccountOpt = None,
) -> None:
    """Run every enabled stream once, of every account in turn (exit 4 if another sync or the
    daemon is pulling)."""
    from syncd import log, preflight
    from syncd.engine import run_sync
    from syncd.summary import print_summary

    def one(settings: Settings) -> int:
        preflight.check(settings)
        report = run_sync(settings, streams=stream or None, full=full, progress=State.output.live, wait=wait)
        print_summary(report, console, logfile=State.output.logfile)
        _print_behind(report.as_dict())
        if not report.ok:
            err.print(f"[bold red]sync failed{_of(settings)}:[/] " + escape(log.redact_text("; ".join(report.errors()))), highlight=False, soft_wrap=True)
            return 1
        if report.refused_all():
            err.print(f"[bold red]every record refused{_of(settings)}:[/] " + escape("; ".join(report.refused_all())), highlight=False, soft_wrap=True)
            return 1
        return 0

    try:
        chosen = _each_account(account)
    except SyncdError as exc:
        _fail(exc)
        return
    _run_accounts(chosen, one)


def _print_behind(report: dict[str, Any]) -> None:
    """Rows an earlier mapping left behind because the new one refused their records."""
    for stream, r in report.get("redelivery", {}).items():
        for name, n in r.get("behind", {}).items():
            err.print(
                f"[yellow]warning:[/] {n} {stream} row(s) of {name} keep the previous mapping's values and "
                f"columns: the new mapping refused their records (syncd errors --connector {name} --stream {stream})",
                highlight=False,
                soft_wrap=True,
            )


@app.command()
def status(
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.", min=0)] = 2.0,
    count: Annotated[int | None, typer.Option(hidden=True, min=1)] = None,
    account: AccountOpt = None,
) -> None:
    """Show cursors, recent runs, dead letters and the push-back outbox, under each account's name."""
    from syncd import accounts
    from syncd.status import render_status, watch_status

    try:
        chosen = _each_account(account)
        for settings in chosen:
            accounts.state_folder(settings)
        configure_logging(chosen[0], State.output)
        view: Settings | list[Settings] = chosen[0] if len(chosen) == 1 else chosen
        if watch:
            watch_status(view, console, interval=interval, count=count)
        elif render_status(view, console):
            raise typer.Exit(2)  # an account's store could not be read (shown under its name)
    except SyncdError as exc:
        _fail(exc)


@mappings_app.command("check")
def mappings_check(
    against_store: Annotated[
        bool | None,
        typer.Option(
            "--against-store/--no-against-store",
            help="Also apply the mappings to the stored records (default: when a SQLite store exists).",
        ),
    ] = None,
    account: AccountOpt = None,
) -> None:
    """Validate every configured mapping file (of every account); exit non-zero on any error."""
    try:
        chosen = _each_account(account)
    except SyncdError as exc:
        _fail(exc)
        return
    _run_accounts(chosen, lambda settings: _check_mappings(settings, against_store))


def _check_mappings(settings: Settings, against_store: bool | None) -> int:
    from syncd import registry
    from syncd.mapping import check_mapping

    specs = registry.configured(settings, only_enabled=False)
    problems = 0
    for spec in specs:
        errors = check_mapping(spec.mapping_path, dict(spec.cls.tables) or None, spec.rule)
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
    if not problems:
        problems += _check_against_store(settings, specs, against_store)
    if problems:
        err.print(f"{problems} error(s)", highlight=False)
        return 1
    return 0


def _check_against_store(settings: Settings, specs: list[Any], wanted: bool | None) -> int:
    """Apply the valid mappings to the stored records; the number of streams that would fail."""
    import functools

    from syncd import registry
    from syncd.mapping_store_check import check_against_store, local_store_exists
    from syncd.store import Store

    if wanted is False or (wanted is None and not local_store_exists(settings.store_url())):
        return 0
    mappings = registry.load_mappings(specs)
    store = Store.open(settings.store_url())
    failing = 0
    try:
        for spec in specs:
            own = functools.partial(spec.cls.check_record, spec.settings)
            for stream, check in check_against_store(store, mappings[spec.name], own).items():
                line = f"{spec.mapping_path}: {stream}: {check.failed} of {check.records} stored record(s) would be refused"
                if not check.failed:
                    console.print(
                        line.replace(f"{check.failed} of", "none of"),
                        highlight=False,
                        markup=False,
                        soft_wrap=True,
                    )
                    continue
                failing += 1
                err.print(line + ", first reasons:", highlight=False, markup=False, soft_wrap=True)
                for reason in check.reasons:
                    err.print(f"  {reason}", highlight=False, markup=False, soft_wrap=True)
    finally:
        store.close()
    return failing


@mappings_app.command("preview")
def mappings_preview(
    connector: str,
    stream: str,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Records to show.")] = 10,
    account: AccountOpt = None,
) -> None:
    """Show mapped output for stored records next to their source values."""
    import difflib

    from syncd import registry
    from syncd.engine import iter_records
    from syncd.mapping import render_preview
    from syncd.plugin import STREAMS
    from syncd.store import Store

    try:
        settings = _settings(account)
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
    account: AccountOpt = None,
) -> None:
    """Push external payments to Invoiced once, of every account in turn, and print a summary
    (exit 4 if another push runs)."""
    from syncd import preflight
    from syncd.pushback import run_push_command

    def one(settings: Settings) -> int:
        preflight.check(settings)
        code = run_push_command(settings, console, live=State.output.live, wait=wait)
        if State.output.logfile is not None:
            console.print(f"log: {escape(str(State.output.logfile))}", style="dim", highlight=False, soft_wrap=True)
        return code

    try:
        chosen = _each_account(account)
    except SyncdError as exc:
        _fail(exc)
        return
    _run_accounts(chosen, one)


@store_app.command("upgrade")
def store_upgrade(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the revisions and SQL that would run; change nothing.")
    ] = False,
    account: AccountOpt = None,
) -> None:
    """Migrate the store's schema (of every account) to this syncd's newest revision (every
    command does at start)."""
    from syncd.store.command import upgrade_report

    def one(settings: Settings) -> int:
        upgrade_report(settings.store_url(), console, dry_run=dry_run)
        return 0

    try:
        chosen = _each_account(account)
    except SyncdError as exc:
        _fail(exc)
        return
    _run_accounts(chosen, one)


@store_app.command("compact")
def store_compact(account: AccountOpt = None) -> None:
    """Give the space a SQLite store no longer uses back to the disk (VACUUM); refused while a
    sync, a push or a daemon runs (exit 4)."""
    from syncd.store.command import compact_report

    def one(settings: Settings) -> int:
        compact_report(settings.store_url(), console, ttl=settings.daemon.lock_ttl)
        return 0

    try:
        chosen = _each_account(account)
    except SyncdError as exc:
        _fail(exc)
        return
    _run_accounts(chosen, one)


@app.command()
def daemon(account: AccountOpt = None) -> None:
    """Run the long-running service: scheduled pulls, push-back, /healthz and /metrics (of one
    account: with several, one daemon per account, or `syncd worker` on PostgreSQL)."""
    from syncd import accounts
    from syncd.config import load_settings
    from syncd.daemon import run_daemon
    from syncd.daemon.service import refuse_start
    from syncd.errors import ConfigError

    try:
        top = load_settings(State.config)
        every = accounts.accounts_of(top)
        if account is None and len(every) > 1:
            raise ConfigError(
                f"this configuration has {len(every)} accounts: run syncd daemon --account NAME per account, "
                "or syncd worker with a PostgreSQL store"
            )
        settings = accounts.pick(top, every, account)
        accounts.state_folder(settings)
        if State.output.live:  # else run_daemon logs JSON, as under systemd
            configure_logging(settings, State.output)
    except SyncdError as exc:
        if sys.stderr.isatty():
            _fail(exc)
        raise typer.Exit(refuse_start(exc)) from None  # off a terminal: JSON lines only
    raise typer.Exit(run_daemon(settings, State.config, live=State.output.live))


@app.command()
def worker(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Configuration file (default: the global --config).")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="Jobs run at a time (default [worker] concurrency).", min=1, max=64)
    ] = None,
    health_host: Annotated[
        str | None, typer.Option(help="/healthz address (default [daemon] health_host).")
    ] = None,
    health_port: Annotated[
        int | None,
        typer.Option(help="/healthz port, 0 for any (default [daemon] health_port).", min=0, max=65535),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="This worker's name in logs and the run log (default: host name).")
    ] = None,
) -> None:
    """Run jobs of every account from the PostgreSQL job queue, beside other workers."""
    from syncd.worker.command import run_worker

    raise typer.Exit(
        run_worker(
            config or State.config,
            concurrency=concurrency,
            health_host=health_host,
            health_port=health_port,
            name=name,
        )
    )


@app.command()
def jobs(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Configuration file (default: the global --config).")
    ] = None,
    account: AccountOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Running, queued, failed and stalled jobs per account (syncd worker)."""
    from syncd.accounts import accounts_of
    from syncd.config import load_settings
    from syncd.worker.listing import list_jobs, render

    try:
        top = load_settings(config or State.config)
        names = list(accounts_of(top))
        if account is not None and account not in names:
            raise SyncdError(f"no account {account!r} in this configuration (accounts: {', '.join(names)})")
        rows = list_jobs(top, account)
    except SyncdError as exc:
        _fail(exc)
        return
    render(rows, [account] if account else names, console, as_json=as_json)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Where the CSV files go.")] = Path("out"),
    invoices: Annotated[int, typer.Option(help="Invoices in the sandbox.")] = 2000,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Start over: forget an earlier demo's store.")
    ] = False,
) -> None:
    """Start the sandbox, sync it into ./out/, and show what happened."""
    from syncd.demo import run_demo

    try:
        run_demo(out, invoices, console, fresh=fresh)
    except SyncdError as exc:
        _fail(exc)


def _register_errors() -> None:
    from syncd import errors_cmd

    errors_cmd.load_settings = _settings
    app.add_typer(errors_cmd.errors_app, name="errors")


_register_errors()


def _register_sandbox() -> None:
    try:
        from syncd.sandbox.command import sandbox
    except ImportError:  # pragma: no cover - the sandbox ships with syncd
        return
    app.command("sandbox", help="Serve a local Invoiced-compatible API (for demos and tests).")(sandbox)


_register_sandbox()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except Exception as exc:  # the last resort: a full disk, a damaged store, a bug; never a traceback
        from syncd.failure import describe, store_name

        store = store_name(State.config) if "sqlalchemy" in type(exc).__module__ else None
        line = escape(describe(exc, store=store))
        err.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
        sys.exit(2 if isinstance(exc, SyncdError) else 1)


if __name__ == "__main__":
    main()
