"""Three real `syncd worker` processes, twenty sandbox accounts, workers SIGKILLed at moments
tied to progress and restarted: every account ends exact, no (account, job) run overlaps
another, and every payment is posted exactly once."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from syncd.pushback.validate import minor_units
from syncd.sandbox import Sandbox, SandboxConfig
from tests.pushback.helpers import open_invoices, pushed, write_inbox
from tests.worker.cluster import (
    Cluster,
    account_dir,
    connections,
    csv_differences,
    decimal_column,
    fresh_database,
    job_intervals,
    open_run_holders,
    overlaps,
    pg_available,
    sandbox_accounts,
    served,
    store_runs,
    worker_env,
    write_config,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(900)]

SEED = int(os.environ.get("SYNCD_CLUSTER_SEED", "20240716"))
ACCOUNTS = 20
WORKERS = 3
KILLS = 6
PAYMENTS = 3  # per account, pushed from its inbox
# Kill points: after this many more requests the sandbox received (over every account). A
# first pass of all twenty accounts takes about 400, so the kills land in the backfill.
KILL_AFTER = (10, 50)
JOB, HOLDER = "job", "holder"  # the Run columns naming the job and the process running it
JOBS = {"pull:customers", "pull:invoices", "pull:transactions", "push"}


def wait_until(
    check: Callable[[], Any],
    timeout: float,
    what: str,
    cluster: Cluster,
    done: Callable[[Any], bool] = bool,
    every: float = 0.02,
) -> Any:
    """Poll `check` until `done` says its answer will do; a worker that exits on its own fails
    at once."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        crashed = cluster.crashed()
        assert not crashed, f"worker {crashed[0].name} exited {crashed[0].proc.poll()}:\n{cluster.tails()}"
        last = check()
        if done(last):
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}\n{cluster.tails()}")


def busy_slots(cluster: Cluster, engine: Any, names: list[str], peak: list[int]) -> list[int]:
    """Slots whose live worker holds a run that has not ended (and the peak of connections)."""
    peak[0] = max(peak[0], connections(engine))
    holders = open_run_holders(engine, names, JOB, HOLDER)
    return sorted(slot for slot, inc in cluster.live.items() if any(inc.holds(h) for h in holders))


def payments_for(name: str, account: Any) -> tuple[list[dict[str, Any]], dict[int, Decimal]]:
    """PAYMENTS inbox rows on distinct open invoices, and the amount each invoice is to be paid."""
    rows, paid = [], {}
    for i, inv in enumerate(open_invoices(account, PAYMENTS, currency=None)):
        amount = (inv["balance"] / 4).quantize(Decimal(1).scaleb(-minor_units(inv["currency"])))
        rows.append(
            {
                "external_id": f"{name}-P{i}",
                "invoice": inv["number"],
                "amount": amount,
                "currency": inv["currency"],
            }
        )
        paid[inv["id"]] = amount
    return rows, paid


def test_killed_workers_lose_nothing_overlap_nothing_and_post_each_payment_once(tmp_path: Path) -> None:
    if not pg_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not reachable (CI must start it)")
        pytest.skip("PostgreSQL not reachable")
    rng = random.Random(SEED)
    sandbox = Sandbox(
        SandboxConfig(
            seed=SEED % 1000, customers=4, invoices=24, transactions=6, latency=0.01, accounts=ACCOUNTS
        )
    )
    sandbox.start(host="127.0.0.1", port=0)
    accounts = sandbox_accounts(sandbox)
    names = list(sandbox.accounts)  # acct01 ... acct20: valid [accounts.NAME] names
    assert len(accounts) == ACCOUNTS and len({a.api_key for a in accounts}) == ACCOUNTS

    with fresh_database() as database:
        config = write_config(tmp_path / "syncd.toml", sandbox.url, database, names, per_page=5)
        paid: dict[str, dict[int, Decimal]] = {}
        balances: dict[str, dict[int, Decimal]] = {}
        seeded: dict[str, int] = {}
        for name, account in zip(names, accounts, strict=True):
            rows, paid[name] = payments_for(name, account)
            write_inbox(account_dir(config, name) / "inbox.csv", rows)
            balances[name] = {i["id"]: i["balance"] for i in account.data.list("invoices")}
            seeded[name] = len(account.data.list("transactions"))

        cluster = Cluster(config, worker_env(accounts, names), WORKERS, concurrency=2)
        engine = sqlalchemy.create_engine(database)
        peak = [0]  # connections to the database, most seen at once
        kills: list[str] = []  # incarnations killed in a job
        try:
            cluster.start_all()
            for k in range(KILLS):
                target = served(accounts) + rng.randint(*KILL_AFTER)
                wait_until(
                    lambda t=target: served(accounts) >= t, 180, f"kill {k}: {target} requests", cluster
                )
                # The victim: a worker in the middle of a job (a run of its in the log that has
                # not ended); at the very end of the backfill there may be none for a while.
                busy = wait_until(
                    lambda: busy_slots(cluster, engine, names, peak), 60, "a worker in a job", cluster
                )
                slot = rng.choice(busy)
                kills.append(cluster.kill(slot).name)
                cluster.start(slot)

            def settled() -> bool | list[str]:
                peak[0] = max(peak[0], connections(engine))
                behind = []
                for name, account in zip(names, accounts, strict=True):
                    missing = set(_ids(paid[name], name)) - set(pushed(account))
                    problems = csv_differences(account, account_dir(config, name) / "out")
                    if missing or problems:
                        behind.append(f"{name}: {len(missing)} payments unposted; {'; '.join(problems)}")
                return behind or True

            wait_until(
                settled, 300, "every account to be synced and pushed", cluster, lambda r: r is True, every=1.0
            )
            codes = cluster.stop_all()
            runs = store_runs(database, names)
        finally:
            for inc in cluster.live.values():
                inc.proc.kill()
                inc.proc.wait(10)
            engine.dispose()
            sandbox.stop()

    assert len(kills) == KILLS, kills
    # Connections do not grow with the accounts: a worker holds its job queue's pool and the
    # stores of the jobs it runs, not an idle pool per account it ever served (that reached
    # PostgreSQL's max_connections, 100, at 20 accounts and 3 workers).
    assert peak[0] <= WORKERS * 16, f"{peak[0]} connections to the database at once"
    assert set(codes.values()) == {0}, f"workers stopped with {codes}\n{cluster.tails()}"

    for name, account in zip(names, accounts, strict=True):
        out = account_dir(config, name) / "out"
        assert csv_differences(account, out) == [], name
        totals = decimal_column(out, "invoices", "total")
        assert totals == {str(i["id"]): Decimal(i["total"]) for i in account.data.list("invoices")}, name
        amounts = decimal_column(out, "transactions", "amount")
        assert amounts == {str(t["id"]): Decimal(t["amount"]) for t in account.data.list("transactions")}, (
            name
        )

        # Every payment posted exactly once, nothing else posted, every invoice paid what it owes.
        posted = pushed(account)
        assert {ext: len(txs) for ext, txs in posted.items()} == dict.fromkeys(_ids(paid[name], name), 1), (
            name
        )
        assert len(account.data.list("transactions")) == seeded[name] + PAYMENTS, name
        for invoice_id, amount in paid[name].items():
            assert account.data.get("invoices", invoice_id)["balance"] == balances[name][invoice_id] - amount

    # No two runs of one job of one account at once, across workers and restarts; a run whose
    # worker was killed under it lasts until that kill.
    intervals = job_intervals(runs, JOB, HOLDER, cluster.holder_end)
    assert overlaps(intervals) == []
    for name in names:
        assert {iv.job for iv in intervals if iv.account == name} >= JOBS, name
    cut = [
        iv for iv in intervals if iv.cut and any(inc.holds(iv.holder) for inc in cluster.every if inc.killed)
    ]
    assert cut, "no kill landed while a job ran"


def _ids(paid: dict[int, Decimal], name: str) -> list[str]:
    return [f"{name}-P{i}" for i in range(len(paid))]
