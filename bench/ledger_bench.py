"""Peak memory of the ledger render: N synthetic entries in a SQLite store, rendered in a fresh process.

    .venv/bin/python bench/ledger_bench.py --entries 10000 100000 300000 [--dialect beancount]
    .venv/bin/python bench/ledger_bench.py --write 20000 [--repeat 5] [--dialect beancount]

For each N the store is filled once with the connector's rows in that dialect (cached under
--dir), then each mode renders it in its own
process, which prints its peak RSS (VmHWM) before and after the render and the time taken:
`stream` is the connector's render (external merge sort), `memory` the whole-journal-in-memory
render it replaced (`render` + `write_atomic`). Printed, never asserted.

With --write N, the CPU the connector's `write` spends per record of a first sync instead:
the seeded sandbox's invoices and transactions (N invoices), decoded and mapped with
mappings/ledger.toml beforehand, written in batches of 500 to a store that keeps nothing
(the SQLite work is the store's, not the connector's); the best of --repeat passes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.ledger import CUSTOMERS, ENTRIES, LedgerConnector, LedgerSettings
from connectors.ledger.journal import Entry, Posting
from connectors.ledger.render import render, write_atomic
from syncd.plugin import ConnectorContext
from syncd.store import Store


def _entry(i: int, rnd: random.Random, customers: int) -> Entry:
    cust = str(rnd.randrange(customers))
    ar = f"Assets:Accounts Receivable:Customer {cust} (CUST-{cust})"
    date = dt.date(2020, 1, 1) + dt.timedelta(days=rnd.randrange(1500))
    if i % 3 == 2:  # a transaction
        amount = Decimal(rnd.randrange(1, 10**6)).scaleb(-2)
        postings = (Posting(ar, -amount, "USD", role="ar"), Posting("Assets:Bank:Checking", amount, "USD"))
        meta = (("invoiced_type", "transaction"), ("invoiced_id", str(i)), ("invoice", str(i - 2)))
        return Entry(
            date, "payment", "transaction", str(i), f"Customer {cust}", f"Payment {i}", postings, meta, cust
        )
    lines = [Decimal(rnd.randrange(1, 10**5)).scaleb(-2) for _ in range(rnd.randint(1, 3))]
    tax = (sum(lines) * Decimal("0.0825")).quantize(Decimal("0.01"))
    postings = (
        Posting(ar, sum(lines) + tax, "USD", role="ar"),
        *(Posting(f"Income:Sales:Product {n}", -a, "USD", f"line {n}") for n, a in enumerate(lines)),
        Posting("Liabilities:Sales Tax", -tax, "USD"),
    )
    meta = (("invoiced_type", "invoice"), ("invoiced_id", str(i)), ("number", f"INV-{i:07d}"))
    return Entry(
        date, "invoice", "invoice", str(i), f"Customer {cust}", f"Invoice INV-{i:07d}", postings, meta, cust
    )


def fill(url: str, n: int, dialect: str) -> None:
    rnd, customers = random.Random(n), max(10, n // 50)
    store = Store.open(url)
    out = store.outputs("ledger")
    # Rows as the connector writes them (its text in `dialect`).
    settings = LedgerSettings(enabled=True, dialect=dialect)
    conn = LedgerConnector(settings, ConnectorContext(name="ledger", outputs=out, state_dir=Path(".")))
    batch = []
    for i in range(n):
        e = _entry(i, rnd, customers)
        batch.append(
            ("invoices" if e.object == "invoice" else "transactions", str(i), {ENTRIES: [conn._row(e)]})
        )
        if len(batch) == 2000:
            out.put_many(batch)
            batch = []
    out.put_many(batch)
    out.put_many(
        [
            ("customers", str(c), {CUSTOMERS: [{"id": str(c), "ar_account": f"Assets:AR:C{c}"}]})
            for c in range(0, customers, 7)
        ]
    )
    store.close()


def _hwm() -> float:
    """This process's peak RSS in MiB (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def run(url: str, journal: Path, mode: str, dialect: str) -> None:
    store = Store.open(url)
    settings = LedgerSettings(enabled=True, path=journal, dialect=dialect)  # type: ignore[arg-type]
    conn = LedgerConnector(
        settings, ConnectorContext(name="ledger", outputs=store.outputs("ledger"), state_dir=journal.parent)
    )
    conn.open()
    journal.unlink(missing_ok=True)  # else an unchanged store skips the render
    base = _hwm()
    t0 = time.perf_counter()
    if mode == "stream":
        conn.render()
    else:
        stamp = conn._stamp(frozenset())
        write_atomic(journal, render(conn.entries(frozenset()), dialect, declared=conn.declared, stamp=stamp))
    took = time.perf_counter() - t0
    peak = _hwm()
    size = journal.stat().st_size / 2**20
    print(
        f"  {mode:6} peak RSS {peak:7.1f} MiB (before render {base:5.1f}), {took:6.2f} s, journal {size:6.1f} MiB"
    )
    store.close()


class _NullOutputs:
    """A text store that keeps nothing: `write` then costs only the connector's own work."""

    def put(self, stream: str, record_id: str, tables: Any) -> None:
        pass

    def put_many(self, items: Any) -> None:
        pass

    def delete(self, stream: str, record_id: str) -> None:
        pass

    def rows(self, table: str) -> Iterator[dict[str, Any]]:
        return iter(())

    def stored(self, table: str) -> Iterator[dict[str, Any] | str]:
        return iter(())

    def is_dirty(self) -> bool:
        return False

    def mark_clean(self) -> None:
        pass


def _write_chunk(acc: tuple[LedgerConnector, str], chunk: Any) -> tuple[LedgerConnector, str]:
    acc[0].write(acc[1], chunk)
    return acc


def write_bench(invoices: int, repeat: int, dialect: str) -> None:
    from bench.mapping_bench import ROOT, _records
    from syncd.mapping import load_mapping
    from syncd.plugin import MappedRecord

    records, known = _records(invoices, expanded=False)
    mapping = load_mapping(ROOT / "mappings" / "ledger.toml")

    def resolve(stream: str, rid: str) -> Any:
        return known.get((stream, rid))

    streams = ("invoices", "transactions")
    batches = {
        s: [MappedRecord(r, mapping.apply(r, resolve)) for r in records[s] if not r.deleted] for s in streams
    }
    settings = LedgerSettings(enabled=True, dialect=dialect)
    with tempfile.TemporaryDirectory() as state:
        ctx = ConnectorContext(name="ledger", outputs=_NullOutputs(), state_dir=Path(state))
        conn = LedgerConnector(settings, ctx)
        conn.open()  # only sweeps `state` for temporary files
    chunks = {s: [batches[s][i : i + 500] for i in range(0, len(batches[s]), 500)] for s in streams}
    total = 0.0
    for s in streams:
        best = float("inf")
        for _ in range(repeat):
            start = time.process_time()
            functools.reduce(_write_chunk, chunks[s], (conn, s))
            best = min(best, time.process_time() - start)
        n = len(batches[s])
        total += best
        print(f"{dialect} {s:<13} {n:>7} records {best / n * 1e6:7.1f} µs/record")
    n = sum(len(b) for b in batches.values())
    print(f"{dialect} {'all':<13} {n:>7} records {total / n * 1e6:7.1f} µs/record")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, nargs="+", default=[10_000, 100_000, 300_000])
    ap.add_argument("--dialect", default="hledger")
    ap.add_argument("--modes", nargs="+", default=["memory", "stream"])
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "ledger_bench")
    ap.add_argument("--child", nargs=3, metavar=("URL", "MODE", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--fill", nargs=2, metavar=("URL", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--write", type=int, metavar="INVOICES", help="time `write` instead (see above)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if args.write:
        write_bench(args.write, args.repeat, args.dialect)
        return
    if args.fill:
        fill(args.fill[0], int(args.fill[1]), args.dialect)
        return
    if args.child:
        url, mode, n = args.child
        run(url, args.dir / f"{n}-{mode}.{args.dialect}", mode, args.dialect)
        return
    args.dir.mkdir(parents=True, exist_ok=True)
    for n in args.entries:
        db = args.dir / f"store-{n}-{args.dialect}.db"
        url = f"sqlite:///{db}"
        if not db.exists():
            t0 = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--dialect", args.dialect, "--fill", url, str(n)], check=True)
            print(f"filled {n} entries in {time.perf_counter() - t0:.1f} s")
        print(f"{n} entries, {args.dialect}:")
        outs = []
        for mode in args.modes:
            cmd = [
                sys.executable,
                __file__,
                "--dir",
                str(args.dir),
                "--dialect",
                args.dialect,
                "--child",
                url,
                mode,
                str(n),
            ]
            subprocess.run(cmd, check=True)
            outs.append((args.dir / f"{n}-{mode}.{args.dialect}").read_bytes())
        if len(outs) > 1:
            print(f"  identical: {all(o == outs[0] for o in outs)}")


if __name__ == "__main__":
    main()
