"""The live progress view and the end-of-run summary, rendered to a recording console."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from rich.console import Console

from syncd import log
from syncd.cursor import CursorWalk
from syncd.delivery import StreamReport, close_targets, open_targets
from syncd.engine import SyncReport, SyncRun, connect
from syncd.invoiced import InvoicedClient, RetryPolicy
from syncd.progress import Progress
from syncd.store import Store
from syncd.summary import print_summary
from tests.engine.helpers import settings_for
from tests.engine.test_cursor import FakeListing

WIDTH = 100


def recording() -> Console:
    return Console(file=io.StringIO(), width=WIDTH, record=True, force_terminal=True, color_system=None)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def text_of(progress: Progress) -> str:
    console = recording()
    console.print(progress.render())
    return console.export_text()


@pytest.mark.parametrize(
    "records",
    [
        {i: 100 + i // 3 for i in range(95)},  # boundary seconds re-read by each page-1 query
        {i: 100 for i in range(57)} | {100 + i: 101 + i for i in range(5)},  # a deep scan
    ],
)
def test_walk_counts_each_record_once_and_expects_exactly_the_listing(records: dict[int, int]) -> None:
    listing = FakeListing(records)
    pages = list(CursorWalk(listing.fetch, {}, 0, 10))
    assert sum(len(p.items) for p in pages) > len(records)  # the re-reads the walk makes
    assert sum(p.new or 0 for p in pages) == len(records)
    assert {p.expected for p in pages} == {len(records)}


def test_walk_with_an_inclusive_bound_still_counts_each_record_once() -> None:
    listing = FakeListing({i: 100 + i // 3 for i in range(95)}, inclusive=True)
    pages = list(CursorWalk(listing.fetch, {}, 0, 10))
    assert sum(p.new or 0 for p in pages) == 95
    assert all(p.expected is not None and p.expected >= 95 for p in pages)


def test_walk_without_x_total_count_expects_nothing() -> None:
    listing = FakeListing({i: 100 + i for i in range(25)})

    def fetch(params: Any, next_url: str | None) -> Any:
        page = listing.fetch(params, next_url)
        page.total = None
        return page

    assert [p.expected for p in CursorWalk(fetch, {}, 0, 10)] == [None, None, None]


def test_view_shows_done_of_total_summed_over_windows_rate_and_eta() -> None:
    clock = Clock()
    progress = Progress(enabled=False, clock=clock)
    progress.begin(["invoices", "customers", "transactions"])
    clock.now += 2
    progress.advance("invoices", 100, partition="w:1:5", expected=4000, written={"csv": 100})
    progress.advance("invoices", 100, partition="w:6:", expected=4000, written={"csv": 200})
    progress.advance("customers", 50, expected=None, written={"csv": 50}, refused={"csv": 3})
    text = text_of(progress)
    invoices = next(line for line in text.splitlines() if line.startswith("invoices"))
    assert "200/8,000" in invoices and "2%" in invoices
    assert "100 rec/s" in invoices  # 200 records in 2 s
    assert "ETA 0:01:18" in invoices  # 7,800 left at 100/s
    customers = next(line for line in text.splitlines() if line.startswith("customers"))
    assert " 50 " in customers and "50/" not in customers and "ETA -:--:--" in customers
    assert "csv: 250 written, 3 refused" in text
    transactions = next(line for line in text.splitlines() if line.startswith("transactions"))
    assert " 0 " in transactions and "ETA -:--:--" in transactions  # begun, nothing read yet
    assert all(len(line) <= WIDTH for line in text.splitlines())


def test_finished_streams_show_their_count_as_total_and_failures_say_so() -> None:
    clock = Clock()
    progress = Progress(enabled=False, clock=clock)
    progress.advance("invoices", 90, expected=120)
    progress.advance("customers", 10, expected=10)
    clock.now += 1
    failed = StreamReport(error="HTTP 500")
    progress.finish({"invoices": StreamReport(), "customers": failed, "transactions": StreamReport()})
    text = text_of(progress)
    assert "90/90" in text and "done" in text
    assert "failed" in next(line for line in text.splitlines() if line.startswith("customers"))
    assert "0/0" in (line := next(line for line in text.splitlines() if line.startswith("transactions")))
    assert "up to date" in line
    assert "ETA" not in text


def test_waits_show_in_place_with_their_reason_until_they_end() -> None:
    clock = Clock()
    progress = Progress(enabled=False, clock=clock)
    progress.advance("invoices", 10, expected=100)
    progress.waiting(2.0, "rate limited")
    assert "waiting 2 s: rate limited" in text_of(progress)
    clock.now += 2.5
    text = text_of(progress)
    assert "waiting" not in text and "1 request(s) retried" in text


def test_a_live_sync_draws_bars_and_keeps_info_lines_in_the_log_file(
    make_sandbox: Any, tmp_path: Path
) -> None:
    sandbox = make_sandbox(customers=10, invoices=60, transactions=25, p429=0.2, seed=3)
    settings = settings_for(
        sandbox, f"sqlite:///{tmp_path / 's.db'}", tmp_path / "out", invoiced={"per_page": 10}
    )
    logfile = tmp_path / "syncd.log"
    log.configure(json=False, level="info", logfile=logfile, console_level="warning")
    console = recording()
    store = Store.open(settings.store_url())
    client = connect(settings)
    targets = open_targets(settings, store, None)
    try:
        with Progress(enabled=True, console=console) as bar:
            client.on_wait = bar.waiting
            structlog.get_logger("test").warning("disk.slow", path="out")
            report = SyncRun(settings, store, client, targets, progress=bar).run(
                ["customers", "invoices", "transactions"]
            )
            bar.finish(report.streams)
        close_targets(targets)
    finally:
        client.close()
        store.close()
        log.configure(level="info")
        structlog.reset_defaults()
    assert report.ok, report.errors()
    text = console.export_text()
    for name, n in (("customers", 10), ("invoices", 60), ("transactions", 25)):
        line = text[text.rindex(f"{name} ") :].splitlines()[0]  # frames follow each other: the last
        assert f" {n}/{n} " in line and "100%" in line and "done" in line  # each record once
    final = text[text.rindex("csv: ") :]
    assert final.startswith("csv: 95 written")
    assert client.stats.retries > 0 and "retried" in final
    assert "disk.slow" in text  # warnings still show, above the view
    for event in ("stream.synced", "csv.rendered", "api.retry", "[info"):
        assert event not in text
    events = [json.loads(line)["event"] for line in logfile.read_text().splitlines()]
    assert "stream.synced" in events and ("api.retry" in events or "api.waiting" in events)


def test_summary_says_what_changed_in_words_then_the_table(tmp_path: Path) -> None:
    report = SyncReport(
        streams={
            "invoices": StreamReport(
                fetched=8000, changed=8000, delivered={"csv": 8000}, rejected={"csv": 3}
            ),
            "customers": StreamReport(fetched=0),
        },
        duration=12.5,
        destinations={"csv": {"invoices": "out/invoices.csv"}},
    )
    console = recording()
    print_summary(report, console, logfile=tmp_path / "syncd.log")
    lines = console.export_text().splitlines()
    assert lines[0] == "8,000 invoices written to out/invoices.csv, 3 refused: see `syncd errors`"
    assert "sync (12.500 s)" in lines[1]
    assert any("8,000" in line and "csv=8,000" in line for line in lines)
    assert lines[-1] == f"log: {tmp_path / 'syncd.log'}"


def test_summary_of_a_run_that_changed_nothing_says_so() -> None:
    report = SyncReport(streams={"customers": StreamReport(fetched=2)}, duration=0.1)
    console = recording()
    print_summary(report, console)
    text = console.export_text()
    assert text.startswith("nothing changed: customers already up to date")
    assert "log:" not in text


def test_a_push_shows_its_label_and_its_waits() -> None:
    clock = Clock()
    progress = Progress(enabled=False, clock=clock, label="pushing payments to Invoiced")
    clock.now += 65
    progress.waiting(3.0, "rate limited")
    text = text_of(progress)
    assert "pushing payments to Invoiced… 0:01:05" in text
    assert "waiting 3 s: rate limited" in text


def test_the_client_tells_on_wait_how_long_and_why_before_each_retry() -> None:
    answers = iter([(429, {"Retry-After": "2"}), (503, {}), (200, {})])

    def fake(request: httpx.Request) -> httpx.Response:
        status, headers = next(answers)
        return httpx.Response(status, headers=headers, json=[] if status == 200 else {"message": "x"})

    sleeps: list[float] = []
    policy = RetryPolicy(base=0.5, max_wait=1.0, sleep=sleeps.append)
    client = InvoicedClient(
        httpx.Client(base_url="http://127.0.0.1:9", transport=httpx.MockTransport(fake)), policy
    )
    told: list[tuple[float, str]] = []
    client.on_wait = lambda seconds, reason: told.append((seconds, reason))
    assert client.get_page("/invoices").items == []
    assert [reason for _, reason in told] == ["rate limited", "server error 503"]
    assert [seconds for seconds, _ in told] == sleeps and told[0][0] == 2.0
