"""How many records per second `MappingSet.apply` maps; printed, never asserted.

    .venv/bin/python bench/mapping_bench.py [--invoices 5000] [--repeat 5] [--expanded] [--cold | --first-sync]

Records come from the seeded sandbox (seed 1: 200 customers, --invoices invoices, 1000
transactions), decoded from their JSON bytes as the engine decodes API pages (whole numbers
are ints, fractions Decimal) and wrapped as the engine wraps them; `resolve` is a dict
lookup of the seeded customers and invoices, as the engine's is for records fetched in the
same batch. With --expanded, invoices and transactions carry their customer/invoice objects
inline, as the API returns them with `expand=`. Each line is the best of --repeat passes
over every record, in CPU time of this process (steadier than wall time on a shared
machine); the `all` line of a mapping is the sum of its streams' best passes, per record.
With --cold, each pass maps with a freshly loaded mapping, whose steps have kept no currency
yet, and no date text is kept (they are kept per process, shared by every mapping): a first
sync maps each record once, so what they keep helps less. With --first-sync, one line: every
record mapped through the CSV and the ledger mappings in turn, as a first sync with both
connectors does, cold.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from syncd.invoiced.decode import loads
from syncd.mapping import load_mapping, transforms
from syncd.mapping.schema import Resolve
from syncd.plugin import Record
from syncd.sandbox.data import SandboxData

ROOT = Path(__file__).resolve().parent.parent
MAPPINGS = ("csv", "ledger", "hubspot")
STREAMS = ("customers", "invoices", "transactions")


def _records(invoices: int, expanded: bool) -> tuple[dict[str, list[Record]], dict[tuple[str, str], Any]]:
    data = SandboxData.seeded(seed=1, customers=200, invoices=invoices, transactions=1000)
    objects = {s: [loads(data.blob(s, o["id"])) for o in data.list(s)] for s in STREAMS}
    known = {(s, str(o["id"])): o for s in ("customers", "invoices") for o in objects[s]}
    if expanded:
        for stream, refs in (("invoices", ("customer",)), ("transactions", ("customer", "invoice"))):
            for obj in objects[stream]:
                for ref in refs:
                    target = "customers" if ref == "customer" else "invoices"
                    if obj.get(ref) is not None and (target, str(obj[ref])) in known:
                        obj[ref] = known[(target, str(obj[ref]))]
    records = {s: [Record(s, str(o["id"]), int(o["updated_at"]), o) for o in objects[s]] for s in STREAMS}
    return records, known


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--invoices", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--expanded", action="store_true", help="inline customer/invoice objects")
    parser.add_argument("--cold", action="store_true", help="a freshly loaded mapping for every pass")
    parser.add_argument("--first-sync", action="store_true", help="CSV and ledger mappings in turn, cold")
    args = parser.parse_args()
    records, known = _records(args.invoices, args.expanded)
    # Date texts are kept per process, for every mapping (none to forget in older trees: A/B runs)
    forget: Callable[[], None] = getattr(transforms, "forget_formatted", lambda: None)

    def resolve(stream: str, rid: str) -> Mapping[str, Any] | None:
        return known.get((stream, rid))

    print(
        f"{'mapping':<8} {'stream':<13} {'records':>8} {'rows':>8} {'records/s':>11} {'µs/record':>10} {'µs/row':>8}"
    )
    if args.first_sync:
        _first_sync(records, resolve, forget, args.repeat)
        return
    for name in MAPPINGS:
        path = ROOT / "mappings" / f"{name}.toml"
        mapping = load_mapping(path)
        total_time, total_records, total_rows = 0.0, 0, 0
        for stream in STREAMS:
            batch = records[stream]
            if not mapping.tables_for(stream):
                continue
            best = float("inf")
            rows = 0
            for _ in range(args.repeat):
                if args.cold:
                    mapping = load_mapping(path)
                    forget()
                start = time.process_time()
                rows = 0
                for record in batch:
                    for table_rows in mapping.apply(record, resolve).values():
                        rows += len(table_rows)
                best = min(best, time.process_time() - start)
            _line(name, stream, len(batch), rows, best)
            total_time, total_records, total_rows = (
                total_time + best,
                total_records + len(batch),
                total_rows + rows,
            )
        _line(name, "all", total_records, total_rows, total_time)


def _first_sync(
    records: dict[str, list[Record]], resolve: Resolve, forget: Callable[[], None], repeat: int
) -> None:
    """Every record through both mappings of a first sync (CSV and ledger), freshly loaded."""
    paths = [ROOT / "mappings" / f"{name}.toml" for name in ("csv", "ledger")]
    count = sum(len(batch) for batch in records.values())
    best, rows = float("inf"), 0
    for _ in range(repeat):
        mappings = [load_mapping(path) for path in paths]
        forget()
        start = time.process_time()
        rows = 0
        for stream in STREAMS:
            for record in records[stream]:
                for mapping in mappings:
                    for table_rows in mapping.apply(record, resolve).values():
                        rows += len(table_rows)
        best = min(best, time.process_time() - start)
    _line("both", "all", count, rows, best)


def _line(name: str, stream: str, records: int, rows: int, took: float) -> None:
    per_row = took / rows * 1e6 if rows else float("nan")
    print(
        f"{name:<8} {stream:<13} {records:>8} {rows:>8} {records / took:>11,.0f}"
        f" {took / records * 1e6:>10.1f} {per_row:>8.1f}"
    )


if __name__ == "__main__":
    main()
