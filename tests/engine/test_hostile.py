"""Never trust a response: a page that breaks the contract fails its stream, and nothing of it is used."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.engine import run_sync
from syncd.store import Store
from tests.engine.helpers import assert_csv_matches, read_csv_dir, settings_for
from tests.engine.hostile import Hostile, rewrite_item

YEAR_2100 = 4_102_444_800


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = {"a": value}
    return value


def _without(key: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda item: {k: v for k, v in item.items() if k != key}


def _with(key: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda item: {**item, key: value}


CASES = {
    "id-null": ("invoices", _with("id", None), "id is null"),
    "id-missing": ("invoices", _without("id"), "id is missing"),
    "id-blank": ("invoices", _with("id", ""), "is not a non-empty string or an integer"),
    "id-fraction": ("invoices", _with("id", 1.5), "id Decimal('1.5') is not"),
    "id-object": ("invoices", _with("id", {"id": 7}), "is not a non-empty string or an integer"),
    "updated_at-missing": ("invoices", _without("updated_at"), "updated_at is missing"),
    "updated_at-string": ("invoices", _with("updated_at", "2024-05-01T10:00:00Z"), "is not a unix time"),
    "updated_at-year-2100": ("customers", _with("updated_at", YEAR_2100), "after the response's Date"),
    "item-a-string": ("invoices", lambda _: "garbage", "not a JSON object but str"),
    "item-null": ("invoices", lambda _: None, "not a JSON object but NoneType"),
    "item-nested-deep": ("invoices", _with("metadata", _nested(200)), "nested deeper than"),
}


@pytest.fixture
def hostile_sandbox(make_sandbox: Any) -> Any:
    return make_sandbox(customers=12, invoices=40, transactions=10)


def _settings(sandbox: Any, tmp_path: Path, windows: int = 1) -> Any:
    return settings_for(
        sandbox,
        f"sqlite:///{tmp_path / 's.db'}",
        tmp_path / "out",
        invoiced={"per_page": 5},
        streams={"invoices": {"windows": windows}, "transactions": {"windows": 1}},
    )


def _stored(tmp_path: Path, stream: str) -> tuple[set[str], dict[str, int]]:
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    try:
        ids = {r.id for batch in store.iter_raw(stream) for r in batch}
        return ids, store.cursors(stream)
    finally:
        store.close()


@pytest.mark.parametrize("case", list(CASES))
def test_a_page_that_breaks_the_contract_fails_its_stream_and_nothing_of_it_is_used(
    hostile_sandbox: Any, tmp_path: Path, case: str
) -> None:
    stream, change, reason = CASES[case]
    sandbox, settings = hostile_sandbox, _settings(hostile_sandbox, tmp_path)
    hostile = Hostile(sandbox, rewrite_item(f"/{stream}", 2, 2, change))
    try:
        report = run_sync(settings, client=hostile.client())
    finally:
        hostile.close()

    error = report.streams[stream].error
    assert error is not None and f"GET /{stream}: record 3 of 5 breaks the API contract" in error
    assert reason in error and "\n" not in error
    assert all(r.error is None for name, r in report.streams.items() if name != stream), report.errors()
    # Only the page before the broken one was used: its records, its checkpoint, nothing after.
    [first] = hostile.passed[f"/{stream}"]
    ids, cursors = _stored(tmp_path, stream)
    assert ids == {str(item["id"]) for item in first}
    assert cursors == {"": max(item["updated_at"] for item in first)}
    rows = read_csv_dir(tmp_path / "out")[stream][1:]
    assert rows and all(row[0] for row in rows)  # no blank-id row
    assert {row[0] for row in rows} <= ids

    # The server mends its ways: one good sync and every record is there.
    good = run_sync(settings)
    assert good.ok, good.errors()
    assert_csv_matches(sandbox, tmp_path / "out")


def test_a_date_header_in_2100_moves_no_cursor(hostile_sandbox: Any, tmp_path: Path) -> None:
    """A listing's last page sets the cursor to the response's Date: one from 2100 must not."""
    settings = _settings(hostile_sandbox, tmp_path)
    assert run_sync(settings).ok
    _, before = _stored(tmp_path, "customers")
    hostile = Hostile(
        hostile_sandbox,
        date=lambda r: "Fri, 01 Jan 2100 00:00:00 GMT" if r.url.path == "/customers" else None,
    )
    try:
        report = run_sync(settings, client=hostile.client())
    finally:
        hostile.close()
    error = report.streams["customers"].error
    assert error is not None and error.startswith("GET /customers breaks the API contract: its Date header")
    assert report.streams["invoices"].error is None
    assert _stored(tmp_path, "customers")[1] == before


def test_a_page_nested_past_the_parser_fails_its_stream_on_one_line(
    hostile_sandbox: Any, tmp_path: Path
) -> None:
    pages = [0]

    def deep(request: httpx.Request, body: bytes) -> bytes | None:
        if request.url.path != "/invoices":
            return None
        pages[0] += 1
        return b"[" * 100_000 + b"]" * 100_000 if pages[0] >= 2 else None

    hostile = Hostile(hostile_sandbox, deep)
    try:
        report = run_sync(_settings(hostile_sandbox, tmp_path), client=hostile.client())
    finally:
        hostile.close()
    error = report.streams["invoices"].error
    assert error is not None and "/invoices" in error and "nested too deeply" in error and "\n" not in error
    assert report.streams["customers"].error is None
    ids, _ = _stored(tmp_path, "invoices")
    assert ids == {str(item["id"]) for item in hostile.passed["/invoices"][0]}


PLANNING = {
    "not-objects": (b"[1, 2, 3]", "record 1 of 3 breaks the API contract: not a JSON object but int"),
    "date-a-string": (
        b'[{"id": 1, "updated_at": 1700000000, "date": "2024-01-01"}]',
        "date '2024-01-01' is not a unix time",
    ),
    "no-id": (
        b'[{"updated_at": 1700000000, "date": 1700000000}]',
        "record 1 of 1 breaks the API contract: id",
    ),
    "nested-body": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "nested-record": (
        b'[{"id": 1, "updated_at": 1700000000, "date": 1, "metadata": '
        + b'{"a": ' * 100
        + b"1"
        + b"}" * 101
        + b"]",
        "nested deeper than",
    ),
}


@pytest.mark.parametrize("case", list(PLANNING))
def test_a_broken_date_window_planning_answer_fails_the_stream_without_a_traceback(
    hostile_sandbox: Any, tmp_path: Path, case: str
) -> None:
    body, reason = PLANNING[case]

    def planning(request: httpx.Request, _: bytes) -> bytes | None:
        planned = request.url.path == "/invoices" and request.url.params.get("per_page") == "1"
        return body if planned else None

    hostile = Hostile(hostile_sandbox, planning)
    try:
        report = run_sync(_settings(hostile_sandbox, tmp_path, windows=4), client=hostile.client())
    finally:
        hostile.close()
    error = report.streams["invoices"].error
    assert error is not None and "/invoices" in error and reason in error and "\n" not in error
    assert report.streams["customers"].error is None and report.streams["transactions"].error is None
    assert _stored(tmp_path, "invoices") == (set(), {})
