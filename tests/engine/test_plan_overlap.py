"""Walks that need no date windows start while the first passes' windows are planned."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from syncd.delivery_order import DeliveryOrder
from syncd.engine import run_sync
from tests.engine.helpers import assert_csv_matches, settings_for
from tests.engine.test_delivery_order import _counting


def test_customers_are_walked_while_invoice_windows_are_planned(
    make_sandbox: Any, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = make_sandbox(customers=30, invoices=120, transactions=60)
    customers_asked = threading.Event()
    first_probe = threading.Lock()
    seen_while_planning: list[bool] = []
    real = sandbox.stats.request

    def request(method: str, path: str) -> None:
        if path == "/customers":
            customers_asked.set()
        if path == "/invoices" and first_probe.acquire(blocking=False):  # the windows' first probe
            # Held until the customers walk asks for its first page; bounded, so the old
            # order (every plan first, then the walks) fails here instead of hanging.
            seen_while_planning.append(customers_asked.wait(timeout=20))
        real(method, path)

    monkeypatch.setattr(sandbox.stats, "request", request)
    writes = _counting(monkeypatch)
    out = tmp_path / "out"
    settings = settings_for(
        sandbox,
        store_url,
        out,
        invoiced={"per_page": 10},
        streams={"invoices": {"windows": 3}, "transactions": {"windows": 2}},
    )
    report = run_sync(settings)
    assert report.ok, report.errors()
    assert seen_while_planning == [True]
    assert_csv_matches(sandbox, out)
    twice = {key: n for key, n in writes.items() if n > 1}
    assert not twice, f"{len(twice)} records written more than once, e.g. {sorted(twice)[:5]}"


class _Targets:
    """A mapping that reads invoices through customers and transactions through invoices."""

    @staticmethod
    def references(stream: str) -> list[str]:
        return {"invoices": ["customer"], "transactions": ["customer", "invoice"]}.get(stream, [])


def _walker(stream: str) -> Any:
    return SimpleNamespace(stream=SimpleNamespace(name=stream))


def test_a_stream_still_planning_holds_back_what_refers_to_it() -> None:
    customers, transactions = _walker("customers"), _walker("transactions")
    order = DeliveryOrder([customers, transactions], [_Targets()], planning=["invoices"])  # type: ignore[list-item]
    order.finished(customers)
    assert list(order.take(transactions, "page 1")) == []  # invoices are not even planned yet
    assert list(order.ready()) == []
    first, second = _walker("invoices"), _walker("invoices")
    order.planned("invoices", 2)
    assert list(order.take(first, "invoice page")) == [(first, "invoice page")]
    order.finished(first)
    assert list(order.ready()) == []  # one window of invoices still walks
    order.finished(second)
    assert list(order.ready()) == [(transactions, "page 1")]


def test_a_stream_that_failed_to_plan_holds_nothing_back() -> None:
    transactions = _walker("transactions")
    order = DeliveryOrder([transactions], [_Targets()], planning=["customers", "invoices"])  # type: ignore[list-item]
    assert list(order.take(transactions, "page 1")) == []
    order.planned("customers", 1)  # one walk: still running
    order.planned("invoices", 0)  # its planning failed: no walk will come
    assert list(order.ready()) == []
    order.finished(_walker("customers"))
    assert list(order.ready()) == [(transactions, "page 1")]


def test_held_pages_of_several_windows_are_released_in_the_order_they_arrived() -> None:
    # An invoice whose date is edited during the first pass moves from window a to window b:
    # b's later page holds the newer copy, and must not be overwritten by a's older one.
    customers, a, b = _walker("customers"), _walker("invoices"), _walker("invoices")
    order = DeliveryOrder([customers, a, b], [_Targets()])
    for walker, page in ((b, "b1"), (a, "a1 (old copy)"), (b, "b2 (new copy)"), (a, "a2")):
        assert list(order.take(walker, page)) == []
    order.finished(customers)
    assert [page for _, page in order.ready()] == ["b1", "a1 (old copy)", "b2 (new copy)", "a2"]
    assert order.count == 0
