"""Benchmarks: syncd against the baseline extractor, tap-invoiced 0.3.0, measured in one run.

    bash bench/setup_tap.sh                       # once: the baseline in bench/.venv-tap
    .venv/bin/python bench/run.py                 # all four, full size (about 10 minutes)
    .venv/bin/python bench/run.py --quick         # smoke run, under a minute
    .venv/bin/python bench/run.py --only drift --invoices 50000

Scenarios (each prints a table; nothing is asserted, the numbers are the result):
  throughput  records/s, requests, wall time, peak RSS and CPU of each, at 50 ms and 0 ms latency
  scale       syncd only: CPU per record of the sync at 10k / 100k / 200k invoices, peak RSS,
              store and output sizes (CSV and ledger connectors)
  drift       invoices missing or stale after a sync with concurrent edits, and one more
  resume      invoices missing or stale after a kill in the middle of a bulk-edit second
  429         what each does on HTTP 429 with Retry-After, and its share of 429s
  resume-first  syncd only: invoice pages a killed-and-resumed first sync reads vs an uninterrupted one
  workers     syncd only, only when asked (`--only workers`, needs PostgreSQL): a 20-account
              backfill by 1, 2 and 4 worker processes, and the scaling factor (bench/workers_bench.py)
  shared-pace   syncd only: 1 and 3 processes of one account, each pacing alone or sharing the
                pace through a PostgreSQL store: share of 429s and % of the rate limit used

--syncd-only skips the baseline (when bench/.venv-tap is not set up): its rows are left out.

Everything talks to 127.0.0.1 only: the sandbox (syncd.sandbox) is served on loopback.
"""

from __future__ import annotations

import argparse
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from procs import TapRun, run_syncd, run_tap  # noqa: E402

SCENARIOS = ("throughput", "scale", "drift", "resume", "429", "resume-first", "shared-pace")
OPT_IN = ("workers",)  # run only when named: it needs the PostgreSQL server
TAP = "tap-invoiced 0.3.0"
SYNCD = "syncd"


# -- sizes ----------------------------------------------------------------------------------


@dataclass
class Sizes:
    """Every knob of a bench run; `--quick` shrinks them."""

    seed: int = 20240601
    latency: float = 0.05
    # throughput: the data set, at each latency
    invoices: int = 10_000
    customers: int = 1_000
    transactions: int = 5_000
    latencies: tuple[float, ...] = (0.05, 0.0)
    # scale: syncd alone, 0 ms latency, CSV + ledger
    scale_invoices: tuple[int, ...] = (10_000, 100_000, 200_000)
    tap_budget: float = 240.0  # seconds the baseline may run before its rate is extrapolated
    windows: int | None = None  # syncd's streams.invoices.windows (None: its default)
    # drift
    drift_invoices: int = 20_000
    drift_edit_rate: float = 10.0  # concurrent edits per second while the first sync runs
    # resume
    resume_invoices: int = 10_000
    bulk: int = 1_000  # invoices touched in one second
    kill_after_pages: int = 3  # pages of the bulk second read before the kill
    # 429
    rl_invoices: int = 10_000
    # Token bucket: requests per second, burst 1. The baseline's 60 s sleeps are scaled down
    # to 1 s (tap_sleep_scale). About 115 requests: long enough that what syncd's pacer
    # learns from its first 429s is a small part of the run.
    rl_rate: float = 5.0
    tap_sleep_scale: float = 1 / 60  # the tap's 60 s sleeps really last 1 s (asked values recorded)
    # resumed first sync
    rf_invoices: int = 10_000
    # seconds each holding rf_bulk invoices (bulk edits before the sync): more than a page of
    # each falls in every date window, so the windows deep-scan them
    rf_bulk_seconds: int = 4
    rf_bulk: int = 1_000
    # shared pace: one process walks three streams, or three one each (per_page 10), one bucket
    sp_records: int = 1_000
    sp_rate: float = 10.0
    syncd_only: bool = False

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            invoices=3_000,
            customers=100,
            transactions=500,
            scale_invoices=(3_000, 10_000),
            tap_budget=30.0,
            drift_invoices=3_000,
            drift_edit_rate=10.0,
            resume_invoices=1_500,
            bulk=500,
            kill_after_pages=2,
            rl_invoices=400,
            rf_invoices=3_000,
            rf_bulk_seconds=2,
            rf_bulk=600,
            sp_records=300,
        )


# -- output ---------------------------------------------------------------------------------


def table(title: str, header: list[str], rows: list[list[Any]], notes: Sequence[str] = ()) -> str:
    cells = [[_fmt(c) for c in row] for row in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [f"\n## {title}", ""]
    for n, row in enumerate(cells):
        lines.append("| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|")
    lines += [""] + [f"- {note}" for note in notes]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def say(text: str) -> None:
    print(f"  … {text}", file=sys.stderr, flush=True)


# -- the sandbox ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def sandbox_inproc(**config: Any) -> Iterator[Any]:
    """A sandbox served from this process (its data and knobs are reachable)."""
    from syncd import log
    from syncd.sandbox import Sandbox, SandboxConfig

    log.configure(level="warning")  # the tables are the output, not the sandbox's log lines
    sandbox = Sandbox(SandboxConfig(**config))
    sandbox.url = sandbox.start(host="127.0.0.1", port=0)
    try:
        yield sandbox
    finally:
        sandbox.stop()


@contextmanager
def sandbox_process(**config: Any) -> Iterator[tuple[str, str]]:
    """A sandbox in its own process (no GIL shared with anyone): yields (url, api key)."""
    port = _free_port()
    argv = [sys.executable, "-m", "syncd.sandbox", "--host", "127.0.0.1", "--port", str(port)]
    for key, value in config.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        url, key = _read_banner(proc, port)
        yield url, key
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


BANNER = "syncd sandbox: serving "


def _read_banner(proc: subprocess.Popen[str], port: int, timeout: float = 120.0) -> tuple[str, str]:
    """The sandbox CLI prints `syncd sandbox: serving URL api_key=KEY` once it listens; read it."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line.rstrip())
        if line.startswith(BANNER):
            url, _, key = line[len(BANNER) :].strip().partition(" api_key=")
            if f":{port}" not in url:
                raise RuntimeError(f"sandbox serves {url}, expected port {port}")
            # Keep draining its output so the child never blocks on a full pipe.
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return url, key
    raise RuntimeError("sandbox did not start: " + " | ".join(seen[-5:]))


def invoice_versions(sandbox: Any, stream: str = "invoices") -> dict[str, int]:
    return {str(o["id"]): int(o["updated_at"]) for o in sandbox.data.list(stream)}


def compare(expected: dict[str, int], got: dict[str, int]) -> tuple[int, int, int]:
    """(missing, stale, extra): ids absent, ids with an older updated_at, ids not in the sandbox."""
    missing = sum(1 for rid in expected if rid not in got)
    stale = sum(1 for rid, ts in expected.items() if rid in got and got[rid] < ts)
    extra = sum(1 for rid in got if rid not in expected)
    return missing, stale, extra


def syncd_versions(store_path: Path, stream: str = "invoices") -> dict[str, int]:
    """What syncd holds: (id, updated_at) of every raw record in its store."""
    from syncd.store import Store

    store = Store.open(f"sqlite:///{store_path}")
    try:
        return {
            r.id: r.updated_at for batch in store.iter_raw(stream, include_deleted=False) for r in batch
        }
    finally:
        store.close()


def csv_mismatch(sandbox: Any, out: Path, table_name: str = "invoices") -> int | None:
    """Rows of syncd's CSV table that differ from the sandbox's data (missing + stale + extra)."""
    try:
        from tests.engine.helpers import expected_csv, read_csv_dir
    except ImportError:
        return None
    want = expected_csv(sandbox).get(table_name, [])[1:]
    got = read_csv_dir(out).get(table_name, [])[1:]
    got_set = {tuple(r) for r in got}
    want_set = {tuple(r) for r in want}
    return len(want_set - got_set) + len(got_set - want_set)


def merge(*runs: TapRun, stream: str = "invoices") -> dict[str, int]:
    """A Singer target's view: every RECORD upserted by key, in the order emitted."""
    out: dict[str, int] = {}
    for run in runs:
        out.update(run.latest.get(stream, {}))
    return out


# -- scenarios ------------------------------------------------------------------------------


def throughput(sz: Sizes, work: Path) -> list[str]:
    """The issue's data set at each latency: the baseline (customers + invoices, all it has)
    and syncd (customers, invoices and transactions), their records/s and the ratio."""
    return [_throughput_at(sz, work, latency) for latency in sz.latencies]


def _throughput_at(sz: Sizes, work: Path, latency: float) -> str:
    ms = f"{latency * 1000:.0f} ms"
    say(f"throughput: starting the sandbox process ({sz.invoices:,} invoices, {ms} latency)")
    with sandbox_process(
        seed=sz.seed,
        customers=sz.customers,
        invoices=sz.invoices,
        transactions=sz.transactions,
        latency=latency,
    ) as (url, key):
        tap = None
        if not sz.syncd_only:
            say(f"throughput: {TAP} (budget {sz.tap_budget:.0f} s)")
            tap = run_tap(
                url, key, keep=False, budget=sz.tap_budget, workdir=work, log_path=work / "tap-throughput.log"
            )
        say(f"throughput: {SYNCD}")
        syncd = _syncd_all_streams(url, key, sz, work, f"throughput-{latency * 1000:.0f}ms")
    tap_records = sz.customers + sz.invoices
    notes = [
        f"sandbox: {sz.customers:,} customers, {sz.invoices:,} invoices, {sz.transactions:,} transactions, "
        f"{ms} added per request, own process; the baseline reads customers + invoices "
        f"({tap_records:,} records: it has no transactions stream), syncd all three "
        f"({tap_records + sz.transactions:,})",
        "records/s = records delivered / wall time of the whole process (start-up included)",
        "the baseline writes Singer messages to a pipe (no loader behind it); syncd maps every record "
        "and writes CSV files and its SQLite checkpoint store",
        "records = distinct records delivered (syncd: written to the CSV connector; a page's re-read "
        "boundary second is not counted again); fetched = items in the responses",
        "CPU = user + system seconds of that process alone (the sandbox has its own), start-up included; "
        "syncd's start-up (imports, set-up before the sync) is its own column",
    ]
    syncd_rate = syncd.delivered / syncd.proc.wall if syncd.proc.wall else 0.0
    if not syncd.ok:
        notes.append(f"syncd did not finish cleanly: exit {syncd.proc.returncode}, {syncd.report.get('error')}")
        notes += [f"  syncd stderr: {line}" for line in syncd.proc.stderr_tail[-5:]]
    header = ["run", "records", "fetched", "requests", "wall s", "records/s", "peak RSS MiB", "CPU s",
              "start-up CPU s", "CPU µs/record"]
    syncd_row = [
        SYNCD, syncd.delivered, syncd.fetched, syncd.requests, syncd.proc.wall, syncd_rate,
        syncd.proc.peak_rss_mb, syncd.proc.cpu, syncd.report.get("cpu_start"),
        _per_record(syncd.proc.cpu, syncd.delivered),
    ]
    title = f"Throughput, {ms} latency"
    if tap is None:
        notes.append("baseline not run (--syncd-only)")
        return table(title, header, [syncd_row], notes)
    tap_rate = tap.total / tap.proc.wall if tap.proc.wall else 0.0
    tap_wall = tap.proc.wall
    tap_label = TAP
    if tap.proc.killed == "budget" or tap.total < tap_records:
        if tap.proc.killed == "budget":
            tap_wall = tap_records / tap_rate if tap_rate else float("inf")
            tap_label = f"{TAP} (extrapolated)"
            notes.append(
                f"the baseline was stopped at its {sz.tap_budget:.0f} s budget after {tap.total:,} of "
                f"{tap_records:,} records; its wall time is extrapolated at its measured rate"
            )
        else:
            notes.append(f"the baseline ended early: exit {tap.proc.returncode}, {tap.summary.get('error')}")
    rows = [
        [tap_label, tap.total, tap.total, tap.requests, tap_wall, tap_rate, tap.proc.peak_rss_mb, tap.proc.cpu,
         None, _per_record(tap.proc.cpu, tap.total)],
        syncd_row,
        [
            "ratio syncd / baseline",
            None,
            None,
            None,
            (syncd.proc.wall / tap_wall) if tap_wall else None,
            (syncd_rate / tap_rate) if tap_rate else None,
            syncd.proc.peak_rss_mb / tap.proc.peak_rss_mb if tap.proc.peak_rss_mb else None,
            None,
            None,
            None,
        ],
    ]
    return table(title, header, rows, notes)


def _syncd_all_streams(url: str, key: str, sz: Sizes, work: Path, tag: str, *, ledger: bool = False) -> Any:
    """syncd reading customers, invoices and transactions; store, outputs and log named by `tag`."""
    return run_syncd(
        url,
        key,
        store=work / f"{tag}.db",
        out=work / f"{tag}-out",
        streams="customers,invoices,transactions",
        windows=sz.windows,
        log_path=work / f"syncd-{tag}.log",
        ledger=ledger,
    )


def scale(sz: Sizes, work: Path) -> list[str]:
    """syncd alone, CSV and ledger connectors on, 0 ms latency, at growing sizes: CPU per
    record of the sync itself (flat is the target), peak RSS, and the store against the
    outputs it feeds."""
    rows = []
    for invoices in sz.scale_invoices:
        customers, transactions = max(100, invoices // 10), invoices // 2
        say(f"scale: {invoices:,} invoices, sandbox starting")
        with sandbox_process(
            seed=sz.seed, customers=customers, invoices=invoices, transactions=transactions, latency=0.0
        ) as (url, key):
            say(f"scale: {invoices:,} invoices, {SYNCD}")
            tag = f"scale-{invoices}"
            run = _syncd_all_streams(url, key, sz, work, tag, ledger=True)
        store_mb = sum(p.stat().st_size for p in work.glob(f"{tag}.db*")) / 2**20
        out_mb = sum(p.stat().st_size for p in (work / f"{tag}-out").glob("*") if p.is_file()) / 2**20
        cpu_sync = run.report.get("cpu_sync")
        rows.append([
            f"{invoices:,}" + ("" if run.ok else " (failed)"), run.delivered, run.proc.wall,
            run.delivered / run.proc.wall if run.proc.wall else None, run.report.get("cpu_start"), cpu_sync,
            _per_record(cpu_sync, run.delivered) if cpu_sync is not None else None,
            run.proc.peak_rss_mb, store_mb, out_mb, store_mb / out_mb if out_mb else None,
        ])
        shutil.rmtree(work / f"{tag}-out", ignore_errors=True)
        for path in work.glob(f"{tag}.db*"):
            path.unlink()
    notes = [
        "sandbox: invoices as named, customers a tenth of them (at least 100), transactions half; 0 ms latency",
        "syncd reads all three streams into the CSV and hledger connectors (mappings/csv.toml, ledger.toml)",
        "sync CPU = user + system seconds of the syncd process (all threads) from the start of the sync "
        "to its end; start-up CPU (imports, set-up) is its own column",
        "store = the SQLite file with its WAL; outputs = the CSV files and the journal",
    ]
    header = ["invoices", "records", "wall s", "records/s", "start-up CPU s", "sync CPU s",
              "sync CPU µs/record", "peak RSS MiB", "store MiB", "outputs MiB", "store / outputs"]
    return [table("CPU per record, memory and store size by size", header, rows, notes)]


def _per_record(cpu: float, records: int) -> float | None:
    """CPU microseconds per record delivered (start-up included)."""
    return cpu / records * 1e6 if records else None


def drift(sz: Sizes, work: Path) -> list[str]:
    config = {"seed": sz.seed, "customers": max(20, sz.drift_invoices // 50), "invoices": sz.drift_invoices,
              "transactions": sz.drift_invoices // 5, "latency": sz.latency}
    rows = []
    # Baseline: a sync while edits happen, then one more with the data at rest.
    with sandbox_inproc(**config) as sb:
        say(f"drift: {TAP}, first sync with {sz.drift_edit_rate:g} edits/s")
        edits0 = _edits(sb)
        sb.knobs.edit_rate = sz.drift_edit_rate
        first = run_tap(sb.url, sb.api_key, workdir=work, log_path=work / "tap-drift-1.log")
        sb.knobs.edit_rate = 0.0
        edited = _edits(sb) - edits0 if edits0 is not None else None
        after1 = compare(invoice_versions(sb), merge(first))
        say(f"drift: {TAP}, one more sync")
        second = run_tap(sb.url, sb.api_key, state=first.state, workdir=work, log_path=work / "tap-drift-2.log")
        after2 = compare(invoice_versions(sb), merge(first, second))
        rows.append([TAP, edited, first.proc.wall, *after1[:2], *after2[:2], None])
    with sandbox_inproc(**config) as sb:
        say(f"drift: {SYNCD}, first sync with {sz.drift_edit_rate:g} edits/s")
        store, out = work / "drift.db", work / "drift-out"
        edits0 = _edits(sb)
        sb.knobs.edit_rate = sz.drift_edit_rate
        first_s = run_syncd(sb.url, sb.api_key, store=store, out=out, streams="customers,invoices",
                            windows=sz.windows, log_path=work / "syncd-drift-1.log")
        sb.knobs.edit_rate = 0.0
        edited = _edits(sb) - edits0 if edits0 is not None else None
        after1 = compare(invoice_versions(sb), syncd_versions(store))
        say(f"drift: {SYNCD}, one more sync")
        second_s = run_syncd(sb.url, sb.api_key, store=store, out=out, streams="customers,invoices",
                             windows=sz.windows, log_path=work / "syncd-drift-2.log")
        after2 = compare(invoice_versions(sb), syncd_versions(store))
        rows.append([SYNCD, edited, first_s.proc.wall, *after1[:2], *after2[:2], csv_mismatch(sb, out)])
        problems = [f"syncd run {n}: {r.report.get('error') or r.report.get('streams')}"
                    for n, r in ((1, first_s), (2, second_s)) if not r.ok]
    notes = [
        f"{sz.drift_invoices:,} invoices, {sz.latency * 1000:.0f} ms latency; the sandbox's concurrent-edit "
        f"knob at {sz.drift_edit_rate:g} edits/s during the first sync only; a fresh sandbox with the same "
        "seed for each contender",
        "missing = invoice absent from the output; stale = present with an older updated_at than the "
        "sandbox's (baseline: the RECORD messages upserted by id, as a Singer target would; syncd: its store)",
        "csv rows off = syncd's invoices.csv rows that differ from the sandbox's data through the mapping",
        *problems,
    ]
    return [
        table(
            "Page drift (concurrent edits during the sync)",
            ["run", "edits during 1st sync", "1st sync s", "missing after 1st", "stale after 1st",
             "missing after 2nd", "stale after 2nd", "csv rows off"],
            rows,
            notes,
        )
    ]


def _edits(sandbox: Any) -> int | None:
    value = getattr(sandbox.stats, "edits", None)
    return int(value) if value is not None else None


def resume(sz: Sizes, work: Path) -> list[str]:
    config = {"seed": sz.seed, "customers": max(20, sz.resume_invoices // 50), "invoices": sz.resume_invoices,
              "transactions": sz.resume_invoices // 5, "latency": sz.latency}
    rows = []

    def bulk_edit(sb: Any) -> int:
        ids = sorted(invoice_versions(sb), key=int)
        chosen = random.Random(sz.seed).sample(ids, min(sz.bulk, len(ids)))
        sb.data.touch_many("invoices", chosen)
        versions = invoice_versions(sb)
        return max(versions[i] for i in chosen)

    with sandbox_inproc(**config) as sb:
        say(f"resume: {TAP}, first sync")
        first = run_tap(sb.url, sb.api_key, workdir=work, log_path=work / "tap-resume-1.log")
        second_at = bulk_edit(sb)
        seen: list[int] = []

        def cue(run: TapRun, state: dict[str, Any]) -> bool:
            mark = state.get("bookmarks", {}).get("invoices", {}).get("updated_at", 0)
            if mark >= second_at:
                seen.append(mark)
            return len(seen) >= sz.kill_after_pages

        say(f"resume: {TAP}, bulk edit of {sz.bulk:,} invoices, kill after {sz.kill_after_pages} pages of it")
        killed = run_tap(sb.url, sb.api_key, state=first.state, kill_when=cue, workdir=work,
                         log_path=work / "tap-resume-2.log")
        got_before = killed.records.get("invoices", 0)
        say(f"resume: {TAP}, resumed from its last state")
        resumed = run_tap(sb.url, sb.api_key, state=killed.state, workdir=work, log_path=work / "tap-resume-3.log")
        missing, stale, _ = compare(invoice_versions(sb), merge(first, killed, resumed))
        rows.append([TAP, killed.proc.killed or "not killed", got_before, resumed.records.get("invoices", 0),
                     missing, stale, None])
    with sandbox_inproc(**config) as sb:
        store, out = work / "resume.db", work / "resume-out"
        say(f"resume: {SYNCD}, first sync")
        first_s = run_syncd(sb.url, sb.api_key, store=store, out=out, streams="customers,invoices")
        bulk_edit(sb)
        base = sb.stats.count("GET", "/invoices")

        def cue_s() -> bool:
            return sb.stats.count("GET", "/invoices") - base >= sz.kill_after_pages + 1

        say(f"resume: {SYNCD}, kill after {sz.kill_after_pages + 1} invoice requests into the bulk second")
        killed_s = run_syncd(sb.url, sb.api_key, store=store, out=out, streams="customers,invoices",
                             kill_when=cue_s)
        held = syncd_versions(store)
        say(f"resume: {SYNCD}, the next sync")
        resumed_s = run_syncd(sb.url, sb.api_key, store=store, out=out, streams="customers,invoices")
        missing, stale, _ = compare(invoice_versions(sb), syncd_versions(store))
        rows.append([SYNCD, killed_s.proc.killed or "not killed", None, resumed_s.fetched, missing, stale,
                     csv_mismatch(sb, out)])
        problems = [f"syncd run {n}: {r.report.get('error') or r.report.get('streams')}"
                    for n, r in ((1, first_s), (3, resumed_s)) if not r.ok]
        del held
    notes = [
        f"{sz.resume_invoices:,} invoices, {sz.latency * 1000:.0f} ms latency; after a first full sync, "
        f"{sz.bulk:,} invoices are edited in one second (`touch_many`); the next sync is SIGKILLed "
        f"{sz.kill_after_pages} pages into that second and then run again",
        "baseline: killed right after its STATE message for the last of those pages (the state a Singer "
        "target would have committed) and resumed from it; syncd: killed once the sandbox had served "
        f"{sz.kill_after_pages + 1} invoice list requests of that run, then `run_sync` again",
        "missing/stale as in the drift table, after the resumed sync",
        *problems,
    ]
    return [
        table(
            "Kill and resume in a bulk-edit second",
            ["run", "killed", "records before kill", "invoices on resume", "missing", "stale", "csv rows off"],
            rows,
            notes,
        )
    ]


def rate_limit(sz: Sizes, work: Path) -> list[str]:
    config = {"seed": sz.seed, "customers": 20, "invoices": sz.rl_invoices, "transactions": 0,
              "latency": 0.0, "rate_limit": sz.rl_rate, "burst": 1}
    rows = []

    def share(sb: Any) -> str:
        return f"{sb.stats.served_429 / sb.stats.total:.1%}" if sb.stats.total else "-"

    def bound(sb: Any, seconds: float | None) -> str:
        """Requests answered (not 429) per second of the span of requests, as a share of the limit."""
        answered = sb.stats.total - sb.stats.served_429
        return f"{answered / seconds / sz.rl_rate:.0%}" if seconds else "-"

    @contextmanager
    def span(sb: Any) -> Iterator[list[float]]:
        """Seconds from the first request the sandbox saw to the last (sampled every 10 ms)."""
        seen: list[float] = []
        done = threading.Event()

        def watch() -> None:
            count = 0
            while not done.wait(0.01):
                if sb.stats.total != count:
                    count = sb.stats.total
                    seen.append(time.monotonic())

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        out: list[float] = []
        try:
            yield out
        finally:
            done.set()
            thread.join()
            out.append(seen[-1] - seen[0] if len(seen) > 1 else 0.0)

    if not sz.syncd_only:
        with sandbox_inproc(**config) as sb:
            say(f"429: {TAP} against a {sz.rl_rate:g} req/s token bucket")
            with span(sb) as tap_span:
                tap = run_tap(sb.url, sb.api_key, sleep_scale=sz.tap_sleep_scale, workdir=work,
                              log_path=work / "tap-429.log")
            served = sb.stats.served_429
            sleeps = tap.summary.get("sleeps", [])
            asked = sum(sleeps)
            rows.append([TAP, served, sb.stats.total, share(sb), bound(sb, tap_span[0]), len(sleeps), asked,
                         "ok" if not tap.summary.get("error") else str(tap.summary.get("error"))[:60], tap.total])
    with sandbox_inproc(**config) as sb:
        say(f"429: {SYNCD} against a {sz.rl_rate:g} req/s token bucket")
        with span(sb) as syncd_span:
            syncd = run_syncd(sb.url, sb.api_key, store=work / "rl.db", out=work / "rl-out",
                              streams="customers,invoices", retry_attempts=50, log_path=work / "syncd-429.log")
        rows.append([SYNCD, sb.stats.served_429, sb.stats.total, share(sb), bound(sb, syncd_span[0]),
                     None, syncd.proc.wall, "ok" if syncd.ok else str(syncd.report.get("error"))[:60],
                     syncd.delivered])
    notes = [
        f"{sz.rl_invoices:,} invoices; the sandbox answers 429 with Retry-After (seconds until the next token) "
        f"once its {sz.rl_rate:g} req/s bucket is empty",
        f"baseline: every sleep it asked for is recorded and really slept at 1/{round(1 / sz.tap_sleep_scale)} "
        "of its length; 'seconds waited' is what it asked for in total",
        "syncd: 'seconds waited' is its whole wall time (it sleeps what Retry-After says)",
        "requests = every request the sandbox received; 429 share = 429s served / requests",
        "% of bound = requests answered (not 429) / seconds from the first request to the last / the rate "
        "limit",
        *(["baseline not run (--syncd-only)"] if sz.syncd_only else []),
    ]
    return [
        table(
            "HTTP 429 with Retry-After",
            ["run", "429s served", "requests", "429 share", "% of bound", "sleeps", "seconds waited", "outcome",
             "records"],
            rows,
            notes,
        )
    ]


def resume_first(sz: Sizes, work: Path) -> list[str]:
    """Invoice pages of a first sync killed halfway and resumed, against an uninterrupted one."""
    config = {"seed": sz.seed, "customers": max(20, sz.rf_invoices // 50), "invoices": sz.rf_invoices,
              "transactions": 0, "latency": sz.latency}

    def bulk_seconds(sb: Any) -> None:
        # Bulk edits in the past: rf_bulk_seconds seconds spread over the listing, rf_bulk invoices each.
        table_ = sb.data.tables["invoices"]
        rng = random.Random(sz.seed)
        with sb.data.lock:
            stamps = sorted(u for u, _ in table_.index)
            ids = rng.sample(sorted(table_.rows), min(len(table_.rows), sz.rf_bulk * sz.rf_bulk_seconds))
            for k in range(sz.rf_bulk_seconds):
                second = stamps[len(stamps) * (k + 1) // (sz.rf_bulk_seconds + 1)]
                for oid in ids[k * sz.rf_bulk : (k + 1) * sz.rf_bulk]:
                    table_.put({**table_.rows[oid], "updated_at": second})

    rows = []
    with sandbox_inproc(**config) as sb:
        bulk_seconds(sb)
        say(f"resume-first: {SYNCD}, an uninterrupted first sync")
        whole = run_syncd(sb.url, sb.api_key, store=work / "rf-whole.db", out=work / "rf-whole-out",
                          streams="customers,invoices", windows=sz.windows)
        pages = sb.stats.count("GET", "/invoices")
        rows.append(["uninterrupted", pages, None, pages, None, whole.ok])
    with sandbox_inproc(**config) as sb:
        bulk_seconds(sb)
        half = pages // 2
        say(f"resume-first: {SYNCD}, a first sync killed after {half} invoice requests, then resumed")
        killed = run_syncd(sb.url, sb.api_key, store=work / "rf.db", out=work / "rf-out",
                           streams="customers,invoices", windows=sz.windows,
                           kill_when=lambda: sb.stats.count("GET", "/invoices") >= half)
        before = sb.stats.count("GET", "/invoices")
        resumed = run_syncd(sb.url, sb.api_key, store=work / "rf.db", out=work / "rf-out",
                            streams="customers,invoices", windows=sz.windows)
        total = sb.stats.count("GET", "/invoices")
        rows.append(["killed + resumed", before, total - before, total, f"{total / pages - 1:+.1%}",
                     resumed.ok and csv_mismatch(sb, work / "rf-out") == 0])
        del killed
    notes = [
        f"{sz.rf_invoices:,} invoices, {sz.latency * 1000:.0f} ms latency; before the sync, "
        f"{sz.rf_bulk_seconds} seconds spread over the listing each get {sz.rf_bulk:,} invoices (bulk edits)",
        "requests = GET /invoices served (pages and window planning included); the killed "
        "run is SIGKILLed once the sandbox served half the uninterrupted run's requests",
        "target: a resumed first sync reads at most 5 % more than an uninterrupted one",
    ]
    return [
        table(
            "Resumed first sync",
            ["run", "requests before kill", "requests after", "invoice requests", "more than whole", "ok"],
            rows,
            notes,
        )
    ]


def workers_scenario(sz: Sizes, work: Path) -> list[str]:
    """bench/workers_bench.py's table (its quick sizes under --quick)."""
    from workers_bench import WorkerSizes, workers

    wsz = WorkerSizes.quick() if sz.invoices < Sizes().invoices else WorkerSizes()
    if sz.latency != Sizes().latency:
        wsz.latency = sz.latency
    return [workers(wsz, work, table)]


def shared_pace(sz: Sizes, work: Path) -> list[str]:
    """Processes of one account against one token bucket: paced alone, or sharing one pace."""
    import os
    import uuid

    import sqlalchemy

    from tests.invoiced.pace_walker import run_walkers

    pg = os.environ.get("SYNCD_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    admin = sqlalchemy.create_engine(pg)
    try:
        with admin.connect():
            pass
    except sqlalchemy.exc.OperationalError as exc:
        say(f"shared-pace: skipped, PostgreSQL not reachable ({type(exc).__name__})")
        return []
    config = {"seed": sz.seed, "customers": sz.sp_records, "invoices": sz.sp_records, "transactions": sz.sp_records,
              "latency": 0.0, "rate_limit": sz.sp_rate, "burst": int(sz.sp_rate)}
    rows = []
    for processes, shared in ((1, False), (1, True), (3, False), (3, True)):
        schema = f"bench_{uuid.uuid4().hex[:10]}"  # a fresh store: every run learns its pace anew
        with admin.begin() as conn:
            conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
        try:
            with sandbox_inproc(**config) as sb:
                mode = "shared" if shared else "alone"
                say(f"shared-pace: {processes} process(es), {mode}")
                store = f"{pg}?options=-csearch_path%3D{schema}" if shared else None
                streams = [["customers", "invoices", "transactions"]] if processes == 1 else [
                    ["customers"], ["invoices"], ["transactions"]]
                results = run_walkers(sb.url, sb.api_key, streams, store, per_page=10)
                span = max(r["walk"][1] for r in results) - min(r["walk"][0] for r in results)
                answered = sb.stats.total - sb.stats.served_429
                rows.append([processes, mode, sb.stats.total, sb.stats.served_429,
                             f"{sb.stats.served_429 / sb.stats.total:.1%}",
                             f"{answered / span / sz.sp_rate:.0%}", round(span, 1)])
        finally:
            with admin.begin() as conn:
                conn.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()
    notes = [
        f"token bucket {sz.sp_rate:g} req/s, burst {int(sz.sp_rate)}; {sz.sp_records:,} customers, invoices and "
        "transactions (per_page 10), one thread per stream: 1 process walks all three, 3 one each",
        "alone: each process's own pacer (before #16); shared: one pace in the store's `pace` row",
        "% of bound = answered requests / walk span / rate limit",
    ]
    return [table("One account, several processes: shared pace",
                  ["processes", "pacing", "requests", "429s", "429 share", "% of bound", "seconds"], rows, notes)]


RUNNERS: dict[str, Callable[[Sizes, Path], list[str]]] = {
    "throughput": throughput,
    "scale": scale,
    "drift": drift,
    "resume": resume,
    "429": rate_limit,
    "resume-first": resume_first,
    "workers": workers_scenario,
    "shared-pace": shared_pace,
}



def byte_compile() -> None:
    """Byte-compile syncd's own modules first, as installing a wheel does (pip compiles at
    install, and the baseline's virtualenv is installed that way). From an editable checkout
    with PYTHONDONTWRITEBYTECODE set (some environments do), every run would otherwise compile
    them from source: about 0.1 s of start-up CPU that no installed syncd pays."""
    dirs = [str(ROOT / name) for name in ("syncd", "connectors")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *dirs], check=True)
    say("byte-compiled syncd and connectors (as an installed wheel is)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=SCENARIOS + OPT_IN, help="run only this scenario (repeatable)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run under a minute")
    parser.add_argument("--invoices", type=int, help="invoices in the throughput sandbox")
    parser.add_argument("--scale", type=int, action="append", help="invoices of one scale run (repeatable)")
    parser.add_argument("--tap-budget", type=float, help="seconds the baseline may run in the throughput bench")
    parser.add_argument("--windows", type=int, help="syncd's parallel date windows for invoices")
    parser.add_argument("--latency", type=float, help="seconds added to every sandbox response")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, stores, CSV)")
    parser.add_argument("--syncd-only", action="store_true", help="leave the baseline out (no bench/.venv-tap)")
    args = parser.parse_args(argv)
    sz = Sizes.quick() if args.quick else Sizes()
    if args.invoices is not None:
        sz.invoices = args.invoices
    if args.scale:
        sz.scale_invoices = tuple(args.scale)
    if args.tap_budget is not None:
        sz.tap_budget = args.tap_budget
    if args.windows is not None:
        sz.windows = args.windows
    if args.latency is not None:
        sz.latency = args.latency
        sz.latencies = (args.latency,)
    sz.syncd_only = args.syncd_only
    work = Path(tempfile.mkdtemp(prefix="syncd-bench-"))
    started = time.monotonic()
    byte_compile()
    try:
        for name in args.only or SCENARIOS:
            RUNNERS[name](sz, work)
    finally:
        if args.keep:
            print(f"\nwork folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n(bench took {time.monotonic() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
