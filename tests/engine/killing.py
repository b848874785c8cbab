"""Kill a real syncd process at points tied to progress (requests the sandbox served), and
check that CSV files and the ledger journal then equal the sandbox exactly."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from syncd.mapping import load_mapping
from syncd.plugin import Record
from syncd.store import Store
from tests.engine.helpers import ROOT, assert_csv_matches
from tests.ledger.helpers import ar_balances, hledger_check
from tests.ledger.test_default_mapping import expected_ar

LEDGER_MAPPING = ROOT / "mappings" / "ledger.toml"
_ENTRY = re.compile(r"; invoiced_type: (\w+)\n\s+; invoiced_id: (\S+)\n")


def write_config(path: Path, sandbox: Any, tmp: Path, daemon: dict[str, Any] | None = None) -> Path:
    """CSV and ledger outputs of `sandbox`, small pages (many kill points on little data)."""
    lines = [
        "[invoiced]",
        f'base_url = "{sandbox.url}"',
        f'api_key = "{sandbox.api_key}"',
        "per_page = 5",
        "retry_budget = 30.0",
        "[store]",
        f'url = "sqlite:///{tmp / "s.db"}"',
        "[streams.invoices]",
        "windows = 2",
        "[streams.transactions]",
        "windows = 1",
        "[connectors.csv]",
        "enabled = true",
        f'directory = "{tmp / "out"}"',
        f'mapping = "{ROOT / "mappings" / "csv.toml"}"',
        "render_every = 0.0",
        "[connectors.ledger]",
        "enabled = true",
        f'path = "{tmp / "invoiced.journal"}"',
        f'mapping = "{LEDGER_MAPPING}"',
        "render_every = 0.0",
        "[pushback]",
        "enabled = false",
    ]
    if daemon is not None:
        lines.append("[daemon]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in daemon.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def syncd(config: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    return subprocess.Popen(
        [sys.executable, "-m", "syncd.cli", "--config", str(config), *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stored_count(db: Path) -> int:
    """Invoices and transactions the store holds (0 while it is being created)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            row = conn.execute(
                "SELECT count(*) FROM rawrecord WHERE stream IN ('invoices', 'transactions') AND NOT deleted"
            ).fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0])


def kill_after_requests(
    proc: subprocess.Popen[bytes], sandbox: Any, n: int, timeout: float = 60.0, *, store: Path | None = None
) -> bool:
    """SIGKILL `proc` once the sandbox has received `n` more requests (and, with `store`, once
    that store holds more invoices and transactions than before: the run delivered some, on a
    slow machine too); False if it exited first."""
    target = sandbox.stats.total + n
    base = stored_count(store) if store is not None else 0
    deadline = time.monotonic() + timeout

    def due() -> bool:
        if sandbox.stats.total < target:
            return False
        return store is None or stored_count(store) > base

    while not due() and proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no progress: {sandbox.stats.total} of {target} requests")
        time.sleep(0.002 if sandbox.stats.total < target else 0.02)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    return killed


def delete_stored(sandbox: Any, db: Path, rng: random.Random, n: int = 2) -> list[tuple[str, str]]:
    """Delete in the sandbox `n` records that the store already holds (so outputs may have them)."""
    store = Store.open(f"sqlite:///{db}")
    try:
        held = [
            (stream, r.id)
            for stream in ("invoices", "transactions")
            for batch in store.iter_raw(stream, include_deleted=False)
            for r in batch
        ]
    finally:
        store.close()
    live = [(s, rid) for s, rid in held if sandbox.data.get(s, rid) is not None]
    gone = rng.sample(live, min(n, len(live)))
    for stream, rid in gone:
        if sandbox.data.get(stream, rid) is not None:  # an invoice's delete takes its transactions
            sandbox.data.delete(stream, rid)
    return gone


def touch_one(sandbox: Any) -> None:
    """One event in the account (a seeded sandbox has none)."""
    first = sandbox.data.list("customers")[0]
    sandbox.data.update("customers", first["id"], {"name": first["name"] + " Ltd"})


def journal_ids(path: Path) -> set[tuple[str, str]]:
    return set(_ENTRY.findall(path.read_text(encoding="utf-8")))


def expected_journal_ids(sandbox: Any) -> set[tuple[str, str]]:
    """(type, id) of every record that mappings/ledger.toml turns into an entry."""
    mapping = load_mapping(LEDGER_MAPPING)

    def resolve(stream: str, rid: str) -> dict[str, Any] | None:
        return sandbox.data.get(stream, rid)  # type: ignore[no-any-return]

    ids = set()
    for stream in ("invoices", "transactions"):
        for obj in sandbox.data.list(stream):
            record = Record(stream, str(obj["id"]), int(obj["updated_at"]), obj)
            if any(mapping.apply(record, resolve).values()):
                ids.add((stream[:-1], str(obj["id"])))
    return ids


def assert_outputs_match(sandbox: Any, tmp: Path) -> None:
    """CSV files and the journal equal the sandbox: nothing missing, extra or stale."""
    assert_csv_matches(sandbox, tmp / "out")
    journal = tmp / "invoiced.journal"
    hledger_check(journal)
    got, want = journal_ids(journal), expected_journal_ids(sandbox)
    assert got == want, f"journal: extra {sorted(got - want)[:10]}, missing {sorted(want - got)[:10]}"
    assert ar_balances(journal) == expected_ar(sandbox.data)


def finish(run: Callable[[], int], attempts: int = 3) -> None:
    """Run until one run exits 0."""
    codes = [run()]
    while codes[-1] != 0 and len(codes) < attempts:
        codes.append(run())
    assert codes[-1] == 0, f"exit codes {codes}"
