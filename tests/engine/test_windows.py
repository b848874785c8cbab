"""Date windows of a first pass hold similar numbers of records, however the dates are spread."""

from __future__ import annotations

import bisect
import itertools
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

from syncd.engine import SyncRun, connect, run_sync
from syncd.store import Store
from syncd.windows import PROBES_PER_EDGE, balanced_edges
from tests.engine.helpers import assert_csv_matches, settings_for

DAY = 86_400
START = 1_600_000_000


def _skewed(n: int) -> list[int]:
    """n dates: a tenth spread over two years, the rest in its last week."""
    spread = n // 10
    return [START + i * (730 * DAY // spread) for i in range(spread)] + [
        START + 723 * DAY + i * (7 * DAY // (n - spread)) for i in range(n - spread)
    ]


def _counts(dates: list[int], edges: list[int]) -> list[int]:
    cuts = [0, *(bisect.bisect_left(dates, e) for e in edges), len(dates)]
    return [b - a for a, b in itertools.pairwise(cuts)]


def test_balanced_edges_split_skewed_dates_by_count() -> None:
    dates = sorted(_skewed(1000))
    probes: list[int] = []

    def count_before(date: int) -> int:
        probes.append(date)
        return bisect.bisect_left(dates, date)

    edges = balanced_edges(count_before, dates[0], dates[-1], len(dates), 4)
    counts = _counts(dates, edges)
    assert len(counts) == 4 and sum(counts) == 1000
    assert max(counts) <= 2 * min(counts), counts
    assert len(probes) <= 3 * PROBES_PER_EDGE
    # Equal time spans would put nine tenths of the records in the last window.
    step = (dates[-1] - dates[0]) // 4
    assert max(_counts(dates, [dates[0] + step * i for i in range(1, 4)])) >= 900


def test_a_date_shared_by_most_records_gives_fewer_windows_not_empty_ones() -> None:
    dates = sorted([START] * 5 + [START + 100 * DAY] * 90 + [START + 200 * DAY] * 5)
    edges = balanced_edges(lambda d: bisect.bisect_left(dates, d), dates[0], dates[-1], len(dates), 4)
    assert edges == sorted(set(edges))
    assert all(n > 0 for n in _counts(dates, edges))


def test_first_sync_windows_of_a_skewed_sandbox_hold_similar_counts(
    make_sandbox: Any, store_url: str, tmp_path: Path
) -> None:
    sandbox = make_sandbox(customers=5, invoices=200, transactions=0)
    table = sandbox.data.tables["invoices"]
    with sandbox.data.lock:  # dates set as stored (voided invoices refuse an update)
        for (_, row), date in zip(sorted(table.rows.items()), _skewed(len(table.rows)), strict=True):
            table.put({**row, "date": date})
    settings = settings_for(sandbox, store_url, tmp_path / "out", streams={"invoices": {"windows": 4}})
    client = connect(settings)
    with closing(client), closing(Store.open(store_url)) as store:
        run = SyncRun(settings, store, client, [])
        stream = run._stream("invoices")
        windows = run._windows(stream, stream.params(), 4)
    dates = Counter[str]()
    for invoice in sandbox.data.list("invoices"):
        for partition, scope in windows:
            if int(scope.get("start_date", 0)) <= invoice["date"] <= int(scope.get("end_date", 2**62)):
                dates[partition] += 1
    counts = [dates[p] for p, _ in windows]
    assert len(windows) == 4 and sum(counts) == 200, counts
    assert max(counts) <= 2 * min(counts), counts
    # And a real first sync through those windows delivers everything.
    report = run_sync(settings)
    assert report.ok, report.errors()
    assert_csv_matches(sandbox, tmp_path / "out")
