"""CPU of the CSV connector alone (write, store, render) per record; printed, never asserted.

    .venv/bin/python bench/csv_bench.py [--invoices 30000] [--repeat 3]

Records of the seeded sandbox are mapped once through mappings/csv.toml (not timed), then
written page by page (100 records) into a fresh SQLite store by `CsvConnector.write`: a
first pass (new records) and a second (every record again: the replace path). `put_many`
is timed apart from the whole write. Then the render of every file, and the bytes the
connector's rows take in the store (SQLite's dbstat: table and indexes) against the CSV
files. CPU time of this process, best of --repeat fresh stores.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.csv import CsvConnector, CsvSettings  # noqa: E402
from syncd import log  # noqa: E402
from syncd.mapping import load_mapping  # noqa: E402
from syncd.plugin import ConnectorContext, MappedRecord, Record  # noqa: E402
from syncd.sandbox.data import SandboxData  # noqa: E402
from syncd.store import Store  # noqa: E402
from syncd.store.store import ConnectorOutputs  # noqa: E402

PAGE = 100


def _mapped(invoices: int, customers: int) -> list[tuple[str, list[MappedRecord]]]:
    data = SandboxData.seeded(seed=20240601, customers=customers, invoices=invoices, transactions=0)
    mapping = load_mapping(ROOT / "mappings" / "csv.toml")
    known = {(s, str(o["id"])): o for s in ("customers", "invoices") for o in data.list(s)}

    def resolve(stream: str, rid: str) -> Mapping[str, Any] | None:
        return known.get((stream, rid))

    pages = []
    for stream in ("customers", "invoices"):
        mapped = [
            MappedRecord(r, mapping.apply(r, resolve))
            for o in data.list(stream)
            for r in [Record(stream, str(o["id"]), int(o["updated_at"]), o)]
        ]
        pages += [(stream, mapped[i : i + PAGE]) for i in range(0, len(mapped), PAGE)]
    return pages


def _store_bytes(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        (size,) = conn.execute(
            "SELECT sum(pgsize) FROM dbstat WHERE name IN ('outputrow', 'ix_outputrow_table', 'sqlite_autoindex_outputrow_1')"
        ).fetchone()
    return int(size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--invoices", type=int, default=30_000)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    log.configure(level="warning")
    pages = _mapped(args.invoices, args.customers)
    records = sum(len(batch) for _, batch in pages)
    mapping = load_mapping(ROOT / "mappings" / "csv.toml")
    put_took = [0.0]
    original = ConnectorOutputs.put_many

    def timed_put_many(self: ConnectorOutputs, items: Any) -> None:
        start = time.process_time()
        original(self, items)
        put_took[0] += time.process_time() - start

    ConnectorOutputs.put_many = timed_put_many  # type: ignore[method-assign]
    best: dict[str, float] = {}
    sizes = (0, 0)
    for _ in range(args.repeat):
        work = Path(tempfile.mkdtemp(prefix="syncd-csv-bench-"))
        store = Store.open(f"sqlite:///{work / 's.db'}")
        context = ConnectorContext(name="csv", outputs=store.outputs("csv"), state_dir=work, columns=mapping.columns())
        connector = CsvConnector(CsvSettings(directory=work / "out", render_every=1e9), context)
        connector.open()
        for label in ("write new", "write again"):
            put_took[0] = 0.0
            start = time.process_time()
            for stream, batch in pages:
                connector.write(stream, batch)
            took = time.process_time() - start
            best[label] = min(best.get(label, took), took)
            best[f"  put_many ({label[6:]})"] = min(best.get(f"  put_many ({label[6:]})", put_took[0]), put_took[0])
        start = time.process_time()
        connector.close()
        took = time.process_time() - start
        best["render"] = min(best.get("render", took), took)
        store.close()
        csv_size = sum(p.stat().st_size for p in (work / "out").glob("*.csv"))
        sizes = (_store_bytes(work / "s.db"), csv_size)
    print(f"{records:,} records (customers and invoices), best of {args.repeat}")
    for label, took in best.items():
        print(f"{label:<22} {took:>7.2f} s {took / records * 1e6:>8.1f} µs/record")
    rows, csv_size = sizes
    print(f"csv rows in store {rows / 2**20:.1f} MiB, CSV files {csv_size / 2**20:.1f} MiB ({rows / csv_size:.2f}x)")


if __name__ == "__main__":
    main()
