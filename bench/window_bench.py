"""Per-request cost of the sandbox's date-window queries, in process; printed, never asserted.

    .venv/bin/python bench/window_bench.py [--invoices 20000 200000] [--requests 200]

For each size: the sync loop's window query (`start_date`/`end_date` + `updated_after` +
`sort=updated_at asc`, an untimed write between requests as under the edit thread) and the window
planning's count probe (`end_date` + `sort=date asc`, per_page=1), each through the indexes
(`SandboxData.query`) and through the general path that filters the table (`_ordered`,
what every such request cost before). Flat means the indexed cost does not grow with size.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from syncd.sandbox.data import ListQuery, SandboxData


def _per_request(run: Callable[[int], object], n: int, before: Callable[[], None] | None = None) -> float:
    """Microseconds per `run(i)`; `before()` (untimed) runs ahead of each."""
    spent = 0.0
    for i in range(n):
        if before is not None:
            before()
        started = time.perf_counter()
        run(i)
        spent += time.perf_counter() - started
    return spent / n * 1e6


def _measure(size: int, requests: int) -> list[tuple[str, float, float]]:
    """(query, indexed us/request, scanning us/request) at `size` invoices."""
    data = SandboxData.seeded(1, max(10, size // 50), size, 0)
    data.warm()  # JSON of every record cached: what is left is the query itself
    table = data.tables["invoices"]
    dates = sorted(d for d, _ in table.dates)
    quarter = [dates[min(len(dates) * k // 4, len(dates) - 1)] for k in range(5)]
    ups = sorted(u for u, _ in table.index)
    rng = random.Random(1)
    ids = list(table.rows)

    def window(i: int) -> ListQuery:
        k = i % 4
        return ListQuery(
            sort_field="updated_at",
            start_date=quarter[k],
            end_date=quarter[k + 1] - 1,
            updated_after=ups[rng.randrange(len(ups))],
        )

    def write() -> None:
        with data.lock:  # as the edit thread does: a new version of one invoice
            oid = ids[rng.randrange(len(ids))]
            table.put({**table.rows[oid], "updated_at": ups[-1] + 1})

    def probe(i: int) -> ListQuery:
        return ListQuery(sort_field="date", end_date=dates[rng.randrange(len(dates))], per_page=1)

    for i in range(4):  # a sync's windows: their indexes are built by their first request
        data.query("invoices", window(i))
    few = max(3, requests // 20)  # the scanning path is slow: fewer of it
    return [
        (
            "window walk, write between",
            _per_request(lambda i: data.query("invoices", window(i)), requests, write),
            _per_request(lambda i: data._ordered("invoices", table, window(i)), few, write),
        ),
        (
            "count probe (per_page=1)",
            _per_request(lambda i: data.query("invoices", probe(i)), requests),
            _per_request(lambda i: data._ordered("invoices", table, probe(i)), few),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    print(f"{'invoices':>9} {'query':<28} {'indexed us/req':>15} {'scan us/req':>12}")
    for size in args.invoices:
        for name, indexed, scanned in _measure(size, args.requests):
            print(f"{size:>9} {name:<28} {indexed:>15.0f} {scanned:>12.0f}")


if __name__ == "__main__":
    main()
