"""`syncd sandbox` and `python -m syncd.sandbox`: serve the sandbox in the foreground."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Annotated

import typer

from syncd import log
from syncd.sandbox.config import SandboxConfig
from syncd.sandbox.server import Sandbox, banner


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
        str | None, typer.Option(help="API key to accept (default: derived from the seed).")
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
    )
    serve(config, host, port)


def serve(config: SandboxConfig, host: str, port: int) -> None:
    """Seed, listen, print the banner (flushed), and block until SIGINT or SIGTERM."""
    log.configure(level="info")  # to stderr: stdout carries only the banner
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    app = Sandbox(config)
    app.data.warm()
    try:
        app.start(host=host, port=port)
    except OSError as exc:
        typer.echo(f"syncd sandbox: cannot listen on {host}:{port}: {exc.strerror}", err=True)
        raise typer.Exit(1) from None
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
