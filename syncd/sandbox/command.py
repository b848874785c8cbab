"""`syncd sandbox` and `python -m syncd.sandbox`: serve the sandbox in the foreground."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from syncd.sandbox.config import SandboxConfig

if TYPE_CHECKING:  # the server is imported when it serves, not for `syncd --help`
    from syncd.sandbox.server import Sandbox


def sandbox(
    host: Annotated[str, typer.Option(help="Address to listen on (keep it on loopback).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.")] = 8765,
    seed: Annotated[int, typer.Option(help="Seed of the generated data (same seed, same data).")] = 7,
    customers: Annotated[int, typer.Option(help="Customers to generate.", min=0)] = 100,
    invoices: Annotated[int, typer.Option(help="Invoices to generate.", min=0)] = 2000,
    transactions: Annotated[int, typer.Option(help="Transactions to generate.", min=0)] = 500,
    latency: Annotated[float, typer.Option(help="Seconds added to every request.", min=0)] = 0.0,
    p429: Annotated[float, typer.Option(help="Probability of a random 429.", min=0, max=1)] = 0.0,
    p500: Annotated[float, typer.Option(help="Probability of a random 500.", min=0, max=1)] = 0.0,
    p_drop: Annotated[
        float,
        typer.Option(help="Probability a connection is closed before the request is applied.", min=0, max=1),
    ] = 0.0,
    p_drop_after: Annotated[
        float,
        typer.Option(
            help="Probability a write is applied, then the connection closed unanswered.", min=0, max=1
        ),
    ] = 0.0,
    rate_limit: Annotated[
        float | None,
        typer.Option(help="Token bucket: requests per second (429 with Retry-After beyond).", min=0),
    ] = None,
    burst: Annotated[int, typer.Option(help="Token bucket size.", min=1)] = 10,
    strict_pages: Annotated[
        bool, typer.Option(help="Refuse page N unless page N-1 of the same query was just served.")
    ] = False,
    edit_rate: Annotated[
        float, typer.Option(help="Background edits per second (updates, creates, deletes).", min=0)
    ] = 0.0,
    events_retention: Annotated[
        float | None, typer.Option(help="Seconds events are kept (default: forever).", min=0)
    ] = None,
    honour_idempotency: Annotated[
        bool,
        typer.Option(
            "--honour-idempotency/--ignore-idempotency",
            help="Replay a repeated Idempotency-Key (default) or apply every POST as new.",
        ),
    ] = True,
    api_key: Annotated[
        str | None, typer.Option(help="API key of the first account (default: derived from the seed).")
    ] = None,
    accounts: Annotated[
        int,
        typer.Option(
            help="Accounts to serve, each with its own key, data (seed + i), faults and rate limit.", min=1
        ),
    ] = 1,
    env_file: Annotated[
        Path | None,
        typer.Option(help="Write the accounts' keys here as SANDBOX_ACCTnn_KEY=... lines (mode 600)."),
    ] = None,
    toml: Annotated[
        Path | None,
        typer.Option(
            help="Write a syncd.toml here naming every account (keys read from --env-file's variables)."
        ),
    ] = None,
) -> None:
    """Serve a local Invoiced-compatible API, seeded with realistic data, until SIGINT/SIGTERM."""
    config = SandboxConfig(
        seed=seed,
        customers=customers,
        invoices=invoices,
        transactions=transactions,
        latency=latency,
        p429=p429,
        p500=p500,
        p_drop=p_drop,
        p_drop_after=p_drop_after,
        rate_limit=rate_limit or None,
        burst=burst,
        strict_pages=strict_pages,
        edit_rate=edit_rate,
        events_retention=events_retention,
        honour_idempotency=honour_idempotency,
        api_key=api_key,
        accounts=accounts,
    )
    serve(config, host, port, env_file=env_file, toml=toml)


def key_variable(name: str) -> str:
    """The environment variable that carries account `name`'s key in the written files."""
    return f"SANDBOX_{name.upper()}_KEY"


def env_lines(app: Sandbox) -> str:
    """`SANDBOX_ACCT01_KEY=...` per account: for `set -a; . FILE`, systemd or compose."""
    return "".join(f"{key_variable(a.name)}={a.api_key}\n" for a in app.accounts.values())


def config_toml(app: Sandbox) -> str:
    """A ready multi-account syncd.toml for this sandbox; the keys stay in the environment."""
    lines = [
        f"# Written by `syncd sandbox --accounts {len(app.accounts)}`: one [accounts.NAME] table per",
        "# sandbox account. Each key is read from the variable named by api_key_env (--env-file).",
        "[invoiced]",
        f'base_url = "{app.url}"',
        "",
        "[store]",
        'url = "sqlite:///syncd.db"',
    ]
    for account in app.accounts.values():
        lines += ["", f"[accounts.{account.name}.invoiced]", f'api_key_env = "{key_variable(account.name)}"']
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(path, mode)  # an existing file keeps its mode through O_CREAT
    except OSError as exc:
        typer.echo(f"syncd sandbox: cannot write {path}: {exc.strerror}", err=True)
        raise typer.Exit(1) from None


def serve(
    config: SandboxConfig, host: str, port: int, *, env_file: Path | None = None, toml: Path | None = None
) -> None:
    """Seed, listen, print the banner (flushed), and block until SIGINT or SIGTERM."""
    from syncd import log
    from syncd.sandbox.server import Sandbox, banner

    log.configure(level="info")  # to stderr: stdout carries only the banner
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    app = Sandbox(config)
    for account in app.accounts.values():
        account.data.warm()
    try:
        app.start(host=host, port=port)
    except OSError as exc:
        typer.echo(f"syncd sandbox: cannot listen on {host}:{port}: {exc.strerror}", err=True)
        raise typer.Exit(1) from None
    try:
        if env_file is not None:
            _write(env_file, env_lines(app), 0o600)
        if toml is not None:
            _write(toml, config_toml(app), 0o644)
    except typer.Exit:
        app.stop()
        raise
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        sys.stdout.write(banner(app) + "\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        app.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
