"""A cluster of real `syncd worker` processes over one PostgreSQL database and one
multi-account sandbox: its configuration, its processes (killed and restarted), and what the
tests and bench/workers_bench.py read back (run logs, outputs, payments)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
CSV_MAPPING = ROOT / "mappings" / "csv.toml"
PG_URL = os.environ.get("SYNCD_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SCHEMA_PREFIX = "syncd_"  # syncd.accounts: each account's store is the schema syncd_NAME


# -- the database --------------------------------------------------------------------------------


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}", query=""))


@contextlib.contextmanager
def fresh_database(prefix: str = "syncd_cluster") -> Iterator[str]:
    """A new, empty PostgreSQL database (SQLAlchemy URL), dropped afterwards with whatever
    connections a killed worker left behind."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = PG_URL.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(PG_URL, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_URL.replace("+psycopg", ""), connect_timeout=3):
            return True
    except Exception:
        return False


# -- the sandbox's accounts ----------------------------------------------------------------------


def sandbox_accounts(sandbox: Any) -> list[Any]:
    """The sandbox's accounts (each with `.data`, `.api_key`, `.stats`, `.knobs`), in the order
    of their names (`sandbox.accounts`: acct01 ... by name)."""
    return list(sandbox.accounts.values())


def served(accounts: list[Any]) -> int:
    """Requests the sandbox received, over every account."""
    return sum(a.stats.total for a in accounts)


# -- the configuration ---------------------------------------------------------------------------


def key_variable(name: str) -> str:
    return f"PROOF_KEY_{name.upper()}"  # not SYNCD_*: that prefix is syncd's own settings


def write_config(
    path: Path,
    url: str,
    store_url: str,
    names: list[str],
    *,
    per_page: int = 5,
    every: int = 1,
    pushback: bool = True,
    windows: int = 1,
    tick: int = 1,
    stall_timeout: int = 3,
) -> Path:
    """syncd.toml for the cluster: top-level sections shared by every account (CSV files in
    each account's `out/`, payments from its `inbox.csv`), one `[accounts.NAME]` table each."""
    lines = [
        "[invoiced]",
        f'base_url = "{url}"',
        f"per_page = {per_page}",
        "retry_budget = 60.0",
        "timeout = 10.0",
        "[store]",
        f'url = "{store_url}"',
        "[streams.invoices]",
        f"windows = {windows}",
        "[streams.transactions]",
        f"windows = {windows}",
        "[connectors.csv]",
        "enabled = true",
        'directory = "out"',
        f'mapping = "{CSV_MAPPING}"',
        "render_every = 0.0",
    ]
    if pushback:
        lines.append('inbox = "inbox.csv"')
    lines += [
        "[pushback]",
        f"enabled = {'true' if pushback else 'false'}",
        "[daemon]",
        f"customers_every = {every}",
        f"invoices_every = {every}",
        f"transactions_every = {every}",
        f"pushback_every = {every}",
        "health_port = 0",
        "[worker]",
        f"tick = {tick}",  # seconds between passes that queue the jobs due
        f"stall_timeout = {stall_timeout}",  # a killed worker's jobs go to another after this
    ]
    for name in names:
        lines += [f"[accounts.{name}.invoiced]", f'api_key_env = "{key_variable(name)}"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name in names:
        account_dir(path, name).mkdir(parents=True, exist_ok=True)
    return path


def account_dir(config: Path, name: str) -> Path:
    """An account's state folder: `<config folder>/accounts/NAME` (syncd.accounts)."""
    return config.parent / "accounts" / name


def worker_env(accounts: list[Any], names: list[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    env["PYTHONUNBUFFERED"] = "1"
    for name, account in zip(names, accounts, strict=True):
        env[key_variable(name)] = account.api_key
    return env


# -- the worker processes ------------------------------------------------------------------------


@dataclass
class Incarnation:
    """One worker process: its unique name, pid, and when it ended (killed or stopped)."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    started: float
    ended: float | None = None
    killed: bool = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def holds(self, holder: str) -> bool:
        """Whether a run's holder (the worker's name, or host:pid) names this process."""
        return holder == self.name or holder.endswith(f":{self.pid}") or holder.startswith(f"{self.name}@")


@dataclass
class Cluster:
    """`size` worker slots; each start of a slot is a new incarnation with its own name."""

    config: Path
    env: dict[str, str]
    size: int
    concurrency: int = 2
    logs: Path | None = None
    live: dict[int, Incarnation] = field(default_factory=dict)
    every: list[Incarnation] = field(default_factory=list)

    def start(self, slot: int) -> Incarnation:
        n = sum(1 for inc in self.every if inc.name.startswith(f"w{slot}-"))
        name = f"w{slot}-{n}"
        logs = self.logs or self.config.parent
        log = logs / f"{name}.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                [
                    sys.executable, "-m", "syncd.cli", "--config", str(self.config), "worker",
                    "--name", name, "--concurrency", str(self.concurrency),
                    "--health-host", "127.0.0.1", "--health-port", "0",
                ],
                cwd=self.config.parent,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        inc = Incarnation(name, proc, log, time.time())
        self.live[slot] = inc
        self.every.append(inc)
        return inc

    def start_all(self) -> None:
        for slot in range(self.size):
            self.start(slot)

    def kill(self, slot: int) -> Incarnation:
        """SIGKILL the slot's process; its end is when it is known dead."""
        inc = self.live.pop(slot)
        inc.proc.send_signal(signal.SIGKILL)
        inc.proc.wait(30)
        inc.ended, inc.killed = time.time(), True
        return inc

    def stop_all(self, timeout: float = 60.0) -> dict[str, int | None]:
        """SIGTERM every live process and wait for it (SIGKILL past `timeout`): exit codes by name."""
        for inc in self.live.values():
            if inc.proc.poll() is None:
                inc.proc.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        deadline = time.monotonic() + timeout
        for inc in self.live.values():
            try:
                codes[inc.name] = inc.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                inc.proc.kill()
                inc.proc.wait(10)
                codes[inc.name] = None
            inc.ended = time.time()
        self.live.clear()
        return codes

    def crashed(self) -> list[Incarnation]:
        """Live slots whose process exited on its own."""
        return [inc for inc in self.live.values() if inc.proc.poll() is not None]

    def tails(self, lines: int = 15) -> str:
        out = []
        for inc in self.every:
            text = inc.log.read_text(encoding="utf-8", errors="replace").splitlines()
            out.append(
                f"--- {inc.name} (pid {inc.pid}, exit {inc.proc.poll()}):\n" + "\n".join(text[-lines:])
            )
        return "\n".join(out)

    def holder_end(self, holder: str) -> float | None:
        """When the process named by a run's holder (worker name, or host:pid) ended."""
        for inc in self.every:
            if inc.holds(holder):
                return inc.ended
        raise AssertionError(f"run holder {holder!r} is none of the workers started")


# -- what the stores say -------------------------------------------------------------------------


def store_runs(database_url: str, names: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Every account's Run rows (as dicts), read straight from its schema."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return {
                name: [
                    dict(row._mapping)
                    for row in conn.execute(
                        sqlalchemy.text(f'SELECT * FROM "{SCHEMA_PREFIX}{name}".run ORDER BY id')
                    )
                ]
                for name in names
            }
    finally:
        engine.dispose()


def open_run_holders(engine: Any, names: list[str], job: str, holder: str) -> set[str]:
    """Holders of runs that have not ended, over every account whose store exists yet."""
    import sqlalchemy

    schemas = [f"{SCHEMA_PREFIX}{n}" for n in names]
    with engine.connect() as conn:
        made = {
            r[0]
            for r in conn.execute(
                sqlalchemy.text(
                    "SELECT table_schema FROM information_schema.columns "
                    "WHERE table_name = 'run' AND column_name = :job AND table_schema = ANY(:schemas)"
                ),
                {"job": job, "schemas": schemas},
            )
        }
        if not made:
            return set()
        union = " UNION ALL ".join(
            f'SELECT "{holder}" FROM "{schema}".run WHERE ended_at IS NULL AND "{job}" IS NOT NULL'
            for schema in sorted(made)
        )
        return {str(r[0]) for r in conn.execute(sqlalchemy.text(union)) if r[0]}


def connections(engine: Any) -> int:
    """Connections open to the cluster's database (this one included)."""
    import sqlalchemy

    with engine.connect() as conn:
        query = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        return int(conn.execute(sqlalchemy.text(query)).scalar_one())


@dataclass
class Interval:
    account: str
    job: str
    holder: str
    start: float
    end: float
    cut: bool  # its process was killed (or stopped) under it: it ends when that process did


def job_keys(job: str) -> list[str]:
    """The jobs a run was: `pull:customers,invoices` (a sync of several streams) is a pull of
    each; `push` is the account's push-back."""
    kind, _, streams = job.partition(":")
    return [f"{kind}:{s}" for s in streams.split(",")] if streams else [job]


def job_intervals(
    runs: dict[str, list[dict[str, Any]]], job: str, holder: str, end_of: Callable[[str], float | None]
) -> list[Interval]:
    """Each job run as a time interval.

    A run that never recorded its end, or that a later run marked `interrupted`, belongs to a
    process that died under it: it lasts until that process ended (the kill time recorded
    here), not until the takeover stamped it, so a takeover while the first process still
    ran shows as an overlap.
    """
    out = []
    for account, rows in runs.items():
        for row in rows:
            if not row.get(job):
                continue
            end = row["ended_at"]
            cut = end is None or row["status"] == "interrupted"
            if cut:
                end = end_of(str(row[holder]))
                assert end is not None, f"{account}: run {row['id']} ({row[job]}) is cut, its holder alive"
            for key in job_keys(str(row[job])):
                out.append(
                    Interval(account, key, str(row[holder]), float(row["started_at"]), float(end), cut)
                )
    return out


def overlaps(intervals: list[Interval]) -> list[tuple[Interval, Interval]]:
    """Pairs of runs of one (account, job) that were running at the same time."""
    found = []
    by_job: dict[tuple[str, str], list[Interval]] = {}
    for iv in intervals:
        by_job.setdefault((iv.account, iv.job), []).append(iv)
    for ivs in by_job.values():
        ivs.sort(key=lambda iv: iv.start)
        latest: Interval | None = None
        for iv in ivs:
            if latest is not None and iv.start < latest.end:
                found.append((latest, iv))
            if latest is None or iv.end > latest.end:
                latest = iv
    return found


# -- outputs and payments ------------------------------------------------------------------------


def csv_differences(account: Any, out: Path) -> list[str]:
    """How an account's CSV files differ from its sandbox data (empty: equal)."""
    from tests.engine.helpers import expected_csv, read_csv_dir

    want, got = expected_csv(account), read_csv_dir(out)
    problems = []
    for table, rows in want.items():
        have = got.get(table, [])
        if have != rows:
            missing = len([r for r in rows[1:] if r not in have[1:]])
            extra = len([r for r in have[1:] if r not in rows[1:]])
            problems.append(
                f"{table}.csv: {missing} missing/stale, {extra} extra" + ("" if have else " (no file)")
            )
    return problems


def decimal_column(out: Path, table: str, column: str) -> dict[str, Decimal]:
    """One money column of a CSV file by record id, read as Decimal."""
    from tests.engine.helpers import read_csv_dir

    rows = read_csv_dir(out).get(table, [])
    if not rows:
        return {}
    header = rows[0]
    i, c = header.index("id"), header.index(column)
    return {row[i]: Decimal(row[c]) for row in rows[1:] if row[c] != ""}
