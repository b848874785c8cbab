"""CPU of the delivery path (raw store, CSV mapping and connector, cursor) per record, by slice.

    .venv/bin/python bench/delivery_bench.py [--invoices 50000] [--slice 10000] [--render] [--ledger]

No HTTP: the seeded sandbox's objects (JSON bytes, as the API serves them) are decoded and
delivered page by page (100 records) into a fresh SQLite store, as the engine's delivery
thread does for a first sync, after the customers. Each line is one slice of invoices: CPU
time of this process per record. A flat column is a cost that does not grow with the
records already stored. --render adds the final render. --ledger turns the ledger connector
on too (mappings/ledger.toml, hledger) and delivers transactions (half as many as invoices)
after the invoices. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from syncd import log  # noqa: E402
from syncd.config import Settings  # noqa: E402
from syncd.delivery import Delivery, StreamReport, close_targets, open_targets  # noqa: E402
from syncd.engine import _records  # noqa: E402
from syncd.invoiced.contract import MAX_DEPTH, check_page  # noqa: E402
from syncd.invoiced.decode import loads, nesting_depth  # noqa: E402
from syncd.sandbox.data import SandboxData  # noqa: E402
from syncd.store import Store  # noqa: E402

PAGE = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--invoices", type=int, default=50_000)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--slice", type=int, default=10_000)
    parser.add_argument("--render", action="store_true", help="time the final render too")
    parser.add_argument("--ledger", action="store_true", help="the ledger connector too, and transactions")
    args = parser.parse_args()
    log.configure(level="warning")
    transactions = args.invoices // 2 if args.ledger else 0
    data = SandboxData.seeded(
        seed=20240601, customers=args.customers, invoices=args.invoices, transactions=transactions
    )
    work = Path(tempfile.mkdtemp(prefix="syncd-delivery-bench-"))
    connectors: dict[str, dict[str, object]] = {
        "csv": {
            "enabled": True,
            "directory": str(work / "out"),
            "mapping": str(ROOT / "mappings" / "csv.toml"),
            "render_every": 1e9,
        }
    }
    if args.ledger:
        connectors["ledger"] = {
            "enabled": True,
            "path": str(work / "out" / "invoiced.journal"),
            "mapping": str(ROOT / "mappings" / "ledger.toml"),
            "render_every": 1e9,
        }
    settings = Settings(
        invoiced={"base_url": "http://127.0.0.1:9", "api_key": "sk_bench"},
        store={"url": f"sqlite:///{work / 's.db'}"},
        connectors=connectors,
    )
    store = Store.open(settings.store_url())
    targets = open_targets(settings, store)
    delivery = Delivery(store, targets)

    def pages(stream: str) -> list[bytes]:
        objs = sorted(data.list(stream), key=lambda o: (o["updated_at"], o["id"]))
        return [
            b"[" + b",".join(data.tables[stream].blob(o["id"]) for o in objs[i : i + PAGE]) + b"]"
            for i in range(0, len(objs), PAGE)
        ]

    def deliver(stream: str, body: bytes, report: StreamReport) -> int:
        items = check_page(f"/{stream}", loads(body), None, depth=nesting_depth(body, MAX_DEPTH + 1))
        # The cursor moves once the page is durable, as the engine's does.
        delivery.deliver(
            stream,
            _records(stream, items),
            report,
            then=lambda: store.set_cursor(stream, "", int(items[-1]["updated_at"])),
        )
        return len(items)

    print(f"{'stream':<10} {'records':>15} {'CPU s':>7} {'µs/record':>10}")
    for stream in ("customers", "invoices", "transactions") if args.ledger else ("customers", "invoices"):
        bodies, report, done = pages(stream), StreamReport(), 0
        start, begun = time.process_time(), 0
        for body in bodies:
            done += deliver(stream, body, report)
            if stream == "customers" or done - begun < args.slice:
                continue
            took = time.process_time() - start
            print(
                f"{stream:<10} {f'{begun:,}-{done:,}':>15} {took:>7.2f} {took / (done - begun) * 1e6:>10.0f}"
            )
            start, begun = time.process_time(), done
        if done > begun:
            took = time.process_time() - start
            print(
                f"{stream:<10} {f'{begun:,}-{done:,}':>15} {took:>7.2f} {took / (done - begun) * 1e6:>10.0f}"
            )
    if args.render:
        start = time.process_time()
        close_targets(targets)
        took = time.process_time() - start
        records = args.invoices + args.customers + transactions
        print(f"{'render':<10} {records:>15,} {took:>7.2f} {took / records * 1e6:>10.0f}")
    store.close()
    size = sum(p.stat().st_size for p in work.glob("s.db*"))
    out = sum(p.stat().st_size for p in (work / "out").glob("*.csv")) if args.render else 0
    journal = work / "out" / "invoiced.journal"
    print(
        f"store {size / 2**20:.1f} MiB"
        + (f", CSV {out / 2**20:.1f} MiB" if out else "")
        + (f", journal {journal.stat().st_size / 2**20:.1f} MiB" if args.render and args.ledger else "")
    )


if __name__ == "__main__":
    main()
