"""A first sync maps and writes each record once: dependents wait for what they name."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from connectors.csv import CsvConnector
from syncd.engine import run_sync
from syncd.plugin import MappedRecord
from tests.engine.helpers import assert_csv_matches, settings_for


def _counting(monkeypatch: pytest.MonkeyPatch) -> Counter[tuple[str, str]]:
    writes: Counter[tuple[str, str]] = Counter()
    real = CsvConnector.write

    def write(self: CsvConnector, stream: str, records: Sequence[MappedRecord]) -> Any:
        writes.update((stream, m.record.id) for m in records)
        return real(self, stream, records)

    monkeypatch.setattr(CsvConnector, "write", write)
    return writes


def _first_sync(sandbox: Any, store_url: str, out: Path, monkeypatch: pytest.MonkeyPatch) -> Counter[tuple[str, str]]:
    """A first sync in pages of 10 and two date windows a stream: its CSV writes, by record."""
    writes = _counting(monkeypatch)
    settings = settings_for(
        sandbox,
        store_url,
        out,
        invoiced={"per_page": 10},
        streams={"invoices": {"windows": 2}, "transactions": {"windows": 2}},
    )
    report = run_sync(settings)
    assert report.ok, report.errors()
    assert_csv_matches(sandbox, out)
    return writes


def test_a_first_sync_writes_each_record_to_the_csv_connector_once(
    make_sandbox: Any, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = make_sandbox(customers=30, invoices=120, transactions=60)
    writes = _first_sync(sandbox, store_url, tmp_path / "out", monkeypatch)
    for stream in ("customers", "invoices", "transactions"):
        ids = {str(o["id"]) for o in sandbox.data.list(stream)}
        assert {rid for s, rid in writes if s == stream} == ids
    twice = {key: n for key, n in writes.items() if n > 1}
    assert not twice, f"{len(twice)} records written more than once, e.g. {sorted(twice)[:5]}"


def test_past_the_hold_bound_dependent_walks_pause_instead_of_writing_twice(
    make_sandbox: Any, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import syncd.delivery_order as order

    monkeypatch.setattr(order, "HOLD_PAGES", 2)
    most = [0]
    real_take = order.DeliveryOrder.take

    def take(self: order.DeliveryOrder, walker: Any, item: Any) -> Any:
        yield from real_take(self, walker, item)
        most[0] = max(most[0], self.count)

    monkeypatch.setattr(order.DeliveryOrder, "take", take)
    sandbox = make_sandbox(customers=60, invoices=150, transactions=80)
    writes = _first_sync(sandbox, store_url, tmp_path / "out", monkeypatch)
    twice = {key: n for key, n in writes.items() if n > 1}
    assert not twice, f"{len(twice)} records written more than once, e.g. {sorted(twice)[:5]}"
    # Held: at most the bound plus one page in flight for each of the 4 dependent walks.
    assert 2 < most[0] <= 2 + 4, most[0]
