"""A 20-account backfill with 1, 2 and 4 `syncd worker` processes: wall time, records/s and the
scaling factor against one worker.

    .venv/bin/python bench/workers_bench.py                  # 20 accounts, 50 ms latency
    .venv/bin/python bench/workers_bench.py --quick          # smaller accounts, a smoke run
    .venv/bin/python bench/run.py --only workers             # the same, from the bench runner

Needs the PostgreSQL server on 127.0.0.1:5432 (SYNCD_TEST_PG): each run gets a fresh database,
dropped afterwards. The sandbox serves every account from this process on loopback; the
workers are real processes. Wall time runs from starting the workers until every account's
CSV files equal its sandbox data (worker start-up included). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))


@dataclass
class WorkerSizes:
    """Every knob of the workers bench; `quick()` shrinks the accounts."""

    seed: int = 20240716
    accounts: int = 20
    customers: int = 20
    invoices: int = 300
    transactions: int = 80
    per_page: int = 25
    latency: float = 0.05
    concurrency: int = 2  # jobs each worker runs at once
    workers: tuple[int, ...] = (1, 2, 4)
    timeout: float = 900.0

    @classmethod
    def quick(cls) -> WorkerSizes:
        return cls(customers=5, invoices=60, transactions=20)


def backfill(sz: WorkerSizes, n: int, work: Path) -> dict[str, Any]:
    """One backfill of every account by `n` workers on a fresh database and sandbox."""
    from syncd.sandbox import Sandbox, SandboxConfig
    from tests.engine.helpers import expected_csv, read_csv_dir
    from tests.worker.cluster import (
        Cluster,
        account_dir,
        fresh_database,
        sandbox_accounts,
        served,
        worker_env,
        write_config,
    )

    folder = work / f"workers-{n}"
    folder.mkdir(parents=True)
    sandbox = Sandbox(
        SandboxConfig(
            seed=sz.seed % 1000,
            customers=sz.customers,
            invoices=sz.invoices,
            transactions=sz.transactions,
            latency=sz.latency,
            accounts=sz.accounts,
        )
    )
    sandbox.start(host="127.0.0.1", port=0)
    accounts = sandbox_accounts(sandbox)
    names = list(sandbox.accounts)  # acct01 ... acct20
    # The data stays still, so what each account's files must hold is computed once.
    want = [expected_csv(a) for a in accounts]
    records = sum(len(a.data.list(s)) for a in accounts for s in ("customers", "invoices", "transactions"))
    try:
        with fresh_database("syncd_bench") as database:
            # A long schedule: each job runs once, at start, so the clock measures the backfill.
            config = write_config(
                folder / "syncd.toml",
                sandbox.url,
                database,
                names,
                per_page=sz.per_page,
                every=3600,
                pushback=False,
            )
            cluster = Cluster(config, worker_env(accounts, names), n, concurrency=sz.concurrency, logs=folder)
            before = _children_cpu()
            started = time.monotonic()
            cluster.start_all()
            pending = set(range(sz.accounts))
            try:
                while pending:
                    if time.monotonic() - started > sz.timeout:
                        raise RuntimeError(
                            f"{len(pending)} accounts not synced after {sz.timeout:.0f} s\n{cluster.tails()}"
                        )
                    if cluster.crashed():
                        raise RuntimeError(f"a worker exited\n{cluster.tails()}")
                    for i in sorted(pending):
                        got = read_csv_dir(account_dir(config, names[i]) / "out")
                        if all(got.get(t) == rows for t, rows in want[i].items()):
                            pending.discard(i)
                    time.sleep(0.1)
                wall = time.monotonic() - started
            finally:
                cluster.stop_all()
            cpu = _children_cpu() - before  # the workers', reaped by stop_all (shutdown included)
    finally:
        sandbox.stop()
    return {"workers": n, "wall": wall, "records": records, "requests": served(accounts), "cpu": cpu}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def workers(sz: WorkerSizes, work: Path, table: Callable[..., str]) -> str:
    """Run each worker count and print the table (`table`: bench/run.py's)."""
    rows = []
    base: float | None = None
    for n in sz.workers:
        print(f"  … {n} worker(s)", file=sys.stderr, flush=True)
        run = backfill(sz, n, work)
        base = base or run["wall"]
        rows.append(
            [
                f"{n} worker{'s' if n > 1 else ''}",
                run["records"],
                run["requests"],
                run["wall"],
                run["records"] / run["wall"],
                f"{base / run['wall']:.2f}x",
                run["cpu"],
            ]
        )
    return table(
        f"{sz.accounts}-account backfill by 1, 2 and 4 workers",
        ["run", "records", "requests", "wall s", "records/s", "scaling vs 1", "workers' CPU s"],
        rows,
        [
            f"{sz.accounts} sandbox accounts, each {sz.customers} customers, {sz.invoices} invoices, "
            f"{sz.transactions} transactions; {sz.latency * 1000:.0f} ms added per request; per_page {sz.per_page}",
            f"each worker runs {sz.concurrency} jobs at once (`--concurrency`); a job pulls one stream of one account",
            "wall s: from starting the workers until every account's CSV files equal its data (start-up included)",
            "store: one PostgreSQL database, one schema per account; the sandbox runs in the bench's process",
            "workers' CPU s: user + system seconds of all worker processes; "
            f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
        ],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small accounts: a smoke run")
    parser.add_argument("--latency", type=float, help="seconds added to every sandbox response")
    parser.add_argument("--concurrency", type=int, help="jobs each worker runs at once")
    parser.add_argument("--workers", type=int, action="append", help="worker counts to run (repeatable)")
    args = parser.parse_args(argv)
    sz = WorkerSizes.quick() if args.quick else WorkerSizes()
    if args.latency is not None:
        sz.latency = args.latency
    if args.concurrency is not None:
        sz.concurrency = args.concurrency
    if args.workers:
        sz.workers = tuple(args.workers)
    from run import table

    from syncd import log

    log.configure(level="warning")
    with tempfile.TemporaryDirectory(prefix="syncd-bench-workers-") as work:
        workers(sz, Path(work), table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
