"""`syncd demo`: the quick start. Sandbox in-process, sync into ./out/, show the result."""

from __future__ import annotations

import csv
from pathlib import Path

from rich.console import Console
from rich.table import Table

from syncd import log
from syncd.config import Settings
from syncd.engine import run_sync


def run_demo(out: Path, invoices: int, console: Console, *, fresh: bool = False) -> None:
    """Serve a seeded sandbox on loopback and run two syncs against it."""
    from syncd.sandbox import Sandbox, SandboxConfig

    log.configure(level="warning")
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    reused = _store_note(out / "syncd-demo.db", fresh, console)
    sandbox = Sandbox(SandboxConfig(seed=7, customers=max(10, invoices // 20), invoices=invoices))
    url = sandbox.start(host="127.0.0.1", port=0)
    console.print(f"sandbox: {url} ({invoices} invoices)")
    try:
        settings = Settings(
            invoiced={"base_url": url, "api_key": sandbox.api_key},
            store={"url": f"sqlite:///{out / 'syncd-demo.db'}"},
            connectors={"csv": {"enabled": True, "directory": str(out), "mapping": str(_mapping())}},
        )
        first = run_sync(settings, progress=console.is_terminal)
        console.print(
            f"first sync: {sum(r.fetched for r in first.streams.values())} records in {first.duration:.2f} s"
            + (" (the earlier demo synced the rest)" if reused else "")
        )
        second = run_sync(settings)
        requests = sum(r.requests for r in second.streams.values())
        changed = sum(r.changed for r in second.streams.values())
        console.print(f"second sync: {requests} list requests, {changed} changed records (nothing to do)")
    finally:
        sandbox.stop()
    table = Table(title=f"files in {out}")
    table.add_column("file")
    table.add_column("rows", justify="right")
    for path in sorted(out.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as fh:
            table.add_row(path.name, str(sum(1 for _ in csv.reader(fh)) - 1))
    console.print(table)
    if not (first.ok and second.ok):
        raise SystemExit("demo sync failed: " + "; ".join(first.errors() + second.errors()))


def _store_note(db: Path, fresh: bool, console: Console) -> bool:
    """Start over with `fresh`; else say that an earlier demo's store is reused (True), and how not to."""
    if fresh:
        if db.exists():
            console.print(f"starting over: removed the earlier demo's store {db}", highlight=False, markup=False)
        for suffix in ("", "-wal", "-shm", "-pace", "-pace-wal", "-pace-shm"):
            db.with_name(db.name + suffix).unlink(missing_ok=True)
        return False
    if not db.exists():
        return False
    console.print(
        f"reusing the store of an earlier demo ({db}): only changes since then are synced; "
        "run `syncd demo --fresh` to start over",
        highlight=False,
        markup=False,
    )
    return True


def _mapping() -> Path:
    here = Path("mappings/csv.toml")
    return here if here.exists() else Path(__file__).resolve().parent.parent / "mappings" / "csv.toml"
